"""What a policy would earn on a fitted scenario, with the fit's uncertainty in its interval.

A fitted scenario is one point of what the shop's data allows: its parameters have 95%
intervals (:mod:`.intervals`), and a policy's profit moves with them. :func:`forecast`
carries that uncertainty through to each policy's profit per 1,000 shoppers:

1. the fit's bootstrap replicates of the parameters (``CalibrationResult.replicates``,
   the first fit's draws of every parameter together; a parameter the data does not pin
   is drawn across the spread the data leaves it, even where the fitted scenario took its
   start value: that value is one of many the data allows, and a forecast holding it
   would take the start's assumption for knowledge) make ``scenarios`` replicate
   scenarios, the first ``scenarios`` rows (the replicates are independent resamples, so
   any ``scenarios`` of them are as good);
2. each policy runs on the fitted scenario and on every replicate scenario, on the same
   ``n_shoppers`` shoppers drawn with ``seed`` (common random numbers: the spread across
   replicate scenarios is the fit's, not the shoppers'), giving replicate ``k`` a mean
   profit ``m_k`` with its standard error ``s_k``;
3. the 95% interval is the 2.5% and 97.5% quantiles of the equal mixture of the normals
   ``N(m_k, s_k^2)`` (:func:`mixture_interval`).

Why the mixture. The fit says the shop is any of its replicate scenarios, each equally
likely; each replicate's profit is known up to the sampling noise of a mean over
``n_shoppers`` simulated shoppers, which the common random numbers make the *same* across
replicates, so the spread of the ``m_k`` does not contain it and it has to be added back.
The mixture is that predictive distribution itself: it needs no centre (a skewed spread,
a parameter against a bound, stays skewed), it is the simulation-noise interval
``estimate ± 1.96 s`` exactly when the replicates agree, and the percentile interval of the
replicate means when the noise is negligible; in between it smooths the tails, which with
30 replicates rest on two or three of them. The percentile interval of the replicate means
plus the noise in quadrature would need a centre for two asymmetric half-widths, and
resampled noise would add Monte-Carlo error for nothing the closed form does not give.
The interval counts the noise of one simulated mean: it is what the policy would earn per
1,000 of the shop's shoppers in expectation. Compared with another simulated figure on the
same shoppers (the recovery's true scenario, :mod:`.recovery`), the pair shares that noise.
The residual noise of common random numbers (a shopper whose outcome a replicate's
parameters change) is in the spread too, so the interval errs a little on the wide side.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import optimize, stats

from agents.policy import Policy
from agents.rollout import run_policy
from envs.scenario import Scenario
from experiments.calibration import FORECAST_SCENARIOS
from experiments.calibration.objective import Array
from experiments.calibration.pipeline import CalibrationResult

PER = 1000.0  # profits are per 1,000 shoppers
CONFIDENCE = 0.95
FORECAST_SEED_OFFSET = 31  # the forecast's shoppers are none of the fit's


class ForecastError(ValueError):
    """A forecast's settings cannot work; the message says what to change."""


def check_settings(scenarios: int, n_shoppers: int) -> None:
    """Refuse settings a forecast cannot work with, before anything runs."""
    if scenarios < 2:
        raise ForecastError(
            f"a forecast needs at least 2 replicate scenarios to see the fit's spread, got "
            f"{scenarios}; {FORECAST_SCENARIOS} is the default"
        )
    if n_shoppers < 2:
        raise ForecastError(f"a forecast needs at least 2 shoppers, got {n_shoppers}")


def mean_and_error(profit: Array) -> tuple[float, float]:
    """Mean profit per 1,000 shoppers and its standard error, from per-shopper profits."""
    profit = np.asarray(profit, dtype=np.float64)
    if profit.size < 2:
        raise ValueError(f"a profit's interval needs at least 2 shoppers, got {profit.size}")
    return float(profit.mean() * PER), float(stats.sem(profit) * PER)


def noise_interval(estimate: float, standard_error: float) -> tuple[float, float]:
    """The 95% interval of a simulated mean from its standard error alone (normal)."""
    half = float(stats.norm.ppf(0.5 + CONFIDENCE / 2.0)) * standard_error
    return estimate - half, estimate + half


