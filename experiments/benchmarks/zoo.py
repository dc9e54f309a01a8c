"""The fit on a zoo of unseen shops: does the loop hold on a shop concede was not built from?

``concede bench calibrate --zoo N`` draws ``N`` random shops
(:mod:`experiments.calibration.zoo`, seed ``--zoo-seed``): other segments, valuations,
hesitation, hazards, returns, sensitivities and appeal, their own catalogue and
economics. For each shop, as a real shop would:

1. **data**: a session table of ``--sessions`` journeys and a decision log of ``--logged``
   journeys written by ``merchant_rules`` with epsilon ``--epsilon`` exploration, simulated
   from the shop (the *truth*) on seeds the fit never uses;
2. **fit**: the preset ``--zoo-preset`` (``wide``) of the start that has the shop's
   economics and catalogue and ``default``'s shoppers (:func:`.zoo.start_for`), with
   ``--workers`` processes, ``--shoppers`` simulated sessions and half as many simulated
   logged journeys per candidate; 20% of the journeys held out;
3. **policies**: ``never``, ``merchant_rules``, the best ``always_*`` on the truth, and a
   MaskablePPO agent trained on the *fitted* scenario (``--zoo-train-steps``), each run on
   the truth and forecast on the fit (:func:`.recovery.compare_policies`: the truth inside
   the forecast interval; every pair of policies the truth tells apart in the same order);
4. **agents**: the agent trained on the fit against an agent trained on the *truth* (same
   budget and seed) and against the best rule, all on the true shop's shoppers.

``--zoo-agents-of LOG`` runs step 4 alone on the fits of a finished zoo run (its log, whose
last line is the run's JSON result, or that JSON alone): each shop's fitted scenario is
rebuilt from the start and the fitted values, the shops, preset, seed and evaluation
shoppers are the run's, the training budget ``--zoo-train-steps``. A long run can so
measure its fits first and its agents after.

Per shop it reports the held-out targets within their 95% intervals (and, for reference,
the share the true scenario itself reaches on the same journeys and simulated shoppers:
with about 50 targets the share is a noisy count, and the truth misses some), each
policy's true profit against its forecast, the ranking, the agents, the trust verdict
and the time of the fit; then the totals against the targets:

- held-out targets within 95%: at least :data:`HELD_OUT_TARGET` per shop;
- true profits inside their forecast intervals: at least :data:`FORECAST_TARGET` of the
  shop x policy pairs;
- the ranking right for every pair the truth separates, on every shop;
- the agent trained on the fit at least the best rule minus the paired 95% interval of
  their difference, and at least :data:`AGENT_SHARE` of what the agent trained on the
  truth earns over ``never``;
- one fit at most :data:`FIT_SECONDS` seconds.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from agents.exploration import Exploration
from agents.logs.simulate import simulate_logs
from agents.policy import Policy
from agents.registry import build_policy
from envs.scenario import Scenario
from envs.scenario_files import load_scenario
from experiments.benchmarks.fit_policies import print_policies, trained_agent
from experiments.calibration.objective import LogData, ShopData
from experiments.calibration.parameters import apply, resolve
from experiments.calibration.pipeline import calibrate
from experiments.calibration.recovery import (
    DATA_SEED_OFFSET,
    EVAL_SEED_OFFSET,
    compare_policies,
    policy_profits,
)
from experiments.calibration.sessions import simulate_sessions
from experiments.calibration.zoo import distance, start_for, zoo
from experiments.evaluation.kpis import paired_interval

HELD_OUT_TARGET = 0.90
FORECAST_TARGET = 0.90
AGENT_SHARE = 0.90
FIT_SECONDS = 300.0
LOGGER = "merchant_rules"


def shop_data(truth: Scenario, args: argparse.Namespace, seed: int) -> ShopData:
    """The shop's session table and randomised-offer log, simulated from the truth."""
    logger = build_policy(LOGGER, truth)
    exploration = Exploration("epsilon", args.epsilon)
    return ShopData(
        sessions=simulate_sessions(truth, args.sessions, seed),
        logs=LogData(
            simulate_logs(truth, logger, args.logged, seed + 1, exploration), logger, exploration
        ),
    )


def fitted_name(truth: Scenario) -> str:
    """The name of the scenario fitted to a zoo shop, in a run and rebuilt from its log."""
    return f"{truth.name}_fitted"


def rules_on(truth: Scenario, n_shoppers: int, seed: int) -> list[Policy]:
    """The rules every shop is compared on: ``never``, the logger's and the best
    ``always_*`` (:func:`best_always`)."""
    return [
        build_policy("never", truth),
        build_policy(LOGGER, truth),
        best_always(truth, n_shoppers, seed),
    ]


