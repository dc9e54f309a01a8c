"""The names runs are tracked under: tags, artifact files, the default store, model names.

One home for every name that the training, registry, report and benchmark code share
(those a trained policy is read by, ``run:<id>``, are :mod:`agents.trained`'s, imported
here). Imports no MLflow, so any module may read these names cheaply.
"""

from __future__ import annotations

import os
from pathlib import Path

from agents.trained import MODEL_ARTIFACTS as MODEL_ARTIFACTS
from agents.trained import MODEL_FILE as MODEL_FILE
from agents.trained import SCENARIO_DIGEST_TAG as SCENARIO_DIGEST_TAG

EXPERIMENT = "concede"
"""The MLflow experiment runs go to by default."""
STORE_DIR = "outputs"
"""The folder of the embedded store, relative to the working directory by default."""
STORE_FILE = "mlflow.db"
ARTIFACTS_FOLDER = "mlartifacts"

# tags of a training run (and SCENARIO_DIGEST_TAG)
SCENARIO_TAG = "concede.scenario"
AGENT_TAG = "concede.agent"
SEED_TAG = "concede.seed"
GIT_SHA_TAG = "concede.git_sha"
COMMAND_TAG = "concede.command"
MODEL_TIMESTEPS_TAG = "concede.model_timesteps"
RESUMED_TAG = "concede.resumed_at"  # the timesteps a resumed run went on from
# tags of a sweep: every job carries SWEEP_TAG; the parent run also PARENT_TAG = "true"
SWEEP_TAG = "concede.sweep"
PARENT_TAG = "concede.sweep_parent"
PARENT_RUN_TAG = "mlflow.parentRunId"
SWEEP_PARENT_ENV = "CONCEDE_SWEEP_PARENT_RUN"
# the registry: a registered version points back to its training run
RUN_TAG = "concede.run_id"
POLICY_SHA_TAG = "concede.policy_sha256"
VERDICT_TAG = "concede.verdict"
MODEL_PREFIX = "concede-"
ALIASES = ("champion", "challenger")

# artifacts of a training run (and MODEL_ARTIFACTS / MODEL_FILE, the model)
LEARNING_CURVE_FILE = "learning_curve.json"
NORMALIZE_FILE = "vecnormalize.pkl"


def model_name(scenario: str) -> str:
    """The registered model name of a scenario's policies: ``concede-<scenario>``."""
    return f"{MODEL_PREFIX}{scenario}"


def sqlite_uri(store_dir: str | Path) -> str:
    """The tracking URI of the embedded SQLite store in ``store_dir``."""
    return f"sqlite:///{Path(store_dir).resolve() / STORE_FILE}"


def default_tracking_uri() -> str:
    """The embedded store of ``make run`` under the current folder."""
    return sqlite_uri(Path.cwd() / STORE_DIR)


def store_uri(given: str | None = None) -> str:
    """The store to read runs and registered models from: ``given``, else
    ``MLFLOW_TRACKING_URI``, else the embedded store under the current folder."""
    return given or os.environ.get("MLFLOW_TRACKING_URI") or default_tracking_uri()
