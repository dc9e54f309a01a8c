"""Trained policies from where they are kept, and whether one fits a scenario.

Three places, each a policy string of :mod:`agents.registry`:

- a policy directory (``manifest.json`` and ``policy.onnx``, written by
  :func:`agents.export.export_policy`): its network choosing among each row's eligible
  actions (:class:`agents.runtime_policy.RuntimePolicy`), named after the directory;
- ``run:<id>``: the model of a finished training run in MLflow: its ``model/model.zip``,
  of the algorithm and trained on the scenario of the run's resolved ``config.yaml``
  (whose digest must be the one the run is tagged with), as an
  :class:`agents.learned.LearnedPolicy` named ``run:<first 8 characters of the id>``;
- ``models:/<name>@<alias>`` or ``models:/<name>/<version>``: the exported policy of a
  registered model (what ``experiments.register`` logs), downloaded and loaded as a
  directory, named by its URI.

The MLflow store is ``tracking_uri`` if given, else MLflow's (``MLFLOW_TRACKING_URI``).
What cannot be loaded raises :class:`agents.policy.PolicySpecError` saying what is missing.

**Fit.** A trained policy fits a scenario (:func:`misfit` says why not) when it decides
among the scenario's actions, in the same order, each the same concession (kind,
magnitude, expiry), and reads the scenario's features in the same order, each ranging in
the scenario within the bounds the policy was trained on (the manifest's bounds, which
the deployed runtime enforces). Costs, eligibility rules, shoppers, campaign budget and
live-agent desk may differ: that is what a stress test changes. :func:`load_trained`
refuses a policy that does not fit with :class:`agents.policy.PolicyFitError`.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agents.policy import Policy, PolicyFitError, PolicySpecError
from agents.serving.runtime import MANIFEST_FILE
from envs.observation import feature_schema
from envs.scenario import Scenario

if TYPE_CHECKING:
    from agents.runtime_policy import RuntimePolicy

RUN_PREFIX = "run:"
MODELS_PREFIX = "models:/"
# what a training run (experiments.training) logs and is tagged with, as read here
CONFIG_FILE = "config.yaml"
MODEL_ARTIFACTS = "model"
MODEL_FILE = "model.zip"
SCENARIO_DIGEST_TAG = "concede.scenario_digest"
ALGORITHM_PREFIXES = ("stable_baselines3.", "sb3_contrib.")
_TOLERANCE = 1e-6  # relative, on feature bounds (values that went through float32)

Feature = tuple[str, float, float]  # name, low, high
Action = tuple[str, str, float, int]  # name, kind, magnitude, expiry_steps


@dataclass(frozen=True)
class Interface:
    """What a policy reads and decides among, made for scenario ``market``: features in
    column order, actions in index order (``wait`` first)."""

    market: str
    features: tuple[Feature, ...]
    actions: tuple[Action, ...]

    @classmethod
    def of_scenario(cls, scenario: Scenario) -> Interface:
        return cls(
            scenario.name,
            tuple((f.name, float(f.low), float(f.high)) for f in feature_schema(scenario)),
            (
                ("wait", "wait", 0.0, 0),
                *(
                    (c.name, c.kind.value, float(c.magnitude), int(c.expiry_steps))
                    for c in scenario.concessions
                ),
            ),
        )

    @classmethod
    def of_manifest(cls, manifest: Mapping[str, Any]) -> Interface:
        return cls(
            str((manifest.get("scenario") or {}).get("name")),
            tuple((f["name"], float(f["low"]), float(f["high"])) for f in manifest["features"]),
            tuple(
                (
                    a["name"],
                    a["kind"],
                    float(a.get("magnitude", 0.0)),
                    int(a.get("expiry_steps", 0)),
                )
                for a in manifest["actions"]
            ),
        )


def misfit(policy: Interface, scenario: Interface) -> str | None:
    """Why a policy of interface ``policy`` cannot run on ``scenario`` (see the module
    docstring), or None if it can."""
    mine, theirs = [a[0] for a in policy.actions], [a[0] for a in scenario.actions]
    if mine != theirs:
        return _differ("actions", mine, theirs, scenario.market)
    for a, b in zip(policy.actions, scenario.actions, strict=True):
        if a != b:
            return (
                f"its action {a[0]!r} is {_concession(a)}, in scenario {scenario.market!r} "
                f"{_concession(b)}"
            )
    mine, theirs = [f[0] for f in policy.features], [f[0] for f in scenario.features]
    if mine != theirs:
        return _differ("features", mine, theirs, scenario.market)
    for (name, low, high), (_, s_low, s_high) in zip(
        policy.features, scenario.features, strict=True
    ):
        if s_low < low - _TOLERANCE * max(1.0, abs(low)) or s_high > high + _TOLERANCE * max(
            1.0, abs(high)
        ):
            return (
                f"feature {name!r} ranges {s_low:g}..{s_high:g} in scenario "
                f"{scenario.market!r}, beyond the {low:g}..{high:g} it was trained on"
            )
    return None


def _differ(what: str, mine: list[str], theirs: list[str], market: str) -> str:
    extra = [n for n in mine if n not in theirs]
    missing = [n for n in theirs if n not in mine]
    if not extra and not missing:
        return f"its {what} {mine} are in another order than scenario {market!r}'s {theirs}"
    parts = [f"it has the {what} {extra}, which scenario {market!r} lacks"] if extra else []
    parts += [f"scenario {market!r} has the {what} {missing}, which it lacks"] if missing else []
    return "; ".join(parts)


def _concession(action: Action) -> str:
    _, kind, magnitude, expiry = action
    return f"{kind} {magnitude:g} expiring after {expiry} steps"


def check_fits(name: str, policy: Interface, scenario: Scenario) -> None:
    """Raise :class:`agents.policy.PolicyFitError` if policy ``name`` does not fit ``scenario``."""
    reason = misfit(policy, Interface.of_scenario(scenario))
    if reason is not None:
        raise PolicyFitError(
            f"policy {name!r} was trained on scenario {policy.market!r} and does not fit "
            f"scenario {scenario.name!r}: {reason}. Evaluate it on a scenario of its "
            "catalogue, or train a policy on this one"
        )


def is_policy_dir(text: str) -> bool:
    """True if ``text`` is a directory holding a ``manifest.json``."""
    return Path(text).is_dir() and (Path(text) / MANIFEST_FILE).is_file()


def is_trained(spec: str) -> bool:
    """True if ``spec`` names a trained policy: a policy directory, ``run:``, ``models:/``."""
    return spec.startswith((RUN_PREFIX, MODELS_PREFIX)) or is_policy_dir(spec)


def load_trained(spec: str, scenario: Scenario | None, tracking_uri: str | None = None) -> Policy:
    """The trained policy ``spec`` names (:func:`is_trained`), checked to fit ``scenario``
    (unchecked without one: a log's features and actions are checked where it is read).

    Raises:
        agents.policy.PolicySpecError: nothing loadable at ``spec``.
        agents.policy.PolicyFitError: the policy does not fit ``scenario``.
    """
    if spec.startswith(RUN_PREFIX):
        policy, interface = _from_run(spec[len(RUN_PREFIX) :], tracking_uri)
    elif spec.startswith(MODELS_PREFIX):
        with tempfile.TemporaryDirectory() as tmp:
            folder = download_policy(spec, Path(tmp), tracking_uri)
            policy = load_policy_dir(folder, name=spec)
        interface = Interface.of_manifest(policy.runtime.manifest)
    else:
        policy = load_policy_dir(spec, name=Path(spec).name)
        interface = Interface.of_manifest(policy.runtime.manifest)
    if scenario is not None:
        check_fits(policy.name, interface, scenario)
    return policy


def load_policy_dir(path: str | Path, name: str | None = None) -> RuntimePolicy:
    """An exported policy directory as a batched policy; one that does not verify (see
    :meth:`agents.serving.runtime.PolicyRuntime.load`) raises ``PolicySpecError``."""
    from agents.runtime_policy import RuntimePolicy
    from agents.serving.runtime import PolicyLoadError

    try:
        return RuntimePolicy.load(path, name=name)
    except PolicyLoadError as err:
        raise PolicySpecError(f"policy {name or str(path)!r}: {err}") from None


def download_policy(uri: str, into: Path, tracking_uri: str | None = None) -> Path:
    """The exported policy directory of the MLflow model at ``uri`` (``models:/name@alias``,
    ``models:/name/version``, ``runs:/...``), downloaded into ``into``.

    Raises:
        agents.policy.PolicySpecError: the URI names no model, version or alias of the
            store, or a model that holds no exported policy.
    """
    import mlflow  # only for stored policies
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    store = _store(tracking_uri)
    source = uri
    try:
        if uri.startswith(MODELS_PREFIX):  # resolved here: MLflow would ask its global store
            client = MlflowClient(tracking_uri=store, registry_uri=store)
            name, _, alias = uri[len(MODELS_PREFIX) :].partition("@")
            if alias:
                version = client.get_model_version_by_alias(name, alias).version
            else:
                name, _, version = name.rpartition("/")
            if not name or not version:
                raise PolicySpecError(
                    f"{uri}: give models:/<name>@<alias> or models:/<name>/<version>"
                )
            source = client.get_model_version_download_uri(name, version)
        local = Path(
            mlflow.artifacts.download_artifacts(
                artifact_uri=source, dst_path=str(into), tracking_uri=store
            )
        )
    except MlflowException as err:
        raise PolicySpecError(
            f"{uri} cannot be fetched from the tracking store {store} ({err.message}): check "
            "the name, version or alias, and the tracking URI (MLFLOW_TRACKING_URI)"
        ) from None
    found = sorted(p.parent for p in local.rglob(MANIFEST_FILE))
    if not found:
        raise PolicySpecError(f"{uri} holds no exported policy (no {MANIFEST_FILE})")
    return found[0]


def _store(tracking_uri: str | None) -> str:
    """``tracking_uri``, else ``MLFLOW_TRACKING_URI`` as it is now, else MLflow's own."""
    import mlflow

    return tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or mlflow.get_tracking_uri()


def policy_folder(spec: str, into: Path, tracking_uri: str | None = None) -> Path:
    """The exported policy folder (``policy.onnx`` and ``manifest.json``) of the trained
    policy ``spec``, for what runs exported policies only (the decision service):
    ``models:/...`` and ``runs:/...`` downloaded into ``into``, ``run:<id>`` exported into
    ``into`` from the run's model, anything else taken as a policy directory (its loader
    says what is wrong with it).

    Raises:
        agents.policy.PolicySpecError: no such model or run, or nothing exported in it.
    """
    if spec.startswith((MODELS_PREFIX, "runs:/")):
        return download_policy(spec, into, tracking_uri)
    if not spec.startswith(RUN_PREFIX):
        return Path(spec)
    from agents.export import export_policy

    run_id = spec[len(RUN_PREFIX) :]
    model, trained_on = _run_model(run_id, tracking_uri, into / "run")
    return export_policy(model, trained_on, into / "policy", run_id=run_id)


def _from_run(run_id: str, tracking_uri: str | None) -> tuple[Policy, Interface]:
    from agents.learned import LearnedPolicy

    with tempfile.TemporaryDirectory() as tmp:
        model, trained_on = _run_model(run_id, tracking_uri, Path(tmp))
    name = f"{RUN_PREFIX}{run_id[:8]}"
    policy = LearnedPolicy(model, name, trained_on=trained_on)
    return policy, Interface.of_scenario(trained_on)


def _run_model(run_id: str, tracking_uri: str | None, into: Path) -> tuple[Any, Scenario]:
    """The trained model of run ``run_id`` of the store (:func:`_store`) and the scenario
    it was trained on, downloaded into ``into``; errors name ``run:<id>``."""
    import mlflow  # only for stored policies
    from mlflow.tracking import MlflowClient

    uri = _store(tracking_uri)
    client = MlflowClient(uri)
    try:
        run = client.get_run(run_id)
    except mlflow.exceptions.MlflowException as err:
        raise PolicySpecError(
            f"{RUN_PREFIX}{run_id}: no such run in {uri} ({err.message}): give the id of a "
            "finished training run, and its store as tracking_uri= (or MLFLOW_TRACKING_URI)"
        ) from None
    try:
        return load_run_model(client, run_id, run.data.tags, into)
    except PolicySpecError as err:
        raise PolicySpecError(f"{RUN_PREFIX}{run_id}: {err}") from None


def algorithm_class(target: str) -> type:
    """The SB3 / sb3-contrib class named by an agent config's ``_target_``; anything else
    raises ``PolicySpecError`` (a config must not make this import an arbitrary module)."""
    import importlib

    if not target.startswith(ALGORITHM_PREFIXES):
        raise PolicySpecError(
            f"agent.model._target_ {target!r} is not a Stable-Baselines3 or sb3-contrib "
            "algorithm; only those can be exported"
        )
    module, _, name = target.rpartition(".")
    cls: type = getattr(importlib.import_module(module), name)
    return cls


def load_run_model(
    client: Any, run_id: str, tags: Mapping[str, str], into: Path
) -> tuple[Any, Scenario]:
    """The trained SB3 model of a finished training run and the scenario it was trained on,
    downloaded into ``into`` with the MLflow ``client``; the scenario of the run's
    ``config.yaml`` must have the digest the run was tagged with. Raises
    ``PolicySpecError`` saying what is missing."""
    import yaml

    config = yaml.safe_load(download_run_artifact(client, run_id, CONFIG_FILE, into).read_text())
    scenario = Scenario.from_dict(config["scenario"])
    if scenario.digest() != tags.get(SCENARIO_DIGEST_TAG):
        raise PolicySpecError(
            f"the scenario in run {run_id}'s config.yaml has digest {scenario.digest()[:12]}..., "
            f"the run was tagged {str(tags.get(SCENARIO_DIGEST_TAG))[:12]}...: the "
            "config does not describe the market the model was trained on"
        )
    cls: Any = algorithm_class(str(config["agent"]["model"]["_target_"]))
    model_path = download_run_artifact(client, run_id, f"{MODEL_ARTIFACTS}/{MODEL_FILE}", into)
    return cls.load(str(model_path), device="cpu"), scenario


def download_run_artifact(client: Any, run_id: str, path: str, into: Path) -> Path:
    """Artifact ``path`` of run ``run_id``, downloaded into ``into``; a missing one raises
    ``PolicySpecError``."""
    try:
        return Path(client.download_artifacts(run_id, path, str(into)))
    except Exception as err:  # MLflow raises several types for a missing artifact
        raise PolicySpecError(
            f"run {run_id} has no artifact {path!r} ({err}); was it trained by "
            "concede train to the end?"
        ) from None
