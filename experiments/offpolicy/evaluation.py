"""Off-policy evaluation of policies on a decision log: figures, intervals, diagnostics.

:func:`evaluate_offpolicy` answers, for each policy, what it would have earned on the
logged shoppers, in the units of the paired simulator evaluation: profit per 1,000
journeys, conversion, concession spend per 1,000 journeys, each by every estimator of
:mod:`experiments.offpolicy.estimators` with a 95% interval from the journey bootstrap
(:mod:`experiments.offpolicy.bootstrap`), one **recommended** estimate, and the
diagnostics and warnings of :mod:`experiments.offpolicy.diagnostics`.

**Propensities.** The log's own when it has them. Without them they are estimated
(:mod:`experiments.offpolicy.propensity`), every policy gets a loud warning, and every
interval is widened by the spread of the estimates over refits of the propensity model
on bootstrap resamples of the journeys.

**The value model's split.** The doubly robust estimators' value model is cross-fitted
on ``value_model.repeats`` random splits of the journeys; their estimates average the
splits, and their intervals are widened by the spread between splits
(:mod:`experiments.offpolicy.fqe`).

**The recommended estimate** is the weighted doubly robust one (``wdr``; on a
single-decision log the doubly robust one, ``dr``): doubly robust, so unbiased (``dr``)
or consistent (``wdr``) when the propensities are exact whatever the value model's errors
(cross-fitting), with the value model taking much of the importance weights' noise out;
and on journeys of many decisions the self-normalised weights keep a few heavily weighted
journeys from swinging the estimate (its intervals covered the simulator's truth as often
as ``dr``'s, and were narrower, in ``concede bench ope``). It falls back to
the self-normalised per-decision estimate (``wpdis``) when there is no value model (fewer
journeys than ``value_model.min_journeys``, or none asked for) or when the value model
explains nothing of the returns (its out-of-fold R² of profit at or below 0). On journeys
of many decisions it is the **marginalised** doubly robust one (``mdr``) instead when its
profit interval is narrower than ``wdr``'s and the two intervals overlap: both are doubly
robust, ``wdr`` resting on the exact per-decision weights and ``mdr`` on the state-ratio
model's, which pools histories that reach the same state; where they agree the narrower
one is the more precise, and where they do not, the ratio model is the one to doubt, and
``wdr``, which needs none, is kept (a two-estimator form of the interval-agreement rule of
Su, Srinath and Krishnamurthy, 2020, SLOPE). ``concede bench ope`` measured it against
``wdr`` alone. The choice and its reason are in the output.

**The ratio model's split.** The marginalised estimators (``mis``, ``wmis``, ``mdr``,
``wmdr``; :mod:`experiments.offpolicy.marginal`) use a state-ratio model cross-fitted on
``ratio_model.repeats`` splits, split ``r`` beside the value model's split ``r``; their
estimates average the splits, their intervals are widened by the spread between splits
(the model is not refitted per bootstrap resample: a thousand fits per policy). They are
not computed on single-decision logs, where they are IPS, SNIPS, DR and SNDR exactly.

**A campaign budget** shared between shoppers: when the log says what the budget withheld
and what it allows, each policy is evaluated under its own budget where its spending fits
the allowance, on the logged eligibility where it exceeds it, and across both where the
log cannot tell; its result says which (:mod:`experiments.offpolicy.budget`).

The result is an :class:`experiments.offpolicy.result.OPEResult`, which the ``ope`` app
prints and writes as JSON and the merchant report reads back.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

import numpy as np
from numpy.typing import NDArray
from threadpoolctl import threadpool_limits

from agents.logs import DecisionLog
from agents.policy import Policy
from experiments.offpolicy import budget
from experiments.offpolicy import estimators as est
from experiments.offpolicy.bootstrap import BootstrapSettings, Interval, interval, widen
from experiments.offpolicy.data import CONVERSION, PROFIT, SIGNALS, SPEND, Journeys, from_log
from experiments.offpolicy.diagnostics import CAUTION, TRUSTED, assess, diagnose
from experiments.offpolicy.exact import exact_outputs
from experiments.offpolicy.fqe import (
    ValueEstimates,
    ValueModelSettings,
    fit_value_repeats,
    mean_values,
)
from experiments.offpolicy.marginal import RatioModelSettings, fit_ratio_repeats
from experiments.offpolicy.propensity import fit_propensities, refits
from experiments.offpolicy.result import (
    CONVERSION_KEY,
    PROFIT_KEY,
    SPEND_KEY,
    Estimate,
    LogSummary,
    OPEResult,
    PolicyEstimates,
    Recommendation,
    RunSettings,
)
from experiments.offpolicy.targets import target_probabilities

PER = 1000.0
#: output key and scale of each signal
OUTPUTS: dict[str, tuple[str, float]] = {
    PROFIT: (PROFIT_KEY, PER),
    CONVERSION: (CONVERSION_KEY, 1.0),
    SPEND: (SPEND_KEY, PER),
}

FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class OPESettings:
    """How to evaluate.

    Args:
        bootstrap: journey resamples, seed and confidence of the intervals.
        value_model: the doubly robust estimators' value model; None: no value model (no
            ``dr``/``wdr``/``mdr``/``wmdr``).
        ratio_model: the marginalised estimators' state-ratio model
            (:mod:`experiments.offpolicy.marginal`); None: no ratio model (no ``mis``,
            ``wmis``, ``mdr``, ``wmdr``).
        signals: which of ``profit``, ``conversion``, ``spend`` to estimate.
        propensity_refits: refits of the propensity model that widen the intervals when
            the log has no propensities.
        seed: seed of the cross-fitting folds and the propensity fits.
        threads: BLAS and OpenMP threads the fits may use (scikit-learn's regressions
            and linear algebra); 1 is fastest on a busy or small machine, where more
            threads fight over the cores.
    """

    bootstrap: BootstrapSettings = field(default_factory=BootstrapSettings)
    value_model: ValueModelSettings | None = field(default_factory=ValueModelSettings)
    ratio_model: RatioModelSettings | None = field(default_factory=RatioModelSettings)
    signals: tuple[str, ...] = SIGNALS
    propensity_refits: int = 20
    seed: int = 0
    threads: int = 1

    def __post_init__(self) -> None:
        unknown = [s for s in self.signals if s not in SIGNALS]
        if unknown or not self.signals:
            raise ValueError(f"signals must be among {list(SIGNALS)}, got {list(self.signals)}")
        if self.propensity_refits < 0:
            raise ValueError(f"propensity_refits must be >= 0, got {self.propensity_refits}")
        if self.threads < 1:
            raise ValueError(f"threads must be >= 1, got {self.threads}")


@dataclass(frozen=True)
class _Propensities:
    taken: FloatArray  # the logger's probability of the logged action, per row
    every: FloatArray  # of every action (logged, else estimated), per row
    source: str  # logged | estimated
    support_source: str  # where ``every`` comes from: logged probabilities | estimated


def evaluate_offpolicy(
    log: DecisionLog,
    policies: Sequence[Policy],
    *,
    feature_names: Sequence[str] | None = None,
    settings: OPESettings | None = None,
    progress: Callable[[str], None] = lambda _: None,
) -> OPEResult:
    """Evaluate ``policies`` on ``log``; see the module docstring.

    ``feature_names``: the features a policy that does not declare its own reads, in its
    column order (a scenario's ``feature_schema`` names); by default the log's.

    Returns an :class:`~experiments.offpolicy.result.OPEResult`: ``log`` (what was read:
    journeys, decisions, single-decision or not, the logger, its scenario, how the
    propensities were obtained), ``settings``, ``logged`` (what the logger itself earned,
    per output, an interval each), ``policies`` (names in order) and ``results``: per
    policy, ``estimators`` (``{estimator: {output: Estimate}}``, outputs
    ``profit_per_1000``, ``conversion``, ``spend_per_1000``), ``recommended``
    (``estimator``, ``why`` and the outputs), ``diagnostics``, ``value_model_r2`` per
    signal, ``trust`` (``trusted``, ``caution`` or ``not trustworthy``) and
    ``warnings`` (sentences), and on a log with a campaign budget ``budget`` (see
    :func:`experiments.offpolicy.budget.summary`); and ``warnings`` for the whole log.
    Figures are rounded to 6 decimals, as the JSON holds them.

    Raises:
        experiments.offpolicy.targets.PolicyMismatchError: a policy cannot be evaluated on
            this log (privileged, other actions).
        experiments.offpolicy.data.MissingFeaturesError: the log lacks a feature a policy
            reads.
    """
    s = settings or OPESettings()
    with threadpool_limits(s.threads):
        return _evaluate(log, policies, feature_names, s, progress)


def _evaluate(
    log: DecisionLog,
    policies: Sequence[Policy],
    feature_names: Sequence[str] | None,
    s: OPESettings,
    progress: Callable[[str], None],
) -> OPEResult:
    journeys = from_log(log)
    names = tuple(feature_names) if feature_names is not None else journeys.feature_names
    signals = [sig for sig in s.signals if sig in journeys.signals]
    rng = np.random.default_rng(s.seed)
    progress(f"{journeys.n_journeys:,} journeys, {journeys.n_rows:,} decisions")
    props = _propensities(journeys, rng)
    targets = {p.name: target_probabilities(p, journeys, names) for p in policies}
    refit_props = _refits(journeys, props, s, rng)
    log_warnings = _log_warnings(props, s.signals, signals)
    own = budget.own_mask(journeys)
    results: dict[str, PolicyEstimates] = {}
    for policy in policies:
        progress(f"evaluating {policy.name}")
        own_target = None if own is None else target_probabilities(policy, journeys, names, own)
        results[policy.name] = _evaluate_budgeted(
            policy.name,
            journeys,
            targets[policy.name],
            own_target,
            partial(_evaluate_one, policy.name, journeys, props, refit_props, s),
            signals,
        )
    return OPEResult(
        log=LogSummary(
            journeys=journeys.n_journeys,
            decisions=journeys.n_rows,
            single_decision=journeys.single_decision,
            logger=log.spec.logger,
            exploration=dict(log.spec.exploration) if log.spec.exploration else None,
            scenario=log.spec.scenario,
            scenario_digest=log.spec.scenario_digest,
            propensities=props.source,
            actions=tuple(journeys.action_names),
            files=tuple(str(f) for f in log.files),
        ),
        settings=RunSettings(
            confidence=s.bootstrap.confidence,
            n_resamples=s.bootstrap.n_resamples,
            bootstrap_seed=s.bootstrap.seed,
            seed=s.seed,
            value_model=None if s.value_model is None else dict(s.value_model.__dict__),
            ratio_model=None if s.ratio_model is None else dict(s.ratio_model.__dict__),
            propensity_refits=s.propensity_refits if props.source == "estimated" else 0,
        ),
        estimator_names=_names(journeys, s),
        logged=_logged(journeys, signals, s.bootstrap),
        policies=tuple(p.name for p in policies),
        results=results,
        warnings=tuple(log_warnings),
    )


def _names(journeys: Journeys, s: OPESettings | None = None) -> dict[str, str]:
    """The estimators' display names: IPS... on a single-decision log (where the
    marginalised estimators are these exactly, and are not computed)."""
    if journeys.single_decision:
        return dict(est.SINGLE_NAMES)
    marginal = est.MARGINAL if s is None or _fits_ratios(journeys, s) else ()
    return {e: e for e in (*est.SEQUENTIAL, *marginal)}


def _fits_ratios(journeys: Journeys, s: OPESettings) -> bool:
    """Whether the marginalised estimators are computed: a ratio model asked for, enough
    journeys, more than one decision per journey."""
    return (
        s.ratio_model is not None
        and not journeys.single_decision
        and journeys.n_journeys >= s.ratio_model.min_journeys
    )


def _propensities(journeys: Journeys, rng: np.random.Generator) -> _Propensities:
    """The logger's probabilities: the log's own (``logged``), or ``estimated``."""
    rows = np.arange(journeys.n_rows)
    if journeys.propensity_logged:
        every = journeys.logged_probs
        source = "logged probabilities"
        if every is None:  # only the taken action's: estimate the others, for support only
            every = fit_propensities(journeys, rng)
            source = "estimated"
        return _Propensities(journeys.propensity, every, "logged", source)
    every = fit_propensities(journeys, rng)
    return _Propensities(every[rows, journeys.action], every, "estimated", "estimated")


def _refits(
    journeys: Journeys, props: _Propensities, s: OPESettings, rng: np.random.Generator
) -> list[FloatArray]:
    """The taken action's probability under each propensity refit (estimated logs only)."""
    if props.source != "estimated" or s.propensity_refits < 2:
        return []
    rows = np.arange(journeys.n_rows)
    return [p[rows, journeys.action] for p in refits(journeys, s.propensity_refits, rng)]


