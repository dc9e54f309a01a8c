"""The compiled core steps the same journeys as the numpy dynamics it replaced.

:class:`envs.core.ShopperCore` runs :mod:`envs.kernels`; ``tests/reference_core.py`` keeps
the numpy version, array operation by array operation. Stepped with the same seed and the
same actions, both must give the same journeys: every state array, observation, mask,
ledger term, event, budget and population memory, on every shipped scenario and on the
stress market (campaign budget, future value, opt-outs), with autoreset, with staggered
arrivals and with a replayed dynamics seed. Floats may differ in their last bits (the
compiled loop sums in its own order); everything discrete must be equal.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
import pytest
from reference_core import ReferenceCore, reference_draw

from envs import ShopperCore, kernels
from envs.compile import main as compile_main
from envs.scenario import FutureValue, Product, Scenario, Segment, Strategic
from envs.shoppers import TRAITS

# every state array, by the names the core gives its views of the packed state
STATE = (
    *kernels.FLAGS,
    *kernels.INTS,
    *kernels.ACTION_FLAGS,
    "expires",
    "event",
    "applied",
    *kernels.OUTCOMES,
    "final_rows",
)
FLOAT_STATE = (*kernels.FLOATS, *kernels.VALUES, "traits", "terms", "spend")


def _agree(core: ShopperCore, ref: ReferenceCore, where: str) -> None:
    for name in STATE:
        np.testing.assert_array_equal(getattr(core, name), getattr(ref, name), f"{name} {where}")
    for name in FLOAT_STATE:
        np.testing.assert_allclose(
            getattr(core, name),
            getattr(ref, name),
            rtol=1e-12,
            atol=1e-9,
            err_msg=f"{name} {where}",
        )
    np.testing.assert_allclose(core.obs, ref.obs, rtol=1e-6, err_msg=f"obs {where}")
    np.testing.assert_allclose(core.final_obs, ref.final_obs, rtol=1e-6, err_msg=where)
    np.testing.assert_allclose(core.reward, ref.reward, rtol=1e-12, atol=1e-9, err_msg=where)
    np.testing.assert_allclose(
        core.spent, ref.spend.sum(axis=0), rtol=1e-12, atol=1e-9, err_msg=where
    )
    np.testing.assert_array_equal(core.action_masks(), ref.action_masks(), f"masks {where}")
    np.testing.assert_array_equal(core.budget_withheld(), ref.budget_withheld(), where)
    np.testing.assert_array_equal(core.wants_agent(), ref.wants_agent(), where)
    assert core.free_agents() == ref.free_agents(), where
    assert core.running == ref.running, where
    assert core.budget == pytest.approx(ref.budget, rel=1e-12, abs=1e-9), where
    assert core.memory == pytest.approx(ref.memory, rel=1e-12), where
    assert core.ended_shoppers == ref.ended_shoppers, where


def _play(
    scenario: Scenario, n: int, seed: int, steps: int, *, dynamics_seed: int | None = None, **kw
) -> None:
    core, ref = ShopperCore(scenario, n, **kw), ReferenceCore(scenario, n, **kw)
    core.reset(seed, dynamics_seed=dynamics_seed)
    ref.reset(seed, dynamics_seed=dynamics_seed)
    _agree(core, ref, "after reset")
    rng = np.random.default_rng(seed)
    for step in range(steps):
        mask = ref.action_masks()
        # mostly an eligible offer (so that concessions get played), sometimes any action
        chosen = np.array([rng.choice(np.flatnonzero(row)) for row in mask])
        anything = rng.integers(0, scenario.n_actions, n)
        actions = np.where(rng.random(n) < 0.3, anything, chosen)
        core.step(actions)
        ref.step(actions)
        _agree(core, ref, f"at step {step}")


@pytest.mark.parametrize("seed", [0, 7])
def test_batched_with_autoreset(shipped_name: str, scenario_by_name: Callable, seed: int) -> None:
    _play(scenario_by_name(shipped_name), 64, seed, 60)


def test_stress_market_with_autoreset(stress_scenario: Scenario) -> None:
    _play(stress_scenario, 96, 3, 80)


def _unseen_shop(base: Scenario, seed: int) -> Scenario:
    """A shop unlike the shipped ones: 1-6 segments and 1-5 products drawn at random,
    other horizon, caps, consent, desk, budget, learning and future value."""
    r = np.random.default_rng(seed)

    def u(low: float, high: float) -> float:
        return float(r.uniform(low, high))

    segments = tuple(
        Segment(
            name=f"segment_{j}",
            share=u(0.2, 2.0),
            valuation=u(0.6, 2.0),
            valuation_spread=u(0.0, 0.6),
            hesitation=u(-2.0, 3.0),
            hesitation_spread=u(0.0, 1.5),
            abandon_hazard=u(0.01, 0.3),
            return_probability=u(0.0, 0.9),
            return_decay=u(0.2, 1.0),
            price_sensitivity=u(0.0, 3.0),
            shipping_sensitivity=u(0.0, 3.0),
            speed_sensitivity=u(0.0, 0.5),
            gift_sensitivity=u(0.0, 2.0),
            voucher_sensitivity=u(0.0, 2.0),
            help_value=u(-2.0, 2.0),
            tolerance=u(0.3, 6.0),
            retarget_lift=u(0.0, 0.5),
            consent_rate=u(0.0, 1.0) if r.random() < 0.5 else None,
        )
        for j in range(int(r.integers(1, 7)))
    )
    prices = [u(5.0, 900.0) for _ in range(int(r.integers(1, 6)))]
    products = tuple(
        Product(
            name=f"product_{j}",
            price=price,
            unit_cost=u(0.0, 0.9) * price,
            shipping_fee=u(0.0, 15.0),
            shipping_cost=u(0.0, 15.0),
            weight=u(0.1, 5.0),
        )
        for j, price in enumerate(prices)
    )
    return base.replace(
        name=f"unseen_{seed}",
        segments=segments,
        products=products,
        horizon=int(r.integers(12, 80)),
        max_visits=int(r.integers(1, 8)),
        max_offers_per_shopper=int(r.integers(1, 5)),
        consent_rate=u(0.0, 1.0),
        campaign_budget_per_1000=u(50.0, 3000.0) if r.random() < 0.6 else None,
        live_agents=dataclasses.replace(base.live_agents, capacity_per_1000=u(1.0, 60.0)),
        strategic=Strategic(strength=u(0.0, 1.0), memory_rate=0.05, initial_memory=u(0.0, 1.0)),
        funnel=dataclasses.replace(base.funnel, buy_bias=u(-1.0, 1.0), advance_bias=u(-1.0, 1.0)),
        future_value=FutureValue(retained_customer=u(0.0, 20.0), annoyed_customer=u(0.0, 20.0)),
    )


@pytest.mark.parametrize("seed", [100, 102, 103])
def test_shops_unlike_the_shipped_ones(scenario_by_name: Callable, seed: int) -> None:
    shop = _unseen_shop(scenario_by_name("default"), seed)
    _play(shop, 120, seed, shop.horizon + 8)
    _play(shop, 120, seed, shop.horizon + 8, autoreset=False, stagger=9)


@pytest.mark.parametrize("name", ["default", "black_friday", "stress"])
def test_staggered_arrivals_to_the_end(scenario_by_name: Callable, name: str) -> None:
    scenario = scenario_by_name(name)
    _play(scenario, 80, 5, scenario.horizon + 12, autoreset=False, stagger=12)


def test_single_shopper_and_a_replayed_dynamics_seed(scenario_by_name: Callable) -> None:
    _play(scenario_by_name("black_friday"), 1, 11, 40, autoreset=False)
    _play(scenario_by_name("default"), 32, 11, 40, autoreset=False, dynamics_seed=99)


def test_an_action_out_of_range_changes_nothing(scenario_by_name: Callable) -> None:
    scenario = scenario_by_name("default")
    core, ref = ShopperCore(scenario, 4), ReferenceCore(scenario, 4)
    core.reset(1)
    ref.reset(1)
    with pytest.raises(ValueError, match=r"actions must be in \[0, "):
        core.step(np.array([0, 0, scenario.n_actions, 0]))
    core.step(np.zeros(4, dtype=np.int64))
    ref.step(np.zeros(4, dtype=np.int64))
    _agree(core, ref, "after a refused step")


@pytest.mark.parametrize("name", ["default", "luxury", "privacy_strict", "stress"])
def test_the_compiled_draw_is_the_numpy_draw(scenario_by_name: Callable, name: str) -> None:
    population = ShopperCore(scenario_by_name(name), 1).population
    got = population.draw(np.random.default_rng(4), 3000)
    want = reference_draw(population, np.random.default_rng(4), 3000)
    for field in ("traits", "perceived", "discount", "expected_cost"):
        np.testing.assert_allclose(
            getattr(got, field), getattr(want, field), rtol=1e-12, atol=1e-12, err_msg=field
        )
    np.testing.assert_array_equal(got.static_ok, want.static_ok)


def test_the_kernels_read_every_trait() -> None:
    # the draw writes the rows of TRAIT_SLOTS only: a trait missing there would be garbage
    assert sorted(kernels.TRAIT_SLOTS) == sorted(TRAITS)


def test_the_compile_command_reports_its_time(capsys: pytest.CaptureFixture[str]) -> None:
    assert compile_main() == 0
    printed = capsys.readouterr().out
    assert printed.startswith("simulator kernels ready in ") and printed.rstrip().endswith(
        "s (numba's cache on disk)"
    )
