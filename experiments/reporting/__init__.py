"""The merchant report: what a policy earns over the current rule, in euros, with intervals.

From training runs in MLflow (an experiment, a sweep, or run ids) and their paired
evaluations, or from evaluation files of ``concede evaluate``, the report is
one self-contained HTML page (plots embedded, no scripts, opens offline) with a JSON of
the same figures beside it. ``concede report`` is its command line.

One job per module, each importing only those above it:

- :mod:`~experiments.reporting.errors`: :class:`ReportError`, what is missing (exit 2);
- :mod:`~experiments.reporting.intervals`: reading the evaluation's intervals safely;
- :mod:`~experiments.reporting.sources`: :class:`Source`, :class:`Selection`, reading
  runs from MLflow (with their learning curves) and evaluation files;
- :mod:`~experiments.reporting.describe`: one-line descriptions of policies, scenarios;
- :mod:`~experiments.reporting.verdict`: current rule, policy judged, their difference,
  the verdict's sentences;
- :mod:`~experiments.reporting.figures`: every figure as JSON-ready data
  (:func:`build_figures`);
- :mod:`~experiments.reporting.plots`: the figures as SVG plots;
- :mod:`~experiments.reporting.html`: the page;
- :mod:`~experiments.reporting.write`: :func:`write_report`, from runs to files.
"""

from experiments.reporting.errors import ReportError
from experiments.reporting.figures import build_figures
from experiments.reporting.sources import (
    Selection,
    Source,
    load_evaluation_file,
    load_mlflow_sources,
)
from experiments.reporting.write import write_report

__all__ = [
    "ReportError",
    "Selection",
    "Source",
    "build_figures",
    "load_evaluation_file",
    "load_mlflow_sources",
    "write_report",
]