def _log_warnings(props: _Propensities, asked: Sequence[str], signals: list[str]) -> list[str]:
    out = []
    if props.source == "estimated":
        out.append(
            "THE LOG HAS NO PROPENSITIES: they were estimated by a logistic regression of "
            "the action on the features. Every figure assumes the logger decided on those "
            "features alone; log the probability of each action taken to lift this."
        )
    if SPEND in asked and SPEND not in signals:
        out.append(
            "concession spend is not estimated: the log has no concession_cost, "
            "voucher_liability and agent_cost terms"
        )
    return out


def _estimate(iv: Interval, scale: float) -> Estimate:
    """``iv`` scaled, as the JSON holds it (6 decimals; None where not finite)."""
    return Estimate(**iv.scaled(scale).to_json())


def _logged(journeys: Journeys, signals: list[str], boot: BootstrapSettings) -> dict[str, Estimate]:
    out = {}
    for sig in signals:
        key, scale = OUTPUTS[sig]
        stat = est.Statistic(mean_terms=journeys.per_journey(journeys.signals[sig]))
        out[key] = _estimate(interval(stat, journeys.n_journeys, boot), scale)
    return out


def _evaluate_budgeted(
    name: str,
    journeys: Journeys,
    target: FloatArray,
    own_target: FloatArray | None,
    evaluate: Callable[[FloatArray, list[str]], PolicyEstimates],
    signals: list[str],
) -> PolicyEstimates:
    """A policy's result under its own campaign budget or the logged eligibility, as
    :mod:`experiments.offpolicy.budget` decides; ``evaluate(target, signals)`` evaluates
    the policy's choices ``target``. Without a budget: ``evaluate(target, signals)``."""
    allowance = journeys.budget_per_1000
    judged = allowance is not None and SPEND in journeys.signals
    wanted = [*signals, SPEND] if judged and SPEND not in signals else signals
    share = 0.0
    if own_target is not None:
        share = float(budget.picks_withheld(own_target, journeys).mean())
    reason = ""
    if own_target is not None and share > 0.0:
        own = evaluate(own_target, wanted)
        rec = own.recommended
        judgement = budget.judge(allowance, rec.outputs.get(SPEND_KEY))
        names = _names(journeys)
        if rec.estimator not in [names.get(e, e) for e in (est.DR, est.WDR, est.MDR, est.WMDR)]:
            reason = (
                "without a value model that explains the returns the log cannot value the "
                "offers it never shows"
            )
        if judgement.verdict == budget.FITS and not reason:
            result, block = own, budget.summary(budget.OWN, judgement, share)
        else:
            logged = evaluate(target, wanted)
            own_profit = rec.outputs.get(PROFIT_KEY)
            logged_profit = logged.recommended.outputs.get(PROFIT_KEY)
            if judgement.verdict == budget.UNCERTAIN and not reason:
                first, second = (own, logged) if judgement.likely_fits else (logged, own)
                result = budget.span(first, second)
                block = budget.summary(budget.SPANNED, judgement, share, own_profit, logged_profit)
            else:
                result = logged
                block = budget.summary(budget.LOGGED, judgement, share, own_profit)
    else:
        result = evaluate(target, wanted)
        if not judged and journeys.withheld is None:
            return result
        spend = result.recommended.outputs.get(SPEND_KEY)
        block = budget.summary(budget.LOGGED, budget.judge(allowance, spend), 0.0)
    result = replace(result, budget=block)
    said = budget.warning(name, block, reason)
    if said:
        trust = CAUTION if result.trust == TRUSTED else result.trust
        result = replace(result, warnings=(*result.warnings, said), trust=trust)
    if SPEND not in signals:
        result = result.without_output(SPEND_KEY, SPEND)
    return result


