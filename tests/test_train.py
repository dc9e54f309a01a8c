"""Training: every agent trains and is tracked, runs resume, seeds reproduce, failures show.

Every test here is a real, tiny training run (256 to 512 timesteps on 8 shoppers, 200
evaluation shoppers) of ``experiments.train.train`` into a real MLflow SQLite store in
``tmp_path``. The configs come from ``conf/train.yaml`` through Hydra's compose API,
composed once per agent and shrunk (``SHRINK`` and :func:`_agent_shrink`), then copied
for each test.

To keep the set fast, each store starts as a copy of an empty store whose schema MLflow
created once per session (:func:`store_template`): creating the schema costs seconds per
store; everything else (the experiment, its artifact location, the runs) is made by the
code under test. ``tests/test_tracking.py`` and ``tests/test_sweeps.py`` create stores
from scratch.
"""

from __future__ import annotations

import copy
import json
import math
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pytest
import torch
import yaml
from hydra import compose, initialize_config_dir
from hydra.utils import execution_whitelist, instantiate
from mlflow.entities import Run
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig, OmegaConf, open_dict
from sb3_contrib import MaskablePPO

import experiments.training.run
from agents.budget_pricing import BudgetPricer
from agents.vec_env import ShopperVecEnv
from experiments.config.scenarios import scenario_from_config
from experiments.config.trusted import TRUSTED_TARGETS
from experiments.evaluation.references import curve_point
from experiments.training.job import train
from experiments.training.run import TrainingRun
from experiments.training.state import STATE_FILE, SimulatedKill

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
AGENTS = sorted(p.stem for p in (CONF / "agent").glob("*.yaml"))
EXPERIMENTS = sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))

TOTAL = 256
EVERY = 128
SHRINK = [
    f"training.total_timesteps={TOTAL}",
    "training.n_envs=8",
    f"training.eval_every={EVERY}",
    f"training.checkpoint_every={EVERY}",
    "training.eval_shoppers=200",
    "training.final_shoppers=300",
    "training.baselines=[never]",
    "training.progress_bar=false",
    # replaced per test; ${hydra:runtime.cwd} needs Hydra's runtime config
    "output_dir=/nonexistent/replaced-per-test",
]


def _agent_shrink(agent: str) -> list[str]:
    """Overrides shrinking an agent config, read from its keys (new agent files included)."""
    model = OmegaConf.load(CONF / "agent" / f"{agent}.yaml").model
    out = []
    if "n_steps" in model:  # on-policy: one rollout = 16 steps x 8 shoppers = 128 timesteps
        out.append("agent.model.n_steps=16")
        if "batch_size" in model:
            out.append("agent.model.batch_size=64")
    else:  # off-policy
        for key, value in (("learning_starts", 64), ("buffer_size", 1000), ("batch_size", 32)):
            if key in model:
                out.append(f"agent.model.{key}={value}")
        if "target_update_interval" in model:
            out.append("agent.model.target_update_interval=64")
    kwargs = model.get("policy_kwargs") or {}
    if "net_arch" in kwargs and OmegaConf.is_list(kwargs.net_arch):
        out.append(
            f"agent.model.policy_kwargs.net_arch=[{','.join(['16'] * len(kwargs.net_arch))}]"
        )
    if "lstm_hidden_size" in kwargs:
        out.append("agent.model.policy_kwargs.lstm_hidden_size=16")
    return out


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="package")
def composed() -> Callable[[str], DictConfig]:
    """``composed(agent, scenario)``: conf/train.yaml with that agent and scenario, shrunk;
    composed once each."""
    cache: dict[tuple[str, str], DictConfig] = {}

    def get(agent: str, scenario: str = "default") -> DictConfig:
        if (agent, scenario) not in cache:
            with initialize_config_dir(config_dir=str(CONF), job_name="test_train"):
                cache[agent, scenario] = compose(
                    "train",
                    overrides=[
                        f"agent={agent}",
                        f"scenario={scenario}",
                        *SHRINK,
                        *_agent_shrink(agent),
                    ],
                    return_hydra_config=False,
                )
        return cache[agent, scenario]

    return get


