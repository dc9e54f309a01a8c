"""The Hydra callback that prepares the store, and the parent run that groups a sweep.

Parallel jobs must not create the SQLite schema concurrently (MLflow fails with "table
experiments already exists"), so :class:`PrepareStore` creates the store and the
experiment once in the launching process, before any job starts; in a multirun it also
opens one parent run per sweep, which every job finds by its ``concede.sweep`` tag.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig

from experiments.tracking.names import PARENT_RUN_TAG, PARENT_TAG, SWEEP_PARENT_ENV, SWEEP_TAG
from experiments.tracking.store import Tracking, tracking_from_config

log = logging.getLogger(__name__)


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
        os.environ[SWEEP_PARENT_ENV] = run.info.run_id
        log.info("MLflow sweep %s: parent run %s", sweep, run.info.run_id)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        tracking = tracking_from_config(config)
        client = MlflowClient(tracking.tracking_uri)
        parent = parent_run_id(client, tracking, sweep_name(str(config.hydra.sweep.dir)))
        if parent is None:
            return
        children = client.search_runs(
            [client.get_experiment_by_name(tracking.experiment).experiment_id],  # type: ignore[union-attr]
            filter_string=f"tags.{PARENT_RUN_TAG} = '{parent}'",
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
