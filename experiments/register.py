"""Register a training run's policy in the MLflow model registry, served by the runtime.

``python -m experiments.register --run-id <id> [--alias champion|challenger]
[--tracking-uri URI] [--name NAME] [--force]``: exports the run's policy, logs it as an
MLflow pyfunc from code in a child run, registers it as ``concede-<scenario>`` (or
``--name``) and points the alias at it (see :mod:`experiments.tracking.registry`).
Promoting a policy whose verdict is "worse" than the best baseline needs ``--force``.
The last line printed is JSON: name, version, alias, model URI, run id, policy sha256.

Serve the champion with ``mlflow models serve -m models:/concede-default@champion
--env-manager local`` (tracking URI in ``MLFLOW_TRACKING_URI``).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import asdict

from experiments.tracking.names import ALIASES
from experiments.tracking.registry import RegisterError, register


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m experiments.register",
        description="Export a training run's policy, log it as an MLflow pyfunc, register "
        "it and set its alias.",
    )
    parser.add_argument("--run-id", required=True, help="the MLflow training run")
    parser.add_argument("--alias", choices=ALIASES, default="challenger")
    parser.add_argument(
        "--tracking-uri",
        default=None,
        help="default: MLFLOW_TRACKING_URI or the embedded store outputs/mlflow.db",
    )
    parser.add_argument(
        "--name", default=None, help="registered model name (default concede-<scenario>)"
    )
    parser.add_argument("--force", action="store_true", help="promote a 'worse' verdict")
    args = parser.parse_args(argv)
    try:
        done = register(
            args.run_id,
            tracking_uri=args.tracking_uri,
            alias=args.alias,
            name=args.name,
            force=args.force,
        )
    except RegisterError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    action = "exported and registered" if done.exported else "already registered"
    print(f"{done.name} version {done.version}: {action}; alias {done.alias} -> {done.model_uri}")
    print(json.dumps(asdict(done)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
