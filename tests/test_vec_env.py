"""The Stable-Baselines3 view: ``agents.vec_env.ShopperVecEnv`` and MaskablePPO on it."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from sb3_contrib import MaskablePPO
from sb3_contrib.common.maskable.utils import get_action_masks, is_masking_supported
from stable_baselines3.common.vec_env import VecEnv, VecMonitor

from agents.vec_env import ShopperVecEnv
from envs import ledger
from envs.observation import COLUMN

pytestmark = pytest.mark.filterwarnings("ignore:.*maximum and minimum values are equal")

N = 16


def _random_eligible(vec: ShopperVecEnv, rng: np.random.Generator) -> np.ndarray:
    masks = get_action_masks(vec)
    return np.array([rng.choice(np.flatnonzero(m)) for m in masks])


def test_reset_and_step_contract(shipped_name: str) -> None:
    vec = ShopperVecEnv(shipped_name, num_envs=N, seed=0)
    assert isinstance(vec, VecEnv) and vec.num_envs == N
    n_features = vec.observation_space.shape[0]
    obs = vec.reset()
    assert obs.shape == (N, n_features) and obs.dtype == np.float32
    assert all(vec.observation_space.contains(row) for row in obs)
    rng = np.random.default_rng(0)
    for _ in range(20):
        obs, rewards, dones, infos = vec.step(_random_eligible(vec, rng))
        assert obs.shape == (N, n_features) and obs.dtype == np.float32
        assert rewards.shape == (N,) and rewards.dtype == np.float32
        assert np.isfinite(rewards).all()
        np.testing.assert_allclose(rewards, ledger.profit(vec.core.terms), rtol=1e-6, atol=1e-4)
        assert dones.shape == (N,) and dones.dtype == np.bool_
        assert isinstance(infos, list) and len(infos) == N
        assert all(isinstance(info, dict) for info in infos)
        assert all(vec.observation_space.contains(row) for row in obs)
    vec.close()


def test_done_rows_carry_terminal_observation_and_totals() -> None:
    vec = ShopperVecEnv("default", num_envs=N, seed=1)
    vec.reset()
    space = vec.observation_space
    rng = np.random.default_rng(1)
    ends = 0
    for _ in range(80):
        obs, _, dones, infos = vec.step(_random_eligible(vec, rng))
        truncated = vec.core.truncated
        for row in np.flatnonzero(dones):
            info = infos[row]
            last = info["terminal_observation"]
            assert last.shape == space.shape and space.contains(last)
            assert info["TimeLimit.truncated"] == bool(truncated[row])
            assert set(ledger.LEDGER_TERMS) <= set(info)
            # the returned observation is the next shopper's
            assert obs[row, COLUMN["journey_step"]] == 0.0
            ends += 1
    assert ends > N


def test_seeding_replays_and_differs() -> None:
    def run(seed: int) -> list[Any]:
        vec = ShopperVecEnv("default", num_envs=4)
        vec.seed(seed)
        trace: list[Any] = [vec.reset().tolist()]
        rng = np.random.default_rng(0)
        for _ in range(30):
            obs, rewards, dones, _ = vec.step(_random_eligible(vec, rng))
            trace += [obs.tolist(), rewards.tolist(), dones.tolist()]
        return trace

    assert run(3) == run(3)
    assert run(3) != run(4)
    first = ShopperVecEnv("default", num_envs=4, seed=3).reset()
    np.testing.assert_array_equal(first, np.array(run(3)[0], dtype=np.float32))


def test_action_masks_via_env_method() -> None:
    vec = ShopperVecEnv("default", num_envs=N, seed=2)
    vec.reset()
    rng = np.random.default_rng(2)
    for _ in range(10):
        masks = vec.env_method("action_masks")
        assert isinstance(masks, list) and len(masks) == N
        for i, mask in enumerate(masks):
            assert mask.shape == (vec.action_space.n,) and mask.dtype == np.bool_
            assert mask[0]
            np.testing.assert_array_equal(mask, vec.core.action_masks()[i])
        subset = vec.env_method("action_masks", indices=[3, 5])
        np.testing.assert_array_equal(np.stack(subset), np.stack(masks)[[3, 5]])
        vec.step(_random_eligible(vec, rng))


def test_get_action_masks_works_on_the_vec_env_and_its_wrappers() -> None:
    vec = ShopperVecEnv("default", num_envs=N, seed=3)
    vec.reset()
    assert is_masking_supported(vec)
    masks = get_action_masks(vec)
    assert masks.shape == (N, vec.action_space.n) and masks.dtype == np.bool_
    np.testing.assert_array_equal(masks, vec.core.action_masks())
    wrapped = VecMonitor(vec)
    assert is_masking_supported(wrapped)
    np.testing.assert_array_equal(get_action_masks(wrapped), masks)
    assert vec.get_attr("scenario") == [vec.scenario] * N
    assert vec.env_is_wrapped(VecMonitor) == [False] * N


# ------------------------------------------------------------------ known bugs


def test_terminal_observation_only_for_done_rows() -> None:
    vec = ShopperVecEnv("default", num_envs=1, seed=3)
    vec.reset()
    for _ in range(60):
        _, _, dones, infos = vec.step(np.array([0]))
        assert ("terminal_observation" in infos[0]) == bool(dones[0])


def test_episode_totals_equal_the_summed_terms_of_every_episode() -> None:
    vec = ShopperVecEnv("default", num_envs=1, seed=0)
    vec.reset()
    agent = vec.scenario.action_names.index("live_agent")
    running = np.zeros(len(ledger.LEDGER_TERMS))
    first_step = True
    episodes = 0
    for _ in range(300):
        mask = get_action_masks(vec)[0]
        # call the live agent at the first step of each journey when one is free
        action = agent if first_step and mask[agent] else 0
        _, _, dones, infos = vec.step(np.array([action]))
        running += vec.core.terms[:, 0]
        first_step = bool(dones[0])
        if dones[0]:
            totals = [infos[0][name] for name in ledger.LEDGER_TERMS]
            np.testing.assert_allclose(totals, running, atol=1e-9)
            running[:] = 0.0
            episodes += 1
    assert episodes >= 5


# ------------------------------------------------------------------ MaskablePPO


class CountingVecEnv(ShopperVecEnv):
    """Counts the actions sent against the masks, and the ineligible flags raised."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.steps = 0
        self.masked_out = 0
        self.ineligible = 0
        self.ineligible_non_agent = 0
        self.offers = 0

    def step_async(self, actions: np.ndarray) -> None:
        mask = self.core.action_masks()
        chosen = np.asarray(actions).reshape(self.num_envs)
        self.masked_out += int((~mask[np.arange(self.num_envs), chosen]).sum())
        super().step_async(actions)

    def step_wait(self) -> Any:
        out = super().step_wait()
        core = self.core
        self.steps += 1
        self.ineligible += int(core.ineligible.sum())
        self.ineligible_non_agent += int(
            (core.ineligible & ~core.actions.agent[self._actions]).sum()
        )
        self.offers += int((core.applied != 0).sum())
        return out


