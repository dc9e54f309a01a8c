"""Where runs are tracked: an MLflow store, embedded (SQLite) by default or a server by URI.

The embedded store is ``<store_dir>/mlflow.db`` with artifacts in
``<store_dir>/mlartifacts`` (set explicitly: with a SQLite URI MLflow would otherwise
write them to ``./mlruns`` wherever the job happens to run).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
from mlflow.tracking import MlflowClient

from experiments.tracking.names import ARTIFACTS_FOLDER, EXPERIMENT, STORE_DIR, sqlite_uri


@dataclass(frozen=True)
class Tracking:
    """An MLflow store and experiment.

    Args:
        store_dir: folder of the embedded SQLite store and its artifacts (made absolute).
        experiment: MLflow experiment name.
        uri: a tracking server's URI (``http://host:5000``, ``postgresql://...``);
            when set, ``store_dir`` is not used.
    """

    store_dir: str = STORE_DIR
    experiment: str = EXPERIMENT
    uri: str | None = None

    @property
    def tracking_uri(self) -> str:
        if self.uri:
            return self.uri
        return sqlite_uri(self.store_dir)

    @property
    def artifact_location(self) -> str | None:
        if self.uri:
            return None
        return (Path(self.store_dir).resolve() / ARTIFACTS_FOLDER).as_uri()

    def activate(self) -> str:
        """Point MLflow at this store, create the experiment if needed; its id."""
        if not self.uri:
            Path(self.store_dir).resolve().mkdir(parents=True, exist_ok=True)
        mlflow.set_tracking_uri(self.tracking_uri)
        client = MlflowClient(self.tracking_uri)
        found = client.get_experiment_by_name(self.experiment)
        if found is not None:
            experiment_id = found.experiment_id
        else:
            try:
                experiment_id = client.create_experiment(
                    self.experiment, artifact_location=self.artifact_location
                )
            except mlflow.exceptions.MlflowException:  # created meanwhile by another process
                experiment_id = client.get_experiment_by_name(self.experiment).experiment_id  # type: ignore[union-attr]
        mlflow.set_experiment(experiment_id=experiment_id)
        return str(experiment_id)


def tracking_from_config(config: Any) -> Tracking:
    """The :class:`Tracking` of a composed config's ``tracking`` section (Hydra callbacks
    get the config before ``_target_`` objects are built)."""
    section = config.get("tracking") or {}
    return Tracking(
        store_dir=str(section.get("store_dir", STORE_DIR)),
        experiment=str(section.get("experiment", EXPERIMENT)),
        uri=section.get("uri"),
    )
