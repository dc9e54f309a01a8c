"""A policy's profit on a fitted scenario, with the fit's uncertainty in its interval."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy import stats

from agents.registry import build_policy
from envs import load_scenario
from experiments.calibration.forecast import (
    Forecast,
    ForecastError,
    forecast,
    mixture_interval,
    replicate_scenarios,
)
from experiments.calibration.objective import ShopData
from experiments.calibration.parameters import resolve
from experiments.calibration.pipeline import CalibrationResult, calibrate
from experiments.calibration.sessions import simulate_sessions

DEFAULT = load_scenario("default")
# the shop converts first-time shoppers better than `default` says
SHOP = DEFAULT.replace(
    calibration=dataclasses.replace(DEFAULT.calibration, new_shopper_appeal=-0.3)
)
SHOPPERS = 8_000  # simulated per fit trial and per forecast run
SCENARIOS = 10


def fit_on(journeys: int) -> CalibrationResult:
    """``calibration.new_shopper_appeal`` of ``default`` fitted to ``journeys`` of the shop."""
    return calibrate(
        DEFAULT,
        ShopData(sessions=simulate_sessions(SHOP, journeys, 77)),
        resolve("calibration.new_shopper_appeal", DEFAULT),
        n_shoppers=SHOPPERS,
        replicates=50,
        seed=1,
    )


def never_forecast(result: CalibrationResult) -> Forecast:
    return forecast(result, [build_policy("never", DEFAULT)], SHOPPERS, 5, SCENARIOS)["never"]


@pytest.fixture(scope="module")
def fits() -> dict[int, CalibrationResult]:
    return {journeys: fit_on(journeys) for journeys in (400, 8_000)}


def test_the_mixture_interval_is_computed_by_hand() -> None:
    # one normal: its own interval; two far apart: each tail is one normal's 5% tail
    z = stats.norm.ppf(0.975)
    assert mixture_interval([10.0] * 4, [2.0] * 4) == pytest.approx((10 - 2 * z, 10 + 2 * z))
    z90 = stats.norm.ppf(0.95)
    assert mixture_interval([0.0, 100.0], [1.0, 1.0]) == pytest.approx((-z90, 100 + z90))
    # no noise: the replicates' own spread (10 points: the 2.5% tail is the lowest one)
    assert mixture_interval([4.0, 1.0, 3.0, 2.0] * 2 + [2.5, 3.5], [0.0] * 10) == pytest.approx(
        (1.0, 4.0), abs=1e-6
    )


def test_the_fit_keeps_its_bootstrap_replicates(fits: dict[int, CalibrationResult]) -> None:
    result = fits[400]
    (p,) = result.params
    assert result.replicates is not None and result.replicates.shape == (50, 1)
    lo, hi = np.percentile(result.replicates[:, 0], [2.5, 97.5])
    assert (lo, hi) == pytest.approx((p.low, p.high))  # the draws behind the interval
    scenarios = replicate_scenarios(result, 3)
    assert [s.calibration.new_shopper_appeal for s in scenarios] == pytest.approx(
        list(result.replicates[:3, 0])
    )


def test_the_forecast_widens_with_the_fit_s_uncertainty(
    fits: dict[int, CalibrationResult],
) -> None:
    few, many = (never_forecast(fits[n]) for n in (400, 8_000))
    # 400 journeys leave the appeal far less certain than 8,000: a wider forecast, while
    # the simulation's noise alone (the same number of shoppers) is about as wide
    assert few.high - few.low > 1.25 * (many.high - many.low)
    for f in (few, many):
        noise = f.noise_interval
        assert f.high - f.low > noise[1] - noise[0]
        # the spread across replicate scenarios lies inside the forecast
        assert f.low <= f.replicates.min() and f.replicates.max() <= f.high
        assert len(f.replicates) == SCENARIOS


def test_identical_replicates_give_the_simulation_noise_interval(
    fits: dict[int, CalibrationResult],
) -> None:
    result = fits[400]
    assert result.replicates is not None
    values = [p.value for p in result.params]
    exact = dataclasses.replace(result, replicates=np.tile(values, (len(result.replicates), 1)))
    f = never_forecast(exact)
    assert np.ptp(f.replicates) == 0.0
    assert (f.low, f.high) == pytest.approx(f.noise_interval, rel=1e-6)


def test_bad_forecast_settings_are_refused(fits: dict[int, CalibrationResult]) -> None:
    never = [build_policy("never", DEFAULT)]
    with pytest.raises(ForecastError, match="at least 2 replicate scenarios"):
        forecast(fits[400], never, SHOPPERS, 5, scenarios=1)
    with pytest.raises(ForecastError, match="kept 50 bootstrap replicates"):
        forecast(fits[400], never, SHOPPERS, 5, scenarios=51)
    with pytest.raises(ForecastError, match="keeps no bootstrap replicates"):
        forecast(dataclasses.replace(fits[400], replicates=None), never, SHOPPERS, 5)