@pytest.fixture(scope="module")
def trained() -> tuple[MaskablePPO, CountingVecEnv]:
    env = CountingVecEnv("default", num_envs=N, seed=0)
    model = MaskablePPO(
        "MlpPolicy",
        env,
        n_steps=32,
        batch_size=64,
        policy_kwargs={"net_arch": [16]},
        seed=0,
    )
    model.learn(total_timesteps=256)
    return model, env


def test_maskable_ppo_learns_on_the_vec_env(trained: tuple[MaskablePPO, CountingVecEnv]) -> None:
    model, env = trained
    assert model.num_timesteps >= 256
    assert env.steps == 32  # one rollout of n_steps over N shoppers
    assert env.offers > 0  # the policy did play concessions
    obs = env.reset()
    actions, _ = model.predict(obs, action_masks=get_action_masks(env), deterministic=True)
    assert actions.shape == (N,)
    assert get_action_masks(env)[np.arange(N), actions].all()


def test_maskable_ppo_sends_only_masked_in_actions(
    trained: tuple[MaskablePPO, CountingVecEnv],
) -> None:
    _, env = trained
    assert env.masked_out == 0
    # no concession other than the shared live agents is ever refused
    assert env.ineligible_non_agent == 0


def test_maskable_ppo_never_gets_an_ineligible_flag(
    trained: tuple[MaskablePPO, CountingVecEnv],
) -> None:
    _, env = trained
    assert env.ineligible == 0


@pytest.mark.parametrize(("name", "capped"), [("black_friday", True), ("default", False)])
def test_budget_shadow_price_charges_budget_spend_only_under_a_cap(name: str, capped: bool) -> None:
    plain = ShopperVecEnv(name, 64, seed=3)
    priced = ShopperVecEnv(name, 64, seed=3, budget_shadow_price=2.0)
    plain.reset()
    priced.reset()
    rng = np.random.default_rng(0)
    charged = 0.0
    for _ in range(40):
        mask = plain.action_masks()
        actions = np.array([rng.choice(np.flatnonzero(row)) for row in mask])
        _, r_plain, _, _ = plain.step(actions)
        _, r_priced, _, _ = priced.step(actions)
        spend = priced.core.spend.sum(axis=0)
        expected = r_plain - (2.0 * spend if capped else 0.0)
        np.testing.assert_allclose(r_priced, expected.astype(np.float32), rtol=1e-5, atol=1e-4)
        charged += float(spend.sum())
    assert charged > 0.0  # concessions were paid for, so the price was (or would be) charged


def test_relaxed_budget_refuses_nothing_for_want_of_budget_and_counts_the_spend() -> None:
    capped = ShopperVecEnv("black_friday", 64, seed=3)
    relaxed = ShopperVecEnv("black_friday", 64, seed=3, relax_budget=True, budget_shadow_price=1.0)
    rate = capped.scenario.campaign_budget_per_1000
    assert rate is not None and relaxed.scenario == capped.scenario
    capped.reset()
    relaxed.reset()
    assert relaxed.budget_allowance == pytest.approx(rate * 64 / 1000)
    rng = np.random.default_rng(0)
    refused = spent = 0.0
    arrivals = 64
    for _ in range(60):
        # offer whatever the relaxed env allows; the capped env, met with the same wishes,
        # refuses some of them
        wanted = np.array([rng.choice(np.flatnonzero(row)) for row in relaxed.action_masks()])
        refused += np.count_nonzero(~capped.action_masks()[np.arange(64), wanted])
        capped.step(wanted)
        _, reward, _, _ = relaxed.step(wanted)
        assert not relaxed.core.ineligible.any()
        spent += float(relaxed.core.spend.sum())
        arrivals += len(relaxed.core.final_rows)
        plain = ledger.profit(relaxed.core.terms) - relaxed.core.spend.sum(axis=0)
        np.testing.assert_allclose(reward, plain.astype(np.float32), rtol=1e-5, atol=1e-4)
    assert refused > 0
    assert np.isfinite(capped.core.budget) and np.isinf(relaxed.core.budget)  # cap lifted
    assert relaxed.budget_spent == pytest.approx(spent) and spent > 0.0
    assert relaxed.budget_allowance == pytest.approx(rate * arrivals / 1000)
