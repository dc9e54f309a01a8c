"""Every figure of the report as JSON-ready data: the HTML and the plots show exactly these.

:func:`build_figures` groups the evaluated sources by scenario and, per scenario
(:func:`scenario_figures`), takes as headline the evaluation whose policy earns most over
the current rule, and from it: the verdict (:mod:`experiments.reporting.verdict`), tables
of KPIs with intervals, concessions by kind, the margin waterfall, who gets offers
(segments, tracking consent), what privacy costs, the oracle's headroom, when offers are
made, every evaluated run and the learning curves; then every run asked for, failed ones
included, and what the evaluations do not record.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from typing import Any

from agents.opponents import FROM_RANDOMISED_LOG
from agents.registry import NEVER, ORACLE
from experiments.evaluation.evaluation_file import EVALUATION_FILE
from experiments.evaluation.formatting import eur, pct
from experiments.reporting.describe import describe_policy, describe_scenario
from experiments.reporting.errors import ReportError
from experiments.reporting.intervals import (
    PER,
    Interval,
    est,
    est_or,
    half_width,
    interval,
)
from experiments.reporting.sources import Source
from experiments.reporting.verdict import (
    Pick,
    difference,
    judge,
    learner_of,
    verdict,
    with_pairs,
)

Figures = dict[str, Any]


PROFIT_COLUMNS = (
    ("profit_per_1000", "Profit", "eur"),
    ("vs_rule", "vs your current rule", "eur_diff"),
    ("conversion", "Shoppers who bought", "share"),
    ("revenue_per_1000", "Revenue", "eur"),
    ("profit_captured", "Share of the possible gain", "share"),
)
GIVEN_COLUMNS = (
    ("spend_per_1000", "Concessions", "eur"),
    ("giveaway_spend_per_1000", "… to shoppers who would have bought anyway", "eur"),
    ("giveaway_rate", "Concessions not needed", "share"),
    ("agent_sessions_per_1000", "Live-agent chats", "count"),
)
CONTACT_COLUMNS = (
    ("offer_rate", "Shoppers offered something", "share"),
    ("interruptions_per_shopper", "Offers per shopper", "number"),
    ("harassment_exits", "Left annoyed", "share"),
    ("opt_outs", "Withdrew consent", "share"),
)
KIND_LABELS = {
    "percent_discount": "Percentage discounts",
    "fixed_discount": "Fixed discounts",
    "free_shipping": "Free shipping",
    "express_delivery": "Express delivery upgrades",
    "free_gift": "Free gifts",
    "voucher": "Vouchers for the next order",
    "live_agent": "Live-agent cost",
    "retargeting": "Recovery e-mails",
}


def _key_policies(pick: Pick) -> list[str]:
    ev = pick.ev
    order = [pick.policy, pick.rule, str(ev["best_baseline"]), NEVER, ORACLE]
    return [p for p in dict.fromkeys(order) if p in ev["overall"]]


def _table(
    pick: Pick, columns: Sequence[tuple[str, str, str]], title: str, note: str
) -> dict[str, Any]:
    ev, overall = pick.ev, with_pairs(pick.ev, pick.ev["overall"])
    keys = _key_policies(pick)
    rows = []
    for policy in [*keys, *(p for p in ev["policies"] if p not in keys)]:
        k = overall[policy]
        cells = []
        for key, _, _ in columns:
            if key == "vs_rule":
                cells.append(difference(ev, overall, policy, pick.rule)[0])
            else:
                cells.append(k.get(key))
        rows.append({"policy": policy, "key": policy in keys, "cells": cells})
    return {
        "title": title,
        "note": note,
        "columns": [{"key": k, "label": label, "unit": unit} for k, label, unit in columns],
        "rows": rows,
    }


def _kinds_table(pick: Pick) -> dict[str, Any]:
    overall = pick.ev["overall"]
    policies = [p for p in _key_policies(pick) if p != NEVER]
    kinds = list(next(iter(overall.values())).get("spend_by_kind_per_1000", {}))
    used = [
        kind
        for kind in kinds
        if any((est(overall[p]["spend_by_kind_per_1000"][kind]) or 0) > 0 for p in policies)
    ]
    return {
        "policies": policies,
        "rows": [
            {
                "kind": kind,
                "label": KIND_LABELS.get(kind, kind.replace("_", " ")),
                "cells": [overall[p]["spend_by_kind_per_1000"][kind] for p in policies],
            }
            for kind in used
        ],
    }


def waterfall(
    k: dict[str, Any], kinds: Sequence[str] | None = None, lines: Sequence[str] = ()
) -> list[dict[str, Any]]:
    """Revenue, what takes it away (cost of goods, delivery, concessions by kind, live
    agents) and the profit left, per 1,000 shoppers: ``[{"label", "value", "kind"}]`` with
    ``kind`` ``"total"`` (revenue, profit) or ``"step"`` (negative: a cost).

    ``kinds``: the concession kinds to show (default: those with spend); ``lines``:
    optional lines (``"Future value"``, ``"Other (rounding, caps)"``) to show even at 0,
    so that two waterfalls have the same lines.
    """
    revenue = est(k["revenue_per_1000"]) or 0.0
    profit = est(k["profit_per_1000"]) or 0.0
    spend = {kind: est(i) or 0.0 for kind, i in k.get("spend_by_kind_per_1000", {}).items()}
    steps: list[dict[str, Any]] = [{"label": "Revenue", "value": revenue, "kind": "total"}]
    if "cost_of_goods_per_1000" in k and "shipping_per_1000" in k:
        future = est(k.get("future_value_per_1000")) or 0.0
        steps += [
            {"label": "Cost of goods", "value": -(est(k["cost_of_goods_per_1000"]) or 0.0)},
            {"label": "Delivery", "value": -(est(k["shipping_per_1000"]) or 0.0)},
        ]
        if future or FUTURE in lines:
            steps.append({"label": FUTURE, "value": future})
    else:
        goods = revenue - sum(spend.values()) - profit
        steps.append({"label": "Cost of goods and delivery", "value": -goods, "rest": True})
    shown = [kind for kind in spend if spend[kind] > 0] if kinds is None else list(kinds)
    for kind in sorted(shown, key=lambda kind: kind == "live_agent"):  # live agents last
        label = KIND_LABELS.get(kind, kind.replace("_", " "))
        steps.append({"label": label, "value": -spend.get(kind, 0.0)})
    rest = profit - sum(s["value"] for s in steps)
    if abs(rest) >= 0.5 or OTHER in lines:
        steps.append({"label": OTHER, "value": rest})
    for step in steps[1:]:
        step["kind"] = "step"
    steps.append({"label": "Profit", "value": profit, "kind": "total"})
    return steps


FUTURE, OTHER = "Future value", "Other (rounding, caps)"


def _waterfalls(pick: Pick) -> dict[str, list[dict[str, Any]]]:
    """The waterfalls of the current rule and the policy judged, with the same lines."""
    overall = pick.ev["overall"]
    policies = list(dict.fromkeys((pick.rule, pick.policy)))
    first = {p: waterfall(overall[p]) for p in policies}
    labels = {s["label"] for w in first.values() for s in w}
    spend = [overall[p].get("spend_by_kind_per_1000", {}) for p in policies]
    kinds = [kind for kind in spend[0] if any((est(s.get(kind)) or 0) > 0 for s in spend)]
    lines = [line for line in (FUTURE, OTHER) if line in labels]
    return {p: waterfall(overall[p], kinds, lines) for p in policies}


CONSENT_LABELS = {"consent": "accepted tracking", "no_consent": "refused tracking"}


def _segments(pick: Pick) -> dict[str, Any]:
    """Who gets offers: by shopper segment, then by tracking consent."""
    ev = pick.ev
    metrics = (
        ("offer_rate", "Shoppers offered something", "share"),
        ("spend_per_1000", "Concessions per 1,000", "eur"),
        ("diff_vs_never_per_1000", "Profit gained over never offering, per 1,000", "eur_diff"),
    )
    rows = []
    for kind, groups in (
        ("segment", ev.get("by_segment", {})),
        ("consent", ev.get("by_consent", {})),
    ):
        for name, group in groups.items():
            rows.append(
                {
                    "group": kind,
                    "segment": CONSENT_LABELS.get(name, name) if kind == "consent" else name,
                    "shoppers": next(iter(group.values())).get("shoppers"),
                    "cells": {
                        key: {p: group[p].get(key) for p in (pick.rule, pick.policy)}
                        for key, _, _ in metrics
                    },
                }
            )
    return {
        "policies": [pick.rule, pick.policy],
        "metrics": [{"key": k, "label": label, "unit": u} for k, label, u in metrics],
        "rows": rows,
    }


def _privacy(pick: Pick) -> dict[str, Any] | None:
    ev = pick.ev
    groups = ev.get("by_consent", {})
    if "consent" not in groups or "no_consent" not in groups:
        return None
    yes, no = groups["consent"], groups["no_consent"]
    rows = []
    for policy in dict.fromkeys((pick.policy, pick.rule, NEVER)):
        if policy not in yes:
            continue
        a, b = yes[policy]["profit_per_1000"], no[policy]["profit_per_1000"]
        gap: Interval = interval(None, None, None)
        ea, eb, ha, hb = est(a), est(b), half_width(a), half_width(b)
        if ea is not None and eb is not None:
            e = ea - eb
            # disjoint groups of shoppers: independent estimates, half-widths in quadrature
            h = None if ha is None or hb is None else math.hypot(ha, hb)
            gap = interval(e, None if h is None else e - h, None if h is None else e + h)
        rows.append(
            {
                "policy": policy,
                "consent": a,
                "no_consent": b,
                "gap": gap,
                "gain_consent": yes[policy].get("diff_vs_never_per_1000"),
                "gain_no_consent": no[policy].get("diff_vs_never_per_1000"),
            }
        )
    share = None
    n_yes = next(iter(yes.values())).get("shoppers")
    n_no = next(iter(no.values())).get("shoppers")
    if isinstance(n_yes, int) and isinstance(n_no, int) and n_yes + n_no:
        share = n_yes / (n_yes + n_no)
    return {
        "consent_shoppers": n_yes,
        "no_consent_shoppers": n_no,
        "consent_share": share,
        "rows": rows,
    }


def _headroom_split(ev: dict[str, Any], policy: str, never: float | None) -> dict[str, Any]:
    """With the informed bound evaluated (knows the shopper, not the dice): the headroom
    split into learnable (informed - policy) and luck (clairvoyant - informed), paired,
    and the profit captured against the informed bound."""
    split = ev.get("headroom_split_per_1000")
    informed = ev.get("informed")
    if not split or not informed or informed not in ev["overall"]:
        return {}
    learnable = split["learnable"].get(policy)
    luck = split["luck"]
    bound = est(ev["overall"][informed]["profit_per_1000"])
    captured = (ev.get("profit_captured_informed") or {}).get(policy)
    l_est, u_est = est(learnable), est(luck)
    share = (
        None
        if l_est is None or u_est is None or l_est + u_est <= 0
        else max(l_est, 0.0) / (max(l_est, 0.0) + max(u_est, 0.0))
    )
    sentence = (
        f"Of that, {eur(l_est)} {PER} is learnable (the informed bound, which knows each "
        f"shopper but not the dice, earns {eur(bound)}) and {eur(u_est)} is luck no policy "
        f"can know; against the informed bound {policy} captures {pct(captured)} of the gain "
        "over never offering."
    )
    return {
        "informed": informed,
        "informed_profit_per_1000": bound,
        "never_profit_per_1000": never,
        "learnable_per_1000": learnable,
        "luck_per_1000": luck,
        "learnable_share": share,
        "captured_vs_informed": captured,
        "training_data": ev.get("training_data", {}),
        "sentence": sentence,
    }


def _headroom(pick: Pick) -> dict[str, Any]:
    overall = pick.ev["overall"]
    oracle = str(pick.ev.get("oracle", ORACLE))
    policies = [p for p in dict.fromkeys((NEVER, pick.rule, pick.policy, oracle)) if p in overall]
    profits = {p: overall[p]["profit_per_1000"] for p in policies}
    captured = {p: overall[p].get("profit_captured") for p in (pick.policy, pick.rule)}
    regret = {p: overall[p].get("regret_per_1000") for p in (pick.policy, pick.rule)}
    gains = {p: overall[p].get("diff_vs_never_per_1000") for p in (pick.rule, pick.policy)}
    never, top = est(profits.get(NEVER)), est(profits.get(oracle))
    gain = None if never is None or top is None else top - never
    c = est(captured[pick.policy])
    sentence = (
        f"The oracle earns {eur(top)} {PER}, {eur(gain)} more than never offering anything. "
        f"{pick.policy} captures {pct(c)} of that gain (your current rule: "
        f"{pct(est(captured[pick.rule]))}) and leaves {eur(est(regret[pick.policy]))} {PER} "
        "on the table. The oracle knows what each shopper would do; no real policy reaches "
        "100%, so read this as the most that better timing could still add."
    )
    split = _headroom_split(pick.ev, pick.policy, never)
    if split:
        sentence += " " + split["sentence"]
    return {
        "oracle": oracle,
        "split": split,
        "profit_per_1000": profits,
        "oracle_gain_per_1000": gain,
        "gain_over_never_per_1000": gains,
        "captured": captured,
        "regret_per_1000": regret,
        "sentence": sentence,
    }


def _timing(pick: Pick) -> dict[str, Any] | None:
    """When the first offer comes (by visit, by step), if the evaluation records it."""
    overall = pick.ev["overall"]
    policies = [pick.rule, pick.policy]
    if not all("first_offer_visit" in overall[p] for p in policies):
        return None
    out: dict[str, Any] = {"policies": policies}
    for key in ("first_offer_visit", "first_offer_step"):
        bins = list(overall[pick.policy].get(key, {}))
        out[key] = [
            {"bin": b, "cells": {p: overall[p].get(key, {}).get(b) for p in policies}} for b in bins
        ]
    return out


def _run_row(pick: Pick) -> dict[str, Any]:
    k = pick.ev["overall"][pick.policy]
    return {
        "label": pick.source.label,
        "run_id": pick.source.run_id,
        "policy": pick.policy,
        "seed": pick.source.seed,
        "shoppers": pick.ev.get("n_shoppers"),
        "vs_rule": pick.diff,
        "profit_per_1000": k["profit_per_1000"],
        "profit_captured": k.get("profit_captured"),
        "offer_rate": k.get("offer_rate"),
        "spend_per_1000": k.get("spend_per_1000"),
    }


def _trained_on(data: dict[str, Any] | None) -> str:
    """What an opponent learned from and where it is kept, for the policy list: the
    amount of shopper experience stands beside its figures."""
    if not data:
        return ""
    amount = f"{int(data.get('journeys', 0)):,} shoppers"
    where = (
        f"a randomised test of {amount}"
        if data.get("trained_on") == FROM_RANDOMISED_LOG
        else f"{amount} served online in the simulator"
    )
    chose = f"; chose {data['chosen']}" if data.get("chosen") else ""
    cached = (
        f"; trained once for this scenario and kept in {data['cache']}" if data.get("cache") else ""
    )
    return f" (learned from {where}{chose}{cached})"


def scenario_figures(
    scenario: str, sources: list[Source], rule: str | None, policy: str | None
) -> dict[str, Any] | None:
    """Every figure of one scenario, from the evaluations of ``sources`` (which all have
    one). The headline evaluation is the one whose policy earns most over the current
    rule; the others are summarised in ``runs``. None when no evaluation has ``policy``."""
    picks = [p for s in sources if (p := judge(s, rule, policy)) is not None]
    if not picks:
        return None
    picks.sort(key=lambda p: est_or(p.diff, -math.inf), reverse=True)
    head = picks[0]
    ev = head.ev
    learners = {n for p in picks if (n := learner_of(p.ev))}
    policies = list(ev["policies"])
    conf = round(100 * float(ev.get("confidence", 0.95)))
    return {
        "scenario": scenario,
        "description": describe_scenario(scenario),
        "source": head.source.label,
        "run_id": head.source.run_id,
        "n_shoppers": ev["n_shoppers"],
        "seed": ev.get("seed"),
        "confidence": conf,
        "policies": {
            p: describe_policy(p, learners) + _trained_on(ev.get("training_data", {}).get(p))
            for p in policies
        },
        "key_policies": _key_policies(head),
        "best_baseline": ev["best_baseline"],
        "verdict": verdict(head),
        "profit": _table(
            head,
            PROFIT_COLUMNS,
            "Profit and sales",
            f"Euros {PER}. 'vs your current rule' compares on the same shoppers.",
        ),
        "given": _table(
            head,
            GIVEN_COLUMNS,
            "What is given away",
            f"Concession cost in euros {PER}: discounts, shipping waived, gifts, vouchers, "
            "e-mails and live-agent time.",
        ),
        "contact": _table(
            head,
            CONTACT_COLUMNS,
            "How often shoppers are interrupted",
            "Every offer is a pop-up, a chat or an e-mail: an interruption.",
        ),
        "kinds": _kinds_table(head),
        "waterfall": _waterfalls(head),
        "segments": _segments(head),
        "privacy": _privacy(head),
        "headroom": _headroom(head),
        "timing": _timing(head),
        "runs": [_run_row(p) for p in picks],
        "curves": [
            {
                "label": _curve_label(s),
                "run_id": s.run_id,
                "status": s.status,
                "points": s.curve,
            }
            for s in sources
            if s.curve
        ],
    }


def _curve_label(source: Source) -> str:
    parts = [source.agent or source.label]
    if source.seed is not None:
        parts.append(f"seed {source.seed}")
    if source.status not in ("FINISHED", "FILE"):
        parts.append(source.status.lower())
    return " · ".join(parts)


def build_figures(
    sources: Sequence[Source],
    *,
    current_rule: str | None = None,
    policy: str | None = None,
    title: str = "What your concessions earn",
    selection: str = "",
    tracking_uri: str | None = None,
) -> Figures:
    """Every figure of the report as JSON-ready data (the HTML shows exactly these).

    Raises:
        ReportError: no source has an evaluation, ``current_rule`` was not evaluated, or
            no evaluation has ``policy``.
    """
    usable = [s for s in sources if s.evaluation is not None]
    if not usable:
        listed = "; ".join(f"{s.label} ({s.status}): {s.note}" for s in sources) or "none"
        raise ReportError(
            f"nothing to report: none of the {len(sources)} run(s) selected has an "
            f"{EVALUATION_FILE}. Runs: {listed}"
        )
    by_scenario: dict[str, list[Source]] = {}
    for s in usable:
        by_scenario.setdefault(str(s.evaluation["scenario"]), []).append(s)  # type: ignore[index]
    # curves of runs without evaluation (failed midway) still belong to their scenario
    for s in sources:
        if s.evaluation is None and s.curve and s.scenario in by_scenario:
            by_scenario[s.scenario].append(s)
    scenarios = []
    for name, group in by_scenario.items():
        evaluated = [s for s in group if s.evaluation is not None]
        figures = scenario_figures(name, evaluated, current_rule, policy)
        if figures is not None:
            unevaluated = [s for s in group if s.evaluation is None]
            figures["curves"] += [
                {
                    "label": _curve_label(s),
                    "run_id": s.run_id,
                    "status": s.status,
                    "points": s.curve,
                }
                for s in unevaluated
            ]
            scenarios.append(figures)
    if not scenarios:
        raise ReportError(
            f"policy={policy} is in none of the evaluations; policies there: "
            f"{sorted({p for s in usable for p in s.evaluation['policies']})}"  # type: ignore[index]
        )
    used = {s["run_id"] or s["source"] for s in scenarios}
    runs = []
    for s in sources:
        in_figures = s.evaluation is not None and s.scenario in {x["scenario"] for x in scenarios}
        note = s.note or ("in the figures" if in_figures else "not in the figures")
        if in_figures and (s.run_id or s.label) in used:
            note = "headline of its scenario"
        runs.append(
            {
                "label": s.label,
                "run_id": s.run_id,
                "status": s.status,
                "scenario": s.scenario,
                "agent": s.agent,
                "seed": s.seed,
                "sweep": s.sweep,
                "has_evaluation": s.evaluation is not None,
                "note": note,
            }
        )
    return {
        "title": title,
        "generated": dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z").strip(),
        "selection": selection,
        "tracking_uri": tracking_uri,
        "scenarios": scenarios,
        "runs": runs,
        "missing": missing_figures(scenarios),
    }


def missing_figures(scenarios: list[dict[str, Any]]) -> list[str]:
    """What the evaluations do not record, that the report would show if they did."""
    out = []
    if any(s["timing"] is None for s in scenarios):
        out.append(
            "When the first offer comes (by visit and by step): the evaluation does not record "
            "first_offer_visit / first_offer_step."
        )
    if any(any(step.get("rest") for step in w) for s in scenarios for w in s["waterfall"].values()):
        out.append(
            "Cost of goods and delivery separately: the evaluation does not record them, so the "
            "waterfall shows them together, as revenue minus concessions minus profit."
        )
    return out
