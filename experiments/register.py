"""Register a training run's policy in the MLflow model registry, served by the runtime.

``python -m experiments.register --run-id <id> [--alias champion|challenger]
[--tracking-uri URI] [--name NAME] [--force]``:

1. reads the run (it must have finished) and its artifacts: ``model/model.zip``, the
   resolved ``config.yaml`` (the scenario and the algorithm) and ``evaluation.json`` (the
   KPIs and verdict); the scenario rebuilt from the config must have the digest the run
   was tagged with (``concede.scenario_digest``);
2. exports the policy (:func:`agents.export.export_policy`): ``policy.onnx`` and
   ``manifest.json``;
3. logs an MLflow pyfunc "from code" (:func:`log_policy_model`) in a new run, a child of
   the training run: the code is ``agents/mlflow_model.py`` and ``agents/runtime.py``
   (logged as ``concede_runtime.py``), the artifact the policy directory; nothing pickled;
4. registers it as ``concede-<scenario>`` (or ``--name``) and points the alias at it
   (``challenger`` by default; ``champion`` promotes it). A run registered before is
   not exported again: its version gets the alias.

Promoting a policy whose verdict is "worse" than the best baseline needs ``--force``.
The last line printed is JSON: name, version, alias, model URI, run id, policy sha256.

Serve the champion with ``mlflow models serve -m models:/concede-default@champion
--env-manager local`` (tracking URI in ``MLFLOW_TRACKING_URI``).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
import yaml
from mlflow.models import ModelSignature
from mlflow.tracking import MlflowClient
from mlflow.types import ColSpec, DataType, Schema
from mlflow.types.schema import AnyType

import agents
from agents import runtime as runtime_module
from agents.export import export_policy, kpis_from_report
from agents.runtime import OUTPUT_COLUMNS, PolicyRuntime
from envs.scenario import Scenario
from experiments.tracking import Tracking

ALIASES = ("champion", "challenger")
MODEL_CODE = Path(agents.__file__).resolve().parent / "mlflow_model.py"
RUNTIME_CODE_NAME = "concede_runtime.py"
RUN_TAG = "concede.run_id"
ALGORITHM_PREFIXES = ("stable_baselines3.", "sb3_contrib.")
_OUTPUT_TYPES = {
    "action_index": DataType.long,
    "expiry_steps": DataType.long,
    "magnitude": DataType.double,
    "unit_cost": DataType.double,
}
_OPTIONAL_OUTPUTS = ("runner_up", "guardrail")


class RegisterError(RuntimeError):
    """The run cannot be registered as it is."""


@dataclass(frozen=True)
class Registered:
    """What :func:`register` did."""

    name: str
    version: str
    alias: str | None
    model_uri: str
    run_id: str
    policy_sha256: str
    exported: bool


def model_name(scenario: str) -> str:
    """The registered model's name for a scenario."""
    return f"concede-{scenario}"


def signature(policy: PolicyRuntime) -> ModelSignature:
    """Named input columns (every feature and context field, typed ``Any`` so that the
    runtime sees what was sent: see ``agents/mlflow_model.py``) and the output record."""
    inputs = Schema([ColSpec(AnyType(), name) for name in policy.input_names])
    outputs = Schema(
        [
            ColSpec(
                _OUTPUT_TYPES.get(name, DataType.string),
                name,
                required=name not in _OPTIONAL_OUTPUTS,
            )
            for name in OUTPUT_COLUMNS
        ]
    )
    return ModelSignature(inputs=inputs, outputs=outputs)


def requirements() -> list[str]:
    """What a deployment installs: mlflow, onnxruntime, numpy, pandas (pinned as here)."""
    return [
        f"{name}=={importlib.metadata.version(name)}"
        for name in ("mlflow", "onnxruntime", "numpy", "pandas")
    ]