def _evaluate_one(
    name: str,
    journeys: Journeys,
    props: _Propensities,
    refit_props: list[FloatArray],
    s: OPESettings,
    target: FloatArray,
    signals: list[str],
) -> PolicyEstimates:
    rho = est.ratios(journeys, target, props.taken)
    w = est.cumulative_weights(journeys, rho)
    refit_rw = []
    for p in refit_props:
        r = est.ratios(journeys, target, p)
        refit_rw.append((r, est.cumulative_weights(journeys, r)))
    ratio_splits: list[FloatArray] = []
    if _fits_ratios(journeys, s) and s.ratio_model is not None:
        ratio_splits = fit_ratio_repeats(journeys, w, s.ratio_model, s.seed, s.threads)
    u = np.mean(ratio_splits, axis=0) if ratio_splits else None
    diagnostics = diagnose(
        journeys,
        w,
        target,
        props.every,
        props.support_source,
        journeys.withheld,
        None if u is None else u * rho,
    )
    fit_dr = s.value_model is not None and journeys.n_journeys >= s.value_model.min_journeys
    estimates: dict[str, dict[str, Estimate]] = {}
    r2: dict[str, float] = {}
    for sig in signals:
        key, scale = OUTPUTS[sig]
        y = journeys.signals[sig]
        splits: list[ValueEstimates] = []
        if fit_dr and s.value_model is not None:
            splits = fit_value_repeats(journeys, target, y, s.value_model, s.seed)
        values = mean_values(splits) if splits else None
        if values is not None:
            r2[sig] = round(values.r2, 4)
        # split r of the value model beside split r of the ratio model (the mean where one
        # has fewer splits): the estimators that use either move with the split
        per_split = [
            _statistics(
                journeys,
                y,
                splits[r] if r < len(splits) else values,
                ratio_splits[r] if r < len(ratio_splits) else u,
            )
            for r in range(max(len(splits), len(ratio_splits)))
        ]
        for e, stat_of in _statistics(journeys, y, values, u).items():
            iv = interval(stat_of(rho, w), journeys.n_journeys, s.bootstrap)
            if refit_rw:
                again = np.array(
                    [stat_of(rr, rw).estimate(journeys.n_journeys) for rr, rw in refit_rw]
                )
                iv = widen(iv, again, s.bootstrap.confidence)
            if e in _MODELLED:  # a fitted model's split moves these
                moved = np.array([st[e](rho, w).estimate(journeys.n_journeys) for st in per_split])
                iv = widen(iv, moved, s.bootstrap.confidence)
            estimates.setdefault(e, {})[key] = _estimate(iv, scale)
    chosen, why = _recommend(
        fit_dr,
        r2,
        s,
        journeys.n_journeys,
        props.source == "estimated",
        journeys.single_decision,
        {e: v[OUTPUTS[PROFIT][0]] for e, v in estimates.items() if OUTPUTS[PROFIT][0] in v},
    )
    trust, warnings = assess(name, diagnostics, props.source == "estimated")
    names = _names(journeys, s)
    exact = exact_outputs(journeys, target, signals)
    for outputs in estimates.values():  # known by construction: every estimator says so
        outputs.update({key: Estimate(0.0, 0.0, 0.0) for key in exact})
    return PolicyEstimates(
        estimators={names[e]: v for e, v in estimates.items()},
        recommended=Recommendation(names[chosen], why, dict(estimates[chosen])),
        diagnostics=diagnostics.rounded(),
        value_model_r2=r2,
        trust=trust,
        warnings=tuple(warnings),
        exact=exact,
    )


