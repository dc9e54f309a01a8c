"""The evaluation file: the paired evaluation as JSON, its name, its layout, its reading.

``evaluation.json`` is written by ``concede evaluate`` and by every training
run (into its folder and as an MLflow artifact); the report reads it, the registry takes
the learner's headline KPIs from it into the exported policy's manifest. Its layout is
that of :func:`experiments.evaluation.paired.evaluate` (plus ``verdict`` for a training
run, see :mod:`experiments.evaluation.references`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

EVALUATION_FILE = "evaluation.json"
REQUIRED_KEYS = ("scenario", "n_shoppers", "policies", "best_baseline", "overall")
# the learner's KPIs recorded in an exported policy's manifest
KPI_KEYS = (
    "profit_per_1000",
    "profit_captured",
    "conversion",
    "giveaway_rate",
    "offer_rate",
    "spend_per_1000",
    "interruptions_per_shopper",
    "harassment_exits",
    "diff_vs_never_per_1000",
)


class EvaluationFileError(ValueError):
    """Data that is not an evaluation, or lacks what is asked of it; says what is missing."""


def check_evaluation(data: Any, where: str) -> dict[str, Any]:
    """``data`` if it is an evaluation, else :class:`EvaluationFileError` naming ``where``."""
    if not isinstance(data, dict):
        raise EvaluationFileError(f"{where} is not an evaluation: expected a JSON object")
    missing = [k for k in REQUIRED_KEYS if k not in data]
    if missing:
        raise EvaluationFileError(
            f"{where} is not an evaluation of experiments.evaluate: missing {missing}. "
            "Pass the evaluation.json written by `concede evaluate` or by a "
            "training run."
        )
    return data


def read_evaluation(path: str | Path) -> dict[str, Any]:
    """The evaluation in the JSON file at ``path``, checked."""
    path = Path(path)
    if not path.is_file():
        raise EvaluationFileError(f"no evaluation file at {path}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise EvaluationFileError(
            f"{path} is not valid JSON ({err}); pass an evaluation.json"
        ) from None
    return check_evaluation(data, str(path))


def write_evaluation(
    path: str | Path, evaluation: Mapping[str, Any], indent: int | None = None
) -> Path:
    """Write ``evaluation`` as JSON at ``path`` (folders created); the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(evaluation, indent=indent)
    path.write_text(text + "\n" if indent is not None else text, encoding="utf-8")
    return path


def kpis_from_report(report: Mapping[str, Any], learner: str | None = None) -> dict[str, Any]:
    """The learner's headline KPIs (estimate and interval) and verdict from an evaluation,
    as an exported policy's manifest records them."""
    verdict = report.get("verdict") or {}
    name = learner or verdict.get("learner")
    overall = report.get("overall", {})
    if name not in overall:
        raise EvaluationFileError(
            f"the evaluation report has no policy {name!r}: {sorted(overall)}"
        )
    mine = overall[name]
    return {
        "policy": name,
        "n_shoppers": report.get("n_shoppers"),
        "seed": report.get("seed"),
        "metrics": {k: mine[k] for k in KPI_KEYS if isinstance(mine.get(k), dict)},
        "verdict": {k: verdict.get(k) for k in ("best_baseline", "significance", "sentence")},
    }