def mixture_interval(
    means: Sequence[float] | Array,
    standard_errors: Sequence[float] | Array,
    confidence: float = CONFIDENCE,
) -> tuple[float, float]:
    """The central ``confidence`` interval of the equal mixture of ``N(means[k],
    standard_errors[k]^2)``: the quantiles, each found by Brent's method on the mixture's
    distribution function."""
    m = np.asarray(means, dtype=np.float64)
    s = np.asarray(standard_errors, dtype=np.float64)
    if m.ndim != 1 or m.size == 0 or s.shape != m.shape:
        raise ValueError(
            f"means and standard errors must be two equal 1-d arrays, got {m.shape}, {s.shape}"
        )
    if not (np.isfinite(m).all() and np.isfinite(s).all() and (s >= 0).all()):
        raise ValueError("means must be finite and standard errors finite and non-negative")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    # a component without noise is a point; a tiny width keeps the distribution continuous
    s = np.maximum(s, 1e-9 * max(1.0, float(np.abs(m).max())))
    lo, hi = float(m.min() - 10.0 * s.max()), float(m.max() + 10.0 * s.max())
    tail = (1.0 - confidence) / 2.0

    def quantile(q: float) -> float:
        def excess(x: float) -> float:
            return float(stats.norm.cdf(x, m, s).mean()) - q

        return float(optimize.brentq(excess, lo, hi, xtol=1e-9 * (hi - lo)))

    return quantile(tail), quantile(1.0 - tail)


@dataclass(frozen=True)
class Forecast:
    """A policy's profit per 1,000 shoppers on a fitted scenario, with 95% intervals."""

    policy: str
    estimate: float  # on the fitted scenario
    standard_error: float  # of ``estimate``: the simulation's noise
    low: float  # the forecast interval: the fit's uncertainty and the simulation's noise
    high: float
    replicates: Array = field(repr=False)  # mean profit on each replicate scenario
    replicate_errors: Array = field(repr=False)  # their standard errors
    n_shoppers: int = 0

    @property
    def noise_interval(self) -> tuple[float, float]:
        """The 95% interval of the simulation's noise alone (the fit taken as exact)."""
        return noise_interval(self.estimate, self.standard_error)

    @property
    def fit_interval(self) -> tuple[float, float]:
        """The 2.5 and 97.5 percentiles of the replicate scenarios' mean profits."""
        lo, hi = np.percentile(self.replicates, [2.5, 97.5])
        return float(lo), float(hi)

    def to_json(self) -> dict[str, Any]:
        noise, fit = self.noise_interval, self.fit_interval
        return {
            "estimate": self.estimate,
            "low": self.low,
            "high": self.high,
            "noise": {"low": noise[0], "high": noise[1]},
            "replicates": {"low": fit[0], "high": fit[1], "n": len(self.replicates)},
            "n_shoppers": self.n_shoppers,
        }


def replicate_scenarios(result: CalibrationResult, scenarios: int) -> list[Scenario]:
    """The first ``scenarios`` bootstrap replicates of ``result`` as scenarios."""
    check_settings(scenarios, 2)
    if result.replicates is None or result.objective is None:
        raise ForecastError(
            "this fit keeps no bootstrap replicates of its parameters: fit with "
            "experiments.calibration.pipeline.calibrate"
        )
    if scenarios > len(result.replicates):
        raise ForecastError(
            f"the fit kept {len(result.replicates)} bootstrap replicates, fewer than the "
            f"{scenarios} scenarios asked for: ask for fewer or fit with more replicates"
        )
    objective, name = result.objective, result.fitted.name
    return [
        objective.scenario(row).replace(name=f"{name}_replicate{k}")
        for k, row in enumerate(result.replicates[:scenarios])
    ]


def forecast(
    result: CalibrationResult,
    policies: Sequence[Policy],
    n_shoppers: int = 20_000,
    seed: int | None = None,
    scenarios: int = FORECAST_SCENARIOS,
) -> dict[str, Forecast]:
    """Each policy's profit per 1,000 shoppers on ``result``'s fitted scenario, with the 95%
    interval of the fit's uncertainty and the simulation's noise (see the module doc).

    ``seed``: the shoppers (default: the fit's seed + :data:`FORECAST_SEED_OFFSET`, shoppers
    the fit never met); every scenario and policy meets the same ones.
    """
    names = [p.name for p in policies]
    if len(set(names)) != len(names):
        raise ForecastError(f"policies must have distinct names, got {names}")
    check_settings(scenarios, n_shoppers)
    replicas = replicate_scenarios(result, scenarios)
    if seed is None:
        seed = int(result.settings.get("seed", 0)) + FORECAST_SEED_OFFSET
    out = {}
    for policy in policies:
        estimate, error = mean_and_error(run_policy(result.fitted, policy, n_shoppers, seed).profit)
        runs = [mean_and_error(run_policy(s, policy, n_shoppers, seed).profit) for s in replicas]
        means, errors = (np.array(column) for column in zip(*runs, strict=True))
        low, high = mixture_interval(means, errors)
        out[policy.name] = Forecast(
            policy.name, estimate, error, low, high, means, errors, n_shoppers
        )
    return out
