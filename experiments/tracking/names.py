"""The names runs are tracked under: tags, artifact files, the default store, model names.

One home for every name that the training, registry, report and benchmark code share.
Imports nothing heavy (no MLflow), so any module may read these names cheaply.
"""

from __future__ import annotations

from pathlib import Path

EXPERIMENT = "concede"
"""The MLflow experiment runs go to by default."""
STORE_DIR = "outputs"
"""The folder of the embedded store, relative to the working directory by default."""
STORE_FILE = "mlflow.db"
ARTIFACTS_FOLDER = "mlartifacts"

# tags of a training run
SCENARIO_TAG = "concede.scenario"
SCENARIO_DIGEST_TAG = "concede.scenario_digest"
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

# artifacts of a training run
LEARNING_CURVE_FILE = "learning_curve.json"
MODEL_ARTIFACTS = "model"
MODEL_FILE = "model.zip"
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
