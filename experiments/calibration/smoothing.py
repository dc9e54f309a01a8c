"""Gauss-Newton on a regression of the residuals: the fit's centre past the objective's dips.

On common random numbers the residuals are a smooth trend plus a rough part: a small
change of a parameter moves a few simulated shoppers across a decision's threshold, and
the rough part wanders like a random walk (:mod:`.objective`). A trust-region optimiser
accepts every step that lowers the sum of squares, so it walks into a dip of the rough
part and stops there on ``xtol``, and its Jacobian of finite differences there (a tenth of
a scale apart) carries the rough part's slope: the intervals, too narrow and centred on
the dip, missed the truth of a recovery (the sensitivities' held it 15 times of 21).

:func:`smoothed_fit` therefore ends the fit with a few Gauss-Newton steps on a *linear
regression* of the residual vector over a design of points around the current centre,
instead of on the residuals at single points:

1. ``DESIGN_POINTS`` points of a scrambled Sobol design (scipy.stats.qmc, seeded from the
   generator passed in) in the box ``centre +- HALF_WIDTH`` scales, clipped to the bounds,
   and the centre itself; the residual vector at each;
2. ordinary least squares of the residuals on the parameters' offsets, per target:
   ``r(x) ~ a + J (x - centre)``; the intercept ``a`` is the smoothed residual at the
   centre, ``J`` the smoothed Jacobian;
3. the minimum of ``||a + J dx||^2`` within the bounds and a trust region of
   ``STEP_LIMIT`` scales (scipy.optimize.lsq_linear) is the next centre.

It stops when the step is below ``TOLERANCE`` scales, or after ``MAX_STEPS`` steps. The
rough part averages out over the design (it is nearly independent between points a
fraction of a scale apart), the simulation's common noise stays and the bootstrap of the
simulated journeys counts it (:mod:`.intervals`). The returned Jacobian is the last
regression's, the one the intervals and the profile use.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
from scipy.optimize import lsq_linear
from scipy.stats import qmc

from experiments.calibration.objective import Array, LeastSquares
from experiments.calibration.parallel import Evaluator
from experiments.calibration.parameters import Parameter, box

DESIGN_POINTS = 32  # per regression: several times the parameters of any preset, a power of 2
HALF_WIDTH = 1.0  # scales: wide enough to average the rough part, narrow enough to be linear
STEP_LIMIT = 2.0  # scales: no step of the linear model reaches further than this
TOLERANCE = 0.1  # scales: a step shorter than this ends the fit
MAX_STEPS = 4
REJECT_RISE = 3.84  # a guarded step raising the sum of squares by more is taken back


def design(params: Sequence[Parameter], centre: Array, rng: np.random.Generator) -> Array:
    """The centre and :data:`DESIGN_POINTS` scrambled Sobol points around it (within
    :data:`HALF_WIDTH` scales, clipped to the bounds), ``(points, parameters)``."""
    low, high, scale = box(params)
    unit = qmc.Sobol(len(params), scramble=True, seed=rng).random(DESIGN_POINTS)
    points = centre + (2.0 * unit - 1.0) * HALF_WIDTH * scale
    return np.clip(np.vstack([centre, points]), low, high)


def regression(points: Array, residuals: Array, centre: Array) -> tuple[Array, Array]:
    """The intercept ``a`` (targets,) and slope ``J`` (targets, parameters) of the least
    squares fit ``residuals ~ a + J (points - centre)``."""
    offsets = points - centre
    design_matrix = np.hstack([np.ones((len(points), 1)), offsets])
    coef = np.asarray(np.linalg.lstsq(design_matrix, residuals, rcond=None)[0], np.float64)
    return coef[0], coef[1:].T


def smoothed_fit(
    params: Sequence[Parameter],
    residuals: Evaluator,
    fit: LeastSquares,
    rng: np.random.Generator,
    guarded: bool = False,
) -> tuple[LeastSquares, bool]:
    """``fit`` moved by Gauss-Newton steps on regressions of ``residuals`` (see the module
    docstring); its Jacobian is the last regression's, its residuals the regression's
    intercept (the smoothed residuals at the centre). Also whether the steps settled
    (the last one shorter than :data:`TOLERANCE`) rather than ran out.

    ``guarded``: a step whose new centre is worse than the old one by more than
    :data:`REJECT_RISE` in the sum of squares (a single simulation at each centre, the
    design's first point) is taken back, and the next step may reach half as far. Far
    from the minimum, with many parameters, a regression of a few dozen points can
    point the wrong way."""
    low, high, scale = box(params)
    centre = np.asarray(fit.x, dtype=np.float64)
    evaluations = fit.evaluations
    steps, settled, rejected = 0, False, 0
    limit = STEP_LIMIT
    kept: tuple[Array, float, Array, Array] | None = None  # centre, cost, intercept, slope
    while True:
        points = design(params, centre, rng)
        values = np.stack(residuals.many(points))
        evaluations += len(points)
        cost = float(np.sum(values[0] ** 2))
        if guarded and kept is not None and cost > kept[1] + REJECT_RISE:
            centre, cost, intercept, jacobian = kept
            limit, rejected = limit / 2.0, rejected + 1
        else:
            intercept, jacobian = regression(points, values, centre)
            kept = (centre, cost, intercept, jacobian)
        if settled or steps == MAX_STEPS:
            break
        lower = np.maximum(low - centre, -limit * scale)
        upper = np.minimum(high - centre, limit * scale)
        # tiny slack: lsq_linear wants lower < upper where a parameter sits on a bound
        step = lsq_linear(jacobian, -intercept, bounds=(lower, upper + 1e-12)).x
        step = np.clip(step, lower, upper)
        centre = np.clip(centre + step, low, high)
        steps += 1
        settled = bool(np.linalg.norm(step / scale) < TOLERANCE)
    ended = "settled" if settled else f"stopped after {MAX_STEPS}, still moving"
    if rejected:
        ended += f", {rejected} taken back"
    smoothed = dataclasses.replace(
        fit,
        x=centre,
        residuals=intercept,
        jacobian=jacobian,
        evaluations=evaluations,
        message=f"{fit.message}; then {steps} Gauss-Newton steps on regressions of the "
        f"residuals ({ended})",
    )
    return smoothed, settled