@pytest.fixture
def make_cfg(
    composed: Callable[[str], DictConfig], store_template: Path, tmp_path: Path
) -> Callable[..., DictConfig]:
    """``make_cfg(agent, name, scenario, **dotted)``: a copy of the shrunk config writing to
    ``tmp_path/name`` (its own MLflow store there), with ``dotted`` keys updated."""

    def make(
        agent: str = "maskable_ppo", name: str = "out", scenario: str = "default", **dotted: Any
    ) -> DictConfig:
        cfg = copy.deepcopy(composed(agent, scenario))
        out = tmp_path / name
        out.mkdir(parents=True, exist_ok=True)
        if not (out / "mlflow.db").exists():
            shutil.copyfile(store_template, out / "mlflow.db")
        with open_dict(cfg):
            cfg.output_dir = str(out)
            cfg.tracking.store_dir = str(out)
            for key, value in dotted.items():
                OmegaConf.update(cfg, key, value, merge=False)
        return cfg

    return make


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(autouse=True)
def _no_active_run() -> Iterator[None]:
    yield
    while mlflow.active_run() is not None:  # a failed test must not leak its run
        mlflow.end_run(status="FAILED")


def run_train(cfg: DictConfig, run_dir: Path) -> dict[str, float]:
    with execution_whitelist(TRUSTED_TARGETS):
        return train(cfg, run_dir=run_dir)


def client_of(cfg: DictConfig) -> MlflowClient:
    return MlflowClient(f"sqlite:///{Path(cfg.tracking.store_dir) / 'mlflow.db'}")


def runs_of(cfg: DictConfig) -> list[Run]:
    client = client_of(cfg)
    experiment = client.get_experiment_by_name(str(cfg.tracking.experiment))
    assert experiment is not None, "the concede experiment was not created"
    return client.search_runs([experiment.experiment_id])


def only_run(cfg: DictConfig) -> Run:
    runs = runs_of(cfg)
    assert len(runs) == 1, [r.info.run_id for r in runs]
    return runs[0]


def steps_of(client: MlflowClient, run_id: str, key: str) -> list[int]:
    return sorted({m.step for m in client.get_metric_history(run_id, key)})


def artifact_paths(client: MlflowClient, run_id: str, path: str | None = None) -> set[str]:
    found: set[str] = set()
    for item in client.list_artifacts(run_id, path):
        if item.is_dir:
            found |= artifact_paths(client, run_id, item.path)
        else:
            found.add(item.path)
    return found


def load_artifact(client: MlflowClient, run_id: str, path: str, into: Path) -> str:
    local = client.download_artifacts(run_id, path, str(into))
    return Path(local).read_text()


# ---------------------------------------------------------------- presets


