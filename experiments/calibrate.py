"""Fit a scenario to a shop's data: session tables and decision logs, by simulation.

Without ``--data``: the fit of ``default`` to the public Online Shoppers data (three
calibration parameters, see :mod:`experiments.calibration.fit`), written into the
scenario file's ``calibration`` block, or only checked. With ``--data``: any scenario,
any parameters, fitted to the shop's own session table and/or decision log
(:mod:`experiments.calibration.pipeline`), written as a new scenario file that states
only what changed, with a fit report beside it.

Usage::

    python -m experiments.calibrate                   # fit `default`, rewrite its YAML
    python -m experiments.calibrate --check           # only report the current fit
    python -m experiments.calibrate --data sessions.csv --data logs.parquet \\
        --start default --fit appeal,sensitivities --out my_shop.yaml \\
        --forecast never merchant_rules           # and what those would earn on it

The output ends with a verdict on trusting the fitted scenario for choosing a policy, and
its reasons (:mod:`experiments.calibration.trust`). ``--workers`` processes simulate the
fit's candidates (by default the cores available; the figures do not depend on it).

With ``--forecast``, each named policy runs on the fitted scenario and on bootstrap
replicate scenarios of the fit (:mod:`experiments.calibration.forecast`): its profit per
1,000 shoppers with a 95% interval of the fit's uncertainty and the simulation's noise, in
the output and the fit report.

Bad input (a missing column, a wrong type, an unknown parameter) exits with status 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from agents.baselines import RuleError
from agents.registry import UnknownPolicyError, build_policy
from envs.scenario import ScenarioError
from envs.scenario_files import load_scenario, scenario_dir
from experiments.calibration.fit import (
    fit,
    observed_rates,
    report,
    simulate_rates,
    write_calibration,
)
from experiments.calibration.forecast import (
    FORECAST_SCENARIOS,
    ForecastError,
    check_settings,
    forecast,
)
from experiments.calibration.inputs import InputError, load_shop_data
from experiments.calibration.parallel import default_workers
from experiments.calibration.parameters import ParameterError, resolve
from experiments.calibration.pipeline import calibrate
from experiments.calibration.report import write_report
from experiments.calibration.scenario_file import write_fitted
from experiments.calibration.sessions import SessionTableError


def _scenario_path(name: str) -> Path:
    path = Path(name)
    return path if path.suffix in (".yaml", ".yml") else scenario_dir() / f"{name}.yaml"


def legacy(args: argparse.Namespace) -> int:
    """The fit of a scenario's calibration block to the public session data."""
    path = _scenario_path(args.scenario)
    scenario = load_scenario(path)
    targets = observed_rates()
    if not args.check:
        calibration = fit(scenario, args.shoppers, args.seed)
        write_calibration(path, calibration)
        scenario = load_scenario(path)
        print(f"fitted and wrote {path}: {dataclasses.asdict(calibration)}")
    checked = report(scenario.name, simulate_rates(scenario, args.shoppers, args.seed + 1), targets)
    print(json.dumps(checked))
    return 0 if checked["within_tolerance"] else 1


