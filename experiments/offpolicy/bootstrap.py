"""Intervals of the estimators: ``scipy.stats.bootstrap`` over journeys, seeded.

Journeys are the independent units (the decisions of one journey are not), so a resample
draws journeys with replacement. The data given to ``scipy.stats.bootstrap`` are the
journey indices; the statistic turns each resample into journey counts and recomputes
the estimator from them (:meth:`experiments.offpolicy.estimators.Statistic.value`), which
keeps a resample of 100,000 journeys one matrix product. Percentile intervals (BCa's
jackknife would need one estimate per journey left out).

:func:`widen` adds another source of uncertainty to an interval: the spread of the
estimate over refits of the propensity model (estimated propensities), or over the
value model's repeated cross-fitting splits (the doubly robust estimators).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import stats

from experiments.offpolicy.estimators import Statistic

FloatArray = NDArray[np.float64]
BATCH_CELLS = 4_000_000  # journeys x resamples per batch: memory of the counts matrix


@dataclass(frozen=True)
class BootstrapSettings:
    """``n_resamples`` journey resamples, ``seed`` of their generator, ``confidence`` of
    the interval."""

    n_resamples: int = 1000
    seed: int = 0
    confidence: float = 0.95

    def __post_init__(self) -> None:
        if self.n_resamples < 2:
            raise ValueError(f"bootstrap n_resamples must be >= 2, got {self.n_resamples}")
        if not 0.0 < self.confidence < 1.0:
            raise ValueError(f"confidence must be in (0, 1), got {self.confidence}")


@dataclass(frozen=True)
class Interval:
    """An estimate and its interval (``low``, ``high``)."""

    estimate: float
    low: float
    high: float

    def scaled(self, factor: float) -> Interval:
        return Interval(self.estimate * factor, self.low * factor, self.high * factor)

    def to_json(self) -> dict[str, float | None]:
        def clean(x: float) -> float | None:
            return round(x, 6) if math.isfinite(x) else None

        return {"estimate": clean(self.estimate), "low": clean(self.low), "high": clean(self.high)}


def interval(statistic: Statistic, n_journeys: int, settings: BootstrapSettings) -> Interval:
    """The estimate of ``statistic`` on all journeys and its percentile interval."""
    estimate = statistic.estimate(n_journeys)
    if n_journeys < 2:
        return Interval(estimate, math.nan, math.nan)

    def from_indices(sample: NDArray[np.int64], axis: int = -1) -> FloatArray:
        draws = np.atleast_2d(sample)
        b = len(draws)
        offsets = (np.arange(b) * n_journeys)[:, None]
        counts = np.bincount((draws + offsets).ravel(), minlength=b * n_journeys)
        return statistic.value(counts.reshape(b, n_journeys).astype(np.float64))

    result = stats.bootstrap(
        (np.arange(n_journeys),),
        from_indices,
        n_resamples=settings.n_resamples,
        batch=max(1, BATCH_CELLS // n_journeys),
        vectorized=True,
        method="percentile",
        confidence_level=settings.confidence,
        rng=np.random.default_rng(settings.seed),
    )
    ci = result.confidence_interval
    return Interval(estimate, float(ci.low), float(ci.high))


def widen(base: Interval, refit_estimates: FloatArray, confidence: float) -> Interval:
    """``base`` widened by the spread of ``refit_estimates`` (the estimate recomputed with
    refitted propensities, or on another split of the value model): each half-width ``h``
    becomes ``sqrt(h**2 + (z * sd)**2)``, ``z`` the normal quantile of ``confidence`` and
    ``sd`` the refits' standard deviation."""
    if len(refit_estimates) < 2:
        return base
    z = float(stats.norm.ppf(0.5 + confidence / 2.0))
    extra = (z * float(np.std(refit_estimates, ddof=1))) ** 2
    low = base.estimate - math.sqrt((base.estimate - base.low) ** 2 + extra)
    high = base.estimate + math.sqrt((base.high - base.estimate) ** 2 + extra)
    return Interval(base.estimate, low, high)
