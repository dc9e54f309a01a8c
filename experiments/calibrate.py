"""Fit a scenario to real session logs: purchase rate per visit, overall and by visitor type.

The targets come from the Online Shoppers Purchasing Intention data shipped in
``experiments/calibration/data/`` (UCI 468, CC BY 4.0): the share of sessions that end in a
purchase, overall and for new and returning visitors. As in the data's
``VisitorType``, a returning visitor is one who has been to the shop before, in this
journey or an earlier one: every visit of an existing customer, and every visit after
the first of a new shopper.

With no concession offered, three calibration parameters of the scenario are fitted
by least squares on common random numbers (the same simulated shoppers at every
trial): the appeal offset of first-time shoppers, that of existing customers, and the
share of journeys by existing customers. The fit is written into the scenario file's
``calibration`` block; the cart-abandonment rate it implies is reported beside the
industry's figure (about 70%).

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
