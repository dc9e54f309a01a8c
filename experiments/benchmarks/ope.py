"""Off-policy evaluation against the simulator's truth: coverage, bias and RMSE.

``concede bench ope`` (or ``python -m experiments.benchmarks.ope``), per
scenario (``default`` and ``black_friday`` by default):

1. the evaluated policies (``--policies``, all three by default): ``never``, the best rule
   (the baseline of highest true profit among ``always_*``, ``merchant_rules`` and
   ``cautious_rules``) and a trained agent (a short MaskablePPO run on the scenario);
2. the truth: each policy's profit per 1,000 shoppers in the paired simulator evaluation
   (:func:`agents.rollout.run_policy`, ``--truth-shoppers`` shoppers);
3. ``--draws`` independent logs of ``--journeys`` journeys (seeds ``--first-draw``, 1 by
   default, and the next ones; 10,000 more for the large logs) by the
   logger (``--logger``, the shop's current rule, with ``--exploration`` epsilon
   exploration), each evaluated off-policy (:func:`experiments.offpolicy.evaluate_offpolicy`,
   profit only); and ``--large-draws`` logs of ``--large-journeys`` journeys;
4. per policy and estimator: coverage of the 95% intervals (the share of draws whose
   interval holds the truth), bias and RMSE of the estimates, mean interval width, and
   the recommended estimator's coverage. Target: the recommended estimator covers the
   truth in at least 90% of draws, for each policy, at ``--journeys``.

Off-policy evaluation assumes shoppers do not affect one another. The simulator's do a
little (the population memory of strategic shoppers, a shared campaign budget, the
live-agent desk), and the truth includes it: a bias the benchmark measures too.

Prints a table and, as its last line, one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from agents.exploration import Exploration
from agents.learned import LearnedPolicy
from agents.logs import from_table
from agents.logs.simulate import simulate_logs
from agents.policy import Policy
from agents.registry import build_policies
from agents.rollout import run_policy
from envs.scenario import Scenario
from envs.scenario_files import load_scenario
from experiments.offpolicy import OPESettings, evaluate_offpolicy
from experiments.offpolicy.bootstrap import BootstrapSettings
from experiments.offpolicy.result import PROFIT_KEY

TARGET_COVERAGE = 0.90
RULE_CANDIDATES = ("always_*", "merchant_rules", "cautious_rules")
EVALUATED = ("never", "best_rule", "agent")
PER = 1000.0


def train_agent(scenario: Scenario, timesteps: int, seed: int = 0) -> Policy:
    """A MaskablePPO trained briefly on ``scenario`` (the default agent's settings)."""
    import torch
    from sb3_contrib import MaskablePPO

    from agents.vec_env import ShopperVecEnv

    torch.set_num_threads(1)
    model = MaskablePPO(
        "MlpPolicy",
        ShopperVecEnv(scenario, 64, seed=seed),
        learning_rate=3e-4,
        n_steps=128,
        batch_size=1024,
        n_epochs=5,
        gamma=0.99,
        gae_lambda=0.95,
        ent_coef=0.01,
        clip_range=0.2,
        policy_kwargs={"net_arch": [64, 64]},
        seed=seed,
        device="cpu",
    )
    return LearnedPolicy(model.learn(timesteps), name="maskable_ppo")


def best_rule(scenario: Scenario, n_shoppers: int, seed: int) -> tuple[Policy, dict[str, float]]:
    """The candidate rule of highest mean profit, and every candidate's per 1,000."""
    rules = build_policies(list(RULE_CANDIDATES), scenario)
    profits = {
        p.name: float(run_policy(scenario, p, n_shoppers, seed).profit.mean()) * PER for p in rules
    }
    best = max(profits, key=profits.__getitem__)
    return next(p for p in rules if p.name == best), profits


def _summary(truth: float, rows: list[dict[str, Any]], estimators: Sequence[str]) -> dict[str, Any]:
    out: dict[str, Any] = {"draws": len(rows)}
    for e in estimators:
        got = [r["estimators"][e] for r in rows if e in r["estimators"]]
        if not got:
            continue
        est = np.array([g["estimate"] for g in got])
        low = np.array([g["low"] for g in got])
        high = np.array([g["high"] for g in got])
        out[e] = {
            "coverage": float(np.mean((low <= truth) & (truth <= high))),
            "bias": float(est.mean() - truth),
            "rmse": float(np.sqrt(np.mean((est - truth) ** 2))),
            "mean_width": float(np.mean(high - low)),
        }
    rec = [r["recommended"] for r in rows]
    out["recommended"] = {
        "estimators": sorted({r["estimator"] for r in rec}),
        "coverage": float(np.mean([r["low"] <= truth <= r["high"] for r in rec])),
        "bias": float(np.mean([r["estimate"] for r in rec]) - truth),
        "rmse": float(np.sqrt(np.mean([(r["estimate"] - truth) ** 2 for r in rec]))),
        "mean_width": float(np.mean([r["high"] - r["low"] for r in rec])),
    }
    out["mean_ess"] = float(np.mean([r["ess"] for r in rows]))
    budgets = [r["budget"] for r in rows if r.get("budget")]
    if budgets:  # under whose campaign budget each draw was evaluated
        out["evaluated_under"] = {b: budgets.count(b) for b in sorted(set(budgets))}
    verdicts = [r["trust"] for r in rows]
    out["verdicts"] = {v: verdicts.count(v) for v in sorted(set(verdicts))}
    out["coverage_by_verdict"] = {
        v: float(
            np.mean(
                [
                    r["low"] <= truth <= r["high"]
                    for r, t in zip(rec, verdicts, strict=True)
                    if t == v
                ]
            )
        )
        for v in out["verdicts"]
    }
    return out


def run_draws(
    scenario: Scenario,
    logger: Policy,
    policies: Sequence[Policy],
    exploration: Exploration,
    journeys: int,
    draws: int,
    first_seed: int,
    settings: OPESettings,
    log: Any = print,
) -> dict[str, list[dict[str, Any]]]:
    """Per policy, one record per log draw: each estimator's profit interval, the
    recommended one, the effective sample size and the verdict."""
    out: dict[str, list[dict[str, Any]]] = {p.name: [] for p in policies}
    for d in range(draws):
        start = time.perf_counter()
        table = simulate_logs(scenario, logger, journeys, first_seed + d, exploration)
        result = evaluate_offpolicy(from_table(table), policies, settings=settings)
        for name, r in result.results.items():
            out[name].append(
                {
                    "estimators": {e: v[PROFIT_KEY].to_json() for e, v in r.estimators.items()},
                    "recommended": {
                        "estimator": r.recommended.estimator,
                        **r.recommended.outputs[PROFIT_KEY].to_json(),
                    },
                    "ess": r.diagnostics.ess,
                    "trust": r.trust.value,
                    "budget": None if r.budget is None else r.budget.evaluated_under,
                }
            )
        log(
            f"  {scenario.name}: draw {d + 1}/{draws} of {journeys:,} journeys, "
            f"{time.perf_counter() - start:.1f} s"
        )
    return out


def bench_scenario(args: argparse.Namespace, name: str) -> dict[str, Any]:
    scenario = load_scenario(name)
    start = time.perf_counter()
    rule, rule_profits = best_rule(scenario, args.rule_shoppers, args.truth_seed)
    (never,) = build_policies(["never"], scenario)
    (logger,) = build_policies([args.logger], scenario)
    policies: list[Policy] = []
    for kind in args.policies:  # in the order given; the agent is trained only if asked
        if kind == "never":
            policies.append(never)
        elif kind == "best_rule":
            policies.append(rule)
        else:
            policies.append(train_agent(scenario, args.agent_timesteps))
    truth = {
        p.name: float(run_policy(scenario, p, args.truth_shoppers, args.truth_seed).profit.mean())
        * PER
        for p in policies
    }
    print(
        f"{name}: truth {truth}, best rule {rule.name}, set-up {time.perf_counter() - start:.0f} s"
    )
    exploration = Exploration("epsilon", args.exploration)
    sizes = [
        (args.journeys, args.draws, args.first_draw),
        (args.large_journeys, args.large_draws, 10_000 + args.first_draw),
    ]
    by_size: dict[str, Any] = {}
    for journeys, draws, first in sizes:
        if draws < 1:
            continue
        settings = OPESettings(
            signals=("profit",),
            bootstrap=BootstrapSettings(n_resamples=args.resamples, seed=0),
        )
        records = run_draws(
            scenario, logger, policies, exploration, journeys, draws, first, settings
        )
        estimators = list(next(iter(records.values()))[0]["estimators"])
        by_size[str(journeys)] = {
            p: _summary(truth[p], rows, estimators) for p, rows in records.items()
        }
    return {
        "scenario": name,
        "logger": logger.name,
        "exploration": exploration.to_dict(),
        "best_rule": rule.name,
        "rule_profits_per_1000": rule_profits,
        "truth_per_1000": truth,
        "by_journeys": by_size,
        "seconds": time.perf_counter() - start,
    }


def render(results: list[dict[str, Any]]) -> None:
    for res in results:
        print(
            f"\n{res['scenario']}: logger {res['logger']} with epsilon "
            f"{res['exploration']['value']}; truth per 1,000 shoppers "
            + ", ".join(f"{k} {v:,.0f}" for k, v in res["truth_per_1000"].items())
        )
        print(
            f"{'journeys':>9} {'policy':<24} {'estimator':<12} {'coverage':>8} {'bias':>8} "
            f"{'rmse':>8} {'width':>8}"
        )
        for size, per_policy in res["by_journeys"].items():
            for policy, summary in per_policy.items():
                for e, s in summary.items():
                    if not isinstance(s, dict) or "coverage" not in s:
                        continue
                    label = f"{e} ({','.join(s['estimators'])})" if e == "recommended" else e
                    print(
                        f"{int(size):>9,} {policy:<24} {label:<12} {s['coverage']:>8.0%} "
                        f"{s['bias']:>8,.0f} {s['rmse']:>8,.0f} {s['mean_width']:>8,.0f}"
                    )
                verdicts = ", ".join(
                    f"{v} {n} (coverage {summary['coverage_by_verdict'][v]:.0%})"
                    for v, n in summary["verdicts"].items()
                )
                under = "".join(
                    f"; {n} under {b}" for b, n in summary.get("evaluated_under", {}).items()
                )
                print(
                    f"{'':>9} {policy:<24} mean ESS {summary['mean_ess']:,.0f}; {verdicts}{under}"
                )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="concede bench ope", description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenarios", nargs="+", default=["default", "black_friday"])
    parser.add_argument("--logger", default="merchant_rules")
    parser.add_argument("--exploration", type=float, default=0.1)
    parser.add_argument("--draws", type=int, default=50)
    parser.add_argument(
        "--first-draw",
        type=int,
        default=1,
        help="seed of the first log (the next ones follow): split a long run into parts",
    )
    parser.add_argument("--journeys", type=int, default=10_000)
    parser.add_argument("--large-draws", type=int, default=10)
    parser.add_argument("--large-journeys", type=int, default=100_000)
    parser.add_argument("--truth-shoppers", type=int, default=1_000_000)
    parser.add_argument("--truth-seed", type=int, default=987_654)
    parser.add_argument("--rule-shoppers", type=int, default=100_000)
    parser.add_argument("--agent-timesteps", type=int, default=1_000_000)
    parser.add_argument("--resamples", type=int, default=500)
    parser.add_argument(
        "--policies",
        nargs="+",
        choices=EVALUATED,
        default=list(EVALUATED),
        help="which of the evaluated policies to run (the agent is trained only if listed)",
    )
    args = parser.parse_args(argv)
    results = [bench_scenario(args, name) for name in args.scenarios]
    render(results)
    coverage = {
        f"{r['scenario']}/{p}": s["recommended"]["coverage"]
        for r in results
        for p, s in r["by_journeys"].get(str(args.journeys), {}).items()
    }
    met = bool(coverage) and min(coverage.values()) >= TARGET_COVERAGE
    verdict = "met" if met else "missed"
    print(
        f"\ntarget: recommended coverage >= {TARGET_COVERAGE:.0%} at {args.journeys:,} "
        f"journeys: {verdict}"
    )
    print(
        json.dumps(
            {
                "benchmark": "ope",
                "target_coverage": TARGET_COVERAGE,
                "target_met": met,
                "coverage": coverage,
                "results": results,
            },
            separators=(",", ":"),
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
