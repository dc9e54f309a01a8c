"""What a learner is measured against while it trains: never, the baselines, the oracle.

The reference policies are run once, at the start of a training run, on the fixed
evaluation shoppers; every evaluation of the learner then meets the same shoppers and
draws (common random numbers), so its learning curve is paired with the references.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from agents.policy import Policy
from agents.registry import BOUNDS, NEVER, ORACLE, build_policies
from agents.rollout import Outcomes
from envs.scenario import Scenario
from experiments.evaluation.kpis import PER, paired_interval
from experiments.evaluation.paired import PROFITS, evaluate, public, run_all, with_references


@dataclass(frozen=True)
class References:
    """Outcomes of ``never``, each baseline and the oracle on the evaluation shoppers."""

    outcomes: dict[str, Outcomes]

    @property
    def never(self) -> Outcomes:
        return self.outcomes[NEVER]

    @property
    def oracle(self) -> Outcomes:
        return self.outcomes[ORACLE]

    @property
    def best(self) -> str:
        """The baseline with the highest mean profit (the oracle aside)."""
        baselines = [n for n in self.outcomes if n not in BOUNDS]
        return max(baselines, key=lambda n: float(self.outcomes[n].profit.mean()))


def compute_references(
    scenario: Scenario, baselines: Sequence[str], n_shoppers: int, seed: int, cohort_size: int
) -> References:
    """Run never, ``baselines`` and the oracle on ``n_shoppers`` shoppers drawn with ``seed``."""
    policies = build_policies(with_references(baselines), scenario)
    outcomes, _ = run_all(scenario, policies, n_shoppers, seed, cohort_size)
    return References(outcomes)


def curve_point(outcomes: Outcomes, refs: References) -> dict[str, float]:
    """One point of the learning curve: the learner's KPIs on the evaluation shoppers."""
    never, oracle, best = refs.never, refs.oracle, refs.outcomes[refs.best]
    spent = outcomes.spend.sum(axis=0) > 0
    headroom = float(oracle.profit.mean() - never.profit.mean())
    gain = float(outcomes.profit.mean() - never.profit.mean())
    return {
        "profit_per_1000": float(outcomes.profit.mean()) * PER,
        "profit_captured": gain / headroom if headroom > 0 else math.nan,
        "conversion": float(outcomes.bought.mean()),
        "giveaway_rate": float((spent & never.bought).sum() / max(1, spent.sum())),
        "offer_rate": float((outcomes.offers > 0).mean()),
        "diff_vs_best_per_1000": float(outcomes.profit.mean() - best.profit.mean()) * PER,
    }


def final_report(
    scenario: Scenario,
    learned: Policy,
    baselines: Sequence[str],
    n_shoppers: int,
    seed: int,
    cohort_size: int,
) -> tuple[dict[str, Any], dict[str, float]]:
    """The full paired evaluation of the learner beside the baselines and the oracle.

    Returns the KPI report, JSON-ready (as :func:`experiments.evaluation.paired.evaluate`, plus a
    ``verdict``: the learner's paired profit difference with the best *baseline*, with
    its interval) and the headline metrics.
    """
    full = evaluate(scenario, [*with_references(baselines), learned], n_shoppers, seed, cohort_size)
    report = public(full)
    overall = report["overall"]
    names = [n for n in report["policies"] if n not in (*BOUNDS, learned.name)]
    best = max(names, key=lambda n: overall[n]["profit_per_1000"]["estimate"])
    mine = overall[learned.name]
    verdict = _verdict(full[PROFITS], learned.name, best)
    report["verdict"] = verdict
    metrics = {
        "profit_per_1000": mine["profit_per_1000"]["estimate"],
        "profit_captured": mine["profit_captured"]["estimate"],
        "conversion": mine["conversion"]["estimate"],
        "giveaway_rate": mine["giveaway_rate"]["estimate"],
        "diff_vs_best_per_1000": verdict["diff_per_1000"]["estimate"],
        "diff_vs_best_low": verdict["diff_per_1000"]["low"],
        "diff_vs_best_high": verdict["diff_per_1000"]["high"],
    }
    return report, {k: (math.nan if v is None else float(v)) for k, v in metrics.items()}


def _verdict(per_shopper: dict[str, Any], learner: str, best: str) -> dict[str, Any]:
    diff = paired_interval(np.asarray(per_shopper[learner]), np.asarray(per_shopper[best]))
    scaled = diff.scaled(PER)
    if scaled.low > 0:
        word = "better"
    elif scaled.high < 0:
        word = "worse"
    else:
        word = "not significantly different"
    return {
        "learner": learner,
        "best_baseline": best,
        "diff_per_1000": scaled.to_json(),
        "significance": word,
        "sentence": (
            f"{learner} earns EUR {abs(scaled.estimate):,.0f} per 1,000 shoppers "
            f"{'more' if scaled.estimate >= 0 else 'less'} than {best} "
            f"[95% CI {scaled.low:,.0f} to {scaled.high:,.0f}]: {word}."
        ),
    }
