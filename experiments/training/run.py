"""One training run: build the agent, learn with evaluations and checkpoints, finish.

The learner is evaluated at intervals on fixed paired shoppers against never, the
baselines and the oracle (:mod:`experiments.evaluation.references`), checkpointed
(write then rename, so a kill leaves the previous checkpoint whole), and tracked in
MLflow. A run whose folder holds a checkpoint resumes from it into the same MLflow run.
Under a capped campaign budget the learner pays a learned shadow price for the budget
(:class:`agents.budget_pricing.BudgetPricer`).
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback, CallbackList
from stable_baselines3.common.logger import Logger
from stable_baselines3.common.vec_env import VecMonitor, VecNormalize

from agents.budget_pricing import BudgetPricer
from agents.learned import LearnedPolicy
from agents.rollout import Outcomes, run_policy
from agents.vec_env import ShopperVecEnv
from envs.scenario import Scenario
from experiments.config.settings import TrainSettings
from experiments.evaluation.evaluation_file import EVALUATION_FILE, write_evaluation
from experiments.evaluation.references import (
    References,
    compute_references,
    curve_point,
    final_report,
)
from experiments.tracking.names import (
    LEARNING_CURVE_FILE,
    MODEL_ARTIFACTS,
    MODEL_FILE,
    MODEL_TIMESTEPS_TAG,
    NORMALIZE_FILE,
    RESUMED_TAG,
)
from experiments.tracking.sb3_writer import MLflowWriter
from experiments.tracking.store import Tracking
from experiments.training.state import CHECKPOINTS, RunState, SimulatedKill


def git_sha() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).resolve().parent,
        )
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


class _Progress(BaseCallback):
    """Evaluates, checkpoints and (in drills) kills the run at the configured timesteps."""

    def __init__(self, run: TrainingRun) -> None:
        super().__init__()
        self.run = run
        self._next_eval = run.next_multiple(run.settings.eval_every)
        self._next_checkpoint = run.next_multiple(run.settings.checkpoint_every)

    def _on_step(self) -> bool:
        t = self.num_timesteps
        # the last point is the trained model's, evaluated after the final update
        if self._next_eval <= t < self.run.settings.total_timesteps:
            self.run.evaluate_point(t)
            self._next_eval += self.run.settings.eval_every
        if t >= self._next_checkpoint:
            self.run.checkpoint(t)
            self._next_checkpoint += self.run.settings.checkpoint_every
        kill = self.run.settings.kill_at_step
        if kill is not None and t >= kill:
            raise SimulatedKill(f"training.kill_at_step={kill} reached at {t} timesteps")
        return True


class TrainingRun:
    """One training run, from a fresh start or resumed from its checkpoint folder."""

    def __init__(
        self,
        scenario: Scenario,
        make_agent: Callable[..., BaseAlgorithm],
        settings: TrainSettings,
        tracking: Tracking,
        run_dir: Path,
        seed: int,
        agent_name: str,
    ) -> None:
        self.scenario = scenario
        self.make_agent = make_agent
        self.settings = settings
        self.tracking = tracking
        self.run_dir = run_dir
        self.checkpoints = run_dir / CHECKPOINTS
        self.best = self.checkpoints / "best"
        self.seed = seed
        self.agent_name = agent_name
        self.state: RunState | None = RunState.load(self.checkpoints)
        if self.state is not None:
            # points past the last checkpoint (saved with a best model) are evaluated again
            done = self.state.timesteps
            self.state.curve = [p for p in self.state.curve if p["timesteps"] <= done]
        self.references: References | None = None
        self.model: BaseAlgorithm | None = None
        self.env: VecNormalize | None = None
        self.shopper_env: ShopperVecEnv | None = None

    def next_multiple(self, every: int) -> int:
        done = self.state.timesteps if self.state else 0
        return (done // every + 1) * every

    # ------------------------------------------------------------ set-up
    def start(self, params: dict[str, Any], tags: dict[str, str], config_yaml: str) -> str:
        """Open (or reopen) the MLflow run; returns its id."""
        self.tracking.activate()
        if self.state is not None:
            mlflow.start_run(run_id=self.state.run_id)
            mlflow.set_tag(RESUMED_TAG, str(self.state.timesteps))
            return self.state.run_id
        run = mlflow.start_run(
            run_name=f"{self.agent_name} {self.scenario.name} seed={self.seed}", tags=tags
        )
        mlflow.log_params(params)
        mlflow.log_text(config_yaml, "config.yaml")
        self.state = RunState(run_id=run.info.run_id)
        self.state.save(self.checkpoints)
        return run.info.run_id

    def build(self) -> BaseAlgorithm:
        assert self.state is not None
        learned = self.settings.learns_budget_price
        price = self.settings.fixed_budget_price
        if learned and self.state.budget_shadow_price is not None:
            price = self.state.budget_shadow_price
        self.shopper_env = ShopperVecEnv(
            self.scenario,
            self.settings.n_envs,
            seed=self.seed,
            budget_shadow_price=price,
            relax_budget=learned,
        )
        venv = VecMonitor(self.shopper_env)
        latest = self.checkpoints / "model.zip"
        if latest.is_file() and self.state.timesteps > 0:
            env = VecNormalize.load(str(self.checkpoints / "vecnormalize.pkl"), venv)
            model = type(self.make_agent(env=env, seed=self.seed, device="cpu")).load(
                str(latest), env=env, device="cpu"
            )
        else:
            env = VecNormalize(venv, norm_obs=False, norm_reward=True, gamma=0.99, clip_reward=50.0)
            model = self.make_agent(env=env, seed=self.seed, device="cpu")
        model.set_logger(Logger(folder=None, output_formats=[MLflowWriter(self.state.run_id)]))
        self.model, self.env = model, env
        return model

    # ------------------------------------------------------------ during training
    def evaluate_point(self, timesteps: int) -> dict[str, float]:
        assert self.model is not None and self.references is not None and self.state is not None
        outcomes = self.evaluate_policy(self.settings.eval_shoppers)
        point = curve_point(outcomes, self.references)
        mlflow.log_metrics({f"eval/{k}": v for k, v in point.items()}, step=timesteps)
        self.state.curve.append({"timesteps": float(timesteps), **point})
        if self.settings.keep_best:
            self.keep_if_best(timesteps, point["profit_per_1000"])
        return point

    def keep_if_best(self, timesteps: int, profit: float) -> None:
        """Save the model as the best checkpoint if it earned at least the best so far."""
        assert self.model is not None and self.state is not None
        if self.state.best_profit is not None and profit < self.state.best_profit:
            return
        self.best.mkdir(parents=True, exist_ok=True)
        self.model.save(str(self.best / "model-partial.zip"))
        (self.best / "model-partial.zip").replace(self.best / "model.zip")
        self.state.best_timesteps, self.state.best_profit = timesteps, profit
        self.state.save(self.checkpoints)

    def evaluate_policy(self, n_shoppers: int, seed: int | None = None) -> Outcomes:
        assert self.model is not None
        policy = LearnedPolicy(self.model, name=self.agent_name)
        seed = self.settings.eval_seed if seed is None else seed
        return run_policy(self.scenario, policy, n_shoppers, seed, self.settings.cohort_size)

    def checkpoint(self, timesteps: int) -> None:
        assert self.model is not None and self.env is not None and self.state is not None
        self.checkpoints.mkdir(parents=True, exist_ok=True)
        # write then rename, so that a kill mid-save leaves the previous checkpoint whole
        self.model.save(str(self.checkpoints / "model-partial.zip"))
        self.env.save(str(self.checkpoints / "vecnormalize-partial.pkl"))
        (self.checkpoints / "model-partial.zip").replace(self.checkpoints / "model.zip")
        (self.checkpoints / "vecnormalize-partial.pkl").replace(
            self.checkpoints / "vecnormalize.pkl"
        )
        self.state.timesteps = timesteps
        if self.settings.learns_budget_price and self.shopper_env is not None:
            self.state.budget_shadow_price = self.shopper_env.budget_shadow_price
        self.state.save(self.checkpoints)

    # ------------------------------------------------------------ the whole run
    def learn(self) -> None:
        assert self.model is not None and self.state is not None
        done = self.state.timesteps
        remaining = self.settings.total_timesteps - done
        if remaining > 0:
            callbacks: list[BaseCallback] = [_Progress(self)]
            env = self.shopper_env
            if self.settings.learns_budget_price and env is not None and env.capped:
                # the deployed policy's spend, on shoppers of its own
                probe = ShopperVecEnv(
                    self.scenario, self.settings.n_envs, seed=self.seed + 1, relax_budget=True
                )
                pricer = BudgetPricer(env, rate=self.settings.budget_price_rate, probe=probe)
                callbacks.append(pricer)
            self.model.learn(
                total_timesteps=remaining,
                callback=CallbackList(callbacks),
                reset_num_timesteps=done == 0,
                progress_bar=self.settings.progress_bar,
            )
        self.checkpoint(self.settings.total_timesteps)


def run_training(
    scenario: Scenario,
    make_agent: Callable[..., BaseAlgorithm],
    settings: TrainSettings,
    tracking: Tracking,
    run_dir: Path,
    seed: int,
    agent_name: str,
    params: dict[str, Any],
    tags: dict[str, str],
    config_yaml: str,
) -> dict[str, float]:
    """Train, evaluate and track one run (or resume it); returns the final metrics."""
    run = TrainingRun(scenario, make_agent, settings, tracking, run_dir, seed, agent_name)
    run.start(params, tags, config_yaml)
    try:
        run.references = compute_references(
            scenario,
            settings.baselines,
            settings.eval_shoppers,
            settings.eval_seed,
            settings.cohort_size,
        )
        run.build()
        run.learn()
        metrics = run.evaluate_point(settings.total_timesteps)
        final = finish(run)
        metrics.update(final)
        mlflow.log_metrics({f"final/{k}": v for k, v in final.items() if np.isfinite(v)})
        mlflow.end_run(status="FINISHED")
        return metrics
    except SimulatedKill:
        mlflow.end_run(status="KILLED")
        raise
    except BaseException:
        mlflow.end_run(status="FAILED")
        raise


def finish(run: TrainingRun) -> dict[str, float]:
    """The final paired evaluation on new shoppers; the KPI report, the learning curve and
    the model as artifacts (the report also in the run folder)."""
    assert run.model is not None and run.state is not None
    chosen = run.checkpoints
    if run.settings.keep_best and (run.best / "model.zip").is_file():
        chosen = run.best
        run.model = type(run.model).load(str(chosen / "model.zip"), device="cpu")
    mlflow.set_tag(MODEL_TIMESTEPS_TAG, str(run.model.num_timesteps))
    report, metrics = final_report(
        run.scenario,
        LearnedPolicy(run.model, name=run.agent_name),
        run.settings.baselines,
        run.settings.final_shoppers,
        seed=run.settings.eval_seed + 1,
        cohort_size=run.settings.cohort_size,
    )
    write_evaluation(run.run_dir / EVALUATION_FILE, report)
    mlflow.log_dict(report, EVALUATION_FILE)
    mlflow.log_dict({"curve": run.state.curve}, LEARNING_CURVE_FILE)
    mlflow.log_artifact(str(chosen / MODEL_FILE), MODEL_ARTIFACTS)
    mlflow.log_artifact(str(run.checkpoints / NORMALIZE_FILE), MODEL_ARTIFACTS)
    if run.shopper_env is not None and run.shopper_env.capped:
        metrics["budget_shadow_price"] = run.shopper_env.budget_shadow_price
    return metrics
