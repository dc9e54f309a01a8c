"""Benchmark of the simulator: env-steps per second against Gymnasium's CartPole.

Usage::

    concede bench env            # simulator throughput vs CartPole
    concede bench env --quick    # fewer steps, for a smoke run

It measures env-steps per second with random actions (drawn beforehand), median
of 3 repeats: the batched simulator through ``gymnasium.make_vec`` at N = 1,024 and
N = 4,096, the single env through ``gymnasium.make``, and as references CartPole-v1
through ``gymnasium.make`` and ``SyncVectorEnv`` of 8 CartPoles. Targets: batched
(N = 4,096) >= 50x SyncVectorEnv(8) (moonshot 100x); single env >= 0.3x CartPole.

It also reports what the compiled kernels cost before the first step, each in a fresh
process: compiled from nothing (an empty numba cache) and loaded from numba's cache.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np

import envs

REPEATS = 3
TARGET_BATCHED_VS_SYNC8 = 50.0
TARGET_SINGLE_VS_CARTPOLE = 0.3


def compile_seconds() -> dict[str, float]:
    """Seconds of ``python -m envs.compile`` in a fresh process: from an empty numba cache
    (``cold``), then again from the cache it wrote (``cached``); the interpreter's and the
    imports' own start-up apart, as the command reports its own time."""
    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "NUMBA_CACHE_DIR": cache}
        for label in ("cold", "cached"):
            printed = subprocess.run(
                [sys.executable, "-m", "envs.compile"],
                env=env,
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            out[label] = float(printed.split(" ready in ")[1].split(" s")[0])
    return out


def _median_rate(run: Callable[[], float]) -> float:
    return statistics.median(run() for _ in range(REPEATS))


def single_env_rate(env_id: str, steps: int, seed: int = 0, **kwargs: Any) -> float:
    """Steps per second of one env through ``gym.make``, resetting at episode end."""
    env = gym.make(env_id, **kwargs)
    actions = np.random.default_rng(seed).integers(0, env.action_space.n, steps)  # type: ignore[attr-defined]

    def run() -> float:
        env.reset(seed=seed)
        start = time.perf_counter()
        for a in actions:
            _, _, terminated, truncated, _ = env.step(a)
            if terminated or truncated:
                env.reset()
        return steps / (time.perf_counter() - start)

    rate = _median_rate(run)
    env.close()
    return rate


def vector_env_rate(env: gym.vector.VectorEnv, steps: int, seed: int = 0) -> float:
    """Env-steps per second of a vector env (num_envs x steps / wall time)."""
    n = env.num_envs
    n_actions = int(env.single_action_space.n)  # type: ignore[attr-defined]
    actions = np.random.default_rng(seed).integers(0, n_actions, (steps, n))

    def run() -> float:
        env.reset(seed=seed)
        start = time.perf_counter()
        for a in actions:
            env.step(a)
        return steps * n / (time.perf_counter() - start)

    rate = _median_rate(run)
    env.close()
    return rate


def bench_env(scenario: str = "default", quick: bool = False) -> dict[str, Any]:
    scale = 0.2 if quick else 1.0
    cartpole = single_env_rate("CartPole-v1", int(100_000 * scale))
    sync8 = vector_env_rate(
        gym.make_vec("CartPole-v1", num_envs=8, vectorization_mode="sync"), int(15_000 * scale)
    )
    ours_single = single_env_rate(envs.ENV_ID, int(20_000 * scale), scenario=scenario)
    batched = {
        n: vector_env_rate(
            gym.make_vec(envs.ENV_ID, num_envs=n, scenario=scenario), int(steps * scale)
        )
        for n, steps in ((1024, 600), (4096, 200))
    }
    compiled = compile_seconds()
    result = {
        "scenario": scenario,
        "cartpole_single_steps_per_s": cartpole,
        "cartpole_sync8_env_steps_per_s": sync8,
        "ours_single_steps_per_s": ours_single,
        "ours_batched_1024_env_steps_per_s": batched[1024],
        "ours_batched_4096_env_steps_per_s": batched[4096],
        "ratio_batched_4096_vs_sync8": batched[4096] / sync8,
        "ratio_batched_1024_vs_sync8": batched[1024] / sync8,
        "ratio_single_vs_cartpole": ours_single / cartpole,
        "target_batched_vs_sync8": TARGET_BATCHED_VS_SYNC8,
        "target_single_vs_cartpole": TARGET_SINGLE_VS_CARTPOLE,
        "compile_cold_s": compiled["cold"],
        "compile_cached_s": compiled["cached"],
    }
    rows = [
        ("CartPole-v1, one env (reference)", cartpole, ""),
        ("CartPole-v1, SyncVectorEnv(8) (reference)", sync8, ""),
        (
            f"HesitantShopper ({scenario}), one env",
            ours_single,
            f"{ours_single / cartpole:.2f}x CartPole (target >= {TARGET_SINGLE_VS_CARTPOLE}x)",
        ),
        (
            f"HesitantShopper ({scenario}), batched N=1,024",
            batched[1024],
            f"{batched[1024] / sync8:.1f}x Sync8",
        ),
        (
            f"HesitantShopper ({scenario}), batched N=4,096",
            batched[4096],
            f"{batched[4096] / sync8:.1f}x Sync8 (target >= {TARGET_BATCHED_VS_SYNC8:.0f}x)",
        ),
    ]
    print(f"{'what':<48} {'env-steps/s':>14}  ratio")
    for label, rate, ratio in rows:
        print(f"{label:<48} {rate:>14,.0f}  {ratio}")
    print(
        f"kernels before the first step: {compiled['cold']:.1f} s compiled, "
        f"{compiled['cached']:.2f} s from numba's cache"
    )
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="concede bench env", description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default="default")
    parser.add_argument("--quick", action="store_true", help="fewer steps, for a smoke run")
    args = parser.parse_args(argv)
    print(json.dumps(bench_env(args.scenario, args.quick)))
    return 0
