"""Benchmark of calibration: the default refit, and parameter recovery at scale.

``python -m experiments.bench calibrate`` runs:

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
   on the fitted scenario the ranking of ``never``, the best rule (``merchant_rules``), an
   always-offer baseline and, with ``--train-steps`` > 0, a MaskablePPO agent trained on
   the *fitted* scenario, is that of the true scenario, and each profit per 1,000
   shoppers lies in the true one's 95% interval.

It prints a table and, as its very last line, one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from agents.logs.simulate import Exploration
from agents.policy import Policy
from agents.registry import build_policy
from envs.scenario import Calibration, Scenario
from envs.scenario_files import load_scenario
from experiments.calibration.fit import DATA
from experiments.calibration.fitting import ShopData
from experiments.calibration.parameters import resolve
from experiments.calibration.pipeline import calibrate
from experiments.calibration.recovery import compare_policies, recover, truth
from experiments.calibration.sessions import online_shoppers_sessions

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


def trained_agent(scenario: Scenario, steps: int, seed: int) -> Policy:
    """MaskablePPO (the project's hyper-parameters) trained on ``scenario`` for ``steps``."""
    from sb3_contrib import MaskablePPO
    from stable_baselines3.common.vec_env import VecMonitor, VecNormalize

    from agents.learned import LearnedPolicy
    from agents.vec_env import ShopperVecEnv
    from experiments.benchmarks.train import _agent_hparams

    kwargs, n_envs = _agent_hparams()
    env = VecNormalize(
        VecMonitor(ShopperVecEnv(scenario, n_envs, seed=seed)),
        norm_obs=False,
        norm_reward=True,
        gamma=0.99,
        clip_reward=50.0,
    )
    model = MaskablePPO(env=env, seed=seed, device="cpu", **kwargs)
    model.learn(total_timesteps=steps)
    return LearnedPolicy(model, name="trained_agent")


def bench_calibrate(args: argparse.Namespace) -> dict[str, Any]:
    start = load_scenario("default")
    out: dict[str, Any] = {"benchmark": "calibrate", "settings": vars(args)}
    clock = time.perf_counter()
    if not args.skip_refit:
        out["default_refit"] = default_refit(args.shoppers, args.seed)
    logger = build_policy("never", start)
    cases = {}
    for name in args.cases:
        changes, preset = CASES[name]
        policies = [
            build_policy(n, start) for n in ("never", "merchant_rules", "always_free_shipping")
        ]
        report, result = recover(
            start,
            changes,
            preset,
            logger=logger,
            exploration=Exploration("epsilon", args.epsilon),
            n_sessions=args.sessions,
            n_logged=args.logged,
            n_shoppers=args.shoppers,
            n_journeys=args.logged,
            seed=args.seed,
            policies=policies,
            n_eval=args.eval_shoppers,
        )
        if args.train_steps > 0:
            agent = trained_agent(result.fitted, args.train_steps, args.seed)
            report["policies"] = compare_policies(
                truth(start, changes),
                result.fitted,
                start,
                [*policies, agent],
                args.eval_shoppers,
                args.seed + 11,
            )
        cases[name] = report
    out["recovery"] = cases
    out["seconds"] = round(time.perf_counter() - clock, 1)
    return out


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
            for n in pol["ranking_true"]:
                t, f = pol["profit_per_1000"]["true"][n], pol["profit_per_1000"]["fitted"][n]
                print(
                    f"  {n:<24} true €{t['estimate']:,.0f} [{t['low']:,.0f}, {t['high']:,.0f}]"
                    f"  fitted €{f['estimate']:,.0f}"
                    f"  {'inside' if pol['fitted_within_true_interval'][n] else 'OUTSIDE'}"
                )
            print(f"  same ranking: {pol['same_ranking']}")
    print(f"total {result['seconds']} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m experiments.bench calibrate", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--shoppers", type=int, default=40_000, help="simulated per trial")
    parser.add_argument("--sessions", type=int, default=20_000, help="journeys in the session data")
    parser.add_argument("--logged", type=int, default=20_000, help="journeys in the log data")
    parser.add_argument("--epsilon", type=float, default=0.5)
    parser.add_argument("--eval-shoppers", type=int, default=40_000)
    parser.add_argument("--train-steps", type=int, default=0, help="MaskablePPO on the fit")
    parser.add_argument("--cases", nargs="*", default=list(CASES), choices=list(CASES))
    parser.add_argument("--skip-refit", action="store_true")
    parser.add_argument("--seed", type=int, default=2024)
    args = parser.parse_args(argv)
    result = bench_calibrate(args)
    print_table(result)
    print(json.dumps(result, separators=(",", ":"), default=str), flush=True)
    return 0
