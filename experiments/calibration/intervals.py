"""Intervals for fitted parameters, and which parameters the data does not pin down.

**Bootstrap over journeys.** The observed targets are recomputed on ``replicates``
resamples of the shop's journeys, and the simulated ones on resamples of the simulated
journeys at the optimum (the simulation's own noise); each replicate is refitted by one
Gauss-Newton step from the fit, using the Jacobian the fit ended with (the last regression
of :mod:`.smoothing`, not finite differences that the objective's rough part inflates):
``dx = (J'J + P)^-1 J' (d_obs - d_sim) / sigma``. The 2.5 and 97.5 percentiles of
``x + dx`` (clipped to the bounds) make the 95% interval. ``P`` is a weak prior, one
parameter-range wide, so that a direction the data does not see gets an interval as wide
as the range instead of a division by zero.

**Identifiability.** The linearised bootstrap sees only what the Jacobian at the optimum
sees, and along a ridge (two segments the targets cannot tell apart, standing in for each
other) it is far too narrow. So the objective itself is profiled first
(:func:`profile_directions`): along each right singular vector of the Jacobian in units
of the parameters' scales (a plausible change: 1 logit of appeal, 0.3 of a sensitivity
factor, 0.1 of a share), the fit is moved :data:`PROFILE_SCALES` scales each way and the
objective simulated there. A direction on which the sum of squared residuals rises by
less than :data:`FLAT_RISE` (the 95% point of chi-square with 1 degree of freedom) on
either side is *flat*: the data cannot tell apart values :data:`PROFILE_SCALES` scales
apart along it. Every parameter with a loading of at least :data:`LOADING` on a flat
direction is flagged *not identified*, with the parameters it trades off against.
A parameter is also flagged when its bootstrap interval is wider than
:data:`UNIDENTIFIED_SHARE` of its allowed range or :data:`UNIDENTIFIED_SCALES` times its
scale, or when the targets do not move with it at all. The fit then leaves it at its
start value and says so.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from experiments.calibration.parameters import Parameter, box
from experiments.calibration.targets import TargetTable

Array = NDArray[np.float64]
UNIDENTIFIED_SHARE = 0.5
UNIDENTIFIED_SCALES = 4.0
REPLICATES = 300
PROFILE_SCALES = 2.0
FLAT_RISE = 3.84
LOADING = 0.35


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
    reason: str = ""  # why it is not identified, in words


@dataclass(frozen=True)
class Direction:
    """A singular direction of the scaled Jacobian at the optimum, and the objective's rise
    when the fit moves :data:`PROFILE_SCALES` scales along it, backwards and forwards."""

    singular_value: float
    loadings: Array  # unit vector, in units of each parameter's scale
    rise: tuple[float, float]

    @property
    def flat(self) -> bool:
        return min(self.rise) < FLAT_RISE


def profile_directions(
    params: Sequence[Parameter],
    x: Array,
    jacobian: Array,
    cost: Callable[[Array], float],
    cost_at_x: float,
) -> list[Direction]:
    """Each singular direction of ``jacobian`` scaled by the parameters' scales, weakest
    first, with the rise of ``cost`` (the sum of squared residuals) at ``x`` moved
    :data:`PROFILE_SCALES` scales along it each way (clipped to the bounds)."""
    low, high, scale = box(params)
    _, singular, vt = np.linalg.svd(jacobian * scale, full_matrices=False)
    out = []
    for k in np.argsort(singular):
        v = vt[k]
        rise = []
        for sign in (-1.0, 1.0):
            moved = np.clip(x + sign * PROFILE_SCALES * scale * v, low, high)
            reach = np.linalg.norm((moved - x) / scale)
            if reach < 0.5 * PROFILE_SCALES:  # against a bound: this side says nothing
                rise.append(np.inf)
                continue
            rise.append(float(cost(moved) - cost_at_x))
        out.append(Direction(float(singular[k]), v, (rise[0], rise[1])))
    return out


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


def bootstrap_draws(
    params: Sequence[Parameter], x: Array, jacobian: Array, sigma: Array, deltas: Array
) -> Array:
    """Each replicate's refit, one Gauss-Newton step from ``x`` (clipped to the bounds),
    ``(replicates, params)``: the draws the intervals are the percentiles of."""
    low, high, _ = box(params)
    prior = np.diag(1.0 / (high - low) ** 2)
    info = jacobian.T @ jacobian
    gain = np.linalg.solve(info + prior, jacobian.T)  # (params, targets)
    steps = (deltas / sigma) @ gain.T
    return np.clip(x + steps, low, high)


def intervals(
    params: Sequence[Parameter],
    start: Sequence[float],
    x: Array,
    jacobian: Array,
    draws: Array,
    directions: Sequence[Direction] = (),
) -> list[Interval]:
    """The 95% interval and identifiability flag of each parameter from the bootstrap
    ``draws`` (:func:`bootstrap_draws`; see the module doc)."""
    low, high, _ = box(params)
    span = high - low
    lo, hi = np.percentile(draws, [2.5, 97.5], axis=0)
    moves = np.abs(jacobian).max(axis=0) if jacobian.size else np.zeros(len(params))
    out = []
    for i, p in enumerate(params):
        reasons = []
        if moves[i] <= 1e-9:
            reasons.append("the targets do not move with it")
        limit = min(UNIDENTIFIED_SHARE * span[i], UNIDENTIFIED_SCALES * p.scale)
        if hi[i] - lo[i] > limit:
            reasons.append("its bootstrap interval spans most of what is plausible")
        for d in directions:
            if not d.flat or abs(d.loadings[i]) < LOADING:
                continue
            # the profile found the objective within FLAT_RISE this far along d: the 95%
            # region reaches at least there, whatever the linearised bootstrap says
            reach = PROFILE_SCALES * p.scale * abs(d.loadings[i])
            lo[i] = max(p.low, min(lo[i], x[i] - reach))
            hi[i] = min(p.high, max(hi[i], x[i] + reach))
            others = [
                q.name for j, q in enumerate(params) if j != i and abs(d.loadings[j]) >= LOADING
            ]
            rise = min(d.rise)
            reasons.append(
                f"moving it {PROFILE_SCALES:g} scales"
                + (f" together with {', '.join(others)}" if others else "")
                + f" changes the fit's chi-square by only {rise:.1f} (< {FLAT_RISE})"
            )
        out.append(
            Interval(
                p.name,
                float(start[i]),
                float(x[i]),
                float(lo[i]),
                float(hi[i]),
                not reasons,
                p.factor,
                "; ".join(reasons),
            )
        )
    return out
