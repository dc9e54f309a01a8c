"""One source of truth: the single env, the vector envs and the batched core agree.

The single env is the N = 1 view of :class:`envs.core.ShopperCore`; the Gymnasium vector
env and the SB3 VecEnv are its N >= 1 views with same-step autoreset. Stepped with the
same seed and the same actions, they must produce the same journeys.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
import pytest

from agents.vec_env import ShopperVecEnv
from envs import ENV_ID, HesitantShopperEnv, Scenario, ShopperCore, ledger, load_scenario
from envs.core import PURCHASE
from envs.observation import COLUMN, OFFERED_START, observation_space
from envs.shoppers import T

pytestmark = pytest.mark.filterwarnings("ignore:.*maximum and minimum values are equal")

SEEDS = [0, 1, 42]


def _actions(rng: np.random.Generator, mask: np.ndarray) -> int:
    """Mostly an eligible action (so that concessions get played), sometimes any action."""
    if rng.random() < 0.3:
        return int(rng.integers(len(mask)))
    return int(rng.choice(np.flatnonzero(mask)))


# ------------------------------------------------------------------ single env == core(n=1)


@pytest.mark.parametrize("seed", SEEDS)
def test_single_env_is_the_core_with_n_1(shipped_name: str, seed: int) -> None:
    env = HesitantShopperEnv(shipped_name)
    core = ShopperCore(env.scenario, 1, autoreset=False)
    rng = np.random.default_rng(seed)
    for episode in range(4):
        episode_seed = seed if episode == 0 else None
        obs, _ = env.reset(seed=episode_seed)
        core_obs = core.reset(episode_seed)
        np.testing.assert_array_equal(obs, core_obs[0])
        done = False
        while not done:
            mask = env.action_masks()
            np.testing.assert_array_equal(mask, core.action_masks()[0])
            action = _actions(rng, mask)
            obs, reward, terminated, truncated, info = env.step(action)
            c_obs, c_reward, c_terminated, c_truncated = core.step(np.array([action]))
            np.testing.assert_array_equal(obs, c_obs[0])
            assert reward == c_reward[0]
            assert (terminated, truncated) == (bool(c_terminated[0]), bool(c_truncated[0]))
            assert [info[name] for name in ledger.LEDGER_TERMS] == core.terms[:, 0].tolist()
            assert info["action_applied"] == core.applied[0]
            assert info["ineligible_action"] == core.ineligible[0]
            done = terminated or truncated


# ------------------------------------------------------------------ vector views == single env


def _single_episode(
    scenario: str, seed: int, action_seed: int
) -> tuple[list[int], list[dict[str, Any]], np.ndarray]:
    """One journey of the single env: actions, per-step records, the last observation."""
    env = HesitantShopperEnv(scenario)
    rng = np.random.default_rng(action_seed)
    obs, _ = env.reset(seed=seed)
    actions: list[int] = []
    records: list[dict[str, Any]] = [{"obs": obs}]
    done = False
    while not done:
        action = _actions(rng, env.action_masks())
        obs, reward, terminated, truncated, info = env.step(action)
        actions.append(action)
        records.append(
            {
                "obs": obs,
                "reward": reward,
                "terminated": terminated,
                "truncated": truncated,
                "info": info,
            }
        )
        done = terminated or truncated
    return actions, records, obs


@pytest.mark.parametrize("seed", SEEDS)
def test_gymnasium_vector_env_with_one_env(shipped_name: str, seed: int) -> None:
    actions, records, last = _single_episode(shipped_name, seed, action_seed=seed + 100)
    vec = gym.make_vec(ENV_ID, num_envs=1, scenario=shipped_name)
    obs, info = vec.reset(seed=seed)
    np.testing.assert_array_equal(obs[0], records[0]["obs"])
    for step, action in enumerate(actions, start=1):
        want = records[step]
        obs, reward, terminated, truncated, info = vec.step(np.array([action]))
        assert reward[0] == want["reward"]
        assert terminated[0] == want["terminated"] and truncated[0] == want["truncated"]
        for name in (*ledger.LEDGER_TERMS, "profit", "ineligible_action"):
            assert info[name][0] == want["info"][name], name
        if step < len(actions):
            np.testing.assert_array_equal(obs[0], want["obs"])
            assert "_final_obs" not in info or not info["_final_obs"][0]
    # same-step autoreset: the journey's last observation travels in the info
    assert info["_final_obs"][0]
    np.testing.assert_array_equal(info["final_obs"][0], last)
    assert obs[0][COLUMN["journey_step"]] == 0.0  # already the next shopper
    vec.close()


@pytest.mark.parametrize("seed", SEEDS)
def test_sb3_vec_env_with_one_env(shipped_name: str, seed: int) -> None:
    actions, records, last = _single_episode(shipped_name, seed, action_seed=seed + 200)
    vec = ShopperVecEnv(shipped_name, num_envs=1, seed=seed)
    obs = vec.reset()
    np.testing.assert_array_equal(obs[0], records[0]["obs"])
    for step, action in enumerate(actions, start=1):
        want = records[step]
        obs, reward, dones, infos = vec.step(np.array([action]))
        assert reward.dtype == np.float32
        assert reward[0] == np.float32(want["reward"])
        assert dones[0] == (want["terminated"] or want["truncated"])
        if step < len(actions):
            np.testing.assert_array_equal(obs[0], want["obs"])
            assert "terminal_observation" not in infos[0]
    info = infos[0]
    np.testing.assert_array_equal(info["terminal_observation"], last)
    assert info["TimeLimit.truncated"] == records[-1]["truncated"]
    # the journey's ledger totals equal the single env's terms summed over the journey
    for name in ledger.LEDGER_TERMS:
        total = sum(r["info"][name] for r in records[1:])
        assert info[name] == pytest.approx(total, abs=1e-9), name
    episode_return = sum(r["reward"] for r in records[1:])
    totals = np.array([[info[name]] for name in ledger.LEDGER_TERMS])
    assert ledger.profit(totals)[0] == pytest.approx(episode_return, abs=1e-9)


# ------------------------------------------------------------------ batched core


def _non_agent_actions(
    core: ShopperCore, rng: np.random.Generator, wait_share: float = 0.3
) -> np.ndarray:
    """Eligible non-agent actions (agents couple the rows through their shared capacity)."""
    mask = core.action_masks() & ~core.actions.agent[None, :]
    out = np.zeros(core.n, dtype=np.int64)
    for i in range(core.n):
        if rng.random() >= wait_share:
            out[i] = rng.choice(np.flatnonzero(mask[i]))
    return out


@pytest.mark.parametrize("seed", SEEDS[:2])
def test_batched_autoreset_final_obs_rows_are_the_done_rows(shipped_name: str, seed: int) -> None:
    # without a campaign budget and without live agents, the rows do not interact
    scenario = load_scenario(shipped_name).replace(campaign_budget_per_1000=None)
    n = 64
    space = observation_space(scenario)
    auto = ShopperCore(scenario, n, autoreset=True)
    held = ShopperCore(scenario, n, autoreset=False)  # finished rows stay finished
    np.testing.assert_array_equal(auto.reset(seed), held.reset(seed))
    first_done = np.full(n, -1)
    rng = np.random.default_rng(seed)
    ended = 0
    for step in range(scenario.horizon + 5):
        actions = _non_agent_actions(auto, rng)
        obs, reward, terminated, truncated = auto.step(actions)
        h_obs, h_reward, _, _ = held.step(actions)
        done = terminated | truncated
        assert not (terminated & truncated).any()
        np.testing.assert_array_equal(auto.final_rows, np.flatnonzero(done))
        assert auto.final_obs.shape == (done.sum(), len(auto.schema))
        assert auto.final_obs.dtype == np.float32
        for row, final in zip(auto.final_rows, auto.final_obs, strict=True):
            assert space.contains(final)
            if first_done[row] < 0:
                # the journey that just ended is the one the non-resetting core ran
                np.testing.assert_array_equal(final, h_obs[row])
        # rows still in their first journey have run exactly as in the non-resetting core
        first = first_done < 0
        np.testing.assert_array_equal(obs[first & ~done], h_obs[first & ~done])
        np.testing.assert_array_equal(reward[first], h_reward[first])
        np.testing.assert_array_equal(auto.terms[:, first], held.terms[:, first])
        # a finished row starts a new journey at once
        fresh = obs[done]
        for column in ("journey_step", "checkout_step", "away", "interruptions"):
            assert (fresh[:, COLUMN[column]] == 0.0).all(), column
        assert (fresh[:, OFFERED_START:] == 0.0).all()
        assert auto.alive.all() and (auto.t[done] == 0).all()
        first_done[done & first] = step
        ended += int(done.sum())
    assert (first_done >= 0).all()  # every first journey ended within the horizon
    assert ended > n
    assert auto.ended_shoppers == ended


def test_final_rows_are_cleared_on_a_step_where_nothing_ends() -> None:
    scenario = load_scenario("default")
    core = ShopperCore(scenario, 1, autoreset=True)
    core.reset(3)
    steps_after_an_end = 0
    for _ in range(60):
        _, _, terminated, truncated = core.step(np.array([0]))
        done = terminated | truncated
        np.testing.assert_array_equal(core.final_rows, np.flatnonzero(done))
        assert len(core.final_obs) == int(done.sum())
        steps_after_an_end += bool(not done[0] and core.ended_shoppers)
    assert steps_after_an_end > 0


def test_gymnasium_vector_final_obs_only_when_an_episode_ends() -> None:
    vec = gym.make_vec(ENV_ID, num_envs=1, scenario="default")
    vec.reset(seed=3)
    ends = 0
    for _ in range(60):
        _, _, terminated, truncated, info = vec.step(np.array([0]))
        done = bool(terminated[0] or truncated[0])
        ends += done
        assert bool(info.get("_final_obs", np.zeros(1, dtype=bool))[0]) == done
    assert ends >= 2


# ------------------------------------------------------------------ live agents


def _agent_market(tiny_market: Callable[..., Scenario]) -> Scenario:
    return tiny_market(
        [{"name": "agent", "kind": "live_agent", "unit_cost": 3.5, "expiry_steps": 6}],
        segments=({"base": "sure", "share": 1.0}, {"base": "stuck", "share": 1.0}),
        live_agents={"capacity_per_1000": 1.0, "session_steps": 6},
    )


def test_agent_session_ends_after_its_steps(tiny_market: Callable[..., Scenario]) -> None:
    # one agent (capacity 1); a stuck shopper gets it at t=0; the session occupies it for
    # session_steps = 6 steps (t = 0..5): another stuck shopper can have it from t=6 on
    scenario = _agent_market(tiny_market)
    core = ShopperCore(scenario, 8, autoreset=False)
    core.reset(0)
    assert core.agent_capacity == 1
    stuck = np.flatnonzero(core.traits[T["segment"]] == 1)
    assert len(stuck) >= 2
    first, second = stuck[:2]
    assert core.action_masks()[:, 1].sum() == core.agent_capacity  # the first free row
    actions = np.zeros(core.n, dtype=np.int64)
    actions[first] = 1
    core.step(actions)
    assert core.applied[first] == 1 and core.terms[ledger.AGENT_COST, first] == 3.5
    actions[:] = 0
    actions[second] = 1
    for t in range(1, 7):
        mask = core.action_masks()
        assert mask[second, 1] == (t >= 6), t
        assert not mask[first, 1]  # once per shopper
        core.step(actions)
        assert core.applied[second] == (1 if t >= 6 else 0), t
        assert core.ineligible[second] == (t < 6), t
        # the observation is of the next step, t + 1
        assert core.obs[0, COLUMN["agents_busy"]] == (1.0 if t + 1 < 6 or t >= 6 else 0.0)
    assert core.alive[stuck].all()


def test_finished_journey_frees_its_live_agent(tiny_market: Callable[..., Scenario]) -> None:
    scenario = _agent_market(tiny_market)
    core = ShopperCore(scenario, 8, autoreset=False)
    # a seed whose first shopper (the head of the agent queue) is a sure buyer
    seed = next(
        s for s in range(100) if core.reset(s) is not None and core.traits[T["segment"], 0] == 0
    )
    core.reset(seed)
    segment = core.traits[T["segment"]]
    sure, stuck = 0, np.flatnonzero(segment == 1)
    assert len(stuck) >= 1
    assert np.flatnonzero(core.action_masks()[:, 1]).tolist() == [sure]
    actions = np.zeros(core.n, dtype=np.int64)
    actions[sure] = 1  # the sure shopper gets the only agent at t=0 and buys at t=3
    core.step(actions)
    assert core.applied[sure] == 1
    for _ in range(3):
        core.step(np.zeros(core.n, dtype=np.int64))
    assert core.event[sure] == PURCHASE and not core.alive[sure]
    # the session would have ended at t=6 anyway; from then on at the latest the agent
    # must be free for the shoppers still browsing
    for _ in range(4):
        core.step(np.zeros(core.n, dtype=np.int64))
    assert (core.t[stuck] >= 8).all()
    assert core.obs[0, COLUMN["agents_busy"]] == 0.0
    assert core.action_masks()[stuck, 1].sum() == 1  # the free agent, to the first in the queue
