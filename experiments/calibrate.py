"""Fit a scenario to a shop's data: session tables and decision logs, by simulation.

``concede calibrate``. Without ``data``: the fit of ``default`` to the public Online
Shoppers data (three calibration parameters, see :mod:`experiments.calibration.public_data`),
written into the scenario file's ``calibration`` block, or only checked. With ``data``: any
scenario, any parameters, fitted to the shop's own session table and/or decision log
(:mod:`experiments.calibration.pipeline`), written as a new scenario file that states
only what changed, with a fit report beside it.

Usage (Hydra overrides, every option in ``conf/calibrate.yaml`` and
:class:`~experiments.config.app_schemas.CalibrateConfig`)::

    concede calibrate                      # fit `default`, rewrite its YAML
    concede calibrate check=true           # only report the current fit
    concede calibrate data=[sessions.csv,logs.parquet] start=default \\
        fit=[appeal,sensitivities] out=my_shop.yaml \\
        'forecast=[never,merchant_rules]'  # and what those would earn on it

The output ends with a verdict on trusting the fitted scenario for choosing a policy, and
its reasons (:mod:`experiments.calibration.trust`). ``workers`` processes simulate the
fit's candidates (by default the cores available; the figures do not depend on it).

With ``forecast``, each named policy runs on the fitted scenario and on bootstrap
replicate scenarios of the fit (:mod:`experiments.calibration.forecast`): its profit per
1,000 shoppers with a 95% interval of the fit's uncertainty and the simulation's noise, in
the output and the fit report.

Bad input (a missing column, a wrong type, an unknown parameter) exits with status 2.
"""

from __future__ import annotations

import os

from experiments.config.cpu_kernels import CPU_KERNELS

# first, before torch or numpy loads: the same kernels, so the same figures, on any x86-64
# CPU (experiments/config/cpu_kernels.py says why and what it costs)
os.environ.update(CPU_KERNELS)

import dataclasses
import json
from pathlib import Path

import hydra
from omegaconf import DictConfig

from agents.policy import PolicySpecError
from agents.registry import build_policy
from envs.scenario import ScenarioError
from envs.scenario_files import load_scenario, scenario_dir
from experiments.calibration.forecast import ForecastError, check_settings, forecast
from experiments.calibration.inputs import InputError, load_shop_data
from experiments.calibration.parallel import default_workers
from experiments.calibration.parameters import ParameterError, resolve
from experiments.calibration.pipeline import calibrate
from experiments.calibration.public_data import (
    fit,
    observed_rates,
    report,
    simulate_rates,
    write_calibration,
)
from experiments.calibration.report import write_report
from experiments.calibration.scenario_file import write_fitted
from experiments.calibration.sessions import SessionTableError
from experiments.config import CONFIG_PATH
from experiments.config.app_schemas import CalibrateConfig, store_schemas
from experiments.config.trusted import TRUSTED_TARGETS
from experiments.config.typed_app import fail, options_of


def _scenario_path(name: str) -> Path:
    path = Path(name)
    return path if path.suffix in (".yaml", ".yml") else scenario_dir() / f"{name}.yaml"


def public_fit(args: CalibrateConfig) -> int:
    """The fit of a scenario's calibration block to the public session data."""
    path = _scenario_path(args.start)
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


def shop_fit(args: CalibrateConfig) -> int:
    """Fit ``fit`` of ``start`` to ``data``; write ``out`` and its report."""
    start_path = _scenario_path(args.start)
    start = load_scenario(start_path)
    params = resolve(args.fit, start)
    named = args.forecast or []
    if named:  # refuse bad names and settings before the fit, not after it
        check_settings(args.forecast_scenarios, args.forecast_shoppers)
        for policy in named:
            build_policy(policy, start)
    data, sources = load_shop_data(args.data, start, args.logger, args.exploration)
    out = Path(str(args.out))
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
        workers=args.workers or default_workers(),
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


store_schemas()


@hydra.main(config_path=CONFIG_PATH, config_name="calibrate", execution_whitelist=TRUSTED_TARGETS)
def main(cfg: DictConfig) -> None:
    args = options_of(cfg, CalibrateConfig)
    try:
        status = shop_fit(args) if args.data else public_fit(args)
    except (
        InputError,
        SessionTableError,
        ParameterError,
        ScenarioError,
        ForecastError,
        PolicySpecError,
    ) as err:
        fail(str(err))
    raise SystemExit(status)


if __name__ == "__main__":
    main()
