"""Where runs are tracked: an MLflow store, embedded (SQLite) by default or a server by URI.

The embedded store is ``<store_dir>/mlflow.db`` with artifacts in
``<store_dir>/mlartifacts`` (set explicitly: with a SQLite URI MLflow would otherwise
write them to ``./mlruns`` wherever the job happens to run). Parallel jobs must not
create the SQLite schema concurrently (MLflow fails with "table experiments already
exists"), so :class:`PrepareStore`, a Hydra callback, creates the store and the
experiment once in the launching process, before any job starts.
"""

from __future__ import annotations

import logging
import numbers
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig
from stable_baselines3.common.logger import KVWriter

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Tracking:
    """An MLflow store and experiment.

    Args:
        store_dir: folder of the embedded SQLite store and its artifacts (made absolute).
        experiment: MLflow experiment name.
        uri: a tracking server's URI (``http://host:5000``, ``postgresql://...``);
            when set, ``store_dir`` is not used.
    """

    store_dir: str = "outputs"
    experiment: str = "concede"
    uri: str | None = None

    @property
    def tracking_uri(self) -> str:
        if self.uri:
            return self.uri
        return f"sqlite:///{Path(self.store_dir).resolve() / 'mlflow.db'}"

    @property
    def artifact_location(self) -> str | None:
        if self.uri:
            return None
        return (Path(self.store_dir).resolve() / "mlartifacts").as_uri()

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


def tracking_from_config(config: DictConfig) -> Tracking:
    section = config.get("tracking") or {}
    return Tracking(
        store_dir=str(section.get("store_dir", "outputs")),
        experiment=str(section.get("experiment", "concede")),
        uri=section.get("uri"),
    )


SWEEP_TAG = "concede.sweep"
PARENT_TAG = "concede.sweep_parent"


class PrepareStore(Callback):
    """Hydra callback: create the store and experiment once, and a parent run per sweep."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        # a single run's callbacks start before Hydra sets its config, which
        # ``${hydra:runtime.cwd}`` in the output folder needs
        if "hydra" in config:
            HydraConfig.instance().set_config(config)
        tracking_from_config(config).activate()

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        tracking = tracking_from_config(config)
        experiment_id = tracking.activate()
        sweep = sweep_name(str(config.hydra.sweep.dir))
        client = MlflowClient(tracking.tracking_uri)
        run = client.create_run(
            experiment_id,
            run_name=f"sweep {sweep}",
            tags={SWEEP_TAG: sweep, PARENT_TAG: "true"},
        )
        os.environ["CONCEDE_SWEEP_PARENT_RUN"] = run.info.run_id
        log.info("MLflow sweep %s: parent run %s", sweep, run.info.run_id)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        tracking = tracking_from_config(config)
        client = MlflowClient(tracking.tracking_uri)
        parent = parent_run_id(client, tracking, sweep_name(str(config.hydra.sweep.dir)))
        if parent is None:
            return
        children = client.search_runs(
            [client.get_experiment_by_name(tracking.experiment).experiment_id],  # type: ignore[union-attr]
            filter_string=f"tags.mlflow.parentRunId = '{parent}'",
        )
        failed = [r for r in children if r.info.status != "FINISHED"]
        client.set_terminated(parent, status="FAILED" if failed else "FINISHED")


def sweep_name(sweep_dir: str) -> str:
    """A sweep's identity in MLflow: its output folder, which Hydra makes unique per sweep."""
    return str(Path(sweep_dir).resolve())


def parent_run_id(
    client: MlflowClient, tracking: Tracking, sweep: str, wait_s: float = 0.0
) -> str | None:
    """The parent run of ``sweep``, or None (for instance in a single run)."""
    experiment = client.get_experiment_by_name(tracking.experiment)
    if experiment is None:
        return None
    deadline = time.monotonic() + wait_s
    while True:
        runs = client.search_runs(
            [experiment.experiment_id],
            filter_string=f"tags.`{SWEEP_TAG}` = '{sweep}' and tags.`{PARENT_TAG}` = 'true'",
            max_results=1,
        )
        if runs:
            return str(runs[0].info.run_id)
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.2)


class MLflowWriter(KVWriter):
    """Sends SB3's training metrics (``train/approx_kl``, ``rollout/ep_rew_mean``...) to MLflow."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id

    def write(
        self, key_values: dict[str, Any], key_excluded: dict[str, tuple[str, ...]], step: int = 0
    ) -> None:
        metrics = {
            key.replace("/", "."): float(value)
            for key, value in key_values.items()
            if _is_number(value) and "mlflow" not in key_excluded.get(key, ())
        }
        if metrics:
            mlflow.log_metrics(metrics, step=step, run_id=self.run_id)

    def close(self) -> None:
        return None


def _is_number(value: Any) -> bool:
    """A real number, numpy scalar or one-element tensor; not a bool or a string."""
    if isinstance(value, bool | np.bool_):
        return False
    if isinstance(value, numbers.Real | np.number):
        return True
    size = getattr(value, "numel", None)  # a torch tensor, without importing torch here
    return callable(size) and size() == 1 and not getattr(value, "is_complex", lambda: False)()