def best_always(truth: Scenario, n_shoppers: int, seed: int) -> Policy:
    """The ``always_*`` baseline that earns most on the truth."""
    names = [f"always_{c.name}" for c in truth.concessions]
    policies = [build_policy(n, truth) for n in names]
    profits, _ = policy_profits({"true": truth}, policies, n_shoppers, seed)
    best = max(names, key=lambda n: profits["true"][n]["estimate"])
    return policies[names.index(best)]


def agents_on_truth(
    truth: Scenario,
    rules: list[Policy],
    on_fit: Policy,
    on_truth: Policy,
    n_shoppers: int,
    seed: int,
) -> dict[str, Any]:
    """The agent trained on the fit against the best rule and the agent trained on the
    truth, every policy on the same true shoppers."""
    _, raw = policy_profits({"true": truth}, [*rules, on_fit, on_truth], n_shoppers, seed)
    profits = {n: 1000.0 * float(np.mean(v)) for n, v in raw["true"].items()}
    best_rule = max((p.name for p in rules), key=lambda n: profits[n])
    versus_rule = paired_interval(raw["true"][on_fit.name], raw["true"][best_rule])
    gain_fit = profits[on_fit.name] - profits["never"]
    gain_truth = profits[on_truth.name] - profits["never"]
    share = gain_fit / gain_truth if gain_truth > 0 else float("nan")
    return {
        "profit_per_1000": profits,
        "best_rule": best_rule,
        "fit_minus_best_rule": [1000.0 * v for v in (versus_rule.estimate, versus_rule.low)]
        + [1000.0 * versus_rule.high],
        "at_least_best_rule": bool(versus_rule.high >= 0.0),
        "gain_over_never": {"on_fit": gain_fit, "on_truth": gain_truth},
        "share_of_truth_agent": share,
        # without a gain of the truth's agent over never there is no share to measure
        "share_met": bool(share >= AGENT_SHARE) if gain_truth > 0 else None,
    }


def one_shop(truth: Scenario, reference: Scenario, args: argparse.Namespace) -> dict[str, Any]:
    """Every figure of the module docstring for one zoo shop."""
    seed = args.seed
    start = start_for(truth, reference)
    data = shop_data(truth, args, seed + DATA_SEED_OFFSET)
    result = calibrate(
        start,
        data,
        resolve(args.zoo_preset, start),
        name=fitted_name(truth),
        n_shoppers=args.shoppers,
        n_journeys=args.shoppers // 2,  # simulated logged journeys: half the shoppers
        seed=seed,
        replicates=args.replicates,
        workers=args.workers,
    )
    summary = result.summary()
    eval_seed = seed + EVAL_SEED_OFFSET
    rules = rules_on(truth, args.eval_shoppers, eval_seed)
    out: dict[str, Any] = {
        "shop": truth.name,
        "segments": len(truth.segments),
        "distance": {k: round(v, 3) for k, v in distance(truth, reference).items()},
        "fit_seconds": round(result.seconds, 1),
        "evaluations": result.evaluations,
        "held_out": summary["held_out"],
        "held_out_truth": result.held_out_agreement(truth),
        "in_fit": summary["in_fit"],
        "trust": summary["trust"],
        "optimiser": summary["optimiser"],
        "parameters": summary["parameters"],
    }
    policies = list(rules)
    if args.zoo_train_steps > 0:
        on_fit, figures = trained_agents(
            truth, result.fitted, rules, args.zoo_train_steps, args.eval_shoppers, seed
        )
        out.update(figures)
        policies.append(on_fit)
    out["policies"] = compare_policies(
        truth, result, policies, args.eval_shoppers, eval_seed, args.forecast_scenarios
    )
    return out


def trained_agents(
    truth: Scenario,
    fitted: Scenario,
    rules: list[Policy],
    steps: int,
    n_shoppers: int,
    seed: int,
) -> tuple[Policy, dict[str, Any]]:
    """MaskablePPO trained ``steps`` on the fit and on the truth (seed ``seed``), compared
    on the truth (:func:`agents_on_truth`); the agent on the fit, and the figures."""
    clock = time.perf_counter()
    on_fit = trained_agent(fitted, steps, seed, "agent_on_fit")
    on_truth = trained_agent(truth, steps, seed, "agent_on_truth")
    seconds = round(time.perf_counter() - clock, 1)
    agents = agents_on_truth(truth, rules, on_fit, on_truth, n_shoppers, seed + EVAL_SEED_OFFSET)
    return on_fit, {"train_seconds": seconds, "agents": agents}


