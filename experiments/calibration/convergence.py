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
2. **local fit**: least squares (:func:`.fitting.least_squares_fit`), then Gauss-Newton
   steps on regressions of the residuals (:func:`.smoothing.smoothed_fit`);
3. **profile** along each singular direction of the fit's Jacobian
   (:func:`.intervals.profile_directions`). If some profiled point is lower than the fit
   by more than :data:`.intervals.FLAT_RISE`, the fit continues from the lowest such
   point (step 2 again); if none is but the Gauss-Newton steps were still moving when
   they ran out, they go on from where they stopped. At most :data:`CONTINUATIONS`
   times. Only the last profile, at a fit that no profiled point beats, decides which
   directions are flat; the fit has *converged* when no profiled point beats it. From a
   far start the Gauss-Newton steps are guarded (a step that makes the fit worse is
   taken back) and a continuation that ends worse than an earlier round does not
   replace it: the result is the best round's.

How each stage ended is kept (:attr:`Converged.stages`): the global stage's best point,
each local fit's scipy status and message, whether its Gauss-Newton steps settled, the
chi-square at each, and whether the fit converged (the last profile found nothing lower).
The global stage draws from its own generator, so a fit that does not need it takes the
same random numbers as before it existed.
"""

from __future__ import annotations

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
CONTINUATIONS = 3  # local fits restarted from a lower profiled point, at most
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


def converged_fit(
    obj: Objective,
    x0: Sequence[float],
    rng: np.random.Generator,
    evaluate: Evaluator,
    max_evaluations: int = 80,
    global_rng: np.random.Generator | None = None,
    coarse: Callable[[], tuple[Objective, Evaluator]] | None = None,
    local_only: bool = False,
) -> Converged:
    """Fit ``obj`` from ``x0`` until no profiled point beats the fit (module docstring).

    ``coarse``: builds the same objective on fewer simulated shoppers, and its evaluator
    (called only from a far start); from a far start, the global stage and the least
    squares run on it (the Gauss-Newton steps, the profile and everything after on
    ``obj``). ``local_only``: ``x0`` is already near
    the minimum (a refit from a fit's values): no global stage, no least squares, the
    Gauss-Newton steps start from ``x0``."""
    params = obj.params
    low, high, _ = box(params)
    start = np.clip(np.asarray(x0, dtype=np.float64), low, high)
    stages: list[dict[str, Any]] = []
    at_start = evaluate(start)
    rms = float(np.sqrt(np.mean(at_start**2))) if at_start.size else 0.0
    rough_obj, rough = obj, evaluate  # what the global stage and least squares run on
    iterations = max_evaluations
    far = local_only or rms > GLOBAL_RMS  # steps are guarded; the best round is kept
    if rms > GLOBAL_RMS and not local_only:
        if coarse is not None:
            rough_obj, rough = coarse()
        start, stage = global_start(rough_obj, start, rough, global_rng or np.random.default_rng())
        stage["rms_start"] = round(rms, 2)
        stage["coarse"] = coarse is not None
        stages.append(stage)
        iterations = min(max_evaluations, COARSE_ITERATIONS)

    def costs(points: list[Array]) -> list[float]:
        return [_cost(r) for r in evaluate.many(points)]

    fit: LeastSquares | None = None
    best = np.inf
    kept_directions: list[Direction] = []
    kept_falling: list[Direction] = []
    if local_only:
        fit = LeastSquares(start, at_start, np.zeros((at_start.size, len(start))), 1, "refit")
    last: LeastSquares | None = None
    for round_ in range(CONTINUATIONS + 1):
        before, before_rough = evaluate.evaluations, rough.evaluations
        # least squares from ``start`` (the first round, or a lower point), or the
        # Gauss-Newton steps going on from where they stopped (or from a refit's values)
        local = fit or least_squares_fit(rough_obj, list(start), iterations, rough)
        fit, settled = smoothed_fit(params, evaluate, local, rng, guarded=far)
        # the profile's points are single simulations: compare them with one at the
        # centre, not with the regression's smoothed residuals
        centre = _cost(evaluate(fit.x))
        directions = profile_directions(params, fit.x, fit.jacobian, costs, centre)
        falling = [d for d in directions if d.falls]
        if last is None or not far or centre < best:
            # a continuation that ends worse than an earlier round does not replace it
            last, best, kept_directions, kept_falling = fit, centre, directions, falling
        stages.append(
            {
                "stage": "local" if round_ == 0 else f"continued ({round_})",
                "status": local.status,
                "message": fit.message,
                "settled": settled,
                "chi_square": round(centre, 2),
                "lower_profiled_points": len(falling),
                "evaluations": evaluate.evaluations - before,
                "coarse_evaluations": rough.evaluations - before_rough
                if rough is not evaluate
                else 0,
            }
        )
        if falling:
            start, fit = min(falling, key=lambda d: min(d.rise)).lowest(), None
        elif settled:
            break
    assert last is not None
    return Converged(last, kept_directions, not kept_falling, stages)
