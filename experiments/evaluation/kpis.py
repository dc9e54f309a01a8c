"""The merchant's KPIs of an evaluation, each with a confidence interval.

Every policy is run on the same shoppers with the same draws (common random numbers,
:mod:`agents.rollout`), so differences between policies are taken shopper by shopper
(paired), which removes the shopper-to-shopper spread from their intervals.

Intervals, all at ``confidence`` (0.95 by default):

- means (profit, revenue and spend per 1,000 shoppers, conversion, offer rate, ...):
  Student t-interval of the per-shopper values (``scipy.stats.ttest_1samp``);
- paired differences (vs ``never``, vs the best baseline, regret vs the oracle):
  t-interval of the per-shopper differences; :func:`unpaired_interval` (Welch) is the
  interval one would get treating the runs as independent samples;
- ratios (profit captured, give-away rate): ``scipy.stats.bootstrap``, resampling
  shoppers (all ratios of a group from the same resamples, so pairs stay pairs), seeded,
  percentile method by default (``BCa`` needs a jackknife of n - 1 of n shoppers: only for
  small n).

KPI definitions, per policy, for a group of shoppers (all, a segment, a consent state):

- ``profit_per_1000``, ``revenue_per_1000``, ``spend_per_1000`` (EUR per 1,000 shoppers);
  ``spend_by_kind_per_1000``: concession spend split by concession kind;
- ``conversion``: share of shoppers who bought;
- ``offer_rate``: share of shoppers offered at least one concession;
  ``interruptions_per_shopper``: offers (pop-ups, chats, e-mails) per shopper;
- ``harassment_exits``: share who left harassed; ``opt_outs``: share who withdrew consent;
- ``agent_sessions_per_1000``; ``agent_utilisation``: mean share of live agents busy
  (whole run only, no interval);
- ``giveaway_rate``: of the shoppers a concession cost something (spend > 0), the share
  who bought under ``never`` too, i.e. would have bought without it (0 if nobody got
  one); ``giveaway_spend_per_1000``: the spend on those shoppers;
- ``diff_vs_never_per_1000``, ``diff_vs_best_per_1000``: paired profit differences;
  ``diff_vs_never_unpaired_per_1000``: the same difference with a Welch interval;
- ``regret_per_1000``: oracle profit minus the policy's, paired;
- ``profit_captured``: (policy - never) / (oracle - never), mean profits;
- ``cost_of_goods_per_1000``, ``shipping_per_1000`` (the carrier's cost),
  ``agent_cost_per_1000``, ``future_value_per_1000``: ledger terms
  (:mod:`envs.ledger`), for the margin from revenue to profit;
- ``first_offer_visit``, ``first_offer_step``: when the first offer came, as the share
  of shoppers per bin of visits (:data:`VISIT_BINS`) and of journey steps
  (:data:`STEP_BINS`); shoppers never offered anything are in no bin.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import stats

from agents.rollout import Outcomes

PER = 1000.0  # KPIs in EUR are per 1,000 shoppers
# (label, first, last) of the bins of first_offer_visit / first_offer_step; last None: open
VISIT_BINS: tuple[tuple[str, int, int | None], ...] = (
    ("1", 1, 1),
    ("2", 2, 2),
    ("3+", 3, None),
)
STEP_BINS: tuple[tuple[str, int, int | None], ...] = (
    ("0-1", 0, 1),
    ("2-4", 2, 4),
    ("5-9", 5, 9),
    ("10-19", 10, 19),
    ("20+", 20, None),
)


@dataclass(frozen=True)
class Interval:
    """A point estimate with its confidence interval (NaN where it cannot be computed)."""

    estimate: float
    low: float
    high: float

    @property
    def width(self) -> float:
        return self.high - self.low

    def scaled(self, factor: float) -> Interval:
        return Interval(self.estimate * factor, self.low * factor, self.high * factor)

    def to_json(self) -> dict[str, float | None]:
        """``{"estimate", "low", "high"}`` with NaN as ``None`` (JSON null)."""
        return {k: _finite(getattr(self, k)) for k in ("estimate", "low", "high")}


def _finite(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def exact(value: float) -> Interval:
    """A value known without sampling error."""
    return Interval(value, value, value)


def mean_interval(
    x: NDArray[Any],
    confidence: float = 0.95,
    lower: float = -math.inf,
    upper: float = math.inf,
) -> Interval:
    """Mean of ``x`` with its Student t-interval; exact if ``x`` has no spread.

    ``lower`` / ``upper`` are bounds the quantity cannot cross (0 and 1 for a share, 0 for
    a spend): the interval is clipped to them, so a rare event gets no negative bound.
    """
    x = np.asarray(x, dtype=np.float64)
    if x.size == 0:
        return Interval(math.nan, math.nan, math.nan)
    mean = float(x.mean())
    if x.size < 2:
        return Interval(mean, math.nan, math.nan)
    if np.ptp(x) <= 1e-12 * max(1.0, abs(mean)):  # equal up to float rounding
        return exact(mean)
    ci = stats.ttest_1samp(x, 0.0).confidence_interval(confidence)
    return Interval(mean, max(float(ci.low), lower), min(float(ci.high), upper))


def share_interval(flags: NDArray[Any], confidence: float = 0.95) -> Interval:
    """Share of true ``flags``: the t-interval of a mean of 0/1, clipped to [0, 1]."""
    return mean_interval(flags, confidence, 0.0, 1.0)


def amount_interval(x: NDArray[Any], confidence: float = 0.95) -> Interval:
    """Mean of a non-negative amount (a spend, a count), its interval clipped at 0."""
    return mean_interval(x, confidence, 0.0)


def paired_interval(a: NDArray[Any], b: NDArray[Any], confidence: float = 0.95) -> Interval:
    """Mean of ``a - b`` over the same shoppers, t-interval of the per-shopper differences."""
    return mean_interval(np.asarray(a, np.float64) - np.asarray(b, np.float64), confidence)


def unpaired_interval(a: NDArray[Any], b: NDArray[Any], confidence: float = 0.95) -> Interval:
    """Mean of ``a`` minus mean of ``b`` as if independent samples (Welch t-interval)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.size < 2 or b.size < 2:
        diff = float(a.mean() - b.mean()) if a.size and b.size else math.nan
        return Interval(diff, math.nan, math.nan)
    diff = float(a.mean() - b.mean())
    if np.ptp(a) == 0.0 and np.ptp(b) == 0.0:
        return exact(diff)
    ci = stats.ttest_ind(a, b, equal_var=False).confidence_interval(confidence)
    return Interval(diff, float(ci.low), float(ci.high))