_MODELLED = (est.DR, est.WDR, *est.MARGINAL)
_Stat = Callable[[FloatArray, FloatArray], est.Statistic]


def _statistics(
    journeys: Journeys, y: FloatArray, values: ValueEstimates | None, u: FloatArray | None
) -> dict[str, _Stat]:
    """Each estimator as a function of the ratios ``rho`` and per-decision weights ``w``
    per row, given the value model's ``values`` and the state ratios ``u`` (either None:
    not fitted)."""
    out: dict[str, _Stat] = {
        est.PDIS: lambda rho, w: est.pdis(journeys, w, y),
        est.WPDIS: lambda rho, w: est.wpdis(journeys, w, y),
    }
    if values is not None:
        q, v = values.q_taken, values.v
        out[est.DR] = lambda rho, w: est.dr(journeys, w, y, q, v)
        out[est.WDR] = lambda rho, w: est.wdr(journeys, w, y, q, v)
    if u is not None:
        out[est.MIS] = lambda rho, w: est.mis(journeys, u, rho, y)
        out[est.WMIS] = lambda rho, w: est.wmis(journeys, u, rho, w, y)
    if u is not None and values is not None:
        q, v = values.q_taken, values.v
        out[est.MDR] = lambda rho, w: est.mdr(journeys, u, rho, y, q, v)
        out[est.WMDR] = lambda rho, w: est.wmdr(journeys, u, rho, w, y, q, v)
    return out


