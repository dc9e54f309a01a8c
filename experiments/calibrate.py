"""Fit a scenario to real session logs: purchase rate per visit, overall and by visitor type.

Three calibration parameters are fitted by least squares on common random numbers to the
public Online Shoppers Purchasing Intention data (see :mod:`experiments.calibration.fit`)
and written into the scenario file's ``calibration`` block.

Usage::

    python -m experiments.calibrate                   # fit `default`, rewrite its YAML
    python -m experiments.calibrate --check           # only report the current fit
    python -m experiments.calibrate --scenario path/to/shop.yaml --shoppers 60000
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from envs.scenario_files import load_scenario, scenario_dir
from experiments.calibration.fit import (
    fit,
    observed_rates,
    report,
    simulate_rates,
    write_calibration,
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenario", default="default", help="shipped name or YAML path")
    parser.add_argument("--shoppers", type=int, default=40_000, help="simulated shoppers per trial")
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument("--check", action="store_true", help="report the current fit only")
    args = parser.parse_args(argv)

    path = Path(args.scenario)
    if path.suffix not in (".yaml", ".yml"):
        path = scenario_dir() / f"{args.scenario}.yaml"
    scenario = load_scenario(path)
    targets = observed_rates()
    if not args.check:
        calibration = fit(scenario, targets, args.shoppers, args.seed)
        write_calibration(path, calibration)
        scenario = load_scenario(path)
        print(f"fitted and wrote {path}: {dataclasses.asdict(calibration)}")
    checked = report(scenario.name, simulate_rates(scenario, args.shoppers, args.seed + 1), targets)
    print(json.dumps(checked))
    return 0 if checked["within_tolerance"] else 1


if __name__ == "__main__":
    sys.exit(main())
