"""A trained agent against the opponents and both bounds: the headroom split.

``concede bench headroom <run folder> [--shoppers N]`` takes a
training run's folder (``concede run`` / ``experiments.train`` write one),
loads the policy the run reports (its best evaluated checkpoint, else its last) and
evaluates it on the run's final evaluation shoppers (its seed and cohort size; the first
``N`` of them) beside ``never``, the run's best rule, ``uplift``, ``bandit``, the informed
bound and the clairvoyant oracle, all paired. It prints, as its last line, one JSON object:
EUR per 1,000 shoppers per policy, the agent's paired difference with each, the headroom
split (learnable = informed - agent, luck = oracle - informed) and the learnable share of
the agent's headroom, (informed - agent) / (oracle - agent), with a bootstrap interval
over shoppers.

The informed bound costs ``futures`` (8) runs per candidate plan per cohort, so it is
measured on fewer shoppers than the run's 20,000; its intervals say how precise it is.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
from sb3_contrib import MaskablePPO

from agents.learned import LearnedPolicy
from agents.registry import BANDIT, INFORMED, NEVER, ORACLE, UPLIFT
from envs import load_scenario
from experiments.evaluation.evaluation_file import EVALUATION_FILE, read_evaluation
from experiments.evaluation.kpis import PER, paired_interval
from experiments.evaluation.paired import PROFITS, evaluate
from experiments.training.state import CHECKPOINTS


def _share(agent: np.ndarray, informed: np.ndarray, oracle: np.ndarray, seed: int) -> dict:
    """(informed - agent) / (oracle - agent) with a percentile bootstrap over shoppers."""
    rng = np.random.default_rng(seed)
    n = len(agent)
    est = float((informed - agent).mean() / (oracle - agent).mean())
    draws = []
    for _ in range(1000):
        i = rng.integers(0, n, n)
        draws.append((informed[i] - agent[i]).mean() / (oracle[i] - agent[i]).mean())
    low, high = np.percentile(draws, [2.5, 97.5])
    return {"estimate": est, "low": float(low), "high": float(high)}


def headroom(run_dir: Path, shoppers: int) -> dict[str, Any]:
    """The evaluation described in the module docstring."""
    run = read_evaluation(run_dir / EVALUATION_FILE)
    learner = run["verdict"]["learner"]
    rules = [n for n in run["policies"] if n not in (UPLIFT, BANDIT, ORACLE, INFORMED, learner)]
    best_rule = max(rules, key=lambda n: run["overall"][n]["profit_per_1000"]["estimate"])
    best = run_dir / CHECKPOINTS / "best" / "model.zip"
    model = MaskablePPO.load(str(best if best.is_file() else run_dir / CHECKPOINTS / "model.zip"))
    scenario = load_scenario(run["scenario"])
    names = list(dict.fromkeys([NEVER, best_rule, UPLIFT, BANDIT, INFORMED, ORACLE]))
    full = evaluate(
        scenario,
        [*names, LearnedPolicy(model, name=learner)],
        shoppers,
        int(run["seed"]),
        int(run["cohort_size"]),
    )
    profit = {k: np.asarray(v) for k, v in full[PROFITS].items()}
    agent = profit[learner]
    out: dict[str, Any] = {
        "scenario": scenario.name,
        "run": str(run_dir),
        "n_shoppers": shoppers,
        "seed": run["seed"],
        "best_rule": best_rule,
        "profit_per_1000": {k: float(v.mean()) * PER for k, v in profit.items()},
        "agent_minus_per_1000": {
            k: paired_interval(agent, v).scaled(PER).to_json()
            for k, v in profit.items()
            if k != learner
        },
        "learnable_per_1000": paired_interval(profit[INFORMED], agent).scaled(PER).to_json(),
        "luck_per_1000": paired_interval(profit[ORACLE], profit[INFORMED]).scaled(PER).to_json(),
        "learnable_share": _share(agent, profit[INFORMED], profit[ORACLE], int(run["seed"])),
        "informed_plans": full.get("informed_plans"),
        "training_data": full.get("training_data"),
        "seconds": full.get("seconds"),
    }
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="concede bench headroom")
    parser.add_argument("run_dir", type=Path, help="a training run's folder")
    parser.add_argument("--shoppers", type=int, default=5000, help="shoppers evaluated")
    args = parser.parse_args(argv)
    out = headroom(args.run_dir, args.shoppers)
    for name, value in out["profit_per_1000"].items():
        diff = out["agent_minus_per_1000"].get(name)
        text = f"[{diff['low']:,.0f}, {diff['high']:,.0f}]" if diff else ""
        print(
            f"{name:28s} {value:10,.0f}  agent - it: {diff['estimate'] if diff else 0:8,.0f} {text}"
        )
    print(json.dumps(out, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
