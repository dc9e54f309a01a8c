"""Writing the report: its figures as JSON and as one self-contained HTML page."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from experiments.offpolicy.result import OPEResult
from experiments.reporting.figures import build_figures
from experiments.reporting.html import render
from experiments.reporting.offpolicy import (
    offpolicy_figures,
    offpolicy_plot,
    offpolicy_result,
    read_offpolicy,
)
from experiments.reporting.plots import make_plots
from experiments.reporting.sources import (
    Selection,
    Source,
    load_evaluation_file,
    load_mlflow_sources,
)
from experiments.tracking.names import default_tracking_uri


def write_report(
    run_ids: Sequence[str] = (),
    *,
    tracking_uri: str | None = None,
    out_dir: str | Path = "outputs/reports",
    experiment: str | None = None,
    sweep: str | None = None,
    evaluations: Sequence[str | Path] = (),
    current_rule: str | None = None,
    policy: str | None = None,
    name: str | None = None,
    offpolicy: Sequence[str | Path | OPEResult | Mapping[str, Any]] = (),
) -> Path:
    """Write the report of the given runs and/or evaluation files; the HTML file's path.

    Reads ``run_ids`` (or the runs of ``sweep``, or of ``experiment``; the experiment
    ``concede`` when none of these nor ``evaluations`` is given) from ``tracking_uri``
    (default :func:`~experiments.tracking.names.default_tracking_uri`), plus
    ``evaluations`` files, and writes ``<out_dir>/<name>.html`` and ``<name>.json`` (the
    figures); ``name`` defaults to ``concede-report-<timestamp>``. ``offpolicy``: results
    of off-policy evaluations on a shop's logs (``concede ope``), their JSON
    or their files, each shown in an "On your logs" section beside the simulated figures.

    Raises:
        ReportError: what is missing (store, experiment, sweep, runs, evaluations), or an
            off-policy evaluation that does not read as one.
    """
    sources: list[Source] = []
    labels: list[str] = []
    uri = tracking_uri or default_tracking_uri()
    if run_ids or sweep or experiment or not evaluations:
        selection = Selection(experiment=experiment, sweep=sweep, run_ids=tuple(run_ids))
        found, label = load_mlflow_sources(uri, selection)
        sources += found
        labels.append(label)
    for path in evaluations:
        sources.append(load_evaluation_file(path))
        labels.append(str(path))
    figures = build_figures(
        sources,
        current_rule=current_rule,
        policy=policy,
        selection="; ".join(labels),
        tracking_uri=uri if len(labels) > len(evaluations) else None,
    )
    if offpolicy:
        figures["offpolicy"] = [
            offpolicy_figures(
                offpolicy_result(o) if isinstance(o, OPEResult | Mapping) else read_offpolicy(o),
                sources,
            )
            for o in offpolicy
        ]
    plots = make_plots(figures)
    for i, section in enumerate(figures.get("offpolicy", [])):
        if (plot := offpolicy_plot(section)) is not None:
            plots[f"offpolicy/{i}"] = plot
    html = render(figures, plots)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = name or f"concede-report-{dt.datetime.now():%Y%m%d-%H%M%S}"
    (out / f"{stem}.json").write_text(json.dumps(figures, indent=1) + "\n", encoding="utf-8")
    path = out / f"{stem}.html"
    path.write_text(html, encoding="utf-8")
    return path.resolve()
