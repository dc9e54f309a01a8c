"""Evaluate policies on the same shoppers: the merchant's KPIs with 95% intervals.

``python -m experiments.evaluate`` runs every listed policy (``conf/evaluate.yaml``) on
the same ``n_shoppers`` shoppers and draws of a scenario (common random numbers), and
reports per policy, overall, per segment and per consent state, the KPIs of
:mod:`experiments.kpis`: profit per 1,000 shoppers, conversion, revenue, concession spend
by kind, offer rate, give-away rate, interruptions, harassment exits, opt-outs, live-agent
use, regret vs the oracle and profit captured, with paired differences vs ``never`` and vs
the best baseline. It prints readable tables, writes the figures as JSON (``output``)
and prints the same JSON as its very last line (one compact line).

Examples::

    python -m experiments.evaluate
    python -m experiments.evaluate scenario=black_friday n_shoppers=100000
    python -m experiments.evaluate 'policies=[never,always_*,merchant_rules,oracle]'
    python -m experiments.evaluate 'policies=[never,rules:my_rules.yaml,oracle]' output=out.json

``never`` and ``oracle`` are the references of several KPIs: they are added to the list
when missing. Names that do not exist stop the run with the list of those that do
(exit status 2).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import hydra
import numpy as np
from omegaconf import DictConfig, OmegaConf
from rich.console import Console
from rich.table import Table

from agents.baselines import RuleError
from agents.oracle import Oracle
from agents.policy import Policy
from agents.registry import NEVER, ORACLE, UnknownPolicyError, build_policies
from agents.rollout import Outcomes, run_policy
from envs.scenario import Scenario, ScenarioError
from experiments.kpis import (
    DEFAULT_BOOTSTRAP,
    PER,
    Bootstrap,
    group_kpis,
    paired_interval,
    to_json,
)
from experiments.trusted import TRUSTED_TARGETS

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
    log: Callable[[str], None] = lambda _: None,
) -> dict[str, Any]:
    """Run ``policies`` (names, see :mod:`agents.registry`) on the same shoppers; the KPIs.

    Returns JSON-ready data: the run's parameters, ``policies`` (names in order),
    ``best_baseline`` (highest mean profit among the policies given by name, the oracle
    aside; policy objects passed in, such as a learner, are compared with it, not
    candidates for it), ``seconds`` per policy and for
    the statistics, ``oracle_plans`` (shoppers per plan the oracle chose) and the KPIs
    ``overall``, ``by_segment`` and ``by_consent`` (``consent`` / ``no_consent``), each
    ``{policy: {kpi: {"estimate", "low", "high"}}}``, and ``paired_diffs_per_1000``
    (``{a: {b: interval}}``: profit of ``a`` minus ``b`` per 1,000 shoppers, paired, for
    every pair of policies, all shoppers). One private key, ``_profit_per_shopper``
    (:data:`PROFITS`: policy name to per-shopper profit arrays, for further paired
    statistics), is not JSON: :func:`public` drops it.

    Raises:
        agents.registry.UnknownPolicyError: a name no policy has (lists those that exist).
        agents.baselines.RuleError: a rule set does not fit the scenario.
    """
    if n_shoppers < 2:
        raise ValueError(f"n_shoppers must be at least 2 for intervals, got {n_shoppers}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    names = with_references(policies)
    built = build_policies(
        names, scenario, rules_folder=rules_folder, oracle_workers=oracle_workers
    )
    oracle = next(p for p in built if isinstance(p, Oracle))
    outcomes, seconds = run_all(scenario, built, n_shoppers, seed, cohort_size, log)
    order = list(outcomes)
    # the best baseline is among the named policies: an agent passed in as an object (a
    # learner) is what is being compared, not a baseline
    given = {p.name for p in policies if not isinstance(p, str)}
    named = [n for n in order if n != oracle.name and n not in given]
    baselines = named or [n for n in order if n != oracle.name]
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
            "overall": overall,
            "by_segment": by_segment,
            "by_consent": by_consent,
            "paired_diffs_per_1000": paired,
        }
    )
    report[PROFITS] = {name: o.profit for name, o in outcomes.items()}
    return report


def public(report: dict[str, Any]) -> dict[str, Any]:
    """The report without its private keys (``_``-prefixed, per-shopper arrays): the JSON."""
    return {k: v for k, v in report.items() if not k.startswith("_")}


def _kind_columns(scenario: Scenario) -> dict[str, list[int]]:
    """Action columns of each concession kind in the catalogue, in catalogue order."""
    kinds: dict[str, list[int]] = {}
    for k, c in enumerate(scenario.concessions, start=1):
        kinds.setdefault(c.kind.value, []).append(k)
    return kinds


# ------------------------------------------------------------------ rendering


def _eur(i: dict[str, Any]) -> str:
    return _fmt(i, "{:,.0f}")


def _pct(i: dict[str, Any]) -> str:
    return _fmt({k: None if v is None else 100 * v for k, v in i.items()}, "{:.1f}%")


def _num(i: dict[str, Any]) -> str:
    return _fmt(i, "{:.2f}")


def _fmt(i: dict[str, Any], spec: str) -> str:
    est, low, high = i["estimate"], i["low"], i["high"]
    if est is None:
        return "n/a"
    text = spec.format(est)
    if low is None or high is None or low == high == est:
        return text
    return f"{text} [{spec.format(low)}, {spec.format(high)}]"


def _table(title: str, columns: Sequence[str]) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column("policy", no_wrap=True)
    for col in columns:
        table.add_column(col, justify="right", no_wrap=True)
    return table


def render(result: dict[str, Any], console: Console) -> None:
    """The evaluation as rich tables: money, contact, spend by kind, segments, consent."""
    pct = round(100 * result["confidence"])
    head = (
        f"{result['scenario']}: {result['n_shoppers']:,} shoppers, seed {result['seed']}, "
        f"{pct}% intervals, EUR per 1,000 shoppers"
    )
    overall = result["overall"]
    money = _table(
        f"Profit — {head}",
        ("profit", "vs never (paired)", f"vs best: {result['best_baseline']}", "regret vs oracle"),
    )
    money.add_column("captured", justify="right", no_wrap=True)
    for name, k in overall.items():
        money.add_row(
            name,
            _eur(k["profit_per_1000"]),
            _eur(k["diff_vs_never_per_1000"]),
            _eur(k["diff_vs_best_per_1000"]),
            _eur(k["regret_per_1000"]),
            _pct(k["profit_captured"]),
        )
    console.print(money)

    sales = _table(
        "Sales and concessions", ("conversion", "revenue", "spend", "give-away rate", "given away")
    )
    for name, k in overall.items():
        sales.add_row(
            name,
            _pct(k["conversion"]),
            _eur(k["revenue_per_1000"]),
            _eur(k["spend_per_1000"]),
            _pct(k["giveaway_rate"]),
            _eur(k["giveaway_spend_per_1000"]),
        )
    console.print(sales)

    contact = _table(
        "Contact and service",
        (
            "offer rate",
            "offers/shopper",
            "harassment exits",
            "opt-outs",
            "agent sessions",
            "agents busy",
        ),
    )
    for name, k in overall.items():
        contact.add_row(
            name,
            _pct(k["offer_rate"]),
            _num(k["interruptions_per_shopper"]),
            _pct(k["harassment_exits"]),
            _pct(k["opt_outs"]),
            _eur(k["agent_sessions_per_1000"]),
            _pct(k["agent_utilisation"]),
        )
    console.print(contact)

    kinds = list(next(iter(overall.values()))["spend_by_kind_per_1000"])
    spend = _table("Concession spend by kind", [kind.replace("_", " ") for kind in kinds])
    for name, k in overall.items():
        spend.add_row(name, *(_eur(k["spend_by_kind_per_1000"][kind]) for kind in kinds))
    console.print(spend)

    for title, groups in (("segment", result["by_segment"]), ("consent", result["by_consent"])):
        table = _table(
            f"Profit by {title}, and vs never (paired)",
            [f"{g} ({next(iter(k.values()))['shoppers']:,})" for g, k in groups.items()],
        )
        for name in result["policies"]:
            table.add_row(
                name,
                *(
                    f"{_eur(kpis[name]['profit_per_1000'])}\n"
                    f"{_eur(kpis[name]['diff_vs_never_per_1000'])}"
                    for kpis in groups.values()
                ),
            )
        console.print(table)
    timing = ", ".join(f"{k} {v:.1f} s" for k, v in result["seconds"].items())
    console.print(f"wall time: {timing}")


# ------------------------------------------------------------------ Hydra app


def scenario_from_config(cfg: DictConfig) -> Scenario:
    """The scenario of the Hydra config group ``scenario`` (defaults resolved by Hydra)."""
    return Scenario.from_dict(OmegaConf.to_container(cfg, resolve=True))  # type: ignore[arg-type]


def run(cfg: DictConfig, console: Console) -> dict[str, Any]:
    """The app without Hydra's wrapper: evaluate, print, write the JSON file."""
    scenario = scenario_from_config(cfg.scenario)
    result = evaluate(
        scenario,
        list(cfg.policies),
        int(cfg.n_shoppers),
        int(cfg.seed),
        int(cfg.cohort_size),
        confidence=float(cfg.confidence),
        bootstrap=Bootstrap(
            int(cfg.bootstrap.n_resamples), str(cfg.bootstrap.method), int(cfg.bootstrap.seed)
        ),
        oracle_workers=int(cfg.oracle_workers),
        log=lambda msg: console.print(f"[dim]{msg}[/dim]"),
    )
    result = public(result)
    render(result, console)
    path = Path(str(cfg.output))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    console.print(f"wrote {path}")
    return result


@hydra.main(config_path="../conf", config_name="evaluate", execution_whitelist=TRUSTED_TARGETS)
def main(cfg: DictConfig) -> None:
    console = Console(width=None if sys.stdout.isatty() else 160)
    try:
        result = run(cfg, console)
    except (UnknownPolicyError, RuleError, ScenarioError) as err:
        print(f"error: {err}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None
    print(json.dumps(result, separators=(",", ":")), flush=True)


if __name__ == "__main__":
    main()
