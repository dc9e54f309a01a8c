"""A fit that reaches the objective's minimum before anything is called flat.

On common random numbers the objective is a smooth trend plus a rough part
(:mod:`.objective`), and from a start far from the data a local optimiser can stop short of
the minimum: on scipy's ``xtol`` in a dip of the rough part, on its evaluation budget, or
with the Gauss-Newton steps of :mod:`.smoothing` still moving. A profile that then finds
a *lower* objective along some direction says the fit did not finish, not that the data
cannot pin the parameters. :func:`converged_fit` therefore:

1. **global stage**, when the start is far from the data (root mean square of the
   residuals above :data:`GLOBAL_RMS`): a scrambled Sobol design of :data:`GLOBAL_POINTS`
   points in the box ``start +- GLOBAL_SCALES`` scales (clipped to the bounds), simulated
   as one batch; the local fit starts from the best of them and the start. From such a
   start the global stage and every least squares run on a *coarse* objective, the same
   targets on a quarter of the simulated shoppers (:data:`COARSE`): the way to the
   minimum's neighbourhood costs a quarter, and the steps below finish on the full one
   (at most :data:`COARSE_ITERATIONS` iterations of least squares: from there the
   Gauss-Newton steps and the continuations take over);
2. **local fit**: least squares (:func:`.objective.least_squares_fit`), then guarded
   Gauss-Newton steps on regressions of the residuals (:func:`.smoothing.smoothed_fit`);
3. **profile** along each singular direction of the fit's Jacobian
   (:func:`.intervals.profile_directions`). A profiled point lower than the fit by more
   than :data:`.intervals.FLAT_RISE` on the fit's simulated shoppers is simulated again,
   with the fit, on :data:`CONFIRM_SEEDS` other sets of shoppers (:func:`confirmed`): the
   rough part makes single simulations two scales apart differ by a chi-square of 10 to
   20 on a shop of the zoo, so most such points are chance; a point lower on every set
   is not. If one is, the fit continues from the lowest (the Gauss-Newton steps of step
   2, from there); if none is but the Gauss-Newton steps were still moving when they ran
   out, they go on from where they stopped. At most :data:`CONTINUATIONS` times. The fit
   has *converged* when no profiled point is lower on every set, and only that profile
   decides which directions are flat. A continuation that ends no lower than the best
   round so far (in the smoothed chi-square, the regression's) ends the fit there, at the
   best round, without a profile of its own: from the lower point, the Gauss-Newton steps
   found no lower fit, and another round would start from the same profile. That best
   round's profile decides (a lower point it confirmed leaves the fit not converged).

How each stage ended is kept (:attr:`Converged.stages`): the global stage's best point,
each round's scipy status and message, whether its Gauss-Newton steps settled, the
chi-square at each (single and smoothed), the profiled points lower on the fit's shoppers
and those confirmed, and whether the fit converged.
The global stage draws from its own generator (``global_rng``, or one spawned from
``rng`` without drawing from it), so a fit that does not need it takes the same random
numbers as before it existed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.stats import qmc

from experiments.calibration.intervals import Direction, profile_directions
from experiments.calibration.objective import Array, LeastSquares, Objective, least_squares_fit
from experiments.calibration.parallel import Evaluator
from experiments.calibration.parameters import box
from experiments.calibration.smoothing import smoothed_fit

GLOBAL_RMS = 10.0  # residuals' root mean square at the start above which the global stage runs
GLOBAL_POINTS = 64  # Sobol points of the global stage (a power of 2)
GLOBAL_SCALES = 3.0  # half-width of its box, in parameters' scales
CONTINUATIONS = 3  # Gauss-Newton rounds continued from a lower profiled point, at most
CONFIRM_SEEDS = 3  # other sets of simulated shoppers a lower profiled point must hold on
COARSE = 4  # the coarse objective simulates this many times fewer shoppers
COARSE_ITERATIONS = 40  # least-squares iterations on it, at most (a Jacobian each)


@dataclass
class Converged:
    """The fit at the end, its profile, and how each stage ended."""

    fit: LeastSquares
    directions: list[Direction]
    converged: bool  # the last profile found no point lower than the fit beyond FLAT_RISE
    stages: list[dict[str, Any]] = field(default_factory=list)


def _cost(residuals: Array) -> float:
    return float(np.sum(residuals**2))


def global_start(
    obj: Objective, x0: Array, evaluate: Evaluator, rng: np.random.Generator
) -> tuple[Array, dict[str, Any]]:
    """The best of ``x0`` and a Sobol design around it (see the module docstring)."""
    low, high, scale = box(obj.params)
    unit = qmc.Sobol(len(x0), scramble=True, seed=rng).random(GLOBAL_POINTS)
    points = np.clip(x0 + (2.0 * unit - 1.0) * GLOBAL_SCALES * scale, low, high)
    costs = [_cost(r) for r in evaluate.many(np.vstack([x0, points]))]
    best = int(np.argmin(costs))
    chosen = x0 if best == 0 else points[best - 1]
    return np.asarray(chosen, dtype=np.float64), {
        "stage": "global",
        "points": GLOBAL_POINTS,
        "chi_square_start": round(costs[0], 2),
        "chi_square_best": round(costs[best], 2),
        "moved": best != 0,
    }


def confirmed(
    directions: Sequence[Direction], x: Array, fresh: Sequence[Evaluator]
) -> list[Direction]:
    """``directions`` with each side that falls on the fit's shoppers re-measured on each
    of the ``fresh`` evaluators (other simulated shoppers), against ``x`` on the same ones:
    that side's rise becomes the highest of those rises, so it still falls only when it is
    lower on every set of shoppers (see the module docstring)."""
    sides, points = [], [x]
    for k, d in enumerate(directions):
        for side in d.lower_sides:
            point = d.points[side]
            assert point is not None, "a side against a bound has no point, and no fall"
            sides.append((k, side))
            points.append(point)
    if not sides or not fresh:
        return list(directions)
    costs = np.array([[_cost(r) for r in evaluate.many(points)] for evaluate in fresh])
    highest = (costs[:, 1:] - costs[:, :1]).max(axis=0)
    out = list(directions)
    for (k, side), rise in zip(sides, highest, strict=True):
        both = list(out[k].rise)
        both[side] = float(rise)
        out[k] = dataclasses.replace(out[k], rise=(both[0], both[1]))
    return out


def converged_fit(
    obj: Objective,
    x0: Sequence[float],
    rng: np.random.Generator,
    evaluate: Evaluator,
    max_evaluations: int = 80,
    global_rng: np.random.Generator | None = None,
    coarse: Callable[[], tuple[Objective, Evaluator]] | None = None,
    local_only: bool = False,
    fresh: Sequence[Evaluator] = (),
) -> Converged:
    """Fit ``obj`` from ``x0`` until no profiled point beats the fit (module docstring).

    ``coarse``: builds the same objective on fewer simulated shoppers, and its evaluator
    (called only from a far start); from a far start, the global stage and the least
    squares run on it (the Gauss-Newton steps, the profile and everything after on
    ``obj``). ``local_only``: ``x0`` is already near the minimum (a refit from a fit's
    values): no global stage, no least squares, the Gauss-Newton steps start from ``x0``.
    ``fresh``: the same objective on other simulated shoppers, one evaluator per set,
    that confirm a profiled point lower than the fit (:func:`confirmed`)."""
    params = obj.params
    low, high, _ = box(params)
    start = np.clip(np.asarray(x0, dtype=np.float64), low, high)
    stages: list[dict[str, Any]] = []
    at_start = evaluate(start)
    rms = float(np.sqrt(np.mean(at_start**2))) if at_start.size else 0.0
    rough_obj, rough = obj, evaluate  # what the global stage and least squares run on
    iterations = max_evaluations
    if rms > GLOBAL_RMS and not local_only:
        if coarse is not None:
            rough_obj, rough = coarse()
        start, stage = global_start(rough_obj, start, rough, global_rng or rng.spawn(1)[0])
        stage["rms_start"] = round(rms, 2)
        stage["coarse"] = coarse is not None
        stages.append(stage)
        iterations = min(max_evaluations, COARSE_ITERATIONS)

    def costs(points: list[Array]) -> list[float]:
        return [_cost(r) for r in evaluate.many(points)]

    def at(x: Array, how: str, status: int = 0) -> LeastSquares:
        """A fit at ``x`` for the Gauss-Newton steps to go on from (no least squares;
        the steps replace its residuals and Jacobian)."""
        return LeastSquares(x, at_start, np.zeros((at_start.size, len(x))), 1, how, status)

    fit = at(start, "refit") if local_only else None
    best = np.inf
    last: LeastSquares | None = None
    kept_directions: list[Direction] = []
    kept_falling: list[Direction] = []
    for round_ in range(CONTINUATIONS + 1):
        before, before_rough = evaluate.evaluations, rough.evaluations
        before_fresh = sum(f.evaluations for f in fresh)
        # least squares from the start in the first round; then the Gauss-Newton steps
        # going on from a lower profiled point, from where they stopped, or from a
        # refit's values
        local = fit or least_squares_fit(rough_obj, list(start), iterations, rough)
        fit, settled = smoothed_fit(params, evaluate, local, rng)
        smoothed = _cost(fit.residuals)
        record: dict[str, Any] = {
            "stage": "local" if round_ == 0 else f"continued ({round_})",
            "status": local.status,
            "message": fit.message,
            "settled": settled,
            "smoothed_chi_square": round(smoothed, 2),
        }
        stages.append(record)
        if last is not None and smoothed >= best:
            # a continuation that ends no lower than the best round does not replace it
            record["ended"] = "no lower than an earlier round: the fit stops at the best round"
            record["evaluations"] = evaluate.evaluations - before
            break
        # the profile's points are single simulations: compare them with one at the
        # centre, not with the regression's smoothed residuals
        centre = _cost(evaluate(fit.x))
        found = profile_directions(params, fit.x, fit.jacobian, costs, centre)
        directions = confirmed(found, fit.x, fresh)
        falling = [d for d in directions if d.falls]
        last, best, kept_directions, kept_falling = fit, smoothed, directions, falling
        record.update(
            {
                "chi_square": round(centre, 2),
                "lower_profiled_points": sum(len(d.lower_sides) for d in found),
                "confirmed_lower": len(falling),
                "evaluations": evaluate.evaluations - before,
                "coarse_evaluations": rough.evaluations - before_rough
                if rough is not evaluate
                else 0,
                "confirm_evaluations": sum(f.evaluations for f in fresh) - before_fresh,
            }
        )
        if falling:
            lowest = min(falling, key=lambda d: min(d.rise)).lowest()
            fit = at(lowest, "continued from a lower profiled point", fit.status)
        elif settled:
            break
    assert last is not None
    return Converged(last, kept_directions, not kept_falling, stages)
