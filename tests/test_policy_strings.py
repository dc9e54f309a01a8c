"""One policy resolver for every app: each kind of policy string through each app.

A temporary MLflow SQLite store holds, per market (``default`` and ``grocery``, whose
catalogues differ), a run laid out as a training run (its ``config.yaml``, the scenario
digest tag, ``model/model.zip`` of a tiny untrained MaskablePPO) and that model exported
and registered as ``concede-test-<market>@champion``. Every kind of string (a name, a
rule file, ``fixed:``, a policy directory, ``run:``, ``models:/``) is then run through
``evaluate``, ``ope`` and ``simulate_logs`` on ``default`` and resolved by
``build_policy`` (what the forecasts of ``calibrate`` call); the ``grocery`` policies,
of another catalogue, are refused by each app with exit status 2 and the mismatch.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import mlflow
import pytest
import yaml
from conftest import tiny_maskable
from hydra import compose, initialize_config_dir
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig
from rich.console import Console

import envs
from agents.export import export_policy
from agents.logs import write_log
from agents.logs.simulate import simulate_logs
from agents.policy import PolicyFitError, PolicySpecError
from agents.registry import build_policies, build_policy
from agents.serving.packaging import log_policy_model
from agents.trained import (
    CONFIG_FILE,
    MODEL_ARTIFACTS,
    MODEL_FILE,
    SCENARIO_DIGEST_TAG,
    Interface,
    misfit,
)
from envs.scenario import Scenario
from experiments import evaluate, ope
from experiments import simulate_logs as simulate_app
from experiments.config.json_app import run_json_app

pytestmark = pytest.mark.usefixtures("one_torch_thread")
ROOT = Path(__file__).resolve().parents[1]
MARKETS = ("default", "grocery")
KINDS = ("name", "rules", "fixed", "directory", "run", "models")
TRAINED = ("directory", "run", "models")
APPS: dict[str, Any] = {"evaluate": evaluate, "ope": ope, "simulate_logs": simulate_app}


class Store:
    """The temporary store: its URI, and per market the run id and the policy directory."""

    def __init__(self, uri: str, runs: dict[str, str], dirs: dict[str, Path]) -> None:
        self.uri, self.runs, self.dirs = uri, runs, dirs

    def spec(self, kind: str, market: str = "default") -> str:
        return {
            "name": "merchant_rules",
            "rules": f"rules:{ROOT / 'conf' / 'rules' / 'cautious_rules.yaml'}",
            "fixed": "fixed:ten_percent_off",
            "directory": str(self.dirs[market]),
            "run": f"run:{self.runs[market]}",
            "models": f"models:/concede-test-{market}@champion",
        }[kind]


@pytest.fixture(scope="module")
def store(store_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Store:
    folder = tmp_path_factory.mktemp("policy-strings")
    shutil.copyfile(store_template, folder / "mlflow.db")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    client = MlflowClient(uri)
    experiment = client.create_experiment("concede", artifact_location=str(folder / "artifacts"))
    runs: dict[str, str] = {}
    dirs: dict[str, Path] = {}
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(uri)
    try:
        for market in MARKETS:
            scenario = envs.load_scenario(market)
            model = tiny_maskable(scenario)
            with mlflow.start_run(experiment_id=experiment) as run:
                mlflow.set_tag(SCENARIO_DIGEST_TAG, scenario.digest())
                config = {
                    "scenario": scenario.to_dict(),
                    "agent": {"model": {"_target_": "sb3_contrib.MaskablePPO"}},
                }
                mlflow.log_text(yaml.safe_dump(config), CONFIG_FILE)
                model.save(folder / market / MODEL_FILE)
                mlflow.log_artifact(str(folder / market / MODEL_FILE), MODEL_ARTIFACTS)
                dirs[market] = export_policy(
                    model, scenario, folder / f"policy_{market}", run_id=run.info.run_id
                )
                info = log_policy_model(dirs[market], f"concede-test-{market}")
            runs[market] = run.info.run_id
            client.set_registered_model_alias(
                f"concede-test-{market}", "champion", str(info.registered_model_version)
            )
    finally:
        mlflow.set_tracking_uri(previous)
    return Store(uri, runs, dirs)


@pytest.fixture(scope="module")
def log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A decision log of ``default``: merchant_rules exploring 30% of its decisions."""
    from agents.exploration import Exploration

    scenario = envs.load_scenario("default")
    table = simulate_logs(
        scenario, build_policy("merchant_rules", scenario), 200, 1, Exploration("epsilon", 0.3)
    )
    return write_log(table, tmp_path_factory.mktemp("log") / "log.parquet")


