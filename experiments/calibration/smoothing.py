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

1. the points of a scrambled Sobol design (scipy.stats.qmc, seeded from the generator
   passed in) in the box ``centre +- half_width`` scales, clipped to the bounds, and the
   centre itself; the residual vector at each. :data:`DESIGN_POINTS` of them, or the
   power of 2 at least twice the regression's coefficients when the parameters are many
   (:func:`design_size`): with 22 parameters, 32 points leave the 23 coefficients of
   each target's regression 10 degrees of freedom, and its slope is mostly noise. The
   half-width is :data:`HALF_WIDTH` up to :data:`WIDE_PARAMS` parameters and shrinks as
   ``sqrt(WIDE_PARAMS / n)`` beyond (:func:`half_width`): the points of a box of
   half-width ``h`` in ``n`` dimensions lie ``h sqrt(n / 3)`` scales from the centre
   (root mean square), 2.7 scales for ``h = 1`` and 22 parameters, where the residuals
   curve and the regression's intercept no longer matches the objective at the centre;
   the shrunk box keeps that distance at 1.6 scales;
2. ordinary least squares of the residuals on the parameters' offsets, per target:
   ``r(x) ~ a + J (x - centre)``; the intercept ``a`` is the smoothed residual at the
   centre, ``J`` the smoothed Jacobian;
3. the minimum of ``||a + J dx||^2 + DAMPING ||dx / scale||^2`` within the bounds and a
   trust region of ``STEP_LIMIT`` scales (scipy.optimize.lsq_linear) is the next centre.
   The damping (Levenberg-Marquardt's) keeps the step off the directions the targets
   hardly see: there the regression's slope is mostly its noise, and an undamped step
   goes as far as the trust region lets it, along all of them at once.

It *settles* when the step is below ``TOLERANCE`` scales, or when the linear model
promises less than :data:`SETTLE_FALL` of the sum of squares for it (along a direction
the targets hardly see, a step can be long and worth nothing: it is not taken); else it
stops after ``MAX_STEPS`` steps. Each step is guarded: a new centre whose smoothed sum of
squares (the regression's intercept, far less noisy than a single simulation) is worse
than the old one's by more than :data:`REJECT_RISE` is taken back, and the next step may
reach half as far. The rough part averages out over the design (it is nearly independent
between points a fraction of a scale apart), the simulation's common noise stays and the
bootstrap of the simulated journeys counts it (:mod:`.intervals`). The returned Jacobian
is the last kept regression's, the one the intervals and the profile use.
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

DESIGN_POINTS = 32  # per regression, at least (a power of 2)
HALF_WIDTH = 1.0  # scales: wide enough to average the rough part, narrow enough to be linear
WIDE_PARAMS = 8  # beyond this many parameters the design's box shrinks (see half_width)
STEP_LIMIT = 2.0  # scales: no step of the linear model reaches further than this
TOLERANCE = 0.1  # scales: a step shorter than this ends the fit
MAX_STEPS = 4
REJECT_RISE = 3.84  # a guarded step raising the sum of squares by more is taken back
SETTLE_FALL = 3.84  # a step the linear model expects to lower the sum of squares by less settles
DAMPING = 1.0  # sum of squares a step must buy per squared scale it moves (Levenberg-Marquardt)


def design_size(n_params: int) -> int:
    """Points of a regression's design: :data:`DESIGN_POINTS`, or the smallest power of 2
    at least twice the coefficients (``n_params + 1``) when that is more."""
    return max(DESIGN_POINTS, 1 << int(np.ceil(np.log2(2 * (n_params + 1)))))


def half_width(n_params: int) -> float:
    """The design box's half-width in scales: :data:`HALF_WIDTH`, times
    ``sqrt(WIDE_PARAMS / n_params)`` beyond :data:`WIDE_PARAMS` parameters, so that the
    points' distance from the centre stops growing with their number."""
    return HALF_WIDTH * min(1.0, float(np.sqrt(WIDE_PARAMS / n_params)))


def design(params: Sequence[Parameter], centre: Array, rng: np.random.Generator) -> Array:
    """The centre and :func:`design_size` scrambled Sobol points around it (within
    :func:`half_width` scales, clipped to the bounds), ``(points, parameters)``."""
    low, high, scale = box(params)
    unit = qmc.Sobol(len(params), scramble=True, seed=rng).random(design_size(len(params)))
    points = centre + (2.0 * unit - 1.0) * half_width(len(params)) * scale
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
) -> tuple[LeastSquares, bool]:
    """``fit`` moved by guarded Gauss-Newton steps on regressions of ``residuals`` (see
    the module docstring); its Jacobian is the last kept regression's, its residuals that
    regression's intercept (the smoothed residuals at the centre). Also whether the steps
    settled rather than ran out."""
    low, high, scale = box(params)
    centre = np.asarray(fit.x, dtype=np.float64)
    evaluations = fit.evaluations
    steps, settled, rejected = 0, False, 0
    limit = STEP_LIMIT
    kept: tuple[Array, Array, Array] | None = None  # centre, intercept, slope
    while True:
        points = design(params, centre, rng)
        values = np.stack(residuals.many(points))
        evaluations += len(points)
        intercept, jacobian = regression(points, values, centre)
        if kept is not None and float(np.sum(intercept**2)) > (
            float(np.sum(kept[1] ** 2)) + REJECT_RISE
        ):
            centre, intercept, jacobian = kept
            limit, rejected = limit / 2.0, rejected + 1
        else:
            kept = (centre, intercept, jacobian)
        if settled or steps == MAX_STEPS:
            break
        lower = np.maximum(low - centre, -limit * scale)
        upper = np.minimum(high - centre, limit * scale)
        # tiny slack: lsq_linear wants lower < upper where a parameter sits on a bound
        damped = np.vstack([jacobian, np.sqrt(DAMPING) * np.diag(1.0 / scale)])
        target = np.concatenate([-intercept, np.zeros(len(scale))])
        step = lsq_linear(damped, target, bounds=(lower, upper + 1e-12)).x
        step = np.clip(step, lower, upper)
        promised = float(np.sum(intercept**2) - np.sum((intercept + jacobian @ step) ** 2))
        if promised < SETTLE_FALL:  # not worth a step, nor the design after it
            settled = True
            break
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
