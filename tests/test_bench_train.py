"""The training benchmarks run end to end on tiny budgets (their figures are not tested)."""

from __future__ import annotations

import numpy as np
import pytest
from stable_baselines3.common.vec_env import VecMonitor

from agents.vec_env import ShopperVecEnv
from experiments.benchmarks.train import ZeroCostVecEnv, bench_fps, print_fps

pytestmark = [
    pytest.mark.usefixtures("one_torch_thread"),
    pytest.mark.filterwarnings("ignore:.*maximum and minimum values are equal"),
]


def test_zero_cost_env_has_our_spaces_and_ends_journeys_like_a_vec_env() -> None:
    ours = ShopperVecEnv("default", 4)
    env = VecMonitor(ZeroCostVecEnv(4, ours.observation_space, ours.action_space, journey=3))
    obs = env.reset()
    assert obs.shape == (4, ours.observation_space.shape[0])
    ended = []
    for _ in range(6):
        obs, rewards, dones, infos = env.step(np.zeros(4, dtype=np.int64))
        ended.append(bool(dones.all()))
        assert not rewards.any()
        if dones.any():
            assert all(info["episode"]["l"] == 3 for info in infos)
    assert ended == [False, False, True, False, False, True]


def test_fps_benchmark_measures_ours_cartpole_and_the_ceiling(
    capsys: pytest.CaptureFixture[str],
) -> None:
    result = bench_fps(timesteps=2048, repeats=1)
    for key in ("ours_fps", "cartpole_fps", "zero_cost_fps", "ours_env_only_fps"):
        assert result[key] > 0.0
    assert result["ratio_ours_vs_cartpole"] == result["ours_fps"] / result["cartpole_fps"]
    assert result["ok"] == (result["ratio_ours_vs_cartpole"] >= result["target_ratio"])
    print_fps(result)
    out = capsys.readouterr().out
    assert "ceiling" in out and "CartPole" in out
