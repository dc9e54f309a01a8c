"""The learned shadow price of a campaign budget (``agents.budget_pricing``)."""

from __future__ import annotations

import numpy as np
import pytest
from sb3_contrib import MaskablePPO
from stable_baselines3.common.logger import Logger

from agents.budget_pricing import BudgetPricer
from agents.vec_env import ShopperVecEnv

pytestmark = pytest.mark.filterwarnings("ignore:.*maximum and minimum values are equal")


def _pricer(rate: float = 0.5, smoothing: float = 0.0) -> tuple[BudgetPricer, ShopperVecEnv]:
    venv = ShopperVecEnv("black_friday", 16, seed=0, relax_budget=True)
    venv.reset()
    pricer = BudgetPricer(venv, rate=rate, smoothing=smoothing)
    model = MaskablePPO("MlpPolicy", venv, n_steps=16, seed=0, device="cpu")
    model.set_logger(Logger(folder=None, output_formats=[]))
    pricer.init_callback(model)
    return pricer, venv


def _rollout(pricer: BudgetPricer, venv: ShopperVecEnv, spent: float, allowance: float) -> float:
    venv.budget_spent += spent
    venv.budget_allowance += allowance
    pricer.on_rollout_end()
    return venv.budget_shadow_price


def test_price_rises_while_the_spend_exceeds_the_allowance_and_falls_to_zero_after() -> None:
    pricer, venv = _pricer(rate=0.5)
    assert _rollout(pricer, venv, 300.0, 100.0) == pytest.approx(1.0)  # 0 + 0.5 x (3 - 1)
    assert _rollout(pricer, venv, 200.0, 100.0) == pytest.approx(1.5)
    assert _rollout(pricer, venv, 100.0, 100.0) == pytest.approx(1.5)  # matched: it stays
    assert _rollout(pricer, venv, 0.0, 100.0) == pytest.approx(1.0)
    for _ in range(5):
        price = _rollout(pricer, venv, 0.0, 100.0)
    assert price == 0.0  # never below zero


def test_price_follows_the_moving_averages_not_one_rollout() -> None:
    pricer, venv = _pricer(rate=1.0, smoothing=0.5)
    _rollout(pricer, venv, 100.0, 100.0)
    # one rollout spending 3x: the averages give 200 / 100, not 300 / 100
    assert _rollout(pricer, venv, 300.0, 100.0) == pytest.approx(1.0)


def test_a_counter_restart_leaves_the_price_alone() -> None:
    pricer, venv = _pricer()
    _rollout(pricer, venv, 300.0, 100.0)
    venv.reset()  # counters back to zero
    assert _rollout(pricer, venv, -1000.0, -1000.0) == pytest.approx(1.0)


@pytest.mark.parametrize(("rate", "smoothing"), [(0.0, 0.5), (-1.0, 0.5), (0.1, 1.0)])
def test_bad_pricer_settings_are_refused(rate: float, smoothing: float) -> None:
    venv = ShopperVecEnv("black_friday", 4, seed=0, relax_budget=True)
    with pytest.raises(ValueError, match="rate"):
        BudgetPricer(venv, rate=rate, smoothing=smoothing)


def test_training_prices_a_budget_the_untrained_policy_overspends() -> None:
    """A real run: the untrained policy offers at random, far above the budget, and the
    price climbs; the spend the policy wants is seen whole, nothing refused for budget."""
    venv = ShopperVecEnv("black_friday", 64, seed=0, relax_budget=True)
    model = MaskablePPO("MlpPolicy", venv, n_steps=32, batch_size=512, n_epochs=1, seed=0)
    pricer = BudgetPricer(venv, rate=0.2, smoothing=0.0)
    model.learn(64 * 32 * 4, callback=pricer)
    assert pricer.spent is not None and pricer.allowance is not None
    assert pricer.spent > pricer.allowance
    assert venv.budget_shadow_price > 0.0
    assert np.isinf(venv.core.budget)


def test_with_a_probe_the_price_follows_the_deployed_policys_spend_alone() -> None:
    venv = ShopperVecEnv("black_friday", 16, seed=0, relax_budget=True)
    probe = ShopperVecEnv("black_friday", 16, seed=1, relax_budget=True)
    venv.reset()
    model = MaskablePPO("MlpPolicy", venv, n_steps=16, seed=0, device="cpu")
    model.set_logger(Logger(folder=None, output_formats=[]))
    pricer = BudgetPricer(venv, rate=1.0, smoothing=0.0, probe=probe, probe_steps=40)
    pricer.init_callback(model)
    venv.budget_spent += 1e6  # the exploring policy's spend is not what is priced
    pricer.on_rollout_end()
    arrived = probe.budget_allowance - 16 * 0.6  # black_friday: 600 EUR per 1,000 shoppers
    assert arrived > 0.0  # the probe ran, its shoppers came and went
    expected = max(0.0, probe.budget_spent / arrived - 1.0)
    assert venv.budget_shadow_price == pytest.approx(expected)
    assert probe.budget_shadow_price == 0.0  # the probe's rewards are not used


def test_bad_probe_steps_are_refused() -> None:
    venv = ShopperVecEnv("black_friday", 4, seed=0, relax_budget=True)
    with pytest.raises(ValueError, match="probe_steps"):
        BudgetPricer(venv, probe=venv, probe_steps=0)
