"""What the report is made from: training runs in MLflow and evaluation files.

A :class:`Source` is one run (or evaluation file) asked for, with its paired evaluation
(``evaluation.json``, see :mod:`experiments.evaluation.evaluation_file`) when it has one
and its learning curve. :class:`Selection` says which runs to read: an experiment, a
sweep (its parent run id or its ``concede.sweep`` tag), or run ids; sweep parents are
expanded to their children. Anything asked for that does not exist raises
:class:`~experiments.reporting.errors.ReportError` naming it.
"""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from experiments.evaluation.evaluation_file import (
    EVALUATION_FILE,
    EvaluationFileError,
    check_evaluation,
    read_evaluation,
)
from experiments.reporting.errors import ReportError
from experiments.tracking.names import (
    AGENT_TAG,
    EXPERIMENT,
    PARENT_RUN_TAG,
    PARENT_TAG,
    SCENARIO_TAG,
    SEED_TAG,
    SWEEP_TAG,
)

CURVE_KEYS = (
    "profit_per_1000",
    "diff_vs_best_per_1000",
    "profit_captured",
    "conversion",
    "giveaway_rate",
    "offer_rate",
)
"""The evaluation metrics (``eval/<key>``) a learning curve is read from."""


@dataclass
class Source:
    """One run (or evaluation file) asked for: what it is, its evaluation, its curve.

    ``evaluation`` is None when the run left none (failed, killed, still running); such
    runs are listed in the report, with ``note`` saying why they are not in the figures.
    """

    label: str
    status: str
    run_id: str | None = None
    scenario: str | None = None
    agent: str | None = None
    seed: str | None = None
    sweep: str | None = None
    evaluation: dict[str, Any] | None = None
    curve: list[dict[str, float]] = field(default_factory=list)
    note: str = ""


@dataclass(frozen=True)
class Selection:
    """Which runs to read: one of an experiment name, a sweep, or run ids."""

    experiment: str | None = None
    sweep: str | None = None
    run_ids: tuple[str, ...] = ()


def load_evaluation_file(path: str | Path) -> Source:
    """An evaluation JSON file (``concede evaluate`` output) as a source."""
    path = Path(path)
    if not path.is_file():
        raise ReportError(f"no evaluation file at {path}: check the path given in evaluations=")
    try:
        evaluation = read_evaluation(path)
    except EvaluationFileError as err:
        raise ReportError(str(err)) from None
    learner = (evaluation.get("verdict") or {}).get("learner")
    return Source(
        label=str(path),
        status="FILE",
        scenario=str(evaluation["scenario"]),
        agent=learner,
        evaluation=evaluation,
    )


# ------------------------------------------------------------------ MLflow runs


def _client(tracking_uri: str) -> Any:
    """An MLflow client of ``tracking_uri``; a SQLite store must exist (MLflow would
    silently create an empty one)."""
    if tracking_uri.startswith("sqlite:///"):
        db = Path(tracking_uri.removeprefix("sqlite:///"))
        if not db.is_file():
            raise ReportError(
                f"no MLflow store at {db} (tracking URI {tracking_uri}). Train first "
                "(`make run`), pass tracking_uri=<the store that holds the runs>, "
                "or evaluations=[<an evaluation.json>]."
            )
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri)


def _get_run(client: Any, run_id: str) -> Any | None:
    from mlflow.exceptions import MlflowException

    try:
        return client.get_run(run_id)
    except MlflowException:
        return None


def _experiment_ids(client: Any) -> list[str]:
    return [e.experiment_id for e in client.search_experiments()]


def _search(client: Any, experiment_ids: list[str], filter_string: str) -> list[Any]:
    runs: list[Any] = []
    token = None
    while True:
        page = client.search_runs(
            experiment_ids, filter_string=filter_string, max_results=1000, page_token=token
        )
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def _is_parent(run: Any) -> bool:
    return run.data.tags.get(PARENT_TAG) == "true"


