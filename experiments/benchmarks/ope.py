"""Off-policy evaluation against the simulator's truth: coverage, bias, RMSE, effective sample.

``concede bench ope`` (or ``python -m experiments.benchmarks.ope``), per scenario
(``default`` and ``black_friday`` by default) and logger (``merchant_rules`` exploring with
ε = 0.1 at every decision, and the decision-moment logger exploring with ε = 0.1 only at
exit intent or away, by default):

1. the evaluated policies (``policies``, all three by default): ``never``, the best rule
   (the baseline of highest true profit among ``always_*``, ``merchant_rules`` and
   ``cautious_rules``) and a trained agent (a MaskablePPO run on the scenario);
2. the truth: each policy's profit per 1,000 shoppers in the paired simulator evaluation
   (:func:`agents.rollout.run_policy`, ``truth_shoppers`` shoppers);
3. ``draws`` independent logs of ``journeys`` journeys per logger (seeds ``first_draw``
   and the next ones), each evaluated off-policy
   (:func:`experiments.offpolicy.evaluate_offpolicy`, profit only, the product's default
   estimators and models);
4. on a scenario whose shoppers share state (a campaign budget, learning shoppers), the
   interference the log cannot show, simulated once per policy and logger on the
   scenario itself (:mod:`experiments.offpolicy.interference`), and each log's figure
   corrected by it;
5. per cell (scenario, logger and policy) and estimator: coverage of the 95% intervals
   (the share of logs whose interval holds the truth), bias and RMSE of the estimates,
   mean interval width; the recommended estimate's, with its effective journeys against
   the journey-weight effective sample that ``wdr`` rests on, and its RMSE against
   ``wdr``'s on the same logs; and the corrected figure's coverage where there is one.

A scenario named ``<name>+isolated`` (``--scenarios default+isolated``) is that scenario
with every shared-state component switched off (no campaign budget, shoppers who do not
learn to wait, a desk that is never full): the cells where one shopper's treatment does
not change another's, which the first target is about.

Targets: coverage of the recommended estimate >= 90% in every cell without shared state;
with shared state, the corrected figure's coverage >= 80%; effective journeys >= 10x and
RMSE <= 1/2 of the ``wdr`` reference.

Setups and logs run in parallel over ``workers`` processes (each single-threaded).
Prints a table and, as its last line, one JSON object; ``records=<file>`` keeps every
log's figures.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

TARGET_COVERAGE = 0.90
TARGET_CORRECTED = 0.80
TARGET_ESS_GAIN = 10.0
TARGET_RMSE_GAIN = 2.0
REFERENCE = "wdr"  # the estimator recommended before the marginalised ones
RULE_CANDIDATES = ("always_*", "merchant_rules", "cautious_rules")
EVALUATED = ("never", "best_rule", "agent")
LOGGERS = ("epsilon:0.1", "epsilon:0.1@exit_intent+away")
ISOLATED = "+isolated"  # a scenario name's suffix: its shared state switched off
PER = 1000.0


def train_agent(scenario: Any, timesteps: int, path: Path, seed: int = 0) -> None:
    """A MaskablePPO trained on ``scenario`` (the default agent's settings), saved at
    ``path``."""
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
    model.learn(timesteps).save(path)


@dataclass(frozen=True)
class Setup:
    """A scenario's evaluated policies, by name: the best rule's, the agent's saved model
    (None if not evaluated), and the truth per 1,000 shoppers."""

    scenario: str
    best_rule: str
    rule_profits: dict[str, float]
    agent_path: str | None
    truth: dict[str, float]
    seconds: float


def _policies(scenario: Any, setup: Setup, kinds: Sequence[str]) -> list[Any]:
    from agents.learned import LearnedPolicy
    from agents.registry import build_policies

    out: list[Any] = []
    for kind in kinds:
        if kind == "never":
            out += build_policies(["never"], scenario)
        elif kind == "best_rule":
            out += build_policies([setup.best_rule], scenario)
        elif setup.agent_path is not None:
            from sb3_contrib import MaskablePPO

            model = MaskablePPO.load(setup.agent_path, device="cpu")
            out.append(LearnedPolicy(model, name="maskable_ppo", trained_on=scenario))
    return out


def _single_thread() -> None:
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:  # pragma: no cover - torch is a dependency
        pass


def bench_scenario(name: str) -> Any:
    """The scenario ``name`` names: a shipped one, or ``<name>+isolated``, that scenario
    with every shared-state component switched off
    (:func:`experiments.offpolicy.interference.switched_off`), where no shopper's
    treatment changes another's."""
    from envs.scenario_files import load_scenario
    from experiments.offpolicy.interference import shared_state, switched_off

    base, isolated, rest = name.partition(ISOLATED)
    if rest:
        raise ValueError(f"scenario {name!r}: {ISOLATED} comes last")
    scenario = load_scenario(base)
    if isolated:
        for component in shared_state(scenario):
            scenario = switched_off(scenario, component)
    return scenario


def prepare(name: str, kinds: Sequence[str], args: argparse.Namespace, folder: str) -> Setup:
    """Best rule, agent (trained if asked) and truth of one scenario."""
    from agents.registry import build_policies
    from agents.rollout import run_policy

    _single_thread()
    start = time.perf_counter()
    scenario = bench_scenario(name)
    rules = build_policies(list(RULE_CANDIDATES), scenario)
    profits = {
        p.name: float(run_policy(scenario, p, args.rule_shoppers, args.truth_seed).profit.mean())
        * PER
        for p in rules
    }
    best = max(profits, key=profits.__getitem__)
    agent_path = None
    if "agent" in kinds:
        agent_path = str(Path(folder) / f"{name}-agent.zip")
        train_agent(scenario, args.agent_timesteps, Path(agent_path))
    partial = Setup(name, best, profits, agent_path, {}, 0.0)
    truth = {
        p.name: float(run_policy(scenario, p, args.truth_shoppers, args.truth_seed).profit.mean())
        * PER
        for p in _policies(scenario, partial, kinds)
    }
    return Setup(name, best, profits, agent_path, truth, time.perf_counter() - start)


def _record(r: Any, measured: Any | None) -> dict[str, Any]:
    from experiments.offpolicy.interference import summarise
    from experiments.offpolicy.result import PROFIT_KEY

    budget = r.budget
    fixed = None if measured is None else summarise(r, measured)
    return {
        "estimators": {e: v[PROFIT_KEY].to_json() for e, v in r.estimators.items()},
        "recommended": {
            "estimator": r.recommended.estimator,
            **r.recommended.outputs[PROFIT_KEY].to_json(),
        },
        "corrected": None if fixed is None else fixed.corrected.to_json(),
        "corrected_basis": None if fixed is None else fixed.basis,
        "ess": r.diagnostics.ess,
        "step_ess": r.diagnostics.step_ess,
        "marginal_ess": r.diagnostics.marginal_ess,
        "trust": r.trust.value,
        "budget": None if budget is None else budget.evaluated_under,
    }


def one_log(
    setup: Setup,
    kinds: Sequence[str],
    logger_text: str,
    seed: int,
    args: argparse.Namespace,
    measured: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Simulate one log and evaluate the policies on it: one record per policy, with the
    figure corrected by the ``measured`` interference of each policy (if any)."""
    from agents.exploration import Exploration
    from agents.logs import from_table
    from agents.logs.simulate import simulate_logs
    from agents.registry import build_policies
    from experiments.offpolicy import OPESettings, evaluate_offpolicy
    from experiments.offpolicy.bootstrap import BootstrapSettings

    _single_thread()
    start = time.perf_counter()
    scenario = bench_scenario(setup.scenario)
    (logger,) = build_policies([args.logger], scenario)
    policies = _policies(scenario, setup, kinds)
    table = simulate_logs(scenario, logger, args.journeys, seed, Exploration.from_text(logger_text))
    settings = OPESettings(
        signals=("profit",), bootstrap=BootstrapSettings(n_resamples=args.resamples, seed=0)
    )
    result = evaluate_offpolicy(from_table(table), policies, settings=settings)
    return {
        "scenario": setup.scenario,
        "logger": logger_text,
        "seed": seed,
        "seconds": time.perf_counter() - start,
        "policies": {
            name: _record(r, None if measured is None else measured[name])
            for name, r in result.results.items()
        },
    }


def shares_state(name: str) -> bool:
    """Whether the scenario's shoppers share state a log cannot show (a campaign budget,
    learning shoppers, a live-agent desk that can be full)."""
    from experiments.offpolicy.interference import shared_state

    return bool(shared_state(bench_scenario(name)))


def interference(
    setup: Setup, kinds: Sequence[str], logger_text: str, args: argparse.Namespace
) -> dict[str, Any]:
    """The interference correction of each policy against one logger, simulated on the
    scenario itself (what a perfectly fitted scenario would give)."""
    from agents.exploration import Exploration
    from agents.registry import build_policies
    from experiments.offpolicy.interference import measure_interference

    _single_thread()
    start = time.perf_counter()
    scenario = bench_scenario(setup.scenario)
    (logger,) = build_policies([args.logger], scenario)
    exploration = Exploration.from_text(logger_text)
    out = {
        p.name: measure_interference(scenario, p, logger, exploration)
        for p in _policies(scenario, setup, kinds)
    }
    return {
        "scenario": setup.scenario,
        "logger": logger_text,
        "seconds": time.perf_counter() - start,
        "policies": out,
    }


def _covers(iv: dict[str, Any] | None, truth: float) -> bool:
    return iv is not None and iv["low"] is not None and iv["low"] <= truth <= iv["high"]


def _stats(truth: float, ivs: list[dict[str, Any]]) -> dict[str, float]:
    est = np.array([g["estimate"] for g in ivs], dtype=float)
    return {
        "coverage": float(np.mean([_covers(g, truth) for g in ivs])),
        "bias": float(est.mean() - truth),
        "rmse": float(np.sqrt(np.mean((est - truth) ** 2))),
        "mean_width": float(np.mean([g["high"] - g["low"] for g in ivs])),
    }


def effective_journeys(row: dict[str, Any]) -> float:
    """The effective journeys of the recommended estimate: of the marginalised weights for
    ``mis``/``wmis``/``mdr``/``wmdr``, of the journey weights otherwise."""
    from experiments.offpolicy.estimators import MARGINAL

    marginal = row["recommended"]["estimator"] in MARGINAL
    return float(row["marginal_ess"] if marginal and row["marginal_ess"] else row["ess"])


def summarise(truth: float, rows: list[dict[str, Any]], correction: Any | None) -> dict[str, Any]:
    """One cell's figures over its logs."""
    out: dict[str, Any] = {"logs": len(rows)}
    names = sorted({e for r in rows for e in r["estimators"]})
    out["estimators"] = {
        e: _stats(truth, [r["estimators"][e] for r in rows if e in r["estimators"]]) for e in names
    }
    rec: dict[str, Any] = dict(_stats(truth, [r["recommended"] for r in rows]))
    picked = [r["recommended"]["estimator"] for r in rows]
    rec["picked"] = {e: picked.count(e) for e in sorted(set(picked))}
    out["recommended"] = rec
    ess = float(np.mean([effective_journeys(r) for r in rows]))
    ref_ess = float(np.mean([r["ess"] for r in rows]))
    out["effective_journeys"] = ess
    out["reference_ess"] = ref_ess
    out["ess_gain"] = ess / ref_ess if ref_ess > 0 else None
    ref = out["estimators"].get(REFERENCE)
    out["rmse_gain"] = ref["rmse"] / rec["rmse"] if ref and rec["rmse"] > 0 else None
    verdicts = [r["trust"] for r in rows]
    out["verdicts"] = {v: verdicts.count(v) for v in sorted(set(verdicts))}
    budgets = [r["budget"] for r in rows if r.get("budget")]
    if budgets:
        out["evaluated_under"] = {b: budgets.count(b) for b in sorted(set(budgets))}
    if correction is not None:
        from experiments.offpolicy.interference import cause

        fixed = [r["corrected"] for r in rows if r.get("corrected")]
        out["correction"] = correction.correction.to_json()
        out["cause"] = cause(correction)
        out["corrected"] = _stats(truth, fixed) if fixed else None
        bases = [r["corrected_basis"] for r in rows if r.get("corrected_basis")]
        out["corrected_basis"] = {b: bases.count(b) for b in sorted(set(bases))}
    return out


def render(report: dict[str, Any]) -> None:
    print(
        f"\n{'cell':<58} {'truth':>7} {'estimator':<18} {'cover':>6} {'bias':>7} {'rmse':>7} "
        f"{'width':>7} {'ESS':>7} {'xESS':>5} {'xRMSE':>5}"
    )
    for key, cell in report["cells"].items():
        rec = cell["recommended"]
        picked = ",".join(rec["picked"])
        gain = cell["ess_gain"] or 0.0
        rgain = cell["rmse_gain"] or 0.0
        print(
            f"{key:<58} {cell['truth']:>7,.0f} {'rec (' + picked + ')':<18} "
            f"{rec['coverage']:>6.0%} {rec['bias']:>7,.0f} {rec['rmse']:>7,.0f} "
            f"{rec['mean_width']:>7,.0f} {cell['effective_journeys']:>7,.0f} {gain:>5.1f} "
            f"{rgain:>5.2f}"
        )
        for e, s in cell["estimators"].items():
            print(
                f"{'':<58} {'':>7} {e:<18} {s['coverage']:>6.0%} {s['bias']:>7,.0f} "
                f"{s['rmse']:>7,.0f} {s['mean_width']:>7,.0f}"
            )
        if cell.get("corrected"):
            c = cell["corrected"]
            print(
                f"{'':<58} {'':>7} {'corrected':<18} {c['coverage']:>6.0%} {c['bias']:>7,.0f} "
                f"{c['rmse']:>7,.0f} {c['mean_width']:>7,.0f}   {cell['cause']}"
            )
        print(f"{'':<58} verdicts {cell['verdicts']} {cell.get('evaluated_under', '')}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="concede bench ope", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--scenarios",
        nargs="+",
        default=["default", "black_friday"],
        help=f"shipped scenarios; <name>{ISOLATED}: its shared state switched off",
    )
    parser.add_argument("--logger", default="merchant_rules")
    parser.add_argument(
        "--loggers",
        nargs="+",
        default=list(LOGGERS),
        help="the logger's explorations, as text (epsilon:0.1, epsilon:0.1@exit_intent+away)",
    )
    parser.add_argument("--draws", type=int, default=50)
    parser.add_argument(
        "--first-draw", type=int, default=1, help="seed of the first log (the next ones follow)"
    )
    parser.add_argument("--journeys", type=int, default=10_000)
    parser.add_argument("--truth-shoppers", type=int, default=1_000_000)
    parser.add_argument("--truth-seed", type=int, default=987_654)
    parser.add_argument("--rule-shoppers", type=int, default=100_000)
    parser.add_argument("--agent-timesteps", type=int, default=1_000_000)
    parser.add_argument("--resamples", type=int, default=500)
    parser.add_argument("--workers", type=int, default=2, help="processes (one core each)")
    parser.add_argument("--records", default=None, help="write every log's figures here (JSON)")
    parser.add_argument(
        "--policies",
        nargs="+",
        choices=EVALUATED,
        default=list(EVALUATED),
        help="which of the evaluated policies to run (the agent is trained only if listed)",
    )
    args = parser.parse_args(argv)
    for name in args.scenarios:
        try:
            bench_scenario(name)
        except (OSError, ValueError, KeyError) as exc:
            parser.error(f"--scenarios {name}: {exc}")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    start = time.perf_counter()
    folder = tempfile.mkdtemp(prefix="concede-bench-ope-")
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(args.workers, mp_context=context) as pool:
        setups = {
            s.scenario: s
            for s in pool.map(
                prepare,
                args.scenarios,
                [args.policies] * len(args.scenarios),
                [args] * len(args.scenarios),
                [folder] * len(args.scenarios),
            )
        }
        for s in setups.values():
            print(
                f"{s.scenario}: truth {s.truth}, best rule {s.best_rule}, set-up {s.seconds:.0f} s",
                flush=True,
            )
        fixes = {
            (name, logger): pool.submit(interference, setups[name], args.policies, logger, args)
            for name in args.scenarios
            if shares_state(name)
            for logger in args.loggers
        }
        corrections = {key: job.result() for key, job in fixes.items()}
        print(
            "interference measured: "
            + ", ".join(f"{k[0]} {k[1]} {v['seconds']:.0f} s" for k, v in corrections.items()),
            flush=True,
        )
        jobs = [
            pool.submit(
                one_log,
                setups[name],
                args.policies,
                logger,
                seed,
                args,
                corrections[(name, logger)]["policies"] if (name, logger) in corrections else None,
            )
            for name in args.scenarios
            for logger in args.loggers
            for seed in range(args.first_draw, args.first_draw + args.draws)
        ]
        logs = []
        for i, job in enumerate(jobs):
            logs.append(job.result())
            print(
                f"  log {i + 1}/{len(jobs)}: {logs[-1]['scenario']} {logs[-1]['logger']} "
                f"seed {logs[-1]['seed']}, {logs[-1]['seconds']:.0f} s",
                flush=True,
            )
    cells: dict[str, Any] = {}
    for name in args.scenarios:
        for logger in args.loggers:
            fix = corrections.get((name, logger))
            for policy, truth in setups[name].truth.items():
                rows = [
                    g["policies"][policy]
                    for g in logs
                    if g["scenario"] == name and g["logger"] == logger
                ]
                cell = summarise(truth, rows, None if fix is None else fix["policies"][policy])
                cells[f"{name} / {args.logger} {logger} / {policy}"] = {
                    "scenario": name,
                    "logger": logger,
                    "policy": policy,
                    "shared_state": fix is not None,
                    "truth": truth,
                    **cell,
                }
    seconds = time.perf_counter() - start
    for key in corrections:
        corrections[key]["policies"] = {
            k: v.to_json() for k, v in corrections[key]["policies"].items()
        }
    report = {
        "benchmark": "ope",
        "journeys": args.journeys,
        "draws": args.draws,
        "workers": args.workers,
        "seconds": seconds,
        "setups": {k: v.__dict__ for k, v in setups.items()},
        "cells": cells,
    }
    render(report)
    free = [c for c in cells.values() if not c["shared_state"]]
    shared = [c for c in cells.values() if c["shared_state"]]
    targets = {
        # None: no cell of the run is one the target is about
        "coverage_without_shared_state": min(c["recommended"]["coverage"] for c in free)
        >= TARGET_COVERAGE
        if free
        else None,
        "corrected_coverage_with_shared_state": all(
            c.get("corrected") and c["corrected"]["coverage"] >= TARGET_CORRECTED for c in shared
        )
        if shared
        else None,
        "effective_journeys_gain": all(
            (c["ess_gain"] or 0.0) >= TARGET_ESS_GAIN for c in cells.values()
        ),
        "rmse_gain": all((c["rmse_gain"] or 0.0) >= TARGET_RMSE_GAIN for c in cells.values()),
        "minutes_at_most_60": seconds <= 3600.0,
    }
    report["targets"] = targets
    for k, v in targets.items():
        print(f"target {k}: {'no cell measures it' if v is None else 'met' if v else 'missed'}")
    print(f"{len(logs)} logs in {seconds / 60:.1f} min on {args.workers} workers")
    if args.records:
        Path(args.records).write_text(json.dumps({"logs": logs, **report}) + "\n", encoding="utf-8")
    print(json.dumps(report, separators=(",", ":")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
