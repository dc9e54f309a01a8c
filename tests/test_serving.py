"""Serving: register a real training run, load the pyfunc without the repository, serve it.

One real, tiny training run (``experiments.train.train``, 256 timesteps on 8 shoppers)
writes a real MLflow SQLite store in a temporary folder; ``experiments.register``
exports it, logs the pyfunc from code and registers it as ``concede-default@champion``.
The deployment side runs in subprocesses whose imports of this repository, torch, SB3
and Hydra fail (a ``sitecustomize`` on ``PYTHONPATH``), so passing proves that a
deployment needs mlflow and onnxruntime only. The HTTP test (``-m server``) starts
``mlflow models serve`` on 127.0.0.1 and a free port and stops it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import pytest
import requests
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import execution_whitelist
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from omegaconf import open_dict

from agents.serving.runtime import OUTPUT_COLUMNS, PolicyRuntime
from agents.serving.server import served
from experiments.cli import main as concede
from experiments.config.trusted import TRUSTED_TARGETS
from experiments.tracking import registry as reg
from experiments.training.job import train

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
TINY = [
    "training.total_timesteps=256",
    "training.n_envs=8",
    "training.eval_every=256",
    "training.checkpoint_every=256",
    "training.eval_shoppers=200",
    "training.final_shoppers=300",
    "training.baselines=[never]",
    "training.progress_bar=false",
    "agent.model.n_steps=16",
    "agent.model.batch_size=64",
    "agent.model.policy_kwargs.net_arch=[16,16]",
    "output_dir=/nonexistent/replaced",
]
BLOCKED = ("agents", "envs", "experiments", "torch", "stable_baselines3", "sb3_contrib", "hydra")
SITECUSTOMIZE = f"""
import sys
from importlib.abc import MetaPathFinder

BLOCKED = {BLOCKED!r}


class _NotDeployed(MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"{{name}} is not installed in this deployment", name=name)
        return None


