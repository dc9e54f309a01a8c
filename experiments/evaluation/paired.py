"""Paired evaluation: every policy on the same shoppers, the merchant's KPIs with intervals.

Every policy evaluated with the same ``seed`` meets the same ``n_shoppers`` shoppers and
random draws of a scenario (common random numbers), so differences are taken shopper by
shopper. Per policy, overall, per segment and per consent state: the KPIs of
:mod:`experiments.evaluation.kpis` (profit per 1,000 shoppers, conversion, revenue,
concession spend by kind, offer rate, give-away rate, interruptions, harassment exits,
opt-outs, live-agent use, regret vs the oracle, profit captured), with paired
differences vs ``never`` and vs the best baseline. ``never`` and ``oracle`` are the
references of several KPIs: they are added to the list when missing.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from agents.informed import InformedBound
from agents.oracle import Oracle
from agents.policy import Policy
from agents.registry import (
    BOUNDS,
    INFORMED,
    NEVER,
    ORACLE,
    build_policies,
    build_policy,
    is_trained,
)
from agents.rollout import Outcomes, run_policy
from envs.scenario import Scenario
from experiments.evaluation.kpis import (
    DEFAULT_BOOTSTRAP,
    PER,
    Bootstrap,
    group_kpis,
    paired_interval,
    to_json,
)

PROFITS = "_profit_per_shopper"
DEFAULT_POLICIES = (
    "never",
    "always_percent_discount",
    "always_retargeting",
    "merchant_rules",
    "boulware",
    "conceder",
    "oracle",
)


def with_references(policies: Sequence[str | Policy]) -> list[str | Policy]:
    """``policies`` with ``never`` first and ``oracle`` last added if missing."""
    out = list(policies)
    names = {p if isinstance(p, str) else p.name for p in out}
    if NEVER not in names:
        out.insert(0, NEVER)
    if ORACLE not in names:
        out.append(ORACLE)
    return out


def run_all(
    scenario: Scenario,
    policies: Sequence[Policy],
    n_shoppers: int,
    seed: int,
    cohort_size: int,
    log: Callable[[str], None] = lambda _: None,
) -> tuple[dict[str, Outcomes], dict[str, float]]:
    """Run each policy on the same shoppers; outcomes and wall seconds by policy name."""
    outcomes: dict[str, Outcomes] = {}
    seconds: dict[str, float] = {}
    for policy in policies:
        start = time.perf_counter()
        outcomes[policy.name] = run_policy(scenario, policy, n_shoppers, seed, cohort_size)
        seconds[policy.name] = time.perf_counter() - start
        if isinstance(policy, Oracle):
            policy.close()
        log(f"{policy.name}: {seconds[policy.name]:.1f} s")
    return outcomes, seconds


def evaluate(
    scenario: Scenario,
    policies: Sequence[str | Policy],
    n_shoppers: int,
    seed: int,
    cohort_size: int = 10_000,
    *,
    confidence: float = 0.95,
    bootstrap: Bootstrap = DEFAULT_BOOTSTRAP,
    oracle_workers: int = 1,
    rules_folder: Path | None = None,
    tracking_uri: str | None = None,
    log: Callable[[str], None] = lambda _: None,
) -> dict[str, Any]:
    """Run ``policies`` (policy strings of :mod:`agents.registry`, or policy objects) on
    the same shoppers; the KPIs. ``tracking_uri``: the MLflow store of ``run:`` and
    ``models:/`` policies.

    Returns JSON-ready data: the run's parameters, ``policies`` (names in order),
    ``best_baseline`` (highest mean profit among the policies given by name, the oracle
    aside; trained policies and policy objects passed in, such as a learner, are compared
    with it, not candidates for it), ``seconds`` per policy and for
    the statistics, ``oracle_plans`` (shoppers per plan the oracle chose) and the KPIs
    ``overall``, ``by_segment`` and ``by_consent`` (``consent`` / ``no_consent``), each
    ``{policy: {kpi: {"estimate", "low", "high"}}}``, and ``paired_diffs_per_1000``
    (``{a: {b: interval}}``: profit of ``a`` minus ``b`` per 1,000 shoppers, paired, for
    every pair of policies, all shoppers). One private key, ``_profit_per_shopper``
    (:data:`PROFITS`: policy name to per-shopper profit arrays, for further paired
    statistics), is not JSON: :func:`public` drops it.

    Raises:
        agents.policy.PolicySpecError: a policy that cannot be given, the message saying
            why: ``UnknownPolicyError`` (lists the names that exist), ``PolicyFitError``
            (a trained policy that does not fit the scenario), ``RuleError``...
    """
    if n_shoppers < 2:
        raise ValueError(f"n_shoppers must be at least 2 for intervals, got {n_shoppers}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    # a trained policy is what is being compared, as a learner passed in: not a baseline
    policies = [
        build_policy(p, scenario, tracking_uri=tracking_uri)
        if isinstance(p, str) and is_trained(p)
        else p
        for p in policies
    ]
    names = with_references(policies)
    built = build_policies(
        names, scenario, rules_folder=rules_folder, oracle_workers=oracle_workers
    )
    oracle = next(p for p in built if isinstance(p, Oracle))
    outcomes, seconds = run_all(scenario, built, n_shoppers, seed, cohort_size, log)
    order = list(outcomes)
    # the best baseline is among the named policies: an agent passed in as an object (a
    # learner, a trained policy) is what is being compared, not a baseline
    given = {p.name for p in policies if not isinstance(p, str)}
    named = [n for n in order if n not in BOUNDS and n not in given]
    baselines = named or [n for n in order if n not in BOUNDS]
    best = max(baselines, key=lambda n: float(outcomes[n].profit.mean()))

    start = time.perf_counter()
    kinds = _kind_columns(scenario)
    first = outcomes[order[0]]

    def kpis(rows: np.ndarray, whole: bool = False) -> dict[str, Any]:
        return group_kpis(
            outcomes,
            rows,
            never=NEVER,
            oracle=oracle.name,
            best=best,
            kinds=kinds,
            confidence=confidence,
            boot=bootstrap,
            whole_run=whole,
        )

    everyone = np.ones(n_shoppers, dtype=bool)
    overall = kpis(everyone, whole=True)
    by_segment = {
        seg: kpis(first.segment == i)
        for i, seg in enumerate(first.segment_names)
        if np.any(first.segment == i)
    }
    by_consent = {
        label: kpis(first.consent == flag)
        for label, flag in (("consent", True), ("no_consent", False))
        if np.any(first.consent == flag)
    }
    paired = {
        a: {
            b: paired_interval(outcomes[a].profit, outcomes[b].profit, confidence).scaled(PER)
            for b in order
            if b != a
        }
        for a in order
    }
    seconds["statistics"] = time.perf_counter() - start
    log(f"statistics: {seconds['statistics']:.1f} s")
    report: dict[str, Any] = to_json(
        {
            "scenario": scenario.name,
            "scenario_digest": scenario.digest(),
            "n_shoppers": n_shoppers,
            "seed": seed,
            "cohort_size": cohort_size,
            "confidence": confidence,
            "bootstrap": {
                "n_resamples": bootstrap.n_resamples,
                "method": bootstrap.method,
                "seed": bootstrap.seed,
            },
            "policies": order,
            "never": NEVER,
            "oracle": oracle.name,
            "best_baseline": best,
            "seconds": seconds,
            "oracle_plans": dict(sorted(oracle.chosen.items(), key=lambda kv: -kv[1])),
            "training_data": {
                p.name: getattr(p, "info")  # noqa: B009 (not every policy has one)
                for p in built
                if isinstance(getattr(p, "info", None), dict)
            },
            **_informed(built, outcomes, order, confidence),
            "overall": overall,
            "by_segment": by_segment,
            "by_consent": by_consent,
            "paired_diffs_per_1000": paired,
        }
    )
    report[PROFITS] = {name: o.profit for name, o in outcomes.items()}
    return report


def _informed(
    built: Sequence[Policy],
    outcomes: dict[str, Outcomes],
    order: Sequence[str],
    confidence: float,
) -> dict[str, Any]:
    """With the informed bound evaluated: its plans, and per policy the headroom split into
    ``learnable`` (informed - policy) and, once, ``luck`` (oracle - informed), paired, in
    EUR per 1,000 shoppers, and the profit captured against it,
    (policy - never) / (informed - never)."""
    bound = next((p for p in built if isinstance(p, InformedBound)), None)
    if bound is None:
        return {}
    inf, never = outcomes[INFORMED].profit, outcomes[NEVER].profit
    gain = float(inf.mean() - never.mean())
    return {
        "informed": INFORMED,
        "informed_futures": bound.futures,
        "informed_plans": dict(sorted(bound.chosen.items(), key=lambda kv: -kv[1])),
        "headroom_split_per_1000": {
            "luck": paired_interval(outcomes[ORACLE].profit, inf, confidence).scaled(PER),
            "learnable": {
                n: paired_interval(inf, outcomes[n].profit, confidence).scaled(PER)
                for n in order
                if n not in BOUNDS
            },
        },
        "profit_captured_informed": {
            n: (float(outcomes[n].profit.mean() - never.mean()) / gain if gain > 0 else None)
            for n in order
            if n not in BOUNDS
        },
    }


def public(report: dict[str, Any]) -> dict[str, Any]:
    """The report without its private keys (``_``-prefixed, per-shopper arrays): the JSON."""
    return {k: v for k, v in report.items() if not k.startswith("_")}


def _kind_columns(scenario: Scenario) -> dict[str, list[int]]:
    """Action columns of each concession kind in the catalogue, in catalogue order."""
    kinds: dict[str, list[int]] = {}
    for k, c in enumerate(scenario.concessions, start=1):
        kinds.setdefault(c.kind.value, []).append(k)
    return kinds
