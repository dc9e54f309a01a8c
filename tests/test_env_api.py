"""The Gymnasium API of ``concede/HesitantShopper-v0``: checkers, construction, seeding."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import yaml
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import envs
from envs import ENV_ID, HesitantShopperEnv, ScenarioError
from envs.scenario_files import scenario_dir

# a scenario may charge no shipping fee at all: its fee column is a constant 0 (legitimate)
pytestmark = pytest.mark.filterwarnings("ignore:.*maximum and minimum values are equal")


def _rollout(
    env: gym.Env[Any, Any], seed: int, action_seed: int, episodes: int = 3
) -> list[tuple[Any, ...]]:
    """``episodes`` journeys with random (seeded) actions; the first reset is seeded."""
    rng = np.random.default_rng(action_seed)
    trace: list[tuple[Any, ...]] = []
    for episode in range(episodes):
        obs, info = env.reset(seed=seed if episode == 0 else None)
        trace.append(("reset", obs.tolist(), info))
        done = False
        while not done:
            action = int(rng.integers(env.action_space.n))
            obs, reward, terminated, truncated, info = env.step(action)
            trace.append((action, obs.tolist(), reward, terminated, truncated, info))
            done = terminated or truncated
    return trace


# ------------------------------------------------------------------ registration and checkers


def test_registered_with_vector_entry_point() -> None:
    spec = gym.spec(ENV_ID)
    assert spec.entry_point == "envs.shopper_env:HesitantShopperEnv"
    assert spec.vector_entry_point == "envs.vector:HesitantShopperVectorEnv"


def _strict_warnings() -> None:
    """Turn every warning into an error, but for a feature whose bounds are one value
    (e.g. a shipping fee of 0 on every cart): a constant column is legitimate."""
    warnings.simplefilter("error")
    warnings.filterwarnings("ignore", message=".*maximum and minimum values are equal")


def test_gymnasium_env_checker(shipped_name: str) -> None:
    with warnings.catch_warnings():
        _strict_warnings()  # any other checker warning is a failure
        env = gym.make(ENV_ID, scenario=shipped_name)
        gym_check_env(env.unwrapped, skip_render_check=False)
    env.close()


def test_sb3_env_checker(shipped_name: str) -> None:
    env = HesitantShopperEnv(shipped_name)
    with warnings.catch_warnings():
        _strict_warnings()
        sb3_check_env(env, warn=True)


def test_gymnasium_env_checker_on_stress(stress_scenario: envs.Scenario) -> None:
    with warnings.catch_warnings():
        _strict_warnings()
        env = gym.make(ENV_ID, scenario=stress_scenario)
        gym_check_env(env.unwrapped, skip_render_check=False)


def test_spaces_follow_the_scenario(shipped_name: str) -> None:
    scenario = envs.load_scenario(shipped_name)
    env = gym.make(ENV_ID, scenario=shipped_name)
    base = env.unwrapped
    assert isinstance(base, HesitantShopperEnv)
    assert env.action_space == gym.spaces.Discrete(scenario.n_actions)
    assert base.action_names == scenario.action_names
    assert env.observation_space.dtype == np.float32
    assert env.observation_space.shape == (len(base.feature_names),)
    offered = tuple(f"offered_{c.name}" for c in scenario.concessions)
    assert base.feature_names[len(base.feature_names) - len(offered) :] == offered
    assert "consent" in base.feature_names
    obs, info = env.reset(seed=0)
    assert obs.dtype == np.float32 and obs in env.observation_space
    mask = base.action_masks()
    assert mask.shape == (scenario.n_actions,) and mask.dtype == np.bool_ and mask[0]
    assert set(info) == {
        *envs.LEDGER_TERMS,
        "profit",
        "event",
        "action_applied",
        "ineligible_action",
        "opted_out",
    }
    assert info["event"] == "nothing" and info["profit"] == 0.0


# ------------------------------------------------------------------ construction


def test_make_by_name_object_and_path(tmp_path: Path) -> None:
    scenario = envs.load_scenario("default")
    by_name = gym.make(ENV_ID, scenario="default")
    by_object = gym.make(ENV_ID, scenario=scenario)
    shipped_path = gym.make(ENV_ID, scenario=str(scenario_dir() / "default.yaml"))
    copy = tmp_path / "my_shop.yaml"
    copy.write_text(yaml.safe_dump(scenario.to_dict()), encoding="utf-8")
    by_path = gym.make(ENV_ID, scenario=str(copy))
    by_pathlib = gym.make(ENV_ID, scenario=copy)
    plain = gym.make(ENV_ID)  # the default scenario
    made = [by_name, by_object, shipped_path, by_path, by_pathlib, plain]
    for env in made:
        assert env.unwrapped.scenario == scenario
    assert by_object.unwrapped.scenario is scenario
    traces = [_rollout(env, seed=5, action_seed=5, episodes=2) for env in made]
    for trace in traces[1:]:
        assert trace == traces[0]


def test_make_with_a_modified_scenario_object() -> None:
    scenario = envs.load_scenario("default").replace(name="short", horizon=5)
    env = gym.make(ENV_ID, scenario=scenario)
    env.reset(seed=0)
    for _ in range(5):
        *_, terminated, truncated, _ = env.step(0)
        if terminated or truncated:
            break
    assert terminated or truncated  # a journey never outlives the horizon


def test_unknown_scenario_name_lists_available() -> None:
    with pytest.raises(ScenarioError) as info:
        gym.make(ENV_ID, scenario="atlantis")
    message = str(info.value)
    assert "'atlantis'" in message
    assert "available:" in message
    for name in envs.available_scenarios():
        assert repr(name) in message


def test_missing_yaml_path_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="no scenario file"):
        gym.make(ENV_ID, scenario=str(tmp_path / "absent.yaml"))


def test_invalid_render_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="render_mode"):
        HesitantShopperEnv("default", render_mode="human")


def test_out_of_range_action_is_refused() -> None:
    env = HesitantShopperEnv("default")
    env.reset(seed=0)
    with pytest.raises(ValueError, match="actions must be in"):
        env.step(env.action_space.n)
    with pytest.raises(ValueError, match="actions must be in"):
        env.step(-1)


# ------------------------------------------------------------------ seeding and determinism


@pytest.mark.parametrize("seed", [0, 7, 12345])
def test_same_seed_same_rollout(shipped_name: str, seed: int) -> None:
    first = _rollout(gym.make(ENV_ID, scenario=shipped_name), seed, action_seed=seed)
    second = _rollout(gym.make(ENV_ID, scenario=shipped_name), seed, action_seed=seed)
    assert first == second


def test_reseeding_the_same_env_replays(shipped_name: str) -> None:
    env = gym.make(ENV_ID, scenario=shipped_name)
    first = _rollout(env, 3, action_seed=1)
    second = _rollout(env, 3, action_seed=1)
    assert first == second


def test_different_seeds_differ(shipped_name: str) -> None:
    traces = [
        _rollout(gym.make(ENV_ID, scenario=shipped_name), seed, action_seed=0, episodes=5)
        for seed in (1, 2, 3)
    ]
    assert traces[0] != traces[1] and traces[1] != traces[2] and traces[0] != traces[2]
    env = gym.make(ENV_ID, scenario=shipped_name)
    starts = {tuple(env.reset(seed=seed)[0].tolist()) for seed in range(20)}
    assert len(starts) > 1


def test_unseeded_resets_continue_the_stream() -> None:
    env = gym.make(ENV_ID, scenario="default")
    env.reset(seed=0)
    obs = [tuple(env.reset()[0].tolist()) for _ in range(20)]
    assert len(set(obs)) > 1  # the shoppers after a seeded reset are new ones


def test_reset_keep_memory(shipped_name: str) -> None:
    env = HesitantShopperEnv(shipped_name)
    initial = env.scenario.strategic.initial_memory
    env.reset(seed=0)
    assert env.core.memory == initial
    env.core.memory = 0.625  # e.g. carried over from a large run
    obs, info = env.reset(options={"keep_memory": True})
    assert env.core.memory == 0.625
    assert obs in env.observation_space and info["profit"] == 0.0
    env.step(0)
    env.reset(seed=1, options={"keep_memory": True})
    assert env.core.memory == 0.625
    env.reset(seed=1)
    assert env.core.memory == initial
    env.core.memory = 0.625
    env.reset(options={"keep_memory": False})
    assert env.core.memory == initial


def test_render_ansi() -> None:
    env = gym.make(ENV_ID, scenario="default", render_mode="ansi")
    env.reset(seed=0)
    text = env.render()
    assert isinstance(text, str) and text.startswith("t=0 ")
    env.step(1)
    text = env.render()
    assert isinstance(text, str) and "t=1 " in text and "reward=" in text
    assert HesitantShopperEnv("default").render() is None