def _config(app: str, spec: str, store: Store, log: Path, out: Path) -> DictConfig:
    overrides = {
        "evaluate": [
            f"policies=[never,'{spec}']",
            "n_shoppers=300",
            "cohort_size=300",
            "bootstrap.n_resamples=50",
            "oracle_workers=1",
            f"output={out / 'evaluation.json'}",
        ],
        "ope": [
            f"logs={log}",
            f"policies=[never,'{spec}']",
            "bootstrap.n_resamples=50",
            "value_model.enabled=false",
            "signals=[profit]",
            f"output={out / 'ope.json'}",
        ],
        "simulate_logs": [f"logger='{spec}'", "n_shoppers=100", f"out={out / 'log.parquet'}"],
    }[app]
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base=None):
        return compose(app, [*overrides, f"tracking_uri={store.uri}"])


@pytest.mark.parametrize("kind", KINDS)
def test_build_policy_resolves_every_kind(store: Store, kind: str) -> None:
    scenario = envs.load_scenario("default")
    policy = build_policy(store.spec(kind), scenario, tracking_uri=store.uri)
    obs_mask = _decisions(scenario)
    actions = policy.act(*obs_mask)
    assert actions.shape == (len(obs_mask[0]),)
    assert obs_mask[1][range(len(actions)), actions].all()  # only eligible actions


def _decisions(scenario: Scenario) -> tuple[Any, Any]:
    from envs.core import ShopperCore

    core = ShopperCore(scenario, 64, autoreset=False)
    obs = core.reset(0)
    return obs, core.action_masks()


@pytest.mark.parametrize("app", APPS)
@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_of_policy_string_runs_in_every_app(
    store: Store, log: Path, tmp_path: Path, app: str, kind: str
) -> None:
    spec = store.spec(kind)
    expected = build_policy(spec, envs.load_scenario("default"), tracking_uri=store.uri).name
    cfg = _config(app, spec, store, log, tmp_path)
    result = APPS[app].run(cfg, Console(file=io.StringIO(), width=160))
    if app == "simulate_logs":
        assert result["logger"] == expected and result["journeys"] == 100
    else:
        assert expected in result["policies"]
    if app == "evaluate" and kind in TRAINED:
        # compared with the best baseline, not a candidate for it
        assert result["best_baseline"] != expected
        assert expected in result["overall"] and "profit_per_1000" in result["overall"][expected]


@pytest.mark.parametrize("app", APPS)
@pytest.mark.parametrize("kind", TRAINED)
def test_a_policy_of_another_catalogue_is_refused_by_every_app(
    store: Store,
    log: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    app: str,
    kind: str,
) -> None:
    cfg = _config(app, store.spec(kind, "grocery"), store, log, tmp_path)
    module = APPS[app]
    with pytest.raises(SystemExit) as done:
        run_json_app(module.run, cfg, module.INPUT_ERRORS)
    assert done.value.code == 2
    message = capsys.readouterr().err
    assert "trained on scenario 'grocery' and does not fit scenario 'default'" in message
    assert "'free_delivery'" in message and "'free_shipping'" in message


