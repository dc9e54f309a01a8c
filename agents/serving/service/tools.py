"""The ``join`` command: the service's journals as a decision log folder."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict

from agents.serving.service.join import JoinError, write_service_log


def join_main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="concede serve join",
        description="Join the service's decision and reward journals into a decision log.",
        epilog="example: concede serve join --logs journal/ --out logs/sale_day",
    )
    p.add_argument("--logs", required=True, help="the service's --logs folder")
    p.add_argument("--out", required=True, help="the decision log folder to write")
    p.add_argument(
        "--reward-window",
        type=float,
        default=86_400.0,
        help="seconds after a journey's last decision without an end: abandoned",
    )
    args = p.parse_args(argv)
    try:
        path, report = write_service_log(args.logs, args.out, reward_window=args.reward_window)
    except (JoinError, ValueError) as err:
        print(f"error: {err}")
        return 2
    print(json.dumps({"log": str(path), **asdict(report)}))
    return 0
