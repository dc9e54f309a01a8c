"""Benchmarks of training: learner throughput, time to converge, sweep overhead.

Usage::

    concede bench train fps                       # PPO on our VecEnv vs CartPole
    concede bench train convergence --budget 2000000
    concede bench train sweep                     # a 12-job joblib sweep

Each prints a table and, as its very last line, one JSON object with the figures.
Absolute speeds drift on shared machines; the ratios to references measured in the same
run are what to compare across runs. Torch runs one intra-op thread per process
(``--threads``): the networks are small, and on two cores more threads cost more in
synchronisation than they give.

``fps``: timesteps per second of SB3 PPO (``MlpPolicy``, ``n_steps=128``,
``batch_size=256``, default network) learning on ``ShopperVecEnv(num_envs=16)`` (under
``VecMonitor``, as in training) and on CartPole-v1 through ``make_vec_env(n_envs=16)``
(``DummyVecEnv`` of Monitor-wrapped envs), the same budget each, interleaved, median of
3 repeats. Target: ours >= 1.0x CartPole. A third learner runs on a zero-cost env with
our spaces (observations and actions of the scenario, nothing simulated): its ratio to
CartPole is the ceiling any simulator of this shape could reach, since PPO's own work
grows with the observation and action sizes.

``convergence``: MaskablePPO with the hyper-parameters of ``conf/agent/maskable_ppo.yaml``
and ``n_envs`` of ``conf/train.yaml`` (environment wrapped as ``experiments.train`` does)
trains on a scenario for ``--budget`` timesteps and, in another process, for 10x that.
Both are evaluated every ``budget/10`` timesteps on the same fixed shoppers (``--shoppers``,
seed ``--eval-seed``; common random numbers). The *gain* of a point is its profit per
1,000 shoppers minus that of ``never`` on the same shoppers. The converged gain is the
mean gain of the long run's last 10 evaluations (its final ``budget`` of training). The
time to 95% is the training wall time (evaluations excluded) at the first evaluation,
in the default-budget run, whose gain reaches 95% of the converged gain; if the
default run never gets there, the long run's first such point is reported and flagged.
Target: <= 600 s on 2 cores. The curves in the JSON are lists of
``[timesteps, train wall s, profit per 1,000, gain per 1,000]``.

``sweep``: ``concede train -m hydra/launcher=joblib hydra.launcher.n_jobs=2``
over 6 scenarios x 2 seeds of 20,000-timestep runs, as a subprocess into a temporary
folder; its wall time against the sum of its jobs' own durations (MLflow start to end).
With 2 workers, a ratio (wall / sum) near 0.5 means no overhead.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.vec_env import VecEnv

import concede_conf

ROOT = Path(__file__).resolve().parents[2]
CONF = concede_conf.folder()

REPEATS = 3
TARGET_FPS_RATIO = 1.0
TARGET_CONVERGENCE_S = 600.0
CONVERGED_SHARE = 0.95
LONG_FACTOR = 10
EVALS_PER_BUDGET = 10


def _threads(n: int) -> None:
    import torch

    torch.set_num_threads(n)


# ---------------------------------------------------------------- fps


def bench_fps(
    timesteps: int = 50_000,
    n_envs: int = 16,
    scenario: str = "default",
    repeats: int = REPEATS,
    seed: int = 0,
    threads: int = 1,
) -> dict[str, Any]:
    """PPO learning throughput on our VecEnv and on CartPole-v1, median of ``repeats``."""
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import VecMonitor

    from agents.vec_env import ShopperVecEnv

    _threads(threads)

    def make(kind: str) -> VecEnv:
        if kind == "ours":
            return VecMonitor(ShopperVecEnv(scenario, num_envs=n_envs, seed=seed))
        if kind == "zero_cost":
            shape = ShopperVecEnv(scenario, num_envs=1)
            return VecMonitor(ZeroCostVecEnv(n_envs, shape.observation_space, shape.action_space))
        return make_vec_env("CartPole-v1", n_envs=n_envs, seed=seed)

    def one(kind: str) -> float:
        env = make(kind)
        model = PPO("MlpPolicy", env, n_steps=128, batch_size=256, seed=seed, device="cpu")
        start = time.perf_counter()
        model.learn(total_timesteps=timesteps)
        elapsed = time.perf_counter() - start
        env.close()
        return model.num_timesteps / elapsed

    def env_only(kind: str, steps: int = 2_000) -> float:
        """Timesteps/s of the wrapped env alone, random actions drawn beforehand."""
        env = make(kind)
        assert isinstance(env.action_space, gym.spaces.Discrete)
        rng = np.random.default_rng(seed)
        actions = rng.integers(0, int(env.action_space.n), size=(steps, n_envs))
        env.reset()
        start = time.perf_counter()
        for row in actions:
            env.step(row)
        elapsed = time.perf_counter() - start
        env.close()
        return steps * n_envs / elapsed

    rates: dict[str, list[float]] = {"ours": [], "cartpole": [], "zero_cost": []}
    env_rates: dict[str, list[float]] = {"ours": [], "cartpole": []}
    for _ in range(repeats):
        for kind in rates:  # interleaved: all meet the same drift of a shared machine
            rates[kind].append(one(kind))
            if kind in env_rates:
                env_rates[kind].append(env_only(kind))
    ours, cartpole = (statistics.median(rates[k]) for k in ("ours", "cartpole"))
    zero_cost = statistics.median(rates["zero_cost"])
    ours_env, cartpole_env = (statistics.median(env_rates[k]) for k in ("ours", "cartpole"))
    return {
        "benchmark": "train_fps",
        "scenario": scenario,
        "n_envs": n_envs,
        "timesteps": timesteps,
        "repeats": repeats,
        "torch_threads": threads,
        "cpus": os.cpu_count(),
        "ours_fps": ours,
        "cartpole_fps": cartpole,
        "ours_fps_all": rates["ours"],
        "cartpole_fps_all": rates["cartpole"],
        "ratio_ours_vs_cartpole": ours / cartpole,
        "ours_env_only_fps": ours_env,
        "cartpole_env_only_fps": cartpole_env,
        "ratio_env_only": ours_env / cartpole_env,
        "zero_cost_fps": zero_cost,
        "ratio_zero_cost_vs_cartpole": zero_cost / cartpole,
        "target_ratio": TARGET_FPS_RATIO,
        "ok": ours / cartpole >= TARGET_FPS_RATIO,
    }


class ZeroCostVecEnv(VecEnv):
    """A VecEnv that simulates nothing: zero observations of the given spaces, reward 0,
    every journey ending after ``journey`` steps (info dicts as a real env gives them)."""

    def __init__(
        self,
        num_envs: int,
        observation_space: gym.spaces.Space[Any],
        action_space: gym.spaces.Space[Any],
        journey: int = 10,
    ) -> None:
        self.render_mode = None
        super().__init__(num_envs, observation_space, action_space)
        self.journey = journey
        self._t = 0
        self._obs = np.zeros((num_envs, *(observation_space.shape or ())), np.float32)
        self._rewards = np.zeros(num_envs, np.float32)

    def reset(self) -> np.ndarray:
        self._t = 0
        return self._obs.copy()

    def step_async(self, actions: np.ndarray) -> None:
        self._t += 1

    def step_wait(self) -> Any:
        ended = self._t % self.journey == 0
        dones = np.full(self.num_envs, ended)
        infos: list[dict[str, Any]] = [
            {"terminal_observation": self._obs[0], "TimeLimit.truncated": False} if ended else {}
            for _ in range(self.num_envs)
        ]
        return self._obs.copy(), self._rewards.copy(), dones, infos

    def close(self) -> None:
        return None

    def get_attr(self, attr_name: str, indices: Any = None) -> list[Any]:
        return [getattr(self, attr_name) for _ in self._get_indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: Any = None) -> None:
        setattr(self, attr_name, value)

    def env_method(self, method_name: str, *args: Any, indices: Any = None, **kw: Any) -> list[Any]:
        return [getattr(self, method_name)(*args, **kw) for _ in self._get_indices(indices)]

    def env_is_wrapped(self, wrapper_class: type, indices: Any = None) -> list[bool]:
        return [False for _ in self._get_indices(indices)]


def print_fps(result: dict[str, Any]) -> None:
    print(
        f"PPO (MlpPolicy, n_steps=128, batch 256), {result['n_envs']} envs, "
        f"{result['timesteps']:,} timesteps, median of {result['repeats']}"
    )
    print(f"{'env':<36} {'timesteps/s':>12}")
    print(f"{'CartPole-v1, DummyVecEnv (reference)':<36} {result['cartpole_fps']:>12,.0f}")
    print(f"{'ShopperVecEnv (' + result['scenario'] + ')':<36} {result['ours_fps']:>12,.0f}")
    print(f"{'zero-cost env, our spaces (ceiling)':<36} {result['zero_cost_fps']:>12,.0f}")
    print(f"ratio {result['ratio_ours_vs_cartpole']:.2f}x (target >= {TARGET_FPS_RATIO}x)")
    print(f"ceiling {result['ratio_zero_cost_vs_cartpole']:.2f}x: PPO with nothing simulated")
    print(
        f"env alone (random actions): CartPole {result['cartpole_env_only_fps']:,.0f}, "
        f"ours {result['ours_env_only_fps']:,.0f} timesteps/s "
        f"({result['ratio_env_only']:.2f}x)"
    )


# ---------------------------------------------------------------- convergence


def _agent_hparams() -> tuple[dict[str, Any], int]:
    from omegaconf import OmegaConf

    model = OmegaConf.to_container(OmegaConf.load(CONF / "agent" / "maskable_ppo.yaml").model)
    assert isinstance(model, dict)
    kwargs = {str(k): v for k, v in model.items() if not str(k).startswith("_")}
    n_envs = int(OmegaConf.load(CONF / "train.yaml").training.n_envs)
    return kwargs, n_envs


def maskable_ppo(scenario: Any, seed: int) -> Any:
    """An untrained MaskablePPO with the project's hyper-parameters on ``scenario``'s
    batched env (rewards normalised, as training does)."""
    from sb3_contrib import MaskablePPO
    from stable_baselines3.common.vec_env import VecMonitor, VecNormalize

    from agents.vec_env import ShopperVecEnv

    kwargs, n_envs = _agent_hparams()
    env = VecNormalize(
        VecMonitor(ShopperVecEnv(scenario, n_envs, seed=seed)),
        norm_obs=False,
        norm_reward=True,
        gamma=0.99,
        clip_reward=50.0,
    )
    return MaskablePPO(env=env, seed=seed, device="cpu", **kwargs)


def train_curve(
    timesteps: int,
    eval_every: int,
    scenario: str = "default",
    seed: int = 0,
    n_shoppers: int = 4_000,
    eval_seed: int = 20_240,
    threads: int = 1,
) -> dict[str, Any]:
    """Train MaskablePPO for ``timesteps``; its curve of
    (timesteps, train wall s, profit per 1,000, gain over never per 1,000)."""
    from stable_baselines3.common.callbacks import BaseCallback

    from agents.learned import LearnedPolicy
    from agents.registry import NEVER, build_policies
    from agents.rollout import run_policy
    from envs.scenario_files import load_scenario
    from experiments.evaluation.kpis import PER

    _threads(threads)
    market = load_scenario(scenario)
    cohort = min(n_shoppers, 2_000)
    (never,) = build_policies([NEVER], market)
    never_per_1000 = float(run_policy(market, never, n_shoppers, eval_seed, cohort).profit.mean())
    never_per_1000 *= PER
    kwargs, n_envs = _agent_hparams()
    model = maskable_ppo(market, seed)
    curve: list[tuple[int, float, float, float]] = []
    clock = {"train_s": 0.0, "since": time.perf_counter(), "eval_s": 0.0}

    def evaluate(at: int) -> None:
        clock["train_s"] += time.perf_counter() - clock["since"]
        start = time.perf_counter()
        out = run_policy(market, LearnedPolicy(model), n_shoppers, eval_seed, cohort)
        per_1000 = float(out.profit.mean()) * PER
        gain = per_1000 - never_per_1000
        curve.append((at, round(clock["train_s"], 3), round(per_1000, 2), round(gain, 2)))
        clock["eval_s"] += time.perf_counter() - start
        clock["since"] = time.perf_counter()

    class Every(BaseCallback):
        def __init__(self) -> None:
            super().__init__()
            self.next = eval_every

        def _on_step(self) -> bool:
            # SB3 finishes its last rollout past ``timesteps``: the curve stops at the budget
            if self.num_timesteps >= self.next and self.next <= timesteps:
                evaluate(self.num_timesteps)
                self.next += eval_every
            return True

    clock["since"] = time.perf_counter()
    model.learn(total_timesteps=timesteps, callback=Every())
    if not curve or curve[-1][0] < timesteps:
        evaluate(model.num_timesteps)
    return {
        "timesteps": timesteps,
        "curve": curve,
        "train_s": clock["train_s"],
        "eval_s": clock["eval_s"],
        "never_profit_per_1000": never_per_1000,
        "n_envs": n_envs,
        "hparams": kwargs,
    }


def _curve_job(args: tuple[int, int, str, int, int, int, int]) -> dict[str, Any]:
    return train_curve(*args)


def bench_convergence(
    budget: int = 2_000_000,
    scenario: str = "default",
    seed: int = 0,
    n_shoppers: int = 4_000,
    eval_seed: int = 20_240,
    threads: int = 1,
    parallel: bool = True,
) -> dict[str, Any]:
    """Time for MaskablePPO to reach 95% of the gain it reaches with 10x the budget."""
    every = max(1, budget // EVALS_PER_BUDGET)
    jobs = [
        (budget, every, scenario, seed, n_shoppers, eval_seed, threads),
        (LONG_FACTOR * budget, every, scenario, seed, n_shoppers, eval_seed, threads),
    ]
    start = time.perf_counter()
    if parallel:
        with multiprocessing.get_context("spawn").Pool(2) as pool:
            default, long = pool.map(_curve_job, jobs)
    else:
        default, long = (train_curve(*job) for job in jobs)
    wall = time.perf_counter() - start

    tail = [point[3] for point in long["curve"][-EVALS_PER_BUDGET:]]
    converged = float(np.mean(tail))
    threshold = CONVERGED_SHARE * converged

    def first_reaching(curve: list[tuple[int, float, float, float]]) -> tuple[int, float] | None:
        for at, seconds, _, gain in curve:
            if converged > 0 and gain >= threshold:
                return at, seconds
        return None

    hit = first_reaching(default["curve"])
    within_budget = hit is not None
    if hit is None:
        hit = first_reaching(long["curve"])
    final_default = default["curve"][-1][3]
    return {
        "benchmark": "train_convergence",
        "scenario": scenario,
        "seed": seed,
        "budget": budget,
        "long_budget": LONG_FACTOR * budget,
        "eval_every": every,
        "eval_shoppers": n_shoppers,
        "eval_seed": eval_seed,
        "n_envs": default["n_envs"],
        "torch_threads": threads,
        "parallel_runs": parallel,
        "cpus": os.cpu_count(),
        "gain_definition": "profit per 1,000 eval shoppers minus never's on the same shoppers",
        "never_profit_per_1000": default["never_profit_per_1000"],
        "converged_gain_per_1000": converged,
        "threshold_gain_per_1000": threshold,
        "default_final_gain_per_1000": final_default,
        "default_share_of_converged": final_default / converged if converged > 0 else None,
        "time_to_95_s": hit[1] if hit else None,
        "time_to_95_timesteps": hit[0] if hit else None,
        "reached_within_budget": within_budget,
        "default_train_s": default["train_s"],
        "long_train_s": long["train_s"],
        "eval_s": default["eval_s"] + long["eval_s"],
        "wall_s": wall,
        "target_s": TARGET_CONVERGENCE_S,
        "ok": bool(within_budget and hit and hit[1] <= TARGET_CONVERGENCE_S),
        "curve_default": default["curve"],
        "curve_long": long["curve"],
    }


def print_convergence(result: dict[str, Any]) -> None:
    print(
        f"MaskablePPO on {result['scenario']} (n_envs={result['n_envs']}), gain over never "
        f"per 1,000 shoppers on {result['eval_shoppers']:,} fixed shoppers"
    )
    print(f"{'timesteps':>12} {'train s':>9} {'profit':>9} {'gain':>7}   run (long: every 10th)")
    for name, stride in (("default", 1), ("long", EVALS_PER_BUDGET)):
        curve = result[f"curve_{name}"]
        shown = [*curve[stride - 1 :: stride], *([curve[-1]] if len(curve) % stride else [])]
        for at, seconds, per_1000, gain in shown:
            print(f"{at:>12,} {seconds:>9.1f} {per_1000:>9.0f} {gain:>7.0f}   {name}")
    t95 = result["time_to_95_s"]
    print(
        f"converged gain {result['converged_gain_per_1000']:,.0f} (long run, last "
        f"{EVALS_PER_BUDGET} points); 95% = {result['threshold_gain_per_1000']:,.0f}; "
        f"default run ends at {result['default_share_of_converged'] or float('nan'):.0%}"
    )
    if t95 is None:
        when = "not reached (no positive converged gain)"
    else:
        where = "" if result["reached_within_budget"] else " (past the budget: long run)"
        when = f"{t95:.0f} s at {result['time_to_95_timesteps']:,} timesteps{where}"
    print(f"time to 95%: {when} (target <= {TARGET_CONVERGENCE_S:.0f} s)")


# ---------------------------------------------------------------- sweep


def bench_sweep(
    timesteps: int = 20_000,
    scenarios: tuple[str, ...] | None = None,
    seeds: tuple[int, ...] = (0, 1),
    n_jobs: int = 2,
    threads: int = 1,
    output_dir: str | None = None,
) -> dict[str, Any]:
    """A joblib sweep of tiny runs: its wall time vs the sum of its jobs' durations."""
    from mlflow.tracking import MlflowClient

    import envs
    from experiments.tracking.names import PARENT_TAG, sqlite_uri

    names = tuple(scenarios or envs.available_scenarios())
    folder = Path(output_dir or tempfile.mkdtemp(prefix="concede-bench-sweep-"))
    every = max(1, timesteps // 2)
    cmd = [
        sys.executable,
        "-m",
        "experiments.train",
        "-m",
        "hydra/launcher=joblib",
        f"hydra.launcher.n_jobs={n_jobs}",
        f"scenario={','.join(names)}",
        f"seed={','.join(str(s) for s in seeds)}",
        f"training.total_timesteps={timesteps}",
        f"training.eval_every={every}",
        f"training.checkpoint_every={every}",
        "training.eval_shoppers=1000",
        "training.final_shoppers=2000",
        "training.baselines=[never]",
        "training.progress_bar=false",
        f"output_dir={folder}",
    ]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env["OMP_NUM_THREADS"] = str(threads)
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"the sweep failed ({done.returncode}):\n{done.stderr[-4000:]}")

    client = MlflowClient(sqlite_uri(folder))
    experiment = client.get_experiment_by_name("concede")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id])
    jobs = [r for r in runs if r.data.tags.get(PARENT_TAG) != "true"]
    parent = next(r for r in runs if r.data.tags.get(PARENT_TAG) == "true")
    durations = sorted((r.info.end_time - r.info.start_time) / 1000 for r in jobs)
    total = sum(durations)
    first_start = min(r.info.start_time for r in jobs)
    last_end = max(r.info.end_time for r in jobs)
    return {
        "benchmark": "train_sweep",
        "jobs": len(jobs),
        "finished": sum(r.info.status == "FINISHED" for r in jobs),
        "scenarios": list(names),
        "seeds": list(seeds),
        "timesteps": timesteps,
        "n_jobs": n_jobs,
        "omp_threads": threads,
        "cpus": os.cpu_count(),
        "wall_s": wall,
        "jobs_span_s": (last_end - first_start) / 1000,
        "parent_run_s": (parent.info.end_time - parent.info.start_time) / 1000,
        "sum_job_s": total,
        "job_s_median": statistics.median(durations),
        "job_s_min": durations[0],
        "job_s_max": durations[-1],
        "ratio_wall_vs_sum": wall / total,
        "ideal_ratio": 1 / n_jobs,
        "overhead_s": wall - total / n_jobs,
        "output_dir": str(folder),
    }


