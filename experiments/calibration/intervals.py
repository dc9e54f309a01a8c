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
objective simulated there. A direction on which the sum of squared residuals is *lower*
by more than :data:`FLAT_RISE` on one side *falls*: the fit has not reached the minimum,
and the fit continues from there (:mod:`.convergence`) before anything is called flat.
(Such a side is measured again on other simulated shoppers and keeps the highest of
those rises, :func:`.convergence.confirmed`: on one set, the rough part alone often makes
a point two scales away lower.)
A direction on which it changes by less than :data:`FLAT_RISE` (the 95% point of
chi-square with 1 degree of freedom) on one side is *flat*: the data cannot tell apart
values :data:`PROFILE_SCALES` scales apart along it. Every parameter with a loading of at
least :data:`LOADING` on a flat direction is flagged *not identified*, with the
parameters it trades off against (and on a direction that still falls when the
continuations ran out, with "the fit did not settle"). A parameter is also flagged when
its bootstrap interval is wider than :data:`UNIDENTIFIED_SHARE` of its allowed range or
:data:`UNIDENTIFIED_SCALES` times its scale, or when the targets do not move with it at
all. The fit then leaves it at its start value and says so, when its interval holds the
start value (the data cannot tell the start from the fit); otherwise the start is ruled
out, and the fit keeps its own value, flagged, with its interval as the range the data
leaves open (:mod:`.pipeline`).

**Honest intervals.** Every interval holds its point value (the percentiles of draws
clipped at a bound can miss it). A parameter left at its start value keeps the interval
of the fit that flagged it, around where that fit had put it (:attr:`Interval.fitted`),
and says so in :meth:`Interval.text`: that interval need not hold the start value.
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
    shift: bool = False
    fitted: float = float("nan")  # where the fit put it (``value`` is the start when left)
    left: bool = False  # not identified, and the fitted scenario keeps its start value
    settled: bool = True  # no profiled direction it loads on still lowers the objective

    def show(self, value: float) -> str:
        """``value`` as a reader sees it: ``x1.2`` (factor), ``+0.35`` (shift), ``0.7``."""
        if self.shift:
            return f"{value:+.4g}"
        return f"{'x' if self.factor else ''}{value:.4g}"

    def text(self) -> str:
        """The parameter in one line, labelled for what it is: an identified parameter's
        value and 95% interval; for one left at its start value, that value, then where
        the fit had put it and that fit's interval; for one not identified whose start
        value the data rules out, the fit's value and the range the data leaves open."""
        interval = f"[{self.show(self.low)}, {self.show(self.high)}]"
        if self.identified:
            return f"{self.show(self.value)} {interval}"
        if not self.left:
            why = (
                "the fit had not settled along it"
                if not self.settled
                else f"its start value {self.show(self.start)} lies outside"
            )
            return (
                f"not identified: {self.show(self.value)}, the data leaves it anywhere in "
                f"{interval} ({why}: kept at the fit's value)"
            )
        text = f"not identified, left at its start value {self.show(self.start)}"
        if np.isfinite(self.fitted):
            text += f"; the fit had put it at {self.show(self.fitted)}, 95% interval {interval}"
        return text


@dataclass(frozen=True)
class Direction:
    """A singular direction of the scaled Jacobian at the optimum, and the objective's rise
    when the fit moves :data:`PROFILE_SCALES` scales along it, backwards and forwards."""

    singular_value: float
    loadings: Array  # unit vector, in units of each parameter's scale
    rise: tuple[float, float]
    points: tuple[Array | None, Array | None] = (None, None)  # None: against a bound

    @property
    def lower_sides(self) -> list[int]:
        """The sides (0 backwards, 1 forwards) where the objective is lower than at the fit
        by more than :data:`FLAT_RISE` (a side against a bound, risen by infinity, never)."""
        return [side for side, rise in enumerate(self.rise) if rise <= -FLAT_RISE]

    @property
    def falls(self) -> bool:
        """The objective is lower by more than :data:`FLAT_RISE` on one side: the fit is
        not at a minimum along this direction (it continues from there, :mod:`.convergence`)."""
        return bool(self.lower_sides)

    @property
    def flat(self) -> bool:
        """Within :data:`FLAT_RISE` of the fit on one side: the data cannot tell apart
        values this far apart along it."""
        return not self.falls and min(self.rise) < FLAT_RISE

    def lowest(self) -> Array:
        """The profiled point with the lower objective."""
        side = int(np.argmin(self.rise))
        point = self.points[side]
        assert point is not None, "a side against a bound has no point"
        return point


def profile_directions(
    params: Sequence[Parameter],
    x: Array,
    jacobian: Array,
    costs: Callable[[list[Array]], list[float]],
    cost_at_x: float,
) -> list[Direction]:
    """Each singular direction of ``jacobian`` scaled by the parameters' scales, weakest
    first, with the rise of the sum of squared residuals (``costs`` of a batch of points)
    at ``x`` moved :data:`PROFILE_SCALES` scales along it each way (clipped to the
    bounds)."""
    low, high, scale = box(params)
    _, singular, vt = np.linalg.svd(jacobian * scale, full_matrices=False)
    order = np.argsort(singular)
    sides: list[list[Array | None]] = []
    for k in order:
        pair: list[Array | None] = []
        for sign in (-1.0, 1.0):
            moved = np.clip(x + sign * PROFILE_SCALES * scale * vt[k], low, high)
            reach = np.linalg.norm((moved - x) / scale)
            # against a bound: this side says nothing
            pair.append(moved if reach >= 0.5 * PROFILE_SCALES else None)
        sides.append(pair)
    points = [p for pair in sides for p in pair if p is not None]
    found = iter(costs(points))
    out = []
    for k, pair in zip(order, sides, strict=True):
        rise = [np.inf if p is None else float(next(found) - cost_at_x) for p in pair]
        out.append(Direction(float(singular[k]), vt[k], (rise[0], rise[1]), (pair[0], pair[1])))
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
        settled = True
        if moves[i] <= 1e-9:
            reasons.append("the targets do not move with it")
        limit = min(UNIDENTIFIED_SHARE * span[i], UNIDENTIFIED_SCALES * p.scale)
        if hi[i] - lo[i] > limit:
            reasons.append("its bootstrap interval spans most of what is plausible")
        for d in directions:
            if not (d.flat or d.falls) or abs(d.loadings[i]) < LOADING:
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
            together = f" together with {', '.join(others)}" if others else ""
            if d.falls:
                settled = False
                reasons.append(
                    f"the fit did not settle: moving it {PROFILE_SCALES:g} scales{together} "
                    f"lowers the fit's chi-square by {-rise:.1f}"
                )
            else:
                reasons.append(
                    f"moving it {PROFILE_SCALES:g} scales{together} changes the fit's "
                    f"chi-square by only {rise:+.1f} (within {FLAT_RISE})"
                )
        # the percentiles of clipped draws can miss the point itself: an interval holds it
        lo[i], hi[i] = min(lo[i], x[i]), max(hi[i], x[i])
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
                shift=p.shift,
                fitted=float(x[i]),
                settled=settled,
            )
        )
    return out
