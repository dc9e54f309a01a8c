"""Intervals for fitted parameters, and which parameters the data does not pin down.

**Bootstrap over journeys.** The observed targets are recomputed on ``replicates``
resamples of the shop's journeys, and the simulated ones on resamples of the simulated
journeys at the optimum (the simulation's own noise); each replicate is refitted by one
Gauss-Newton step from the fit, using the Jacobian the optimiser ended with:
``dx = (J'J + P)^-1 J' (d_obs - d_sim) / sigma``. The 2.5 and 97.5 percentiles of
``x + dx`` (clipped to the bounds) make the 95% interval. ``P`` is a weak prior, one
parameter-range wide, so that a direction the data does not see gets an interval as wide
as the range instead of a division by zero.

**Identifiability.** A parameter is flagged *not identified* when its 95% interval is wider
than :data:`UNIDENTIFIED_SHARE` of its allowed range or :data:`UNIDENTIFIED_SCALES` times
its scale (a plausible change: 1 logit of appeal, 0.3 of a sensitivity factor), so the
data, as much of it as the shop has, cannot tell its values apart, or when the targets
do not move with it at all. The fit then leaves it at its start value and says so.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from experiments.calibration.parameters import Parameter
from experiments.calibration.targets import TargetTable

Array = NDArray[np.float64]
UNIDENTIFIED_SHARE = 0.5
UNIDENTIFIED_SCALES = 4.0
REPLICATES = 300


@dataclass(frozen=True)
class Interval:
    """A parameter's fitted value, its 95% interval, and whether the data identifies it."""

    name: str
    start: float
    value: float
    low: float
    high: float
    identified: bool
    factor: bool


def bootstrap_deltas(
    observed: TargetTable,
    simulated: TargetTable,
    names: Sequence[str],
    used: NDArray[np.bool_],
    rng: np.random.Generator,
    replicates: int = REPLICATES,
) -> Array:
    """Replicates of ``observed - simulated`` target values around their point values, in
    the order of ``names`` restricted to ``used``, ``(replicates, used targets)``."""
    at = {n: i for i, n in enumerate(simulated.names)}
    sim_idx = [at[n] for n, u in zip(names, used, strict=True) if u]
    obs_b = observed.bootstrap(rng, replicates)[:, used] - observed.values()[used]
    sim_b = simulated.bootstrap(rng, replicates)[:, sim_idx] - simulated.values()[sim_idx]
    return np.nan_to_num(obs_b - sim_b)


def intervals(
    params: Sequence[Parameter],
    start: Sequence[float],
    x: Array,
    jacobian: Array,
    sigma: Array,
    deltas: Array,
) -> list[Interval]:
    """The 95% interval and identifiability flag of each parameter (see the module doc)."""
    low = np.array([p.low for p in params])
    high = np.array([p.high for p in params])
    span = high - low
    prior = np.diag(1.0 / span**2)
    info = jacobian.T @ jacobian
    gain = np.linalg.solve(info + prior, jacobian.T)  # (params, targets)
    steps = (deltas / sigma) @ gain.T
    draws = np.clip(x + steps, low, high)
    lo, hi = np.percentile(draws, [2.5, 97.5], axis=0)
    moves = np.abs(jacobian).max(axis=0) if jacobian.size else np.zeros(len(params))
    out = []
    for i, p in enumerate(params):
        limit = min(UNIDENTIFIED_SHARE * span[i], UNIDENTIFIED_SCALES * p.scale)
        identified = bool(hi[i] - lo[i] <= limit and moves[i] > 1e-9)
        out.append(
            Interval(
                p.name,
                float(start[i]),
                float(x[i]),
                float(lo[i]),
                float(hi[i]),
                identified,
                p.factor,
            )
        )
    return out
