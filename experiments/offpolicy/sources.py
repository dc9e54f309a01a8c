"""The policies an off-policy evaluation may be asked for, by what the user types.

One string per policy, in ``policies=[...]``:

- a name of :mod:`agents.registry` (``never``, ``always_<concession>``, ``always_*``,
  ``merchant_rules``, ``rules:<file.yaml>``, ``boulware``...): built for the scenario;
- a policy directory (``manifest.json`` and ``policy.onnx``, written by
  ``agents.export.export_policy``): its network, choosing among each row's eligible
  actions (:class:`agents.runtime_policy.RuntimePolicy`);
- ``run:<id>``: the model of a finished training run in MLflow, loaded as
  ``python -m experiments.register`` loads it;
- ``fixed:<action>``: always that action of the log when eligible, else the default
  (first) action: the arms of an A/B test, say, whose actions are no scenario's.

Every policy is returned with the feature names it reads and the action names it decides
among, so the evaluation checks them against the log.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from agents.policy import Policy
from agents.registry import ORACLE, UnknownPolicyError, build_policies
from envs.observation import feature_schema
from envs.scenario import Scenario

RUN_PREFIX = "run:"
FIXED_PREFIX = "fixed:"
MANIFEST = "manifest.json"


class PolicySourceError(ValueError):
    """A policy string that names nothing loadable (the message says what to give)."""


class Bound:
    """A policy with the feature names it reads and the actions it decides among."""

    def __init__(
        self, policy: Policy, feature_names: Sequence[str], action_names: Sequence[str], name: str
    ) -> None:
        self.policy = policy
        self.name = name
        self.feature_names = tuple(feature_names)
        self.action_names = tuple(action_names)

    def act(self, obs: NDArray[np.float32], mask: NDArray[np.bool_]) -> NDArray[np.int64]:
        return self.policy.act(obs, mask)


class FixedAction:
    """Always ``action`` when eligible, else the default action (index 0)."""

    def __init__(self, action_names: Sequence[str], action: str) -> None:
        if action not in action_names:
            raise PolicySourceError(
                f"fixed:{action}: the log has no action {action!r}; its actions: "
                f"{list(action_names)}"
            )
        self.index = list(action_names).index(action)
        self.name = f"{FIXED_PREFIX}{action}"
        self.action_names = tuple(action_names)

    def act(self, obs: NDArray[np.float32], mask: NDArray[np.bool_]) -> NDArray[np.int64]:
        return np.where(mask[:, self.index], self.index, 0).astype(np.int64)


def is_policy_dir(text: str) -> bool:
    return Path(text).is_dir() and (Path(text) / MANIFEST).is_file()


def build_evaluated(
    specs: Sequence[str],
    *,
    scenario: Scenario | None,
    log_actions: Sequence[str],
    tracking_uri: str | None = None,
) -> list[Policy]:
    """The policies of ``specs`` (see the module docstring), in order.

    Raises:
        PolicySourceError: a named policy without a scenario, an unloadable run, a
            ``fixed:`` action the log does not have.
        agents.registry.UnknownPolicyError: a name no policy has.
        agents.serving.runtime.PolicyLoadError: a policy directory that does not verify.
    """
    out: dict[str, Policy] = {}
    for spec in specs:
        for policy in _build(spec, scenario, log_actions, tracking_uri):
            out.setdefault(policy.name, policy)
    return list(out.values())


def _build(
    spec: str, scenario: Scenario | None, log_actions: Sequence[str], tracking_uri: str | None
) -> list[Policy]:
    if spec.startswith(FIXED_PREFIX):
        return [FixedAction(log_actions, spec[len(FIXED_PREFIX) :])]
    if spec.startswith(RUN_PREFIX):
        return [_from_run(spec[len(RUN_PREFIX) :], tracking_uri)]
    if is_policy_dir(spec):
        from agents.runtime_policy import RuntimePolicy

        return [RuntimePolicy.load(spec, name=Path(spec).name)]
    if spec == ORACLE:
        raise PolicySourceError(
            "the oracle sees hidden shopper state and future draws, which no log holds: it "
            "can only be evaluated in the simulator (python -m experiments.evaluate)"
        )
    if scenario is None:
        raise PolicySourceError(
            f"the named policy {spec!r} is built for a scenario, and the log names none: "
            "give scenario=<name or file>"
        )
    features = [f.name for f in feature_schema(scenario)]
    return [
        Bound(p, features, scenario.action_names, p.name) for p in build_policies([spec], scenario)
    ]


def _from_run(run_id: str, tracking_uri: str | None) -> Policy:
    import os

    import mlflow
    from mlflow.tracking import MlflowClient

    from agents.learned import LearnedPolicy
    from experiments.tracking.registry import RegisterError, load_run_model
    from experiments.tracking.store import Tracking

    uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or Tracking().tracking_uri
    client = MlflowClient(uri)
    try:
        run = client.get_run(run_id)
    except mlflow.exceptions.MlflowException as err:
        raise PolicySourceError(f"run:{run_id}: no such run in {uri} ({err.message})") from None
    try:
        with tempfile.TemporaryDirectory() as tmp:
            model, scenario = load_run_model(client, run_id, run.data.tags, Path(tmp))
    except RegisterError as err:
        raise PolicySourceError(f"run:{run_id}: {err}") from None
    name = f"{RUN_PREFIX}{run_id[:8]}"
    features = [f.name for f in feature_schema(scenario)]
    return Bound(LearnedPolicy(model, name), features, scenario.action_names, name)


__all__ = ["Bound", "FixedAction", "PolicySourceError", "UnknownPolicyError", "build_evaluated"]