def _leaves(tree: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(tree, dict):
        for key, value in tree.items():
            if key == "defaults":
                continue
            yield from _leaves(value, f"{prefix}{key}.")
    else:
        yield prefix.rstrip("."), tree


@pytest.mark.parametrize("preset", EXPERIMENTS)
def test_experiment_preset_composes_with_its_values(preset: str) -> None:
    with initialize_config_dir(config_dir=str(CONF), job_name="test_train"):
        cfg = compose(
            "train",
            overrides=[f"experiment={preset}", "output_dir=/tmp/concede-presets"],
            return_hydra_config=True,
        )
    assert cfg.hydra.runtime.choices.experiment == preset
    written = OmegaConf.to_container(OmegaConf.load(CONF / "experiment" / f"{preset}.yaml"))
    leaves = list(_leaves(written))
    assert leaves, f"conf/experiment/{preset}.yaml sets nothing"
    for key, value in leaves:
        assert OmegaConf.select(cfg, key) == value, key
    # the training settings it makes are valid
    with execution_whitelist(TRUSTED_TARGETS):
        settings = instantiate(cfg.training, _convert_="all")
    assert settings.total_timesteps >= settings.eval_every


def test_quick_and_grid_presets_say_what_they_promise() -> None:
    with initialize_config_dir(config_dir=str(CONF), job_name="test_train"):
        base = compose("train", overrides=["output_dir=/tmp/x"], return_hydra_config=True)
        quick = compose("train", overrides=["experiment=quick", "output_dir=/tmp/x"])
        grid = compose(
            "train", overrides=["experiment=grid", "output_dir=/tmp/x"], return_hydra_config=True
        )
    assert quick.training.total_timesteps < base.training.total_timesteps
    params = grid.hydra.sweeper.params
    scenarios = {p.stem for p in (CONF / "scenario").glob("*.yaml")}
    assert set(params.scenario.split(",")) == scenarios
    assert set(params.agent.split(",")) <= set(AGENTS)
    assert len(params.seed.split(",")) >= 2
    assert base.hydra.sweeper.params is None


def test_long_preset_is_ten_times_the_default_budget() -> None:
    with initialize_config_dir(config_dir=str(CONF), job_name="test_train"):
        base = compose("train", overrides=["output_dir=/tmp/x"])
        long = compose("train", overrides=["experiment=long", "output_dir=/tmp/x"])
    assert long.training.total_timesteps == 10 * base.training.total_timesteps


def test_optuna_search_composes_as_a_multirun_maximising_profit_captured() -> None:
    with initialize_config_dir(config_dir=str(CONF), job_name="test_train"):
        cfg = compose(
            "train",
            overrides=["hparams_search=optuna", "output_dir=/tmp/x"],
            return_hydra_config=True,
        )
    sweeper = cfg.hydra.sweeper
    assert sweeper._target_.endswith("OptunaSweeper")
    assert str(cfg.hydra.mode) == "RunMode.MULTIRUN"
    assert sweeper.direction == "maximize"
    assert sweeper.study_name == "concede_default"
    assert sweeper.n_trials >= 1
    assert sweeper.sampler._target_ == "optuna.samplers.TPESampler"
    assert sweeper.sampler.seed is not None
    # every searched knob exists in the agent config it tunes
    for key in sweeper.params:
        assert OmegaConf.select(cfg, key) is not None, key


# ---------------------------------------------------------------- every agent


@pytest.mark.parametrize("agent", AGENTS)
def test_every_agent_trains_into_mlflow(
    agent: str, make_cfg: Callable[..., DictConfig], tmp_path: Path
) -> None:
    cfg = make_cfg(agent)
    metrics = run_train(cfg, tmp_path / "run")

    assert math.isfinite(metrics["profit_captured"])
    assert 0.0 <= metrics["conversion"] <= 1.0
    run = only_run(cfg)
    client = client_of(cfg)
    run_id = run.info.run_id
    assert run.info.status == "FINISHED"

    # params: the flattened resolved config (scenario excluded)
    params = run.data.params
    assert params["agent.name"] == agent
    assert params["seed"] == "0"
    assert params["training.total_timesteps"] == str(TOTAL)
    assert not any(k.startswith("scenario.") for k in params)

    tags = run.data.tags
    sha = tags["concede.git_sha"]
    assert re.fullmatch("[0-9a-f]{40}", sha), sha  # a commit of this repository
    known = subprocess.run(["git", "cat-file", "-e", f"{sha}^{{commit}}"], cwd=ROOT, check=False)
    assert known.returncode == 0, sha
    assert tags["concede.seed"] == "0"
    assert tags["concede.scenario"] == "default"
    assert tags["concede.agent"] == agent
    assert tags["concede.command"]
    assert "concede.sweep" not in tags and "mlflow.parentRunId" not in tags

    # the learning curve: every eval_every timesteps, and once more at the end
    for key in ("eval/profit_captured", "eval/conversion", "eval/giveaway_rate"):
        assert steps_of(client, run_id, key) == [EVERY, TOTAL], key
    assert math.isfinite(run.data.metrics["final/profit_captured"])

    artifacts = artifact_paths(client, run_id)
    assert {
        "config.yaml",
        "evaluation.json",
        "learning_curve.json",
        "model/model.zip",
        "model/vecnormalize.pkl",
    } <= artifacts
    config = yaml.safe_load(load_artifact(client, run_id, "config.yaml", tmp_path))
    assert config["agent"]["name"] == agent
    assert config["training"]["total_timesteps"] == TOTAL
    report = json.loads(load_artifact(client, run_id, "evaluation.json", tmp_path))
    verdict = report["verdict"]
    assert verdict["learner"] == agent
    assert verdict["best_baseline"] == "never"
    assert verdict["significance"] in ("better", "worse", "not significantly different")
    assert json.loads((tmp_path / "run" / "evaluation.json").read_text()) == report
    curve = json.loads(load_artifact(client, run_id, "learning_curve.json", tmp_path))["curve"]
    assert [p["timesteps"] for p in curve] == [EVERY, TOTAL]


# ---------------------------------------------------------------- resume


def test_killed_run_resumes_into_the_same_mlflow_run(
    make_cfg: Callable[..., DictConfig], tmp_path: Path
) -> None:
    total, kill = 4 * EVERY, 2 * EVERY + 64  # checkpoints at 128, 256 | kill at 320
    run_dir = tmp_path / "run"
    cfg = make_cfg(**{"training.total_timesteps": total, "training.kill_at_step": kill})
    with pytest.raises(SimulatedKill, match=f"kill_at_step={kill}"):
        run_train(cfg, run_dir)
    killed = only_run(cfg)
    assert killed.info.status == "KILLED"
    state = json.loads((run_dir / "checkpoints" / STATE_FILE).read_text())
    assert state["run_id"] == killed.info.run_id
    assert state["timesteps"] == 2 * EVERY
    assert mlflow.active_run() is None

    with open_dict(cfg):
        cfg.training.kill_at_step = None
    metrics = run_train(cfg, run_dir)
    assert math.isfinite(metrics["profit_captured"])
    resumed = only_run(cfg)  # no second run
    assert resumed.info.run_id == killed.info.run_id
    assert resumed.info.status == "FINISHED"
    assert resumed.data.tags["concede.resumed_at"] == str(2 * EVERY)

    model = MaskablePPO.load(str(run_dir / "checkpoints" / "model.zip"), device="cpu")
    assert model.num_timesteps >= total
    client = client_of(cfg)
    steps = steps_of(client, resumed.info.run_id, "eval/profit_captured")
    assert steps == [EVERY, 2 * EVERY, 3 * EVERY, 4 * EVERY]
    curve = json.loads(load_artifact(client, resumed.info.run_id, "learning_curve.json", tmp_path))[
        "curve"
    ]
    seen = [p["timesteps"] for p in curve]
    assert min(seen) < kill < max(seen)
    assert seen == sorted(seen)


def test_a_capped_budget_gets_a_learned_price_that_survives_a_resume(
    make_cfg: Callable[..., DictConfig], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    every = 64 * 16  # one rollout of 64 shoppers: enough purchases to see the spend
    total, kill = 4 * every, 2 * every + 64
    run_dir = tmp_path / "run"
    cfg = make_cfg(
        scenario="black_friday",
        **{
            "training.n_envs": 64,
            "training.eval_every": every,
            "training.checkpoint_every": every,
            "training.total_timesteps": total,
            "training.kill_at_step": kill,
            "training.budget_price_rate": 1.0,
        },
    )
    assert cfg.training.budget_shadow_price == "auto"  # the default
    built: list[ShopperVecEnv] = []

    class Recorded(ShopperVecEnv):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            if kwargs["seed"] == cfg.seed:  # the training env, not the pricer's probe
                built.append(self)
            self.initial_price = self.budget_shadow_price

    monkeypatch.setattr(experiments.training.run, "ShopperVecEnv", Recorded)
    with pytest.raises(SimulatedKill):
        run_train(cfg, run_dir)
    assert built[0].initial_price == 0.0 and np.isinf(built[0].core.budget)  # cap lifted
    saved = json.loads((run_dir / "checkpoints" / STATE_FILE).read_text())["budget_shadow_price"]
    assert saved > 0.0  # the untrained policy offers far above the budget
    run_id = only_run(cfg).info.run_id
    history = client_of(cfg).get_metric_history(run_id, "budget.shadow_price")
    # the checkpoint at 2 rollouts keeps the price the second rollout was collected with
    assert [m.value for m in history if m.step == every] == [pytest.approx(saved)]

    with open_dict(cfg):
        cfg.training.kill_at_step = None
    metrics = run_train(cfg, run_dir)
    assert built[1].initial_price == pytest.approx(saved)  # resumed from it, not from 0
    assert metrics["budget_shadow_price"] == built[1].budget_shadow_price > 0.0
    history = client_of(cfg).get_metric_history(run_id, "budget.shadow_price")
    assert max(m.step for m in history) == total


def test_a_scenario_without_a_budget_trains_without_a_price(
    make_cfg: Callable[..., DictConfig], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    made: list[BudgetPricer] = []

    class Recorded(BudgetPricer):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            made.append(self)

    monkeypatch.setattr(experiments.training.run, "BudgetPricer", Recorded)
    metrics = run_train(make_cfg(), tmp_path / "run")  # default: no campaign budget
    assert made == [] and "budget_shadow_price" not in metrics


@pytest.mark.parametrize("keep_best", [True, False])
def test_the_logged_model_is_the_best_evaluated_checkpoint_or_the_last(
    keep_best: bool,
    make_cfg: Callable[..., DictConfig],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    total = 5 * EVERY
    scripted = iter([1.0, 3.0, 2.0, 3.0, 0.0])  # the best twice: the later one is kept

    def scripted_point(*args: Any, **kwargs: Any) -> dict[str, float]:
        return {**curve_point(*args, **kwargs), "profit_per_1000": next(scripted)}

    monkeypatch.setattr(experiments.training.run, "curve_point", scripted_point)
    cfg = make_cfg(**{"training.total_timesteps": total, "training.keep_best": keep_best})
    run_dir = tmp_path / "run"
    run_train(cfg, run_dir)
    state = json.loads((run_dir / "checkpoints" / STATE_FILE).read_text())
    run = only_run(cfg)
    client = client_of(cfg)
    curve = json.loads(load_artifact(client, run.info.run_id, "learning_curve.json", tmp_path))
    # one point per evaluation, the last one the final model's
    assert [p["timesteps"] for p in curve["curve"]] == [EVERY * i for i in range(1, 6)]
    local = client.download_artifacts(run.info.run_id, "model/model.zip", str(tmp_path))
    logged = MaskablePPO.load(local, device="cpu")
    if keep_best:
        assert state["best_timesteps"] == 4 * EVERY and state["best_profit"] == 3.0
        assert logged.num_timesteps == 4 * EVERY
    else:
        assert state["best_timesteps"] is None
        assert logged.num_timesteps == total
    assert run.data.tags["concede.model_timesteps"] == str(logged.num_timesteps)


def test_a_best_checkpoint_past_the_last_checkpoint_survives_a_resume_once(
    make_cfg: Callable[..., DictConfig], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scripted = iter([1.0, 2.0, 3.0, 0.0, 0.0])  # the best at 384, then the run dies

    def scripted_point(*args: Any, **kwargs: Any) -> dict[str, float]:
        return {**curve_point(*args, **kwargs), "profit_per_1000": next(scripted)}

    monkeypatch.setattr(experiments.training.run, "curve_point", scripted_point)
    cfg = make_cfg(
        **{
            "training.total_timesteps": 4 * EVERY,
            "training.checkpoint_every": 2 * EVERY,  # checkpoint at 256; evals at 128, 256, 384
            "training.kill_at_step": 3 * EVERY + 64,
        }
    )
    run_dir = tmp_path / "run"
    with pytest.raises(SimulatedKill):
        run_train(cfg, run_dir)
    with open_dict(cfg):
        cfg.training.kill_at_step = None
    run_train(cfg, run_dir)
    run = only_run(cfg)
    client = client_of(cfg)
    curve = json.loads(load_artifact(client, run.info.run_id, "learning_curve.json", tmp_path))
    assert [p["timesteps"] for p in curve["curve"]] == [EVERY, 2 * EVERY, 3 * EVERY, 4 * EVERY]
    local = client.download_artifacts(run.info.run_id, "model/model.zip", str(tmp_path))
    assert MaskablePPO.load(local, device="cpu").num_timesteps == 3 * EVERY  # the killed run's


# ---------------------------------------------------------------- seeds


def _fixed_observations(cfg: DictConfig) -> tuple[np.ndarray, np.ndarray]:
    """256 shoppers over 6 steps of random eligible actions: observations and masks."""
    env = ShopperVecEnv(scenario_from_config(cfg.scenario), num_envs=256, seed=12_345)
    rng = np.random.default_rng(7)
    obs, masks = [env.reset()], [env.action_masks()]
    for _ in range(5):
        mask = masks[-1]
        actions = np.array([rng.choice(np.flatnonzero(row)) for row in mask])
        obs.append(env.step(actions)[0])
        masks.append(env.action_masks())
    return np.concatenate(obs), np.concatenate(masks)


def _trained(make_cfg: Callable[..., DictConfig], tmp_path: Path, name: str, seed: int):
    cfg = make_cfg(name=name, seed=seed)
    run_train(cfg, tmp_path / name / "run")
    model = MaskablePPO.load(str(tmp_path / name / "run" / "checkpoints" / "model.zip"))
    return cfg, model


def test_same_seed_learns_the_same_actions(
    make_cfg: Callable[..., DictConfig], tmp_path: Path
) -> None:
    cfg, first = _trained(make_cfg, tmp_path, "a", seed=3)
    _, second = _trained(make_cfg, tmp_path, "b", seed=3)
    obs, masks = _fixed_observations(cfg)
    acts_1, _ = first.predict(obs, deterministic=True, action_masks=masks)
    acts_2, _ = second.predict(obs, deterministic=True, action_masks=masks)
    np.testing.assert_array_equal(acts_1, acts_2)
    assert masks[np.arange(len(obs)), acts_1].all()
    for (name, p1), p2 in zip(
        first.policy.state_dict().items(), second.policy.state_dict().values(), strict=True
    ):
        assert torch.equal(p1, p2), name


def test_another_seed_learns_another_network(
    make_cfg: Callable[..., DictConfig], tmp_path: Path
) -> None:
    _, first = _trained(make_cfg, tmp_path, "a", seed=3)
    _, other = _trained(make_cfg, tmp_path, "b", seed=4)
    differ = [
        name
        for (name, p1), p2 in zip(
            first.policy.state_dict().items(), other.policy.state_dict().values(), strict=True
        )
        if not torch.equal(p1, p2)
    ]
    assert differ, "seeds 3 and 4 trained identical networks"


# ---------------------------------------------------------------- failures


def test_a_config_that_breaks_the_agent_fails_the_mlflow_run(
    make_cfg: Callable[..., DictConfig], tmp_path: Path
) -> None:
    cfg = make_cfg(**{"agent.model.learning_rate": -1.0})  # torch's Adam refuses it
    with pytest.raises(ValueError, match="learning rate"):
        run_train(cfg, tmp_path / "run")
    run = only_run(cfg)
    assert run.info.status == "FAILED"
    assert run.data.tags["concede.seed"] == "0"
    assert mlflow.active_run() is None


def test_a_crash_mid_training_fails_the_mlflow_run_and_propagates(
    make_cfg: Callable[..., DictConfig], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = TrainingRun.evaluate_point
    calls: list[int] = []

    def crash_on_second(self: TrainingRun, timesteps: int) -> dict[str, float]:
        calls.append(timesteps)
        if len(calls) == 2:
            raise RuntimeError("evaluation blew up")
        return real(self, timesteps)

    monkeypatch.setattr(TrainingRun, "evaluate_point", crash_on_second)
    cfg = make_cfg()
    with pytest.raises(RuntimeError, match="evaluation blew up"):
        run_train(cfg, tmp_path / "run")
    run = only_run(cfg)
    assert run.info.status == "FAILED"
    assert steps_of(client_of(cfg), run.info.run_id, "eval/profit_captured") == [EVERY]
    assert mlflow.active_run() is None


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("training.total_timesteps", 0),
        ("training.n_envs", -3),
        ("training.eval_every", 0),
        ("training.checkpoint_every", 0),
        ("training.eval_shoppers", 0),
        ("training.final_shoppers", 0),
        ("training.torch_threads", 0),
        ("training.budget_shadow_price", -1.0),
        ("training.budget_shadow_price", "sometimes"),
        ("training.budget_shadow_price", True),
        ("training.budget_price_rate", 0.0),
        ("training.kill_at_step", 0),
    ],
)
def test_bad_training_settings_are_refused_naming_the_field(
    key: str, value: Any, make_cfg: Callable[..., DictConfig], tmp_path: Path
) -> None:
    cfg = make_cfg(name="bad", **{key: value})
    with pytest.raises(ValueError, match=re.escape(key)):
        run_train(cfg, tmp_path / "run")
    # refused before anything was tracked or written
    assert client_of(cfg).get_experiment_by_name("concede") is None
    assert not (tmp_path / "run").exists()
