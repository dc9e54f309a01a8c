"""Benchmark of calibration: the default refit, and parameter recovery at scale.

``concede bench calibrate`` runs:

1. **default refit**: the general fit of the preset ``appeal`` to the public Online
   Shoppers data, started from a *neutral* calibration (appeals 0, share 0.5), against
   the values shipped in ``conf/scenario/default.yaml`` (target: each shipped value
   inside the refit's 95% interval);
2. **recovery cases**: data simulated from ``default`` with changed parameters — a session
   table of ``--sessions`` journeys and a decision log of ``--logged`` journeys from
   ``never`` with epsilon ``--epsilon`` exploration — fitted from ``default``:
   ``sensitivities`` (price x0.7, shipping x1.3, voucher x1.3) with the preset
   ``sensitivities``; ``shares`` (bargain hunters +10 points, loyal -10 points) with the
   preset ``shares``. Targets: every identified parameter's interval holds its true value;
   for ``never``, the best rule (``merchant_rules``), an always-offer baseline and, with
   ``--train-steps`` > 0, a MaskablePPO agent trained on the *fitted* scenario, the true
   scenario's profit per 1,000 shoppers lies inside the fitted scenario's forecast
   interval (the fit's uncertainty, from ``--forecast-scenarios`` bootstrap replicate
   scenarios, and the simulation's noise: :mod:`experiments.calibration.forecast`), and
   every pair of policies the true scenario tells apart is ordered the same way on the
   fitted one. Also reported: the rankings, and whether each fitted point estimate lies
   inside the true profit's interval of simulation noise alone (the narrow check).

With ``--coverage N`` it runs instead the fits alone (no refit, no policies) of each
case on ``N`` independent data sets, seeds ``--seed`` to ``--seed + N - 1``, and reports
per parameter how often its 95% interval holds the truth, the mean error of the fitted
value, and the root mean square of the error over the interval's half-width / 1.96 (about
1 when an interval is as wide as the fit's scatter across data sets; above 1, too narrow).
Split a long run into parts by ``--seed`` and read them together. ``--preset`` fits other
parameters than each case's own preset: ``--coverage 1 --cases sensitivities --preset
appeal,sensitivities,shares`` times one 12-parameter fit.

It prints a table and, as its very last line, one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from agents.exploration import Exploration
from agents.policy import Policy
from agents.registry import build_policy
from envs.scenario import Calibration, Scenario
from envs.scenario_files import load_scenario
from experiments.benchmarks.fit_policies import print_policies, trained_agent
from experiments.benchmarks.zoo import (
    bench_zoo,
    bench_zoo_agents,
    print_agent_totals,
    print_totals,
    zoo_fits,
)
from experiments.calibration import FORECAST_SCENARIOS
from experiments.calibration.objective import ShopData
from experiments.calibration.parameters import resolve
from experiments.calibration.pipeline import CalibrationResult, calibrate
from experiments.calibration.public_data import DATA
from experiments.calibration.recovery import EVAL_SEED_OFFSET, compare_policies, recover, truth
from experiments.calibration.sessions import online_shoppers_sessions

ZOO_TRAIN_STEPS = 1_500_000

CASES: dict[str, tuple[dict[str, float], str]] = {
    "sensitivities": (
        {
            "segments[*].price_sensitivity": 0.7,
            "segments[*].shipping_sensitivity": 1.3,
            "segments[*].voucher_sensitivity": 1.3,
        },
        "sensitivities",
    ),
    "shares": (
        {"segments[bargain_hunter].share": 0.35, "segments[loyal].share": 0.10},
        "shares",
    ),
}


def default_refit(n_shoppers: int, seed: int) -> dict[str, Any]:
    shipped = load_scenario("default")
    neutral = shipped.replace(calibration=Calibration())
    sessions = online_shoppers_sessions(DATA / "online_shoppers_intention.csv")
    result = calibrate(
        neutral,
        ShopData(sessions=sessions),
        resolve("appeal", neutral),
        n_shoppers=n_shoppers,
        seed=seed,
        holdout=0.0,
    )
    rows = {}
    for p in result.params:
        value = float(getattr(shipped.calibration, p.name.split(".")[1]))
        rows[p.name] = {
            "shipped": value,
            "refit": p.value,
            "low": p.low,
            "high": p.high,
            "covered": p.low <= value <= p.high,
        }
    return {
        "parameters": rows,
        "seconds": round(result.seconds, 1),
        "fit": result.summary()["in_fit"],
    }


def recover_case(
    args: argparse.Namespace,
    start: Scenario,
    name: str,
    seed: int,
    policies: Sequence[Policy] = (),
) -> tuple[dict[str, Any], CalibrationResult]:
    """The recovery of case ``name`` on the data of ``seed``, sized by ``args``: data
    logged by ``never`` with epsilon exploration, and ``policies`` compared on the fit."""
    changes, preset = CASES[name]
    preset = getattr(args, "preset", None) or preset
    return recover(
        start,
        changes,
        preset,
        logger=build_policy("never", start),
        exploration=Exploration("epsilon", args.epsilon),
        n_sessions=args.sessions,
        n_logged=args.logged,
        n_shoppers=args.shoppers,
        n_journeys=args.logged,
        seed=seed,
        policies=policies,
        n_eval=args.eval_shoppers,
        forecast_scenarios=args.forecast_scenarios,
        workers=getattr(args, "workers", 1),
    )


def bench_calibrate(args: argparse.Namespace) -> dict[str, Any]:
    start = load_scenario("default")
    out: dict[str, Any] = {"benchmark": "calibrate", "settings": vars(args)}
    clock = time.perf_counter()
    if not args.skip_refit:
        out["default_refit"] = default_refit(args.shoppers, args.seed)
    cases = {}
    for name in args.cases:
        changes = CASES[name][0]
        policies = [
            build_policy(n, start) for n in ("never", "merchant_rules", "always_free_shipping")
        ]
        # with an agent, the policies are compared once it is trained on the fit
        report, result = recover_case(
            args, start, name, args.seed, policies if args.train_steps <= 0 else ()
        )
        if args.train_steps > 0:
            agent = trained_agent(result.fitted, args.train_steps, args.seed)
            report["policies"] = compare_policies(
                truth(start, changes),
                result,
                [*policies, agent],
                args.eval_shoppers,
                args.seed + EVAL_SEED_OFFSET,
                args.forecast_scenarios,
            )
        cases[name] = report
    out["recovery"] = cases
    out["seconds"] = round(time.perf_counter() - clock, 1)
    return out


def coverage_over_seeds(args: argparse.Namespace) -> dict[str, Any]:
    """The fits of each case on ``args.coverage`` data sets (see the module docstring)."""
    start = load_scenario("default")
    out: dict[str, Any] = {"benchmark": "calibrate", "settings": vars(args), "coverage": {}}
    clock = time.perf_counter()
    for name in args.cases:
        seeds: dict[str, Any] = {}
        for seed in range(args.seed, args.seed + args.coverage):
            report, _ = recover_case(args, start, name, seed)
            seeds[str(seed)] = report["parameters"]
            print(f"  {name}, seed {seed}: {report['fit_seconds']} s", flush=True)
        out["coverage"][name] = {"seeds": seeds, "parameters": coverage_summary(seeds)}
    out["seconds"] = round(time.perf_counter() - clock, 1)
    return out


def coverage_summary(seeds: dict[str, dict[str, dict[str, Any]]]) -> dict[str, Any]:
    """Per parameter, over the seeds where the fit identified it: how many intervals hold
    the truth, the mean error, and the RMS of the error in units of the interval's
    half-width / 1.96."""
    summary: dict[str, Any] = {}
    for name in next(iter(seeds.values())):
        rows = [s[name] for s in seeds.values() if s[name]["identified"]]
        errors = np.array([r["fitted"] - r["true"] for r in rows])
        widths = np.array([(r["high"] - r["low"]) / (2 * 1.96) for r in rows])
        summary[name] = {
            "identified": len(rows),
            "covered": sum(r["covered"] for r in rows),
            "mean_error": float(errors.mean()) if rows else None,
            "rms_z": float(np.sqrt(np.mean((errors / widths) ** 2))) if rows else None,
        }
    return summary


def print_coverage(result: dict[str, Any]) -> None:
    for case, rep in result["coverage"].items():
        n = len(rep["seeds"])
        print(f"coverage of '{case}' over {n} data sets (seeds {', '.join(rep['seeds'])}):")
        for name, p in rep["parameters"].items():
            if not p["identified"]:
                print(f"  {name:<42} never identified")
                continue
            print(
                f"  {name:<42} truth inside {p['covered']} of {p['identified']} identified;"
                f" mean error {p['mean_error']:+.3f}; RMS error / (half-width / 1.96)"
                f" {p['rms_z']:.2f}"
            )
    print(f"total {result['seconds']} s")


def print_table(result: dict[str, Any]) -> None:
    if "default_refit" in result:
        r = result["default_refit"]
        print(f"default refit from a neutral start ({r['seconds']} s):")
        for name, p in r["parameters"].items():
            print(
                f"  {name:<42} refit {p['refit']:8.4f} [{p['low']:.4f}, {p['high']:.4f}]"
                f"  shipped {p['shipped']:8.4f}  {'inside' if p['covered'] else 'OUTSIDE'}"
            )
    for case, rep in result["recovery"].items():
        seconds, evaluations = rep["fit_seconds"], rep["evaluations"]
        print(f"recovery '{case}' ({seconds} s, {evaluations} evaluations of the objective):")
        chi = rep["chi_square"]
        print(f"  chi-square at the fit {chi['fitted']:.1f}, at the truth {chi['true']:.1f}")
        for stage, ended in rep["optimiser"].items():
            print(f"  {stage}: {ended['message']}")
        for name, p in rep["parameters"].items():
            state = "covered" if p["covered"] else "MISSED"
            if not p["identified"]:
                state = "not identified (left at start)"
            print(
                f"  {name:<42} true {p['true']:.3f} fitted {p['fitted']:.3f} "
                f"[{p['low']:.3f}, {p['high']:.3f}] {state}"
            )
            if p.get("reason"):
                print(f"    {p['reason']}")
        pol = rep.get("policies")
        if pol:
            print_policies(pol)
    print(f"total {result['seconds']} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="concede bench calibrate", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--shoppers", type=int, default=40_000, help="simulated per trial")
    parser.add_argument("--sessions", type=int, default=20_000, help="journeys in the session data")
    parser.add_argument("--logged", type=int, default=20_000, help="journeys in the log data")
    parser.add_argument("--epsilon", type=float, default=0.5)
    parser.add_argument("--eval-shoppers", type=int, default=40_000)
    parser.add_argument("--train-steps", type=int, default=0, help="MaskablePPO on the fit")
    parser.add_argument(
        "--forecast-scenarios",
        type=int,
        default=FORECAST_SCENARIOS,
        help="bootstrap replicate scenarios behind each profit's forecast interval",
    )
    parser.add_argument("--cases", nargs="*", default=list(CASES), choices=list(CASES))
    parser.add_argument("--skip-refit", action="store_true")
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument(
        "--coverage",
        type=int,
        default=0,
        metavar="N",
        help="only the fits, on N data sets (seeds --seed on): how often intervals hold the truth",
    )
    zoo = parser.add_argument_group("a zoo of unseen shops (experiments.benchmarks.zoo)")
    zoo.add_argument("--zoo", type=int, default=0, metavar="N", help="fit N random shops")
    zoo.add_argument("--zoo-seed", type=int, default=0, help="the seed that draws the shops")
    zoo.add_argument(
        "--zoo-first", type=int, default=0, help="skip the first shops (split a long run)"
    )
    zoo.add_argument("--zoo-preset", default="wide", help="the parameters fitted to each shop")
    zoo.add_argument(
        "--zoo-train-steps",
        type=int,
        default=ZOO_TRAIN_STEPS,
        help="MaskablePPO steps on the fit and on the truth (0: no agents)",
    )
    zoo.add_argument(
        "--zoo-agents-of",
        type=Path,
        default=None,
        metavar="LOG",
        help="train and compare the agents alone, on the fits of this finished zoo run's log",
    )
    parser.add_argument("--replicates", type=int, default=200, help="bootstrap replicates")
    parser.add_argument(
        "--workers", type=int, default=2, help="processes simulating a fit's candidates"
    )
    parser.add_argument(
        "--preset",
        default=None,
        help="fit these parameters instead of each case's preset, e.g. "
        "appeal,sensitivities,shares (12 parameters on default)",
    )
    args = parser.parse_args(argv)
    if args.preset:
        try:
            resolve(args.preset, load_scenario("default"))
        except (KeyError, ValueError) as exc:
            parser.error(f"--preset {args.preset!r}: {exc}")
    if args.forecast_scenarios < 2:
        parser.error("--forecast-scenarios must be at least 2 (the fit's spread needs two)")
    if args.coverage < 0:
        parser.error(f"--coverage must be 0 or more, got {args.coverage}")
    if args.coverage and args.train_steps > 0:
        parser.error("--coverage runs the fits alone: no agent is trained, drop --train-steps")
    if args.zoo < 0 or not 0 <= args.zoo_first < max(args.zoo, 1):
        parser.error(f"--zoo must be 0 or more and --zoo-first below it, got {args.zoo}")
    if args.workers < 1 or args.replicates < 2:
        parser.error("--workers must be at least 1 and --replicates at least 2")
    if args.zoo_agents_of is not None:
        if args.zoo or args.coverage or args.zoo_train_steps <= 0:
            parser.error(
                "--zoo-agents-of trains agents alone: drop --zoo and --coverage, "
                "and give --zoo-train-steps above 0"
            )
        try:
            run, fits = zoo_fits(args.zoo_agents_of)
        except ValueError as exc:
            parser.error(f"--zoo-agents-of: {exc}")
        result = bench_zoo_agents(args, run, fits)
        print(f"agents on the fits of {args.zoo_agents_of}, {result['seconds']} s:")
        print_agent_totals(result["totals"])
    elif args.zoo:
        try:
            resolve(args.zoo_preset, load_scenario("default"))
        except (KeyError, ValueError) as exc:
            parser.error(f"--zoo-preset {args.zoo_preset!r}: {exc}")
        result = bench_zoo(args)
        print_totals(result)
    elif args.coverage:
        result = coverage_over_seeds(args)
        print_coverage(result)
    else:
        result = bench_calibrate(args)
        print_table(result)
    print(json.dumps(result, separators=(",", ":"), default=str), flush=True)
    return 0
