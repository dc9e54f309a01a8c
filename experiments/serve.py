"""The decision service for sale days: ``concede serve --policy <policy> --logs <dir>``.

Decide (with exploration over the allowed actions), take rewards, log both, expose
``/health`` and ``/metrics``. It takes ``--flags``, as servers do (``--host``,
``--port``, ``--workers``...): see ``concede serve --help`` and the README ("The decision
service for sale days"). Joining the journals into a decision log:
``concede serve join --logs <dir> --out <log folder>``. ``python -m experiments.serve``
is the same. ``--policy`` is a policy directory, ``run:<MLflow run id>`` or
``models:/<name>@<alias>``, from ``MLFLOW_TRACKING_URI``, else the embedded store
``outputs/mlflow.db`` of ``make run``.
"""

from __future__ import annotations

import sys

from agents.serving.service.launch import main as serve_main
from agents.serving.service.tools import join_main
from experiments.tracking.names import store_uri


def main(argv: list[str] | None = None) -> int:
    """Serve, or with ``join`` first, join the journals; returns the exit status."""
    args = sys.argv[1:] if argv is None else list(argv)
    if args[:1] == ["join"]:
        return join_main(args[1:])
    # run:<id> and models:/... come from the same store as every app's (make run's by default)
    return serve_main(args, tracking_uri=store_uri())


if __name__ == "__main__":
    sys.exit(main())