def _model_kwargs(policy_dir: Path, staging: Path) -> dict[str, Any]:
    policy = PolicyRuntime.load(policy_dir)
    code = staging / RUNTIME_CODE_NAME
    shutil.copyfile(runtime_module.__file__, code)
    manifest = policy.manifest
    return {
        "python_model": str(MODEL_CODE),
        "artifacts": {"policy": str(policy_dir)},
        "code_paths": [str(code)],
        "signature": signature(policy),
        "input_example": pd.DataFrame([policy.example_event()]),
        "pip_requirements": requirements(),
        "metadata": {
            "concede": {
                "scenario": manifest["scenario"]["name"],
                "scenario_digest": manifest["scenario"]["digest"],
                "policy_sha256": manifest["policy"]["sha256"],
                "schema_version": manifest["schema_version"],
                "training_run_id": manifest["training"]["run_id"],
            }
        },
    }


def save_policy_model(policy_dir: str | os.PathLike[str], path: str | os.PathLike[str]) -> Path:
    """Save the pyfunc of an exported policy directory to a local ``path`` (no tracking)."""
    with tempfile.TemporaryDirectory() as staging:
        mlflow.pyfunc.save_model(str(path), **_model_kwargs(Path(policy_dir), Path(staging)))
    return Path(path)


def log_policy_model(policy_dir: str | os.PathLike[str], registered_name: str | None = None) -> Any:
    """Log the pyfunc of an exported policy directory in the active run (and register it
    under ``registered_name``); returns MLflow's ``ModelInfo``."""
    with tempfile.TemporaryDirectory() as staging:
        return mlflow.pyfunc.log_model(
            name="policy",
            registered_model_name=registered_name,
            **_model_kwargs(Path(policy_dir), Path(staging)),
        )


def algorithm_class(target: str) -> type:
    """The SB3 / sb3-contrib class named by an agent config's ``_target_``."""
    if not target.startswith(ALGORITHM_PREFIXES):
        raise RegisterError(
            f"agent.model._target_ {target!r} is not a Stable-Baselines3 or sb3-contrib "
            "algorithm; only those can be exported"
        )
    module, _, name = target.rpartition(".")
    cls: type = getattr(importlib.import_module(module), name)
    return cls


def _download(client: MlflowClient, run_id: str, path: str, into: Path) -> Path:
    try:
        return Path(client.download_artifacts(run_id, path, str(into)))
    except Exception as err:  # MLflow raises several types for a missing artifact
        raise RegisterError(
            f"run {run_id} has no artifact {path!r} ({err}); was it trained by "
            "experiments.train to the end?"
        ) from None


def _existing_version(client: MlflowClient, name: str, run_id: str) -> Any | None:
    try:
        versions = client.search_model_versions(f"name='{name}'")
    except mlflow.exceptions.MlflowException:
        return None
    mine = [v for v in versions if (v.tags or {}).get(RUN_TAG) == run_id]
    return max(mine, key=lambda v: int(v.version)) if mine else None


def register(
    run_id: str,
    *,
    tracking_uri: str | None = None,
    alias: str | None = "challenger",
    name: str | None = None,
    force: bool = False,
) -> Registered:
    """Export run ``run_id``'s policy, log it as a pyfunc, register it, set ``alias``.

    See the module docstring. Raises :class:`RegisterError` for a run that cannot be
    registered (not finished, artifacts missing, scenario changed, verdict "worse" for
    ``champion`` without ``force``).
    """
    if alias is not None and alias not in ALIASES:
        raise RegisterError(f"alias must be one of {ALIASES}, got {alias!r}")
    uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or Tracking().tracking_uri
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    client = MlflowClient(uri)
    try:
        run = client.get_run(run_id)
    except mlflow.exceptions.MlflowException as err:
        raise RegisterError(f"no run {run_id!r} in {uri}: {err.message}") from None
    if run.info.status != "FINISHED":
        raise RegisterError(
            f"run {run_id} is {run.info.status}: only a finished training run has its final "
            "model and evaluation; resume it first (see experiments.train)"
        )
    tags = run.data.tags
    scenario_name = tags.get("concede.scenario")
    if not scenario_name:
        raise RegisterError(f"run {run_id} has no concede.scenario tag: not a training run")
    registered = name or model_name(scenario_name)

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        report = json.loads(_download(client, run_id, "evaluation.json", work).read_text())
        kpis = kpis_from_report(report, tags.get("concede.agent"))
        _check_promotion(alias, kpis, force)
        existing = _existing_version(client, registered, run_id)
        if existing is not None:
            version, sha, exported = (
                existing.version,
                existing.tags.get("concede.policy_sha256"),
                False,
            )
        else:
            policy_dir = _export_run(client, run_id, tags, kpis, work)
            version, sha = _log_and_register(run, registered, policy_dir, client)
            exported = True
    if alias is not None:
        client.set_registered_model_alias(registered, alias, str(version))
    uri_out = f"models:/{registered}@{alias}" if alias else f"models:/{registered}/{version}"
    return Registered(registered, str(version), alias, uri_out, run_id, str(sha), exported)