@pytest.mark.parametrize("app", APPS)
def test_the_apps_exit_with_status_2_and_the_mismatch(
    store: Store, log: Path, tmp_path: Path, app: str
) -> None:
    spec = str(store.dirs["grocery"])
    overrides = {
        "evaluate": [f"policies=[never,{spec}]", "n_shoppers=100", "oracle_workers=1"],
        "ope": [f"logs={log}", f"policies=[never,{spec}]", "value_model.enabled=false"],
        "simulate_logs": [f"logger={spec}", "n_shoppers=100", f"out={tmp_path / 'l.parquet'}"],
    }[app]
    done = subprocess.run(
        [sys.executable, "-m", f"experiments.{app}", *overrides, f"hydra.run.dir={tmp_path}"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert done.returncode == 2, done.stderr[-2000:]
    assert "error: policy 'policy_grocery' was trained on scenario 'grocery'" in done.stderr
    assert "scenario 'default' has the actions" in done.stderr


def test_a_changed_concession_or_a_wider_feature_is_named(default_dict: dict[str, Any]) -> None:
    trained = Interface.of_scenario(envs.load_scenario("default"))
    changed = json.loads(json.dumps(default_dict))
    changed["name"] = "deeper_discounts"
    changed["concessions"][0]["magnitude"] = 0.15
    reason = misfit(trained, Interface.of_scenario(Scenario.from_dict(changed)))
    assert reason is not None and "action 'ten_percent_off'" in reason and "0.15" in reason
    wider = json.loads(json.dumps(default_dict))
    wider["products"][0]["price"] = 900.0
    reason = misfit(trained, Interface.of_scenario(Scenario.from_dict(wider)))
    assert reason is not None and "feature 'cart_value'" in reason
    assert misfit(trained, Interface.of_scenario(envs.load_scenario("black_friday"))) is None


def test_the_resolver_errors_are_one_family(store: Store) -> None:
    scenario = envs.load_scenario("default")
    with pytest.raises(PolicyFitError, match="does not fit"):
        build_policy(str(store.dirs["grocery"]), scenario)
    with pytest.raises(PolicySpecError, match="no such run"):
        build_policy("run:0123456789abcdef", scenario, tracking_uri=store.uri)
    with pytest.raises(PolicySpecError, match="cannot be fetched"):
        build_policy("models:/concede-test-default@nobody", scenario, tracking_uri=store.uri)
    with pytest.raises(PolicySpecError, match="no such directory"):
        build_policy("outputs/no-such-policy", scenario)
    with pytest.raises(PolicySpecError, match="only be evaluated in the simulator"):
        build_policies(["never", "oracle"], scenario, privileged=False)
    with pytest.raises(PolicySpecError, match="give scenario="):
        build_policies(["never", str(store.dirs["default"])], None)
    # without a scenario, fixed: and trained policies are given (a log checks them)
    built = build_policies(
        ["fixed:coupon", str(store.dirs["grocery"])], None, actions=("wait", "coupon")
    )
    assert [p.name for p in built] == ["fixed:coupon", "policy_grocery"]


@pytest.mark.parametrize("kind", TRAINED)
def test_the_service_takes_every_trained_kind(
    store: Store, kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``concede serve --policy`` runs exported policies: a directory as it is, ``models:/``
    downloaded, ``run:`` exported from the run's model; all three are the same policy."""
    from agents.serving.runtime import PolicyRuntime
    from agents.trained import policy_folder

    monkeypatch.setenv("MLFLOW_TRACKING_URI", store.uri)
    folder = policy_folder(store.spec(kind), tmp_path)
    runtime = PolicyRuntime.load(folder)
    reference = PolicyRuntime.load(store.dirs["default"])
    assert runtime.manifest["policy"]["sha256"] == reference.manifest["policy"]["sha256"]


def test_the_service_refuses_a_run_that_does_not_exist(store: Store, tmp_path: Path) -> None:
    command = [sys.executable, "-m", "experiments.cli", "serve", "--policy", "run:nope"]
    done = subprocess.run(
        [*command, "--logs", str(tmp_path / "logs")],
        capture_output=True,
        text=True,
        env={**os.environ, "MLFLOW_TRACKING_URI": store.uri},
        timeout=120,
        check=False,
    )
    assert done.returncode == 2, done.stderr[-2000:]
    assert done.stderr.startswith("error: run:nope: no such run")
    assert not (tmp_path / "logs").exists()
