"""The default scenario reproduces the real session data it is calibrated to."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from envs import load_scenario
from envs.scenario import Calibration
from experiments.calibration.public_data import (
    DATA,
    TOLERANCE,
    observed_rates,
    simulate_rates,
    write_calibration,
)


def test_targets_are_read_from_the_shipped_session_log() -> None:
    stats = json.loads((DATA / "online_shoppers_stats.json").read_text())
    rates = observed_rates()
    assert rates.overall == pytest.approx(stats["revenue_rate"], abs=1e-4)
    assert rates.new == pytest.approx(stats["by_VisitorType"]["New_Visitor"]["rate"], abs=1e-4)
    returning = stats["by_VisitorType"]["Returning_Visitor"]["rate"]
    assert rates.returning == pytest.approx(returning, abs=1e-4)


@pytest.mark.parametrize("seed", [11, 12])
def test_default_reproduces_purchase_rates_per_visit(seed: int) -> None:
    targets = observed_rates()
    sim = simulate_rates(load_scenario("default"), 30_000, seed)
    assert abs(sim.rates.overall - targets.overall) <= TOLERANCE
    assert abs(sim.rates.new - targets.new) <= TOLERANCE
    assert abs(sim.rates.returning - targets.returning) <= TOLERANCE
    # the industry's cart abandonment (about 70%) follows without being fitted
    assert 0.6 <= sim.cart_abandonment <= 0.8


def test_an_uncalibrated_scenario_misses_the_targets() -> None:
    # the check above can fail: the same shop with neutral calibration converts far more
    neutral = load_scenario("default").replace(calibration=Calibration())
    sim = simulate_rates(neutral, 20_000, 3)
    assert abs(sim.rates.overall - observed_rates().overall) > TOLERANCE


def test_write_calibration_rewrites_only_the_block(tmp_path: Path) -> None:
    source = Path(__file__).resolve().parent.parent / "conf" / "scenario" / "default.yaml"
    copy = tmp_path / "default.yaml"
    shutil.copy(source, copy)
    fitted = Calibration(-0.5, -1.25, 0.75)
    write_calibration(copy, fitted)
    assert load_scenario(copy).calibration == fitted
    assert load_scenario(copy).replace(calibration=Calibration()) == load_scenario(source).replace(
        calibration=Calibration()
    )