sys.meta_path.insert(0, _NotDeployed())
"""


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """(tracking URI, run id) of one finished tiny training run."""
    out = tmp_path_factory.mktemp("serving")
    with initialize_config_dir(config_dir=str(ROOT / "conf"), job_name="test_serving"):
        cfg = compose("train", overrides=TINY)
    with open_dict(cfg):
        cfg.output_dir = str(out)
        cfg.tracking.store_dir = str(out)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with execution_whitelist(TRUSTED_TARGETS):
            train(cfg, run_dir=out / "run")
    finally:
        torch.set_num_threads(threads)
        while mlflow.active_run() is not None:
            mlflow.end_run(status="FAILED")
    uri = f"sqlite:///{out / 'mlflow.db'}"
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("concede")
    assert experiment is not None
    (run,) = client.search_runs([experiment.experiment_id])
    yield uri, run.info.run_id


@pytest.fixture(scope="module")
def registered(store: tuple[str, str]) -> reg.Registered:
    uri, run_id = store
    # a 256-timestep policy may well be "worse" than never offering: promote it anyway
    return reg.register(run_id, tracking_uri=uri, alias="champion", force=True)


@pytest.fixture(scope="module")
def local_runtime(store: tuple[str, str], registered: reg.Registered) -> PolicyRuntime:
    """The registered policy, loaded here by the runtime (the reference for answers)."""
    uri, _ = store
    path = mlflow.artifacts.download_artifacts(
        artifact_uri=f"{registered.model_uri}/artifacts/policy", tracking_uri=uri
    )
    return PolicyRuntime.load(path)


@pytest.fixture(scope="module")
def deployment_env(tmp_path_factory: pytest.TempPathFactory, store: tuple[str, str]) -> dict:
    """Environment of a process that has mlflow and onnxruntime but not this repository."""
    folder = tmp_path_factory.mktemp("deployment")
    (folder / "sitecustomize.py").write_text(SITECUSTOMIZE)
    env = dict(os.environ)
    env.update(
        PYTHONPATH=str(folder),
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
        MLFLOW_TRACKING_URI=store[0],
    )
    return env


def _events(runtime: PolicyRuntime, n: int, seed: int = 0) -> list[dict[str, float]]:
    rng = np.random.default_rng(seed)
    events = []
    for _ in range(n):
        event = runtime.example_event()
        event.update(
            cart_value=float(rng.uniform(0.35, 3.2)),
            margin_rate=float(rng.uniform(0.25, 0.5)),
            shipping_fee=0.79,
            exit_intent=float(rng.integers(0, 2)),
            away=float(rng.integers(0, 2)),
            offers_made=int(rng.integers(0, 4)),
            carrier_cost=5.5,
        )
        events.append(event)
    return events


def _expected(runtime: PolicyRuntime, events: list[dict[str, float]]) -> list[dict[str, Any]]:
    return [runtime.decide(e).record() for e in events]


# ---------------------------------------------------------------- registry


def test_register_logs_a_model_from_code_and_sets_aliases(
    store: tuple[str, str], registered: reg.Registered
) -> None:
    uri, run_id = store
    client = MlflowClient(uri)
    assert registered.name == "concede-default" and registered.exported
    version = client.get_model_version_by_alias("concede-default", "champion")
    assert str(version.version) == registered.version
    assert version.tags["concede.run_id"] == run_id
    assert version.tags["concede.policy_sha256"] == registered.policy_sha256
    again = reg.register(run_id, tracking_uri=uri, alias="challenger")
    assert (again.version, again.exported) == (registered.version, False)
    challenger = client.get_model_version_by_alias("concede-default", "challenger")
    assert str(challenger.version) == registered.version

    local = Path(mlflow.artifacts.download_artifacts(registered.model_uri, tracking_uri=uri))
    files = {p.relative_to(local).as_posix() for p in local.rglob("*") if p.is_file()}
    assert {
        "mlflow_model.py",
        "code/concede_runtime.py",
        "artifacts/policy/policy.onnx",
        "artifacts/policy/manifest.json",
    } <= files
    assert not [f for f in files if f.endswith((".pkl", ".pickle", ".cloudpickle"))]
    assert (local / "code" / "concede_runtime.py").read_bytes() == (
        ROOT / "agents" / "serving" / "runtime.py"
    ).read_bytes()
    meta = mlflow.models.Model.load(str(local))
    assert "model_code_path" in meta.flavors["python_function"]
    assert meta.signature.inputs.input_names()[:2] == ["cart_value", "shipping_fee"]
    assert meta.metadata is not None
    assert meta.metadata["concede"]["policy_sha256"] == registered.policy_sha256
    requirements = (local / "requirements.txt").read_text().split()
    assert sorted(r.split("==")[0] for r in requirements) == [
        "mlflow",
        "numpy",
        "onnxruntime",
        "pandas",
    ]


def test_register_refuses_what_it_cannot_register(
    store: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    uri, run_id = store
    client = MlflowClient(uri)
    experiment_id = client.get_run(run_id).info.experiment_id
    running = client.create_run(experiment_id, tags={"concede.scenario": "default"})
    with pytest.raises(reg.RegisterError, match="RUNNING"):
        reg.register(running.info.run_id, tracking_uri=uri)
    with pytest.raises(reg.RegisterError, match="alias"):
        reg.register(run_id, tracking_uri=uri, alias="production")
    worse = {"verdict": {"significance": "worse", "sentence": "it loses"}}
    with pytest.raises(reg.RegisterError, match="force=true"):
        reg._check_promotion("champion", worse, force=False)
    reg._check_promotion("challenger", worse, force=False)
    with pytest.raises(reg.RegisterError, match="not a Stable-Baselines3"):
        reg.algorithm_class("os.system")
    assert concede(["register", "run_id=nope", f"tracking_uri={uri}"]) == 2
    assert "no run 'nope'" in capsys.readouterr().err


def test_the_pyfunc_refuses_invalid_rows_with_invalid_parameter_value(
    store: tuple[str, str], registered: reg.Registered, local_runtime: PolicyRuntime
) -> None:
    mlflow.set_tracking_uri(store[0])
    model = mlflow.pyfunc.load_model(registered.model_uri)
    events = _events(local_runtime, 5)
    answers = model.predict(pd.DataFrame(events))
    assert answers == _expected(local_runtime, events)
    assert list(answers[0]) == list(OUTPUT_COLUMNS)
    assert model.predict(pd.DataFrame(events[:1])) == _expected(local_runtime, events[:1])
    for field, value in (
        ("cart_value", None),
        ("exit_intent", True),
        ("dwell_time", np.inf),
        ("offers_made", 2.5),
        ("cart_value", 9.0),
    ):
        bad = [dict(events[0]), dict(events[1], **{field: value})]
        with pytest.raises(MlflowException, match=rf"{field}\[row 1\]") as caught:
            model.predict(pd.DataFrame(bad))
        assert caught.value.error_code == "INVALID_PARAMETER_VALUE"


def test_the_pyfunc_loads_without_the_repository_and_unpickles_nothing(
    registered: reg.Registered,
    deployment_env: dict,
    local_runtime: PolicyRuntime,
    tmp_path: Path,
) -> None:
    events = _events(local_runtime, 3, seed=1)
    script = textwrap.dedent(
        f"""
        import json, pickle, sys
        def refuse(*args, **kwargs):
            raise AssertionError("pickle used")
        pickle.load = pickle.loads = pickle.Unpickler = refuse
        try:
            import agents
        except ModuleNotFoundError:
            pass
        else:
            raise AssertionError("the repository is importable: the check proves nothing")
        import mlflow, pandas as pd
        model = mlflow.pyfunc.load_model({registered.model_uri!r})
        answers = model.predict(pd.DataFrame(json.loads(sys.argv[1])))
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in {BLOCKED!r})
        assert not loaded, loaded
        print(json.dumps(answers))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script, json.dumps(events)],
        capture_output=True,
        text=True,
        env=deployment_env,
        cwd=tmp_path,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    answers = json.loads(done.stdout.strip().splitlines()[-1])
    assert answers == _expected(local_runtime, events)