def zoo_fits(path: Path) -> tuple[dict[str, Any], list[tuple[Scenario, Scenario, str]]]:
    """A finished zoo run's JSON result (the last line of its log, or the file alone) and,
    per shop, its true scenario, its fitted one (the start with the fitted values) and its
    trust verdict.

    Raises ValueError naming what is wrong when the file holds no such result."""
    try:
        lines = path.read_text(encoding="utf-8").strip().splitlines()
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror or exc}") from exc
    if not lines:
        raise ValueError(f"{path} is empty: no zoo run's result in it")
    try:
        run = json.loads(lines[-1])
    except json.JSONDecodeError as exc:
        raise ValueError(
            f"{path}: the last line is not a JSON result ({exc.msg}); was the run finished?"
        ) from exc
    if not isinstance(run, dict) or run.get("benchmark") != "calibrate --zoo":
        raise ValueError(f"{path}: the last line is not the result of a calibrate --zoo run")
    settings = run.get("settings", {})
    missing = [
        k for k in ("zoo", "zoo_seed", "zoo_preset", "seed", "eval_shoppers") if k not in settings
    ]
    if missing or not run.get("shops"):
        raise ValueError(f"{path}: the zoo run's result lacks {missing or ['shops']}")
    reference = load_scenario("default")
    truths = {t.name: t for t in zoo(settings["zoo"], settings["zoo_seed"], reference)}
    fits = []
    for shop in run["shops"]:
        if shop.get("shop") not in truths:
            raise ValueError(f"{path}: no shop {shop.get('shop')!r} in the run's zoo")
        truth = truths[shop["shop"]]
        start = start_for(truth, reference)
        try:
            params = resolve(settings["zoo_preset"], start)
        except (KeyError, ValueError) as exc:
            raise ValueError(f"{path}: the run's preset {settings['zoo_preset']!r}: {exc}") from exc
        fitted = shop.get("parameters")
        fitted = fitted if isinstance(fitted, dict) else {}
        absent = [p.name for p in params if p.name not in fitted]
        if absent:
            raise ValueError(f"{path}: {truth.name}'s fit has no value for {absent}")
        try:
            values = [float(fitted[p.name]["value"]) for p in params]
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(
                f"{path}: {truth.name}'s fitted values are not numbers: {exc}"
            ) from exc
        scenario = apply(start, params, values).replace(name=fitted_name(truth))
        fits.append((truth, scenario, shop.get("trust", {}).get("level", "")))
    return run, fits


def bench_zoo_agents(
    args: argparse.Namespace, run: dict[str, Any], fits: list[tuple[Scenario, Scenario, str]]
) -> dict[str, Any]:
    """Step 4 of the module docstring on the fits of a finished zoo ``run``
    (:func:`zoo_fits`)."""
    settings = run["settings"]
    seed, n_shoppers = settings["seed"], settings["eval_shoppers"]
    clock = time.perf_counter()
    shops = []
    for truth, fitted, trust in fits:
        rules = rules_on(truth, n_shoppers, seed + EVAL_SEED_OFFSET)
        _, figures = trained_agents(truth, fitted, rules, args.zoo_train_steps, n_shoppers, seed)
        shops.append({"shop": truth.name, "trust": trust, **figures})
        print(f"{truth.name} ({trust}):", flush=True)
        print_agents(shops[-1]["agents"])
    return {
        "benchmark": "calibrate --zoo-agents-of",
        "settings": {
            "zoo_agents_of": str(args.zoo_agents_of),
            "zoo_train_steps": args.zoo_train_steps,
            "run": settings,
        },
        "shops": shops,
        "totals": agent_totals(shops),
        "seconds": round(time.perf_counter() - clock, 1),
    }


def agent_totals(shops: list[dict[str, Any]]) -> dict[str, Any]:
    """The agents' figures against the targets of the module docstring."""
    agents = [s["agents"] for s in shops if "agents" in s]
    return {
        "agent_vs_best_rule_met": sum(a["at_least_best_rule"] for a in agents),
        "agent_share_met": sum(bool(a["share_met"]) for a in agents),
        "agent_share_measured": sum(a["share_met"] is not None for a in agents),
        "agents": len(agents),
    }