def _sweep_runs(client: Any, sweep: str, tracking_uri: str) -> tuple[list[Any], str]:
    """The child runs of a sweep given by its parent run id or its ``concede.sweep`` tag."""
    ids = _experiment_ids(client)
    parent = _get_run(client, sweep) if re.fullmatch(r"[0-9a-f]{32}", sweep) else None
    if parent is not None:
        children = _search(client, ids, f"tags.`{PARENT_RUN_TAG}` = '{sweep}'")
        tag = parent.data.tags.get(SWEEP_TAG)
        if tag:
            children += _search(client, ids, f"tags.`{SWEEP_TAG}` = '{tag}'")
        label = f"sweep {tag or sweep} (parent run {sweep})"
    else:
        names = [sweep, str(Path(sweep).resolve())]
        children, tag = [], sweep
        for name in dict.fromkeys(names):
            children = _search(client, ids, f"tags.`{SWEEP_TAG}` = '{name}'")
            if children:
                tag = name
                break
        label = f"sweep {tag}"
    unique = {r.info.run_id: r for r in children if not _is_parent(r)}
    if not unique:
        known = sorted(
            {
                f"{r.data.tags.get(SWEEP_TAG)} (parent run {r.info.run_id})"
                for r in _search(client, ids, f"tags.`{PARENT_TAG}` = 'true'")
            }
        )
        raise ReportError(
            f"no sweep {sweep!r} with runs in {tracking_uri}: no parent run with that id and "
            f"no run tagged {SWEEP_TAG}={sweep!r}. Sweeps there: {known or 'none'}."
        )
    return list(unique.values()), label


def select_runs(client: Any, selection: Selection, tracking_uri: str) -> tuple[list[Any], str]:
    """The MLflow runs of ``selection`` (sweep parents expanded to their children) and a
    label of what was asked for. Raises ReportError naming what does not exist."""
    if selection.run_ids:
        runs, missing = [], []
        for run_id in selection.run_ids:
            run = _get_run(client, run_id)
            if run is None:
                missing.append(run_id)
            elif _is_parent(run):
                runs.extend(_sweep_runs(client, run_id, tracking_uri)[0])
            else:
                runs.append(run)
        if missing:
            raise ReportError(
                f"run id(s) not found in {tracking_uri}: {', '.join(missing)}. "
                "Check the ids (`mlflow ui --backend-store-uri ...`) or tracking_uri=."
            )
        label = "runs " + ", ".join(r[:8] for r in selection.run_ids)
        return list({r.info.run_id: r for r in runs}.values()), label
    if selection.sweep:
        return _sweep_runs(client, selection.sweep, tracking_uri)
    name = selection.experiment or EXPERIMENT
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        names = sorted(e.name for e in client.search_experiments())
        raise ReportError(
            f"no MLflow experiment named {name!r} in {tracking_uri}; experiments there: "
            f"{names or 'none'}. Pass experiment_name= with one of them, or tracking_uri=."
        )
    runs = [r for r in _search(client, [experiment.experiment_id], "") if not _is_parent(r)]
    if not runs:
        raise ReportError(f"experiment {name!r} in {tracking_uri} has no runs: train first.")
    return runs, f"experiment {name}"


def _curve(client: Any, run_id: str) -> list[dict[str, float]]:
    """The learning curve from the run's metric history: one point per evaluated step."""
    points: dict[int, dict[str, float]] = {}
    for key in CURVE_KEYS:
        for m in client.get_metric_history(run_id, f"eval/{key}"):
            if math.isfinite(m.value):
                points.setdefault(int(m.step), {"timesteps": float(m.step)})[key] = m.value
    return [points[s] for s in sorted(points)]


def _run_source(client: Any, run: Any, folder: Path) -> Source:
    tags, info = run.data.tags, run.info
    source = Source(
        label=tags.get("mlflow.runName") or info.run_name or info.run_id,
        status=str(info.status),
        run_id=info.run_id,
        scenario=tags.get(SCENARIO_TAG),
        agent=tags.get(AGENT_TAG),
        seed=tags.get(SEED_TAG),
        sweep=tags.get(SWEEP_TAG),
        curve=_curve(client, info.run_id),
    )
    try:
        local = client.download_artifacts(info.run_id, EVALUATION_FILE, str(folder))
        data = json.loads(Path(local).read_text(encoding="utf-8"))
        source.evaluation = check_evaluation(data, f"run {info.run_id}'s {EVALUATION_FILE}")
        source.scenario = source.scenario or str(data["scenario"])
    except EvaluationFileError as err:
        source.note = str(err)
    except Exception:  # any failure to fetch it means: no evaluation
        why = {
            "FAILED": "the run failed",
            "KILLED": "the run was killed",
            "RUNNING": "the run is still running (or died without saying)",
        }.get(source.status, "the run logged none")
        source.note = f"no {EVALUATION_FILE}: {why}; not in the figures"
    return source


def load_mlflow_sources(tracking_uri: str, selection: Selection) -> tuple[list[Source], str]:
    """Every selected run as a source (runs without evaluation included) and a label."""
    client = _client(tracking_uri)
    runs, label = select_runs(client, selection, tracking_uri)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    runs.sort(key=lambda r: (r.info.start_time or 0, r.info.run_id))
    with tempfile.TemporaryDirectory(prefix="concede-report-") as tmp:
        sources = [_run_source(client, run, Path(tmp) / str(i)) for i, run in enumerate(runs)]
    return sources, label