def general(args: argparse.Namespace) -> int:
    """Fit ``--fit`` of ``--start`` to ``--data``; write ``--out`` and its report."""
    start_path = _scenario_path(args.start)
    start = load_scenario(start_path)
    params = resolve(args.fit, start)
    named = args.forecast or []
    if named:  # refuse bad names and settings before the fit, not after it
        check_settings(args.forecast_scenarios, args.forecast_shoppers)
        for policy in named:
            build_policy(policy, start)
    data, sources = load_shop_data(args.data, start, args.logger, args.exploration)
    out = Path(args.out)
    result = calibrate(
        start,
        data,
        params,
        name=out.stem,
        n_shoppers=args.shoppers,
        n_journeys=args.journeys,
        seed=args.seed,
        holdout=args.holdout,
        replicates=args.replicates,
        workers=args.workers,
    )
    write_fitted(out, start, start_path, result.fitted, result.params, sources)
    forecasts = (
        forecast(
            result,
            [build_policy(policy, result.fitted) for policy in named],
            args.forecast_shoppers,
            scenarios=args.forecast_scenarios,
        )
        if named
        else {}
    )
    page = Path(args.report) if args.report else out.with_suffix(".html")
    write_report(page, result, sources, forecasts)
    print(f"fitted {len(params)} parameter(s) of {start.name} in {result.seconds:.0f} s:")
    for p in result.params:
        print(f"  {p.name:<44} {p.text()}")
        if p.reason:
            print(f"  {'':<44} ({p.reason})")
    s = result.summary()
    for part in ("in_fit", "held_out"):
        if s[part]:
            print(
                f"  {part.replace('_', ' ')}: {s[part]['within_95']:.0%} of "
                f"{s[part]['targets']} targets within 95% (start {s[part]['within_95_start']:.0%})"
            )
    for line in result.verdict.lines():
        print(line)
    if forecasts:
        print(
            f"  profit per 1,000 shoppers on the fitted scenario, 95% forecast (the fit's "
            f"uncertainty over {args.forecast_scenarios} replicate scenarios and the "
            "simulation's noise):"
        )
    for f in forecasts.values():
        lo, hi = f.noise_interval
        print(
            f"  {f.policy:<44} €{f.estimate:,.0f} [{f.low:,.0f}, {f.high:,.0f}]"
            f"  (noise only [{lo:,.0f}, {hi:,.0f}])"
        )
    print(f"wrote {out} and {page}")
    s["forecast"] = {name: f.to_json() for name, f in forecasts.items()}
    print(json.dumps({**s, "out": str(out), "report": str(page)}, separators=(",", ":")))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenario", default="default", help="shipped name or YAML path")
    parser.add_argument("--shoppers", type=int, default=40_000, help="simulated shoppers per trial")
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument("--check", action="store_true", help="report the current fit only")
    shop = parser.add_argument_group("fit to a shop's data")
    shop.add_argument(
        "--data", action="append", help="a session table or a decision log (repeat for both)"
    )
    shop.add_argument("--start", default="default", help="scenario to start from: name or path")
    shop.add_argument("--fit", default="appeal", help="parameters and presets, comma-separated")
    shop.add_argument("--out", help="the fitted scenario's YAML path")
    shop.add_argument("--report", help="the fit report's HTML path (default: beside --out)")
    shop.add_argument("--journeys", type=int, default=20_000, help="simulated logged journeys")
    shop.add_argument("--holdout", type=float, default=0.2, help="share of journeys held out")
    shop.add_argument("--replicates", type=int, default=300, help="bootstrap replicates")
    shop.add_argument(
        "--workers",
        type=int,
        default=default_workers(),
        help="processes simulating the fit's candidates (the figures do not depend on it; "
        "default: the cores this process may use, at most 8)",
    )
    shop.add_argument("--logger", help="the log's logging policy, if its metadata lacks it")
    shop.add_argument("--exploration", help="the log's exploration, e.g. epsilon:0.3")
    shop.add_argument(
        "--forecast", nargs="+", metavar="POLICY", help="policies whose profit to forecast"
    )
    shop.add_argument(
        "--forecast-scenarios",
        type=int,
        default=FORECAST_SCENARIOS,
        help="replicate scenarios per forecast",
    )
    shop.add_argument(
        "--forecast-shoppers", type=int, default=20_000, help="simulated shoppers per forecast run"
    )
    args = parser.parse_args(argv)
    if not args.data:
        if args.forecast:
            parser.error("--forecast needs --data (it forecasts on the scenario fitted to it)")
        return legacy(args)
    if not args.out:
        parser.error("--data needs --out (the fitted scenario's YAML path)")
    if args.workers < 1:
        parser.error(f"--workers must be at least 1, got {args.workers}")
    try:
        return general(args)
    except (
        InputError,
        SessionTableError,
        ParameterError,
        ScenarioError,
        ForecastError,
        UnknownPolicyError,
        RuleError,
    ) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
