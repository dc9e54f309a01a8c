"""Stronger opponents: uplift targeting from a randomised log, a contextual bandit, the
informed bound (knows the shopper, not the dice), and the core's replay with other dice."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

import envs
from agents import registry
from agents.baselines import NeverOffer
from agents.informed import InformedBound
from agents.logs.simulate import Exploration, simulate_logs
from agents.opponents.bandit import BanditSettings, train_bandit
from agents.opponents.cache import CACHE_ENV, cached
from agents.opponents.lazy import TrainedOnDemand
from agents.opponents.uplift import UpliftSettings, fit_uplift
from agents.oracle import Oracle
from agents.rollout import run_policy
from envs.core import ShopperCore, T

TINY_UPLIFT = UpliftSettings(n_journeys=400, max_iter=10, min_leaf=5, seed=3)
TINY_BANDIT = BanditSettings(n_journeys=600, cohort_size=200, seed=4)


# ------------------------------------------------------------------ the core's dice
def test_reset_with_a_dynamics_seed_keeps_the_shoppers_and_changes_the_draws() -> None:
    scenario = envs.load_scenario("default")
    plain, same, other = (ShopperCore(scenario, 200, autoreset=False) for _ in range(3))
    plain.reset(7)
    same.reset(7)
    other.reset(7, dynamics_seed=99)
    np.testing.assert_array_equal(plain.traits, other.traits)
    np.testing.assert_array_equal(plain.obs, other.obs)
    assert plain.dynamics_seed is None and other.dynamics_seed == 99
    waits = np.zeros(200, dtype=np.int64)
    for _ in range(6):
        a, b, c = plain.step(waits)[0], same.step(waits)[0], other.step(waits)[0]
    np.testing.assert_array_equal(a, b)  # a plain reset is what it was
    assert not np.array_equal(a, c)
    with pytest.raises(ValueError, match="needs a seed"):
        plain.reset(dynamics_seed=1)


# ------------------------------------------------------------------ uplift
@pytest.fixture(scope="module")
def tiny_log() -> pa.Table:
    scenario = envs.load_scenario("default")
    return simulate_logs(scenario, NeverOffer(), 400, 3, Exploration("epsilon", 0.5))


def test_uplift_learns_from_a_randomised_log_and_respects_masks(tiny_log: pa.Table) -> None:
    scenario = envs.load_scenario("default")
    policy = fit_uplift(scenario, tiny_log, TINY_UPLIFT)
    again = fit_uplift(scenario, tiny_log, TINY_UPLIFT)
    assert policy.info["journeys"] == 400 and policy.info["decisions_used"] > 0
    core = ShopperCore(scenario, 300, autoreset=False)
    obs = core.reset(1)
    for _ in range(12):
        mask = core.action_masks()
        a = policy.act(obs, mask)
        assert mask[np.arange(300), a].all()
        np.testing.assert_array_equal(a, again.act(obs, mask))  # same seed, same model
        np.testing.assert_array_equal(policy.uplift(obs, mask), again.uplift(obs, mask))
        obs = core.step(a)[0]


def test_uplift_refuses_a_log_without_randomisation() -> None:
    scenario = envs.load_scenario("default")
    table = simulate_logs(scenario, NeverOffer(), 50, 1, Exploration("epsilon", 0.0))
    with pytest.raises(ValueError, match="randomised"):
        fit_uplift(scenario, table, TINY_UPLIFT)


# ------------------------------------------------------------------ bandit
def test_bandit_trains_online_deterministically_and_respects_masks() -> None:
    scenario = envs.load_scenario("black_friday")  # budget, desk, two offers at most
    one, two = train_bandit(scenario, TINY_BANDIT), train_bandit(scenario, TINY_BANDIT)
    np.testing.assert_array_equal(one.mean, two.mean)
    assert one.info["journeys"] == 600 and one.info["decisions"] > 0
    assert np.abs(one.mean).sum() > 0  # it learned something
    out = run_policy(scenario, one, 600, 2, 300)
    assert not np.any(out.actions[out.actions != 0] < 0)
    core = ShopperCore(scenario, 200, autoreset=False)
    obs = core.reset(5)
    for _ in range(15):
        mask = core.action_masks()
        a = one.act(obs, mask)
        assert mask[np.arange(200), a].all()
        obs = core.step(a)[0]
        assert not core.ineligible.any()


# ------------------------------------------------------------------ registry and cache
def test_registry_names_the_opponents_and_trains_them_on_demand(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    scenario = envs.load_scenario("default")
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    monkeypatch.setattr(registry, "BanditSettings", lambda: TINY_BANDIT)
    names = registry.available_policies(scenario)
    for name in ("uplift", "bandit", "informed", "oracle"):
        assert name in names
    built = registry.build_policies(["never", "bandit", "informed", "oracle"], scenario)
    assert [p.name for p in built] == ["never", "bandit", "informed", "oracle"]
    bandit = built[1]
    assert isinstance(bandit, TrainedOnDemand) and bandit._policy is None  # not trained yet
    assert bandit.info["journeys"] == TINY_BANDIT.n_journeys
    assert isinstance(built[2], InformedBound) and isinstance(built[3], Oracle)
    assert [p.name for p in built[3].plans][-1] == "bandit"  # the oracle's candidate
    files = list(tmp_path.glob("bandit-default-*.pkl"))
    assert len(files) == 1
    calls = []
    again = cached("bandit", scenario, TINY_BANDIT.to_dict(), lambda: calls.append(1))
    assert not calls and again.info["cache"] == str(files[0])  # type: ignore[attr-defined]


# ------------------------------------------------------------------ informed bound
def test_informed_bound_knows_the_shopper_not_the_dice() -> None:
    scenario = envs.load_scenario("default")
    oracle, informed = Oracle(scenario), InformedBound(scenario, futures=2)
    choices: dict[str, list[np.ndarray]] = {"oracle": [], "informed": []}
    for dice in (11, 12):
        core = ShopperCore(scenario, 400, autoreset=False, stagger=scenario.horizon)
        core.reset(5, dynamics_seed=dice)
        for policy, key in ((oracle, "oracle"), (informed, "informed")):
            policy.bind(core, 5)
            choices[key].append(policy._assign.copy())
    oracle_a, oracle_b = choices["oracle"]
    informed_a, informed_b = choices["informed"]
    assert not np.array_equal(oracle_a, oracle_b)  # the clairvoyant reads the dice
    np.testing.assert_array_equal(informed_a, informed_b)  # the informed bound does not
    assert np.any(choices["informed"][0] != 0)


def test_informed_bound_sits_between_never_and_the_clairvoyant() -> None:
    scenario = envs.load_scenario("default")
    n, cohort, seed = 1200, 400, 8
    never = run_policy(scenario, NeverOffer(), n, seed, cohort).profit
    informed = run_policy(scenario, InformedBound(scenario, futures=3), n, seed, cohort).profit
    oracle = run_policy(scenario, Oracle(scenario), n, seed, cohort).profit
    per = lambda x: x.reshape(-1, cohort).sum(axis=1)  # noqa: E731
    assert np.all(per(informed) <= per(oracle))  # cohort by cohort
    assert informed.mean() >= never.mean()
    # its shoppers are everyone's: same traits as any run of the same seed
    core = ShopperCore(scenario, cohort, autoreset=False, stagger=scenario.horizon)
    core.reset(5)
    assert core.traits[T["price"]].sum() > 0
