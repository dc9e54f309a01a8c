"""After a training run of the main job: the merchant report and the registered policy.

A policy that is not worse than the merchant's best rule becomes the ``champion`` of its
scenario's registered model; a worse one is registered as ``challenger``. Failures of
either step are returned, not raised: the run is tracked, and a report or a registration
can be made later from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from experiments.reporting import ReportError, write_report
from experiments.tracking.registry import Registered, RegisterError, register


@dataclass(frozen=True)
class Published:
    """What :func:`publish_run` made: the report's path and the registered version, or why
    each is missing."""

    report: Path | None
    report_error: str | None
    registered: Registered | None
    register_error: str | None


def publish_run(
    run_id: str, evaluation: dict[str, Any], tracking_uri: str, run_dir: Path
) -> Published:
    """Write the merchant report of run ``run_id`` into ``run_dir`` and register its policy
    (alias from the verdict in ``evaluation``)."""
    report, report_error = None, None
    try:
        report = write_report([run_id], tracking_uri=tracking_uri, out_dir=run_dir, name="report")
    except ReportError as err:
        report_error = str(err)
    better = evaluation["verdict"]["significance"] != "worse"
    registered, register_error = None, None
    try:
        registered = register(
            run_id, tracking_uri=tracking_uri, alias="champion" if better else "challenger"
        )
    except RegisterError as err:
        register_error = str(err)
    return Published(report, report_error, registered, register_error)