def _check_promotion(alias: str | None, kpis: dict[str, Any], force: bool) -> None:
    verdict = kpis.get("verdict") or {}
    if alias == "champion" and verdict.get("significance") == "worse" and not force:
        raise RegisterError(
            f"the run's verdict is 'worse' ({verdict.get('sentence')}); promoting it to "
            "champion needs --force"
        )


def _export_run(
    client: MlflowClient, run_id: str, tags: dict[str, str], kpis: dict[str, Any], work: Path
) -> Path:
    config = yaml.safe_load(_download(client, run_id, "config.yaml", work).read_text())
    scenario = Scenario.from_dict(config["scenario"])
    if scenario.digest() != tags.get("concede.scenario_digest"):
        raise RegisterError(
            f"the scenario in run {run_id}'s config.yaml has digest {scenario.digest()[:12]}..., "
            f"the run was tagged {str(tags.get('concede.scenario_digest'))[:12]}...: the "
            "config does not describe the market the model was trained on"
        )
    cls: Any = algorithm_class(str(config["agent"]["model"]["_target_"]))
    model = cls.load(str(_download(client, run_id, "model/model.zip", work)), device="cpu")
    return export_policy(
        model,
        scenario,
        work / "policy",
        run_id=run_id,
        agent=tags.get("concede.agent"),
        kpis=kpis,
    )


def _log_and_register(
    run: Any, registered: str, policy_dir: Path, client: MlflowClient
) -> tuple[str, str]:
    manifest = json.loads((policy_dir / "manifest.json").read_text())
    sha = manifest["policy"]["sha256"]
    tags = run.data.tags
    with mlflow.start_run(
        experiment_id=run.info.experiment_id,
        run_name=f"register {tags.get('concede.agent')} {tags.get('concede.scenario')}",
        tags={
            "mlflow.parentRunId": run.info.run_id,
            RUN_TAG: run.info.run_id,
            "concede.scenario": tags.get("concede.scenario", ""),
            "concede.scenario_digest": tags.get("concede.scenario_digest", ""),
            "concede.agent": tags.get("concede.agent", ""),
        },
    ):
        info = log_policy_model(policy_dir, registered)
        mlflow.log_dict(manifest, "manifest.json")
    version = str(info.registered_model_version)
    for key, value in (
        (RUN_TAG, run.info.run_id),
        ("concede.policy_sha256", sha),
        ("concede.scenario_digest", tags.get("concede.scenario_digest", "")),
        (
            "concede.verdict",
            str((manifest.get("kpis") or {}).get("verdict", {}).get("significance")),
        ),
    ):
        client.set_model_version_tag(registered, version, key, value)
    return version, sha


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m experiments.register",
        description="Export a training run's policy, log it as an MLflow pyfunc, register "
        "it and set its alias.",
    )
    parser.add_argument("--run-id", required=True, help="the MLflow training run")
    parser.add_argument("--alias", choices=ALIASES, default="challenger")
    parser.add_argument(
        "--tracking-uri",
        default=None,
        help="default: MLFLOW_TRACKING_URI or the embedded store outputs/mlflow.db",
    )
    parser.add_argument(
        "--name", default=None, help="registered model name (default concede-<scenario>)"
    )
    parser.add_argument("--force", action="store_true", help="promote a 'worse' verdict")
    args = parser.parse_args(argv)
    try:
        done = register(
            args.run_id,
            tracking_uri=args.tracking_uri,
            alias=args.alias,
            name=args.name,
            force=args.force,
        )
    except RegisterError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    action = "exported and registered" if done.exported else "already registered"
    print(f"{done.name} version {done.version}: {action}; alias {done.alias} -> {done.model_uri}")
    print(json.dumps(asdict(done)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