def _recommend(
    fit_dr: bool,
    r2: dict[str, float],
    s: OPESettings,
    n_journeys: int,
    estimated: bool,
    single: bool,
    profit: dict[str, Estimate] | None = None,
) -> tuple[str, str]:
    """The recommended estimator and why (the module docstring says why this rule):

    1. no value model fitted, or its out-of-fold R² of profit <= 0: ``wpdis``;
    2. a single-decision log: ``dr``;
    3. ``mdr``'s profit interval narrower than ``wdr``'s, and the two overlapping: ``mdr``;
    4. otherwise ``wdr``.
    """
    if not fit_dr:
        reason = (
            "no value model was asked for"
            if s.value_model is None
            else f"{n_journeys} journeys are too few to fit a value model "
            f"(at least {s.value_model.min_journeys})"
        )
        return est.WPDIS, f"self-normalised importance sampling: {reason}"
    fit = r2.get(PROFIT, next(iter(r2.values()), 0.0))
    if fit <= 0.0:
        return est.WPDIS, (
            f"self-normalised importance sampling: the value model explains nothing of the "
            f"returns (out-of-fold R² {fit:.2f}), so the doubly robust estimate would only add "
            "its noise"
        )
    first = (
        "right if either the estimated propensities or the value model is"
        if estimated
        else "unbiased with the logged propensities whatever the value model's errors "
        "(cross-fitted)"
    )
    if single:
        return est.DR, (
            f"doubly robust: {first}, and its value model (out-of-fold R² {fit:.2f}) takes "
            "much of the importance weights' noise out"
        )
    m, w = (profit or {}).get(est.MDR), (profit or {}).get(est.WDR)
    if m is not None and w is not None and _narrower_and_agrees(m, w):
        return est.MDR, (
            "marginalised doubly robust: its interval is narrower than the weighted doubly "
            f"robust one's ({_width(m):,.0f} against {_width(w):,.0f}) and overlaps it, so "
            "the state-ratio model that pools histories reaching the same state agrees with "
            f"the exact per-decision weights; its value model explains {fit:.0%} of the "
            "returns out of fold; right if either the ratio model or the value model is"
        )
    return est.WDR, (
        f"weighted doubly robust: the doubly robust estimate ({first}) with its weights "
        "self-normalised per step, which keeps a few heavily weighted journeys from swinging "
        f"it; its value model explains {fit:.0%} of the returns out of fold"
    )


def _width(e: Estimate) -> float:
    return float("inf") if e.low is None or e.high is None else e.high - e.low


def _narrower_and_agrees(m: Estimate, w: Estimate) -> bool:
    """``m``'s interval narrower than ``w``'s and overlapping it."""
    if None in (m.low, m.high, w.low, w.high):
        return False
    assert m.low is not None and m.high is not None and w.low is not None and w.high is not None
    return _width(m) < _width(w) and m.low <= w.high and w.low <= m.high


def recommended(result: OPEResult, policy: str) -> dict[str, Any]:
    """The recommended estimate of ``policy`` in an :func:`evaluate_offpolicy` result, as
    JSON: ``estimator``, ``why``, the outputs, ``trust`` and ``warnings``."""
    r = result.results[policy]
    return {**r.recommended.to_json(), "trust": r.trust.value, "warnings": list(r.warnings)}


__all__ = ["OPESettings", "evaluate_offpolicy", "recommended"]
