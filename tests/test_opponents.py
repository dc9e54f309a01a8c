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
from agents.exploration import Exploration
from agents.informed import InformedBound
from agents.logs.schema import ACTION, REWARD
from agents.logs.simulate import simulate_logs
from agents.opponents.bandit import BanditSettings, train_bandit
from agents.opponents.cache import CACHE_ENV, cached
from agents.opponents.lazy import TrainedOnDemand
from agents.opponents.uplift import (
    LogArrays,
    RandomisedAtMoments,
    UpliftSettings,
    candidate_gain,
    fit_uplift,
    held_out,
    randomised_log,
)
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


def _log(
    action: list[int], propensity: list[float], reward: list[float], journey: list[int]
) -> LogArrays:
    n = len(action)
    return LogArrays(
        x=np.zeros((n, 2), dtype=np.float32),
        eligible=np.ones((n, 3), dtype=bool),
        action=np.array(action, dtype=np.int64),
        propensity=np.array(propensity),
        reward=np.array(reward),
        journey=np.array(journey, dtype=np.int64),
    )


def test_profit_to_go_and_the_weight_of_the_log_having_waited_by_hand() -> None:
    # journey 0: wait (p .5), wait (p .8), offer 2 (p .25); journey 1: offer 1 (p .2), wait
    log = _log([0, 0, 2, 1, 0], [0.5, 0.8, 0.25, 0.2, 0.6], [0, 1, 10, -3, 5], [0, 0, 0, 1, 1])
    np.testing.assert_allclose(log.to_go, [11, 11, 10, 2, 5])
    q = np.zeros((5, 3))  # a useless outcome model: the DR score is plain IPW
    ho = held_out(log, np.array([0, 1]), np.arange(5), q)
    # W: product of 1/p(wait) over earlier rows of the journey; 0 once the log offered
    np.testing.assert_allclose(ho.weight, [1.0, 2.0, 2.5, 1.0, 0.0])
    # uplift of a over wait at a row: G/p on the logged action, minus G/p(wait) if waited
    np.testing.assert_allclose(ho.uplift[2], [0.0, 0.0, 40.0])
    np.testing.assert_allclose(ho.uplift[0], [0.0, -22.0, -22.0])
    # a candidate offering 2 at the third row of journey 0 (its first offer there), and 1
    # at journey 1's first: journey 0 gains 2.5 * 40, journey 1 gains 1 * 2 / 0.2
    gain = candidate_gain(ho, np.array([0, 0, 2, 1, 1]))
    assert gain["gain"] == pytest.approx((100.0 + 10.0) / 2)
    # only the first offer of a journey counts: offering at row 0 already gives 1 * -22
    assert candidate_gain(ho, np.array([2, 2, 2, 0, 0]))["gain"] == pytest.approx(-11.0)


def test_the_randomised_test_explores_only_at_the_moments() -> None:
    scenario = envs.load_scenario("default")
    settings = UpliftSettings(n_journeys=300, epsilon=0.4, seed=5)
    table = randomised_log(scenario, settings)
    names = [f.name for f in envs.feature_schema(scenario)]
    moment = (table["exit_intent"].fill_null(0).to_numpy() > 0.5) | (table["away"].to_numpy() > 0.5)
    choice = np.column_stack([table[f"eligible_{c.name}"].to_numpy() for c in scenario.concessions])
    p = table["propensity"].to_numpy()
    waited = np.array([a == "wait" for a in table[ACTION].to_pylist()])
    assert np.all(p[~moment] == 1.0) and np.all(waited[~moment])  # the shop as it is
    at = moment & choice.any(axis=1)
    k = 1 + choice[at].sum(axis=1)
    np.testing.assert_allclose(p[at & waited], (0.6 + 0.4 / k)[waited[at]])
    np.testing.assert_allclose(p[at & ~waited], (0.4 / k)[~waited[at]])
    assert 0 < (~waited).sum() < at.sum()
    logger = RandomisedAtMoments(0.4, None, "every step")
    assert logger.act(np.zeros((2, len(names)), np.float32), np.ones((2, 3), bool)).sum() == 0


def test_uplift_selection_is_never_worse_than_never_or_a_single_offer_on_held_out_data() -> None:
    scenario = envs.load_scenario("default")
    settings = UpliftSettings(n_journeys=3000, max_iter=20, min_leaf=50, seed=11)
    policy = fit_uplift(scenario, randomised_log(scenario, settings), settings)
    table = policy.info["selection_eur_per_shopper"]
    chosen = table[policy.info["chosen"]]["gain"]
    assert chosen >= table["never"]["gain"] == 0.0
    assert all(chosen >= v["gain"] for k, v in table.items() if k.startswith("always "))
    assert policy.info["journeys_held_out"] > 0.2 * 3000


def test_uplift_selects_never_when_the_log_shows_offers_do_not_pay() -> None:
    scenario = envs.load_scenario("default")
    settings = UpliftSettings(n_journeys=1500, max_iter=20, min_leaf=50, seed=13)
    table = randomised_log(scenario, settings)
    offered = np.array([a != "wait" for a in table[ACTION].to_pylist()])
    costly = table[REWARD].to_numpy() - 40.0 * offered  # every offer cost 40 EUR more
    table = table.set_column(table.schema.get_field_index(REWARD), REWARD, pa.array(costly))
    policy = fit_uplift(scenario, table, settings)
    assert policy.info["chosen"] == "never"
    core = ShopperCore(scenario, 200, autoreset=False)
    obs = core.reset(2)
    for _ in range(10):
        a = policy.act(obs, core.action_masks())
        assert not a.any()
        obs = core.step(a)[0]


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
