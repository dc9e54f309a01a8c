"""The fit's last steps: Gauss-Newton on regressions of a rough residual vector."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from experiments.calibration.objective import LeastSquares
from experiments.calibration.parallel import Evaluator
from experiments.calibration.parameters import Parameter
from experiments.calibration.smoothing import (
    DESIGN_POINTS,
    HALF_WIDTH,
    WIDE_PARAMS,
    design,
    design_size,
    half_width,
    regression,
    smoothed_fit,
)


def _param(name: str, low: float = -5.0, high: float = 5.0, scale: float = 1.0) -> Parameter:
    return Parameter(name, low, high, scale, False, lambda s: 0.0, lambda s, v: s)


def _rough_problem(
    seed: int,
) -> tuple[np.ndarray, np.ndarray, Callable[[np.ndarray], np.ndarray]]:
    """A linear residual vector with a fixed common noise, plus a rough part of half the size of
    that noise that changes within a hundredth of a scale (a common-random-numbers
    objective's dips); returns the slope, the smooth problem's minimiser and the function."""
    rng = np.random.default_rng(seed)
    slope = rng.normal(size=(40, 2))
    common = rng.normal(size=40)
    wiggle, phase = rng.normal(size=(40, 2)) * 400.0, rng.uniform(0, 2 * np.pi, 40)
    truth = np.array([0.3, -0.4])

    def residuals(x: np.ndarray) -> np.ndarray:
        return slope @ (x - truth) + common + 0.5 * np.cos(wiggle @ x + phase)

    smooth_min = truth - np.linalg.lstsq(slope, common, rcond=None)[0]
    return slope, smooth_min, residuals


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_smoothed_fit_finds_the_trend_minimum_past_the_dips(seed: int) -> None:
    slope, smooth_min, residuals = _rough_problem(seed)
    params = [_param("a"), _param("b")]
    # a single-point search ends in a dip: the best of many nearby points is far from
    # the trend's minimum in chi-square, which is what misled the trust region
    nearby = smooth_min + np.random.default_rng(9).uniform(-0.5, 0.5, (400, 2))
    costs = [float(np.sum(residuals(x) ** 2)) for x in nearby]
    dip = nearby[int(np.argmin(costs))]
    assert min(costs) < float(np.mean(costs)) - 10.0
    start = LeastSquares(dip, residuals(dip), np.zeros((40, 2)), 10, "scipy stopped")
    fit, settled = smoothed_fit(params, Evaluator(residuals), start, np.random.default_rng(seed))
    assert settled
    assert np.abs(fit.x - smooth_min).max() < 0.1
    # the regression's slope is nearer the trend's than forward differences at the dip
    f0 = residuals(dip)
    differences = np.stack([(residuals(dip + 0.1 * e) - f0) / 0.1 for e in np.eye(2)], axis=1)
    assert np.linalg.norm(fit.jacobian - slope) < 0.5 * np.linalg.norm(differences - slope)
    assert fit.evaluations > 10 + DESIGN_POINTS
    assert "Gauss-Newton" in fit.message


def test_the_smoothed_fit_stays_within_the_bounds() -> None:
    _, smooth_min, residuals = _rough_problem(3)
    params = [_param("a", low=0.5, high=2.0), _param("b", low=-5.0, high=5.0)]
    start = np.array([1.0, 0.0])
    assert smooth_min[0] < 0.5  # the trend's minimum lies beyond the lower bound
    fit, _ = smoothed_fit(
        params,
        Evaluator(residuals),
        LeastSquares(start, residuals(start), np.zeros((40, 2)), 0, ""),
        np.random.default_rng(0),
    )
    assert fit.x[0] == pytest.approx(0.5)
    assert -5.0 <= fit.x[1] <= 5.0


def test_the_regression_returns_the_exact_plane_of_linear_residuals() -> None:
    rng = np.random.default_rng(4)
    slope, intercept = rng.normal(size=(6, 3)), rng.normal(size=6)
    centre = np.array([1.0, 2.0, 3.0])
    points = centre + rng.normal(size=(10, 3))
    a, j = regression(points, (points - centre) @ slope.T + intercept, centre)
    np.testing.assert_allclose(a, intercept, atol=1e-12)
    np.testing.assert_allclose(j, slope, atol=1e-12)


def test_the_smoothed_fit_is_reproducible_from_its_generator() -> None:
    _, smooth_min, residuals = _rough_problem(5)
    params = [_param("a"), _param("b")]
    start = LeastSquares(smooth_min + 0.3, residuals(smooth_min + 0.3), np.zeros((40, 2)), 0, "")
    one, _ = smoothed_fit(params, Evaluator(residuals), start, np.random.default_rng(8))
    two, _ = smoothed_fit(params, Evaluator(residuals), start, np.random.default_rng(8))
    np.testing.assert_array_equal(one.x, two.x)


def test_a_fit_at_the_trend_minimum_settles_without_a_step() -> None:
    _, smooth_min, residuals = _rough_problem(6)
    params = [_param("a"), _param("b")]
    start = LeastSquares(smooth_min, residuals(smooth_min), np.zeros((40, 2)), 0, "")
    fit, settled = smoothed_fit(params, Evaluator(residuals), start, np.random.default_rng(1))
    # the linear model promises less than SETTLE_FALL: one design, no step, no second one
    assert settled and "0 Gauss-Newton steps" in fit.message
    assert fit.evaluations == design_size(2) + 1
    np.testing.assert_array_equal(fit.x, smooth_min)


def test_a_step_that_makes_the_smoothed_fit_worse_is_taken_back() -> None:
    # a linear trend whose far side (beyond 1.5) is a cliff the first regression cannot see
    params = [_param("a")]

    def residuals(x: np.ndarray) -> np.ndarray:
        base = np.array([x[0] - 3.0, 0.5 * (x[0] - 3.0)])
        return base if x[0] < 1.5 else base + 40.0

    start = LeastSquares(np.zeros(1), residuals(np.zeros(1)), np.zeros((2, 1)), 0, "")
    fit, _ = smoothed_fit(params, Evaluator(residuals), start, np.random.default_rng(2))
    assert "taken back" in fit.message
    assert fit.x[0] < 1.5 and float(np.sum(fit.residuals**2)) < float(
        np.sum(residuals(start.x) ** 2)
    )


@pytest.mark.parametrize(
    ("n_params", "points"), [(1, 32), (3, 32), (15, 32), (16, 64), (22, 64), (40, 128)]
)
def test_the_design_holds_at_least_twice_the_regressions_coefficients(
    n_params: int, points: int
) -> None:
    assert design_size(n_params) == points >= min(DESIGN_POINTS, 2 * (n_params + 1))
    centre = np.zeros(n_params)
    params = [_param(f"p{i}") for i in range(n_params)]
    assert design(params, centre, np.random.default_rng(0)).shape == (points + 1, n_params)


@pytest.mark.parametrize("n_params", [1, WIDE_PARAMS, 12, 22, 40])
def test_the_designs_distance_from_the_centre_stops_growing_past_wide_params(
    n_params: int,
) -> None:
    params = [_param(f"p{i}") for i in range(n_params)]
    points = design(params, np.zeros(n_params), np.random.default_rng(0))[1:]
    reach = np.max(np.abs(points))
    assert reach <= half_width(n_params) < reach + 0.1
    distance = float(np.sqrt(np.mean(np.sum(points**2, axis=1))))
    # a uniform box of half-width h in n dimensions: root mean square distance h sqrt(n / 3)
    assert distance == pytest.approx(half_width(n_params) * np.sqrt(n_params / 3), rel=0.1)
    if n_params <= WIDE_PARAMS:
        assert half_width(n_params) == HALF_WIDTH
    else:
        assert distance == pytest.approx(HALF_WIDTH * np.sqrt(WIDE_PARAMS / 3), rel=0.1)
