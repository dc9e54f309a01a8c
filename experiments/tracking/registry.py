"""The model registry: a training run's policy exported, logged as a pyfunc, registered.

What ``concede register`` does (:func:`register`):

1. reads the run (it must have finished) and its artifacts: ``model/model.zip``, the
   resolved ``config.yaml`` (the scenario and the algorithm) and ``evaluation.json`` (the
   KPIs and verdict); the scenario rebuilt from the config must have the digest the run
   was tagged with (``concede.scenario_digest``);
2. exports the policy (:func:`agents.export.export_policy`): ``policy.onnx`` and
   ``manifest.json``;
3. logs an MLflow pyfunc "from code" (:func:`agents.serving.packaging.log_policy_model`)
   in a new run, a child of the training run: the code is
   ``agents/serving/mlflow_model.py`` and ``agents/serving/runtime.py`` (logged as
   ``concede_runtime.py``), the artifact the policy directory; nothing pickled;
4. registers it as ``concede-<scenario>`` (or ``name=``) and points the alias at it
   (``challenger`` by default; ``champion`` promotes it). A run registered before is
   not exported again: its version gets the alias.

Promoting a policy whose verdict is "worse" than the best baseline needs ``force=true``.
The last line printed is JSON: name, version, alias, model URI, run id, policy sha256.

Serve the champion with ``mlflow models serve -m models:/concede-default@champion
--env-manager local`` (tracking URI in ``MLFLOW_TRACKING_URI``).
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
from mlflow.tracking import MlflowClient

from agents import trained
from agents.export import export_policy
from agents.policy import PolicySpecError
from agents.serving.packaging import log_policy_model
from envs.scenario import Scenario
from experiments.evaluation.evaluation_file import (
    EVALUATION_FILE,
    EvaluationFileError,
    kpis_from_report,
)
from experiments.tracking.names import (
    AGENT_TAG,
    ALIASES,
    PARENT_RUN_TAG,
    POLICY_SHA_TAG,
    RUN_TAG,
    SCENARIO_DIGEST_TAG,
    SCENARIO_TAG,
    VERDICT_TAG,
    model_name,
)
from experiments.tracking.store import Tracking


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


def algorithm_class(target: str) -> type:
    """The SB3 / sb3-contrib class named by an agent config's ``_target_``
    (:func:`agents.trained.algorithm_class`); anything else raises :class:`RegisterError`."""
    try:
        return trained.algorithm_class(target)
    except PolicySpecError as err:
        raise RegisterError(str(err)) from None


def _download(client: MlflowClient, run_id: str, path: str, into: Path) -> Path:
    try:
        return trained.download_run_artifact(client, run_id, path, into)
    except PolicySpecError as err:
        raise RegisterError(str(err)) from None


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
    client, run = _finished_run(run_id, tracking_uri)
    tags = run.data.tags
    registered = name or model_name(tags[SCENARIO_TAG])

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        kpis = _run_kpis(client, run_id, tags, work)
        _check_promotion(alias, kpis, force)
        existing = _existing_version(client, registered, run_id)
        if existing is not None:
            version, sha, exported = (
                existing.version,
                existing.tags.get(POLICY_SHA_TAG),
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


def export_run(run_id: str, out: str | Path, *, tracking_uri: str | None = None) -> Path:
    """Export finished training run ``run_id``'s policy into the folder ``out``
    (``policy.onnx`` and ``manifest.json``, with the run's KPIs and verdict), without
    registering it; returns the folder. Raises :class:`RegisterError` as :func:`register`
    does for a run that cannot be exported."""
    client, run = _finished_run(run_id, tracking_uri)
    tags = run.data.tags
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        kpis = _run_kpis(client, run_id, tags, work)
        model, scenario = load_run_model(client, run_id, tags, work)
        return export_policy(
            model, scenario, Path(out), run_id=run_id, agent=tags.get(AGENT_TAG), kpis=kpis
        )


def _finished_run(run_id: str, tracking_uri: str | None) -> tuple[MlflowClient, Any]:
    """The client of the store (``tracking_uri``, else ``MLFLOW_TRACKING_URI``, else the
    embedded store) and run ``run_id``, which must be a finished training run."""
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
            "model and evaluation; resume it first (see concede train)"
        )
    if not run.data.tags.get(SCENARIO_TAG):
        raise RegisterError(f"run {run_id} has no concede.scenario tag: not a training run")
    return client, run


def _run_kpis(client: MlflowClient, run_id: str, tags: dict[str, str], work: Path) -> Any:
    """The KPIs and verdict of the run's agent, from its ``evaluation.json``."""
    report = json.loads(_download(client, run_id, EVALUATION_FILE, work).read_text())
    try:
        return kpis_from_report(report, tags.get(AGENT_TAG))
    except EvaluationFileError as err:
        raise RegisterError(str(err)) from None


def _check_promotion(alias: str | None, kpis: dict[str, Any], force: bool) -> None:
    verdict = kpis.get("verdict") or {}
    if alias == "champion" and verdict.get("significance") == "worse" and not force:
        raise RegisterError(
            f"the run's verdict is 'worse' ({verdict.get('sentence')}); promoting it to "
            "champion needs force=true"
        )


def load_run_model(
    client: MlflowClient, run_id: str, tags: dict[str, str], into: Path
) -> tuple[Any, Scenario]:
    """The trained SB3 model of a finished training run and the scenario it was trained on,
    downloaded into ``into`` (:func:`agents.trained.load_run_model`). Raises
    :class:`RegisterError` saying what is missing."""
    try:
        return trained.load_run_model(client, run_id, tags, into)
    except PolicySpecError as err:
        raise RegisterError(str(err)) from None


def _export_run(
    client: MlflowClient, run_id: str, tags: dict[str, str], kpis: dict[str, Any], work: Path
) -> Path:
    model, scenario = load_run_model(client, run_id, tags, work)
    return export_policy(
        model,
        scenario,
        work / "policy",
        run_id=run_id,
        agent=tags.get(AGENT_TAG),
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
        run_name=f"register {tags.get(AGENT_TAG)} {tags.get(SCENARIO_TAG)}",
        tags={
            PARENT_RUN_TAG: run.info.run_id,
            RUN_TAG: run.info.run_id,
            SCENARIO_TAG: tags.get(SCENARIO_TAG, ""),
            SCENARIO_DIGEST_TAG: tags.get(SCENARIO_DIGEST_TAG, ""),
            AGENT_TAG: tags.get(AGENT_TAG, ""),
        },
    ):
        info = log_policy_model(policy_dir, registered)
        mlflow.log_dict(manifest, "manifest.json")
    version = str(info.registered_model_version)
    for key, value in (
        (RUN_TAG, run.info.run_id),
        (POLICY_SHA_TAG, sha),
        (SCENARIO_DIGEST_TAG, tags.get(SCENARIO_DIGEST_TAG, "")),
        (
            VERDICT_TAG,
            str((manifest.get("kpis") or {}).get("verdict", {}).get("significance")),
        ),
    ):
        client.set_model_version_tag(registered, version, key, value)
    return version, sha