def print_sweep(result: dict[str, Any]) -> None:
    print(
        f"joblib sweep: {result['jobs']} jobs ({result['finished']} finished) of "
        f"{result['timesteps']:,} timesteps, n_jobs={result['n_jobs']}"
    )
    rows = [
        ("sweep wall time (process start to exit)", result["wall_s"]),
        ("first job start to last job end", result["jobs_span_s"]),
        ("sum of the jobs' own durations", result["sum_job_s"]),
        ("median job", result["job_s_median"]),
        (f"overhead: wall - sum / {result['n_jobs']}", result["overhead_s"]),
    ]
    for label, seconds in rows:
        print(f"{label:<44} {seconds:>8.1f} s")
    print(
        f"ratio wall / sum {result['ratio_wall_vs_sum']:.2f} "
        f"(ideal {result['ideal_ratio']:.2f} with {result['n_jobs']} workers)"
    )


# ---------------------------------------------------------------- command line


def bench_train(which: str, **kwargs: Any) -> dict[str, Any]:
    """Run one benchmark (``fps``, ``convergence`` or ``sweep``); its figures."""
    runs: dict[str, Callable[..., dict[str, Any]]] = {
        "fps": bench_fps,
        "convergence": bench_convergence,
        "sweep": bench_sweep,
    }
    return runs[which](**kwargs)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="concede bench train", description=__doc__.splitlines()[0]
    )
    sub = parser.add_subparsers(dest="which", required=True)
    fps = sub.add_parser("fps", help="PPO timesteps/s on our VecEnv vs CartPole-v1")
    fps.add_argument("--timesteps", type=int, default=50_000)
    fps.add_argument("--n-envs", type=int, default=16)
    fps.add_argument("--repeats", type=int, default=REPEATS)
    conv = sub.add_parser("convergence", help="time to 95%% of the 10x-budget gain")
    conv.add_argument("--budget", type=int, default=2_000_000)
    conv.add_argument("--shoppers", type=int, default=4_000)
    conv.add_argument("--eval-seed", type=int, default=20_240)
    conv.add_argument("--seed", type=int, default=0)
    conv.add_argument("--sequential", action="store_true", help="one run after the other")
    sweep = sub.add_parser("sweep", help="a 12-job joblib sweep's wall time vs its jobs")
    sweep.add_argument("--timesteps", type=int, default=20_000)
    sweep.add_argument("--n-jobs", type=int, default=2)
    sweep.add_argument("--output-dir", default=None)
    for each in (fps, conv, sweep):
        each.add_argument("--scenario", default=None)
        each.add_argument("--threads", type=int, default=1, help="torch threads per process")
    args = parser.parse_args(argv)

    if args.which == "fps":
        result = bench_fps(
            args.timesteps,
            args.n_envs,
            args.scenario or "default",
            args.repeats,
            threads=args.threads,
        )
        print_fps(result)
    elif args.which == "convergence":
        result = bench_convergence(
            args.budget,
            args.scenario or "default",
            args.seed,
            args.shoppers,
            args.eval_seed,
            args.threads,
            parallel=not args.sequential,
        )
        print_convergence(result)
    else:
        scenarios = tuple(args.scenario.split(",")) if args.scenario else None
        result = bench_sweep(
            args.timesteps,
            scenarios,
            n_jobs=args.n_jobs,
            threads=args.threads,
            output_dir=args.output_dir,
        )
        print_sweep(result)
    print(json.dumps(result, separators=(",", ":")), flush=True)
    return 0