# ---------------------------------------------------------------- HTTP


@pytest.fixture
def server(registered: reg.Registered, deployment_env: dict, tmp_path: Path) -> Iterator[str]:
    """``mlflow models serve`` of the champion on 127.0.0.1; its base URL."""
    model = "models:/concede-default@champion"
    log = tmp_path / "server.log"
    with served(model, workers=1, log=log, env=deployment_env, cwd=tmp_path) as port:
        yield f"http://127.0.0.1:{port}"


def _post(url: str, body: str) -> requests.Response:
    return requests.post(
        f"{url}/invocations",
        data=body,
        headers={"Content-Type": "application/json"},
        timeout=30,
    )


def _split(events: list[dict[str, Any]]) -> dict[str, Any]:
    columns = list(events[0])
    return {
        "dataframe_split": {"columns": columns, "data": [[e[c] for c in columns] for e in events]}
    }


@pytest.mark.server
def test_the_served_model_answers_and_refuses_malformed_requests_by_name(
    server: str, local_runtime: PolicyRuntime
) -> None:
    events = _events(local_runtime, 4, seed=2)
    expected = _expected(local_runtime, events)
    requests_ok: list[tuple[int, dict[str, Any]]] = [
        (1, _split(events[:1])),
        (4, _split(events)),
        (4, {"dataframe_records": events}),
        (4, {"inputs": events}),
    ]
    for n, payload in requests_ok:
        reply = _post(server, json.dumps(payload))
        assert reply.status_code == 200, reply.text
        assert reply.json()["predictions"] == expected[:n]

    columns = list(events[0])
    malformed = {
        "NaN": ("cart_value", "NaN"),
        "Infinity": ("dwell_time", "Infinity"),
        "-Infinity": ("carrier_cost", "-Infinity"),
        "out of range": ("cart_value", "7.5"),
        "null": ("margin_rate", "null"),
        "boolean": ("exit_intent", "true"),
        "text": ("consent", '"yes"'),
        "fraction of a count": ("offers_made", "1.5"),
    }
    for what, (field, literal) in malformed.items():
        row = [json.dumps(events[0][c]) if c != field else literal for c in columns]
        raw = (
            '{"dataframe_split": {"columns": '
            + json.dumps(columns)
            + ', "data": [['
            + ", ".join(row)
            + "]]}}"
        )
        reply = _post(server, raw)
        assert 400 <= reply.status_code < 500, (what, reply.status_code, reply.text)
        assert field in reply.json()["message"], (what, reply.text)
    missing = [{k: v for k, v in events[0].items() if k != "away"}]
    reply = _post(server, json.dumps({"dataframe_records": missing}))
    assert reply.status_code == 400 and "away" in reply.json()["message"]
    reply = _post(server, "{not json")
    assert 400 <= reply.status_code < 500

    reply = _post(server, json.dumps(_split(events)))  # still serving after all that
    assert reply.status_code == 200
    assert reply.json()["predictions"] == expected


def test_a_training_run_is_evaluated_off_policy_by_its_id(
    store: tuple[str, str], tmp_path: Path
) -> None:
    """``run:<id>``: the run's model, downloaded from the store, decides on a log as it
    does in the simulator, and the log is evaluated for it beside ``never``."""
    import envs
    from agents.exploration import Exploration
    from agents.learned import LearnedPolicy
    from agents.logs import read_log, write_log
    from agents.logs.simulate import simulate_logs
    from agents.registry import build_policy
    from experiments.offpolicy import OPESettings
    from experiments.offpolicy.bootstrap import BootstrapSettings
    from experiments.offpolicy.data import from_log
    from experiments.offpolicy.run import evaluate_logs
    from experiments.tracking.registry import load_run_model

    uri, run_id = store
    client = MlflowClient(uri)
    tags = client.get_run(run_id).data.tags
    model, scenario = load_run_model(client, run_id, tags, tmp_path / "model")
    assert scenario.digest() == envs.load_scenario("default").digest()
    learned = LearnedPolicy(model)
    table = simulate_logs(scenario, learned, 200, 0, Exploration("epsilon", 0.3))
    log = write_log(table, tmp_path / "log.parquet")
    from_run = build_policy(f"run:{run_id}", None, tracking_uri=uri)
    j = from_log(read_log(log))
    obs = j.observations(list(j.feature_names))
    np.testing.assert_array_equal(from_run.act(obs, j.mask), learned.act(obs, j.mask))
    fast = OPESettings(bootstrap=BootstrapSettings(n_resamples=100), value_model=None)
    result = evaluate_logs(
        log, [f"run:{run_id}", "never"], settings=fast, tracking_uri=uri
    ).to_json()
    name = f"run:{run_id[:8]}"
    assert result["policies"] == [name, "never"]
    got = result["results"][name]["estimators"]["wpdis"]["profit_per_1000"]
    assert got["low"] <= got["estimate"] <= got["high"]