@dataclass(frozen=True)
class Bootstrap:
    """How ratio intervals are resampled: resamples, scipy method, seed."""

    n_resamples: int = 1000
    method: str = "percentile"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.n_resamples < 2:
            raise ValueError(f"n_resamples must be at least 2, got {self.n_resamples}")
        if self.method not in ("percentile", "basic", "BCa"):
            raise ValueError(f"method must be percentile, basic or BCa, got {self.method!r}")


DEFAULT_BOOTSTRAP = Bootstrap()


def binned_shares(
    values: NDArray[Any],
    bins: tuple[tuple[str, int, int | None], ...],
    confidence: float = 0.95,
) -> dict[str, Interval]:
    """Share of all ``values`` in each ``(label, first, last)`` bin (``last`` None: open)."""
    values = np.asarray(values)
    out: dict[str, Interval] = {}
    for label, first, last in bins:
        inside = values >= first
        if last is not None:
            inside &= values <= last
        out[label] = share_interval(inside, confidence)
    return out


def ratio_intervals(
    rows: NDArray[Any],
    pairs: list[tuple[int, int]],
    confidence: float = 0.95,
    boot: Bootstrap = DEFAULT_BOOTSTRAP,
) -> list[Interval]:
    """``mean(rows[i]) / mean(rows[j])`` for each pair ``(i, j)``, bootstrap intervals.

    ``rows`` is ``(n_rows, n_shoppers)``; one resampling of shoppers serves every pair. A
    ratio whose denominator is 0 is NaN (so is its interval).
    """
    if not pairs:
        return []
    data = np.asarray(rows, dtype=np.float64)
    num = np.array([i for i, _ in pairs], dtype=np.int64)
    den = np.array([j for _, j in pairs], dtype=np.int64)

    def statistic(x: NDArray[Any], axis: int = -1) -> NDArray[Any]:
        means = x.mean(axis=axis, dtype=np.float64)  # (n_rows,) or (n_rows, batch)
        with np.errstate(divide="ignore", invalid="ignore"):
            return means[num] / means[den]

    estimates = statistic(data)
    if data.shape[-1] < 2:
        return [Interval(float(e), math.nan, math.nan) for e in estimates]
    # about 2 million resampled values per batch (16 MB), whatever the size
    batch = max(1, int(2e6 // data.size))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=RuntimeWarning)
        warnings.simplefilter("ignore", category=stats.DegenerateDataWarning)
        res = stats.bootstrap(
            (data.astype(np.float32),),
            statistic,
            vectorized=True,
            axis=-1,
            n_resamples=boot.n_resamples,
            batch=batch,
            confidence_level=confidence,
            method=boot.method,
            rng=np.random.default_rng(boot.seed),
        )
    low = np.atleast_1d(res.confidence_interval.low)
    high = np.atleast_1d(res.confidence_interval.high)
    return [
        Interval(float(e), float(lo), float(hi))
        for e, lo, hi in zip(estimates, low, high, strict=True)
    ]


def group_kpis(
    outcomes: Mapping[str, Outcomes],
    rows: NDArray[np.bool_],
    *,
    never: str,
    oracle: str,
    best: str,
    kinds: Mapping[str, list[int]],
    confidence: float = 0.95,
    boot: Bootstrap = DEFAULT_BOOTSTRAP,
    whole_run: bool = False,
) -> dict[str, dict[str, Any]]:
    """The KPIs of every policy over the shoppers where ``rows`` is true; see the module doc.

    ``kinds`` maps a concession kind to its action columns. With ``whole_run`` the
    live-agent utilisation of the run is added (it has no per-shopper split).
    """
    ci = confidence
    base, top, ref = outcomes[never], outcomes[oracle], outcomes[best]
    base_profit, top_profit = base.profit[rows], top.profit[rows]
    bought_never = base.bought[rows]
    agent_cols = list(kinds.get("live_agent", []))
    out: dict[str, dict[str, Any]] = {}
    # ratio KPIs: rows of per-shopper values for one joint bootstrap; row 0 is the
    # oracle's gain over never, the denominator of every profit captured
    ratio_rows: list[NDArray[Any]] = [top_profit - base_profit]
    ratio_kpis: list[tuple[str, str, tuple[int, int]]] = []
    for name, o in outcomes.items():
        profit = o.profit[rows]
        spend = o.spend[:, rows]
        total_spend = spend.sum(axis=0)
        given = total_spend > 0
        give = given & bought_never
        k: dict[str, Any] = {
            "shoppers": int(rows.sum()),
            "profit_per_1000": mean_interval(profit, ci).scaled(PER),
            "revenue_per_1000": amount_interval(o.term("revenue")[rows], ci).scaled(PER),
            "conversion": share_interval(o.bought[rows], ci),
            "spend_per_1000": amount_interval(total_spend, ci).scaled(PER),
            "spend_by_kind_per_1000": {
                kind: amount_interval(spend[cols].sum(axis=0), ci).scaled(PER)
                for kind, cols in kinds.items()
            },
            "offer_rate": share_interval(o.offers[rows] > 0, ci),
            "interruptions_per_shopper": amount_interval(o.offers[rows], ci),
            "harassment_exits": share_interval(o.harassed[rows], ci),
            "opt_outs": share_interval(o.opted_out[rows], ci),
            "agent_sessions_per_1000": amount_interval(
                o.offered[agent_cols][:, rows].sum(axis=0), ci
            ).scaled(PER),
            "giveaway_spend_per_1000": amount_interval(total_spend * give, ci).scaled(PER),
            "diff_vs_never_per_1000": paired_interval(profit, base_profit, ci).scaled(PER),
            "diff_vs_never_unpaired_per_1000": unpaired_interval(profit, base_profit, ci).scaled(
                PER
            ),
            "diff_vs_best_per_1000": paired_interval(profit, ref.profit[rows], ci).scaled(PER),
            "regret_per_1000": paired_interval(top_profit, profit, ci).scaled(PER),
            "cost_of_goods_per_1000": amount_interval(o.term("cost_of_goods")[rows], ci).scaled(
                PER
            ),
            "shipping_per_1000": amount_interval(o.term("shipping")[rows], ci).scaled(PER),
            "agent_cost_per_1000": amount_interval(o.term("agent_cost")[rows], ci).scaled(PER),
            "future_value_per_1000": mean_interval(o.term("future_value")[rows], ci).scaled(PER),
            "first_offer_visit": binned_shares(o.first_offer_visit[rows], VISIT_BINS, ci),
            "first_offer_step": binned_shares(o.first_offer_step[rows], STEP_BINS, ci),
        }
        if whole_run:
            k["agent_utilisation"] = Interval(o.agent_busy, math.nan, math.nan)
        # exact values need no resampling: never captures 0 and the oracle 1 (by
        # definition), and a policy that cost nothing gave nothing away
        if np.array_equal(profit, base_profit):
            k["profit_captured"] = exact(0.0)
        elif np.array_equal(profit, top_profit):
            k["profit_captured"] = exact(1.0)
        else:
            ratio_rows.append(profit - base_profit)
            ratio_kpis.append((name, "profit_captured", (len(ratio_rows) - 1, 0)))
        if not given.any():
            k["giveaway_rate"] = exact(0.0)
        else:
            ratio_rows.extend([give, given])
            ratio_kpis.append((name, "giveaway_rate", (len(ratio_rows) - 2, len(ratio_rows) - 1)))
        out[name] = k
    pairs = [pair for _, _, pair in ratio_kpis]
    intervals = ratio_intervals(np.stack(ratio_rows), pairs, ci, boot)
    for (name, kpi, _), interval in zip(ratio_kpis, intervals, strict=True):
        out[name][kpi] = interval
    return out


def to_json(value: Any) -> Any:
    """KPI results as plain JSON data (intervals as ``{"estimate", "low", "high"}``)."""
    if isinstance(value, Interval):
        return value.to_json()
    if isinstance(value, Mapping):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_json(v) for v in value]
    if isinstance(value, np.generic):
        return to_json(value.item())
    if isinstance(value, float):
        return _finite(value)
    return value
