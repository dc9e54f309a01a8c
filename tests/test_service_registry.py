"""The decision service of a registered policy: ``--policy models:/name@alias``.

A tiny untrained MaskablePPO of ``default`` is exported, logged as the pyfunc (the same
``log_policy_model`` that ``experiments.register`` uses) in a run of a temporary MLflow
SQLite store and registered as ``concede-service-test@champion``. The service, started
on 127.0.0.1 by that URI (``MLFLOW_TRACKING_URI`` pointing at the store), must serve that
very policy: its ``/health`` names the policy's sha256 and, without exploration, it
decides as the runtime does in process. An unknown model or alias is an error message
and exit status 2, not a traceback.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import mlflow
import pytest
from conftest import tiny_maskable
from mlflow.tracking import MlflowClient

import envs
from agents.export import export_policy
from agents.serving.packaging import log_policy_model
from agents.serving.runtime import PolicyRuntime
from agents.serving.server import served_service
from agents.serving.simulator_events import simulator_events

pytestmark = [pytest.mark.server, pytest.mark.usefixtures("one_torch_thread")]
NAME = "concede-service-test"


@pytest.fixture(scope="module")
def registry(
    store_template: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[str, PolicyRuntime]:
    """(tracking URI of a store where ``NAME@champion`` is registered, that policy)."""
    folder = tmp_path_factory.mktemp("registry")
    shutil.copyfile(store_template, folder / "mlflow.db")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    scenario = envs.load_scenario("default")
    client = MlflowClient(uri)
    experiment = client.create_experiment("concede", artifact_location=str(folder / "artifacts"))
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(uri)
    try:
        with mlflow.start_run(experiment_id=experiment) as run:
            policy = export_policy(
                tiny_maskable(scenario), scenario, folder / "policy", run_id=run.info.run_id
            )
            info = log_policy_model(policy, registered_name=NAME)
    finally:
        mlflow.set_tracking_uri(previous)
    client.set_registered_model_alias(NAME, "champion", str(info.registered_model_version))
    return uri, PolicyRuntime.load(policy)


def request(port: int, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        data = None if body is None else json.dumps(body)
        connection.request(method, path, body=data, headers={"Content-Type": "application/json"})
        reply = connection.getresponse()
        return reply.status, json.loads(reply.read())
    finally:
        connection.close()


def test_the_service_serves_a_registered_policy_by_its_alias(
    registry: tuple[str, PolicyRuntime], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    uri, runtime = registry
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    found = simulator_events(envs.load_scenario("default"), runtime.feature_names, 64)
    events = [found.event(i) for i in range(len(found.obs))]
    options = ["--explore", "0"]
    policy = f"models:/{NAME}@champion"
    with served_service(policy, tmp_path / "logs", 1, tmp_path / "server.log", options) as s:
        status, health = request(s.port, "GET", "/health")
        assert status == 200
        assert health["policy_sha256"] == runtime.manifest["policy"]["sha256"]
        status, answer = request(s.port, "POST", "/decide", {"events": events})
    assert status == 200, answer
    expected = [runtime.decide(e) for e in events]
    assert [d["action"] for d in answer["decisions"]] == [e.action for e in expected]
    assert [d["guardrail"] for d in answer["decisions"]] == [e.guardrail for e in expected]
    assert all(d["probability"] == 1.0 and not d["explored"] for d in answer["decisions"])


@pytest.mark.parametrize("policy", [f"models:/{NAME}@no-such-alias", "models:/no-such-model/1"])
def test_an_unknown_registered_policy_is_an_error_message(
    registry: tuple[str, PolicyRuntime], tmp_path: Path, policy: str
) -> None:
    uri, _ = registry
    command = [sys.executable, "-m", "experiments.serve", "--policy", policy]
    done = subprocess.run(
        [*command, "--logs", str(tmp_path / "logs")],
        capture_output=True,
        text=True,
        env={**os.environ, "MLFLOW_TRACKING_URI": uri},
        timeout=120,
    )
    assert done.returncode == 2, done.stderr[-2000:]
    assert done.stderr.startswith("error: ") and policy in done.stderr
    assert "Traceback" not in done.stderr
