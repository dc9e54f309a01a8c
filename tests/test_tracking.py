"""The MLflow store: absolute locations, idempotent activation, parallel jobs, SB3 metrics.

Real SQLite stores in ``tmp_path``: created from scratch where creation is the point,
otherwise copied from an empty store whose schema MLflow made once (:func:`empty_store`),
which saves seconds per store.
"""

from __future__ import annotations

import multiprocessing
import shutil
from collections.abc import Iterator
from pathlib import Path

import mlflow
import numpy as np
import pytest
import torch
from mlflow.tracking import MlflowClient
from omegaconf import OmegaConf
from stable_baselines3.common.logger import Logger

from experiments.tracking.callback import PrepareStore
from experiments.tracking.sb3_writer import MLflowWriter
from experiments.tracking.store import Tracking


@pytest.fixture
def empty_store(store_template: Path, tmp_path: Path) -> Path:
    """``tmp_path/store``, holding an empty MLflow store."""
    store = tmp_path / "store"
    store.mkdir()
    shutil.copyfile(store_template, store / "mlflow.db")
    return store


@pytest.fixture(autouse=True)
def _no_active_run() -> Iterator[None]:
    yield
    while mlflow.active_run() is not None:
        mlflow.end_run(status="FAILED")


def test_locations_are_absolute_under_store_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    tracking = Tracking(store_dir="nested/store", experiment="loc")
    store = tmp_path / "nested" / "store"
    assert tracking.tracking_uri == f"sqlite:///{store / 'mlflow.db'}"
    assert tracking.artifact_location == (store / "mlartifacts").as_uri()
    assert tracking.artifact_location.startswith("file:///")

    experiment_id = tracking.activate()
    assert (store / "mlflow.db").is_file()
    experiment = MlflowClient(tracking.tracking_uri).get_experiment(experiment_id)
    assert experiment.name == "loc"
    assert experiment.artifact_location == tracking.artifact_location
    assert mlflow.get_tracking_uri() == tracking.tracking_uri

    # artifacts land under store_dir whatever the working directory is later
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    with mlflow.start_run() as run:
        mlflow.log_text("hello", "note.txt")
    written = list((store / "mlartifacts").rglob("note.txt"))
    assert len(written) == 1 and written[0].read_text() == "hello"
    assert run.info.run_id in str(written[0])
    assert not list(elsewhere.iterdir())  # no ./mlruns or ./mlartifacts


def test_a_server_uri_replaces_the_store(tmp_path: Path) -> None:
    tracking = Tracking(store_dir=str(tmp_path), uri="http://mlflow.internal:5000")
    assert tracking.tracking_uri == "http://mlflow.internal:5000"
    assert tracking.artifact_location is None


def test_activate_twice_is_idempotent(empty_store: Path) -> None:
    tracking = Tracking(store_dir=str(empty_store), experiment="twice")
    first = tracking.activate()
    second = tracking.activate()
    assert first == second
    client = MlflowClient(tracking.tracking_uri)
    named = [e for e in client.search_experiments() if e.name == "twice"]
    assert [e.experiment_id for e in named] == [first]
    with mlflow.start_run() as run:
        pass
    assert run.info.experiment_id == first


def _activate_and_log(store_dir: str, index: int) -> str:
    """One parallel job: activate the store, log a metric into its own run."""
    tracking = Tracking(store_dir=store_dir, experiment="parallel")
    tracking.activate()
    with mlflow.start_run(run_name=f"job {index}") as run:
        mlflow.log_metric("job_index", float(index))
    return run.info.run_id


def test_parallel_jobs_activate_a_freshly_prepared_store(tmp_path: Path) -> None:
    store = tmp_path / "store"
    config = OmegaConf.create({"tracking": {"store_dir": str(store), "experiment": "parallel"}})
    PrepareStore().on_run_start(config)  # what Hydra does in the launching process
    assert (store / "mlflow.db").is_file()

    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(4) as pool:
        run_ids = pool.starmap(_activate_and_log, [(str(store), i) for i in range(4)])

    assert len(set(run_ids)) == 4
    client = MlflowClient(Tracking(store_dir=str(store)).tracking_uri)
    experiments = [e for e in client.search_experiments() if e.name == "parallel"]
    assert len(experiments) == 1
    runs = client.search_runs([experiments[0].experiment_id])
    assert {r.info.run_id for r in runs} == set(run_ids)
    assert all(r.info.status == "FINISHED" for r in runs)
    assert sorted(r.data.metrics["job_index"] for r in runs) == [0.0, 1.0, 2.0, 3.0]


def _writer_run(store: Path) -> tuple[MlflowClient, str, Logger]:
    tracking = Tracking(store_dir=str(store), experiment="writer")
    tracking.activate()
    run_id = mlflow.start_run().info.run_id
    mlflow.end_run()  # the writer logs by run id, with no active run needed
    logger = Logger(folder=None, output_formats=[MLflowWriter(run_id)])
    return MlflowClient(tracking.tracking_uri), run_id, logger


def test_mlflow_writer_forwards_sb3_metrics(empty_store: Path) -> None:
    client, run_id, logger = _writer_run(empty_store)
    logger.record("train/loss", 0.5)
    logger.record("train/n_updates", 7)
    logger.record("rollout/ep_rew_mean", np.float64(1.25))  # safe_mean's type
    logger.record("time/note", "text is not a metric")
    logger.record("train/flag", True)
    logger.record("train/private", 9.0, exclude="mlflow")
    logger.dump(step=10)
    logger.record("train/loss", 0.25)
    logger.dump(step=20)

    metrics = client.get_run(run_id).data.metrics
    assert metrics == {"train.loss": 0.25, "train.n_updates": 7.0, "rollout.ep_rew_mean": 1.25}
    history = client.get_metric_history(run_id, "train.loss")
    assert [(m.step, m.value) for m in history] == [(10, 0.5), (20, 0.25)]


def test_mlflow_writer_forwards_numpy_and_torch_scalars(empty_store: Path) -> None:
    client, run_id, logger = _writer_run(empty_store)
    logger.record("train/f32", np.float32(0.5))
    logger.record("train/i64", np.int64(3))
    logger.record("train/tensor", torch.tensor(2.0))
    logger.dump(step=1)
    assert client.get_run(run_id).data.metrics == {
        "train.f32": 0.5,
        "train.i64": 3.0,
        "train.tensor": 2.0,
    }
