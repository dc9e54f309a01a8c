"""Benchmark of the evaluation: 100,000 shoppers x 5 baselines, the oracle and the informed bound.

``bench_evaluate()`` times, on one scenario and the same shoppers, the five baselines of
:data:`BASELINES` run one after the other (target: all five in under
:data:`TARGET_BASELINES_S` seconds on 2 cores), then the oracle with those baselines as its
extra candidates (target: under :data:`TARGET_ORACLE_S` seconds), and one ``never`` run
as the reference of what one policy run costs. Then the informed bound, with the same
candidates, on the first ``informed_shoppers`` (20,000) of those shoppers (target: under
:data:`TARGET_INFORMED_S` seconds). ``concede bench evaluate``
prints a table and, as its very last line, the figures as one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from typing import Any

from rich.console import Console
from rich.table import Table

from agents.oracle import Oracle
from agents.registry import build_policies
from agents.rollout import run_policy
from envs.scenario_files import load_scenario

BASELINES = ("never", "always_percent_discount", "always_retargeting", "merchant_rules", "boulware")
TARGET_BASELINES_S = 60.0
TARGET_ORACLE_S = 60.0
TARGET_INFORMED_S = 60.0


def bench_evaluate(
    n_shoppers: int = 100_000,
    scenario: str = "default",
    seed: int = 0,
    cohort_size: int = 10_000,
    oracle_workers: int = 2,
    informed_shoppers: int = 20_000,
) -> dict[str, Any]:
    """Wall seconds of the five baselines and of the oracle on ``n_shoppers`` shoppers, and
    of the informed bound on ``informed_shoppers`` (0: not run)."""
    market = load_scenario(scenario)
    policies = build_policies([*BASELINES, "oracle"], market, oracle_workers=oracle_workers)
    seconds: dict[str, float] = {}
    profit: dict[str, float] = {}
    for policy in policies:
        start = time.perf_counter()
        out = run_policy(market, policy, n_shoppers, seed, cohort_size)
        seconds[policy.name] = time.perf_counter() - start
        profit[policy.name] = float(out.profit.mean())
        if isinstance(policy, Oracle):
            policy.close()
            plans = len(policy.plans)
    baselines_s = sum(v for k, v in seconds.items() if k != "oracle")
    informed_s = None
    if informed_shoppers:
        informed = build_policies([*BASELINES, "informed"], market)[-1]
        start = time.perf_counter()
        out = run_policy(market, informed, informed_shoppers, seed, cohort_size)
        informed_s = time.perf_counter() - start
        profit["informed"] = float(out.profit.mean())
    return {
        "benchmark": "evaluate",
        "scenario": scenario,
        "n_shoppers": n_shoppers,
        "cohort_size": cohort_size,
        "cpus": os.cpu_count(),
        "oracle_workers": oracle_workers,
        "oracle_plans": plans,
        "seconds": seconds,
        "baselines_s": baselines_s,
        "oracle_s": seconds["oracle"],
        "oracle_vs_one_run": seconds["oracle"] / seconds["never"],
        "target_baselines_s": TARGET_BASELINES_S,
        "target_oracle_s": TARGET_ORACLE_S,
        "baselines_ok": baselines_s < TARGET_BASELINES_S,
        "oracle_ok": seconds["oracle"] < TARGET_ORACLE_S,
        "informed_shoppers": informed_shoppers,
        "informed_s": informed_s,
        "target_informed_s": TARGET_INFORMED_S,
        "informed_ok": informed_s is not None and informed_s < TARGET_INFORMED_S,
        "profit_per_shopper": profit,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="concede bench evaluate", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--n-shoppers", type=int, default=100_000)
    parser.add_argument("--quick", action="store_true", help="20,000 shoppers, a smoke run")
    parser.add_argument("--scenario", default="default")
    parser.add_argument("--oracle-workers", type=int, default=2)
    parser.add_argument(
        "--informed-shoppers",
        type=int,
        default=20_000,
        help="shoppers the informed bound is timed on (0: skip it)",
    )
    args = parser.parse_args(argv)
    if args.informed_shoppers < 0:
        parser.error(f"--informed-shoppers must be >= 0, got {args.informed_shoppers}")
    n_shoppers = 20_000 if args.quick else args.n_shoppers
    informed = min(args.informed_shoppers, n_shoppers)
    result = bench_evaluate(
        n_shoppers, args.scenario, oracle_workers=args.oracle_workers, informed_shoppers=informed
    )
    print_table(result)
    print(json.dumps(result, separators=(",", ":")), flush=True)
    return 0


def print_table(result: dict[str, Any]) -> None:
    """The figures of :func:`bench_evaluate` as a table."""
    table = Table(
        title=f"evaluate: {result['n_shoppers']:,} shoppers on {result['scenario']}",
        title_justify="left",
    )
    for col in ("run", "wall s", "profit / shopper EUR"):
        table.add_column(col, justify="left" if col == "run" else "right")
    for name, s in result["seconds"].items():
        table.add_row(name, f"{s:.1f}", f"{result['profit_per_shopper'][name]:.2f}")
    table.add_row(
        "5 baselines", f"{result['baselines_s']:.1f}", f"target < {TARGET_BASELINES_S:.0f} s"
    )
    if result["informed_s"] is not None:
        table.add_row(
            f"informed bound, {result['informed_shoppers']:,} shoppers",
            f"{result['informed_s']:.1f}",
            f"{result['profit_per_shopper']['informed']:.2f} (target < {TARGET_INFORMED_S:.0f} s)",
        )
    Console().print(table)
