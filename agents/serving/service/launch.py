"""Start the decision service: uvicorn with ``workers`` processes, each its own app.

:func:`serve` puts the settings and a fresh ``PROMETHEUS_MULTIPROC_DIR`` in the
environment and runs uvicorn (uvloop, httptools) on the app factory
``agents.serving.service.app:create_app``. uvicorn stops on SIGTERM or SIGINT: every
worker stops taking requests, answers those under way (at most ``graceful_seconds``),
then writes every queued log row before it exits.

:func:`main` is the command line of ``concede serve``.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import tempfile
from pathlib import Path

import uvicorn

from agents.exploration import EPSILON, KINDS
from agents.serving.runtime import PolicyLoadError, PolicyRuntime
from agents.serving.service.settings import ENV_VAR, ServiceSettings
from agents.trained import policy_folder

APP = "agents.serving.service.app:create_app"


def serve(
    settings: ServiceSettings,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: int = 2,
    graceful_seconds: float = 30.0,
    log_level: str = "warning",
) -> None:
    """Run the service until SIGTERM/SIGINT (blocks)."""
    Path(settings.log_dir).mkdir(parents=True, exist_ok=True)
    metrics_dir = Path(tempfile.mkdtemp(prefix="concede-metrics-"))
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    os.environ[ENV_VAR] = settings.to_json()
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(name)s %(message)s")
    try:
        uvicorn.run(
            APP,
            factory=True,
            host=host,
            port=port,
            workers=workers,
            loop="uvloop",
            http="httptools",
            log_level=log_level,
            access_log=False,
            timeout_graceful_shutdown=int(graceful_seconds),
            backlog=4096,
        )
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="concede serve",
        description="The decision service: decide, explore, log, take rewards.",
        epilog="example: concede serve --policy models:/concede-default@champion "
        "--logs journal/ --port 8000 --workers 2",
    )
    p.add_argument(
        "--policy",
        required=True,
        help="a policy directory, run:<MLflow run id> or models:/<name>@<alias> (the MLflow "
        "store in MLFLOW_TRACKING_URI)",
    )
    p.add_argument("--logs", required=True, help="folder of the decision and reward journals")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--workers", type=int, default=2, help="processes (one per core)")
    p.add_argument("--exploration", choices=KINDS, default=EPSILON)
    p.add_argument(
        "--explore", type=float, default=0.05, help="epsilon share, or softmax temperature"
    )
    p.add_argument(
        "--explore-at",
        action="append",
        default=[],
        metavar="FEATURE",
        help="explore only events where this binary feature is 1 (repeat: any of them), "
        "e.g. --explore-at exit_intent --explore-at away; elsewhere the policy's decision",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-offers-per-shopper", type=int, default=None)
    p.add_argument("--disable", action="append", default=[], help="a concession never offered")
    p.add_argument("--max-body-bytes", type=int, default=1_000_000)
    p.add_argument("--max-events", type=int, default=10_000)
    p.add_argument("--rows-per-file", type=int, default=100_000)
    p.add_argument("--flush-seconds", type=float, default=10.0)
    p.add_argument("--queue-rows", type=int, default=1_000_000)
    p.add_argument("--graceful-seconds", type=float, default=30.0)
    p.add_argument("--log-level", default="warning")
    return p


def main(argv: list[str] | None = None, *, tracking_uri: str | None = None) -> int:
    """Start the service as ``argv`` says; ``run:`` and ``models:/`` policies come from the
    MLflow store ``tracking_uri`` (else ``MLFLOW_TRACKING_URI``). Returns the exit status."""
    args = parser().parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="concede-policy-") as tmp:
        try:
            settings = ServiceSettings(
                policy=str(policy_folder(args.policy, Path(tmp), tracking_uri)),
                log_dir=str(Path(args.logs).resolve()),
                exploration=args.exploration,
                exploration_value=args.explore,
                explore_at=tuple(args.explore_at),
                seed=args.seed,
                max_offers_per_shopper=args.max_offers_per_shopper,
                disabled=tuple(args.disable),
                max_body_bytes=args.max_body_bytes,
                max_events=args.max_events,
                rows_per_file=args.rows_per_file,
                flush_seconds=args.flush_seconds,
                queue_rows=args.queue_rows,
            )
            # load once here, so that a bad policy or moment fails now with its message
            runtime = PolicyRuntime.load(
                settings.policy,
                max_offers_per_shopper=settings.max_offers_per_shopper,
                disabled=settings.disabled,
            )
            settings.explorer().columns(runtime.feature_names)
        except (ValueError, PolicyLoadError) as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        serve(
            settings,
            host=args.host,
            port=args.port,
            workers=args.workers,
            graceful_seconds=args.graceful_seconds,
            log_level=args.log_level,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