def totals(shops: list[dict[str, Any]]) -> dict[str, Any]:
    """The zoo's figures against the targets of the module docstring."""
    held = [s["held_out"]["within_95"] for s in shops]
    pairs = [m for s in shops for m in s["policies"]["true_within_forecast"].values()]
    seconds = [s["fit_seconds"] for s in shops]
    return {
        "shops": len(shops),
        "held_out_met": sum(h >= HELD_OUT_TARGET for h in held),
        "held_out_min": min(held),
        # the truth's own agreement on the same journeys: what a perfect fit would reach
        "held_out_truth_met": sum(
            s["held_out_truth"]["within_95"] >= HELD_OUT_TARGET for s in shops
        ),
        "forecast_pairs": len(pairs),
        "forecast_inside": sum(pairs),
        "forecast_share": sum(pairs) / len(pairs),
        "ranking_right": sum(s["policies"]["separated_same_order"] for s in shops),
        **agent_totals(shops),
        "fit_seconds_max": max(seconds),
        "fit_seconds_mean": sum(seconds) / len(seconds),
        "fits_within_time": sum(t <= FIT_SECONDS for t in seconds),
        "trust": {
            level: sum(s["trust"]["level"] == level for s in shops)
            for level in sorted({s["trust"]["level"] for s in shops})
        },
    }


def bench_zoo(args: argparse.Namespace) -> dict[str, Any]:
    reference = load_scenario("default")
    clock = time.perf_counter()
    shops = []
    for truth in zoo(args.zoo, args.zoo_seed, reference)[args.zoo_first :]:
        shops.append(one_shop(truth, reference, args))
        print_shop(shops[-1])
    return {
        "benchmark": "calibrate --zoo",
        "settings": vars(args),
        "shops": shops,
        "totals": totals(shops),
        "seconds": round(time.perf_counter() - clock, 1),
    }


def print_shop(s: dict[str, Any]) -> None:
    h, t = s["held_out"], s["held_out_truth"]
    far = s["distance"]["max_gap"]
    print(
        f"{s['shop']} ({s['segments']} segments, largest mean-trait gap to default {far:.2f} "
        f"of a range): fit {s['fit_seconds']} s, {s['evaluations']} simulations; held out "
        f"{h['within_95']:.0%} of {h['targets']} targets within 95% (rms z {h['rms_z']:.2f}, "
        f"start {h['within_95_start']:.0%}, the truth {t['within_95']:.0%} and "
        f"{t['rms_z']:.2f}); {s['trust']['level']}",
        flush=True,
    )
    for name, p in s["parameters"].items():
        state = "" if p["identified"] else f"  not identified: {p['reason']}"
        print(f"    {name:<40} {p['value']:8.3f} [{p['low']:.3f}, {p['high']:.3f}]{state}")
    print_policies(s["policies"])
    if "agents" in s:
        print_agents(s["agents"])


def print_agents(a: dict[str, Any]) -> None:
    d = a["fit_minus_best_rule"]
    print(
        f"  on the truth: agent on fit €{a['profit_per_1000']['agent_on_fit']:,.0f}, on "
        f"truth €{a['profit_per_1000']['agent_on_truth']:,.0f}, best rule {a['best_rule']} "
        f"€{a['profit_per_1000'][a['best_rule']]:,.0f}; fit - best rule {d[0]:+,.0f} "
        f"[{d[1]:+,.0f}, {d[2]:+,.0f}]; gain over never: "
        + (
            f"{a['share_of_truth_agent']:.0%} of the truth agent's"
            if a["share_met"] is not None
            else "n/a (the agent trained on the truth earns no more than never)"
        ),
        flush=True,
    )


def print_agent_totals(t: dict[str, Any]) -> None:
    print(
        f"  agent on the fit >= best rule - interval: {t['agent_vs_best_rule_met']} of "
        f"{t['agents']}; >= {AGENT_SHARE:.0%} of the truth agent's gain: "
        f"{t['agent_share_met']} of the {t['agent_share_measured']} where the truth's "
        "agent gains over never"
    )


def print_totals(result: dict[str, Any]) -> None:
    t = result["totals"]
    n = t["shops"]
    print(f"zoo of {n} shops (seed {result['settings']['zoo_seed']}), {result['seconds']} s:")
    print(
        f"  held-out targets within 95%: >= {HELD_OUT_TARGET:.0%} on {t['held_out_met']} of "
        f"{n} shops (lowest {t['held_out_min']:.0%}); the true scenario itself on "
        f"{t['held_out_truth_met']} of {n}"
    )
    print(
        f"  true profit inside the forecast: {t['forecast_inside']} of {t['forecast_pairs']} "
        f"shop x policy pairs ({t['forecast_share']:.0%}; target {FORECAST_TARGET:.0%})"
    )
    print(f"  ranking right for every pair the truth separates: {t['ranking_right']} of {n}")
    if t["agents"]:
        print_agent_totals(t)
    print(
        f"  time per fit: mean {t['fit_seconds_mean']:.0f} s, max {t['fit_seconds_max']:.0f} s "
        f"(target <= {FIT_SECONDS:.0f} s: {t['fits_within_time']} of {n})"
    )
    print(f"  trust verdicts: {t['trust']}")
