"""The verdict of one evaluation: which policy is judged against which current rule, the
profit difference between them with its interval, and the sentences that say it.

"Your current rule" is the one asked for, else ``merchant_rules`` when it was evaluated,
else the best baseline (:func:`choose_rule`); the policy judged is the one asked for,
else the trained agent, else the most profitable other policy (:func:`choose_policy`).
Differences are paired (shopper by shopper) when the evaluation holds them, otherwise a
conservative interval (:func:`difference`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from agents.registry import BOUNDS, NEVER
from experiments.evaluation.formatting import eur, pct, per_100
from experiments.reporting.errors import ReportError
from experiments.reporting.intervals import (
    PER,
    Interval,
    est,
    est_or,
    half_width,
    interval,
    negate,
    number,
    relative,
)
from experiments.reporting.sources import Source

DEFAULT_RULE = "merchant_rules"
SAME = 0.02  # relative changes smaller than this read "about as much"


def difference(ev: dict[str, Any], group: dict[str, Any], a: str, b: str) -> tuple[Interval, str]:
    """Profit of ``a`` minus ``b`` per 1,000 shoppers of ``group`` and how it was obtained.

    ``"paired"`` when the evaluation holds it shopper by shopper (against ``never``, the
    best baseline, or any pair if it has ``paired_diffs_per_1000``); otherwise
    ``"conservative"``: both policies' paired differences with a common reference,
    subtracted, their half-widths added (an interval at least as wide as the paired one).
    """
    if a == b:
        return interval(0.0, 0.0, 0.0), "paired"
    pairs = group.get("_pairs") or {}
    if a in pairs and b in pairs[a]:
        return pairs[a][b], "paired"
    refs = (("diff_vs_best_per_1000", ev["best_baseline"]), ("diff_vs_never_per_1000", NEVER))
    for key, ref in refs:
        if b == ref and key in group[a]:
            return group[a][key], "paired"
        if a == ref and key in group[b]:
            return negate(group[b][key]), "paired"
    best: tuple[float, Interval] | None = None
    for key, _ in refs:
        da, db = group[a].get(key), group[b].get(key)
        if not da or not db or est(da) is None or est(db) is None:
            continue
        e = float(est(da)) - float(est(db))  # type: ignore[arg-type]
        ha, hb = half_width(da), half_width(db)
        if ha is None or hb is None:
            candidate = interval(e, None, None)
            width = math.inf
        else:
            candidate = interval(e, e - ha - hb, e + ha + hb)
            width = ha + hb
        if best is None or width < best[0]:
            best = (width, candidate)
    if best is None:
        pa, pb = est(group[a]["profit_per_1000"]), est(group[b]["profit_per_1000"])
        return interval(None if pa is None or pb is None else pa - pb, None, None), "conservative"
    return best[1], "conservative"


def with_pairs(ev: dict[str, Any], group: dict[str, Any]) -> dict[str, Any]:
    """``group`` with the evaluation's all-pairs differences (overall only), if it has them."""
    pairs = ev.get("paired_diffs_per_1000")
    return {**group, "_pairs": pairs} if pairs and group is ev["overall"] else group


# ------------------------------------------------------------------ choices


def choose_rule(ev: dict[str, Any], asked: str | None) -> tuple[str, str]:
    """The current rule of an evaluation and why it is that one."""
    policies = list(ev["policies"])
    if asked:
        if asked not in policies:
            raise ReportError(
                f"current_rule={asked} was not evaluated on scenario {ev['scenario']}; "
                f"policies evaluated: {', '.join(policies)}"
            )
        return asked, "chosen with current_rule="
    if DEFAULT_RULE in policies:
        return DEFAULT_RULE, (
            f"your hand-written rules ({DEFAULT_RULE}) were evaluated; "
            "choose another with current_rule="
        )
    best = str(ev["best_baseline"])
    return best, (
        f"{DEFAULT_RULE} was not evaluated, so the most profitable baseline ({best}) stands in; "
        "choose another with current_rule="
    )


def learner_of(ev: dict[str, Any]) -> str | None:
    return (ev.get("verdict") or {}).get("learner")


def choose_policy(ev: dict[str, Any], rule: str, asked: str | None) -> tuple[str, str] | None:
    """The policy the verdict is about: ``asked``, else the trained agent, else the most
    profitable other policy (the oracle aside); None if ``asked`` was not evaluated."""
    if asked:
        return (asked, "chosen with policy=") if asked in ev["policies"] else None
    learner = learner_of(ev)
    if learner:
        return learner, "the agent trained in this run"
    others = [p for p in ev["policies"] if p != rule and p not in BOUNDS]
    if not others:
        return None
    overall = ev["overall"]
    best = max(others, key=lambda p: est_or(overall[p]["profit_per_1000"], -math.inf))
    return best, "the most profitable of the other policies evaluated; choose one with policy="


@dataclass
class Pick:
    """One evaluation of a scenario with its current rule and the policy judged."""

    source: Source
    rule: str
    rule_why: str
    policy: str
    policy_why: str
    diff: Interval
    method: str

    @property
    def ev(self) -> dict[str, Any]:
        assert self.source.evaluation is not None
        return self.source.evaluation


def verdict(pick: Pick) -> dict[str, Any]:
    """The verdict of one evaluation: figures and the sentences that say them."""
    overall = pick.ev["overall"]
    x, rule, diff = pick.policy, pick.rule, pick.diff
    kx, kr = overall[x], overall[rule]
    e, lo, hi = est(diff), number(diff.get("low")), number(diff.get("high"))
    spend_x, spend_r = est(kx["spend_per_1000"]), est(kr["spend_per_1000"])
    offer_x, offer_r = est(kx["offer_rate"]), est(kr["offer_rate"])
    spend_change, offer_change = relative(spend_x, spend_r), relative(offer_x, offer_r)
    conf = round(100 * float(pick.ev.get("confidence", 0.95)))

    more = "more" if (e or 0) >= 0 else "less"
    bounds = f"[{conf}% interval: {eur(lo, True)} to {eur(hi, True)}]" if lo is not None else ""
    if spend_change is not None and abs(spend_change) < SAME:
        given = "gives away about as much in concessions"
    elif spend_change is not None:
        word = "less" if spend_change <= 0 else "more"
        given = f"gives away {pct(abs(spend_change))} {word} in concessions"
    elif not spend_x:
        given = "gives nothing away, like your current rule"
    else:
        given = "gives away concessions where your current rule gives none"
    given += f" ({eur(spend_x)} instead of {eur(spend_r)} {PER})"
    if offer_change is not None and abs(offer_change) < SAME:
        interrupts = "interrupts about as many shoppers"
    elif offer_change is not None:
        word = "fewer" if offer_change <= 0 else "more"
        interrupts = f"interrupts {pct(abs(offer_change))} {word} shoppers"
    elif not offer_x:
        interrupts = "interrupts nobody, like your current rule"
    else:
        interrupts = "interrupts shoppers where your current rule interrupts nobody"
    interrupts += f" ({per_100(offer_x)} in 100 instead of {per_100(offer_r)})"
    headline = (
        f"{x} earns {eur(abs(e) if e is not None else None)} {more} {PER} than your current "
        f"rule ({rule}) {bounds}, {given}, and {interrupts}."
    ).replace("  ", " ")

    if lo is not None and lo > 0:
        significance = "more"
        sure = f"The whole {conf}% interval is above zero: {x} clearly earns more here."
    elif hi is not None and hi < 0:
        significance = "less"
        sure = f"The whole {conf}% interval is below zero: {x} clearly earns less here."
    else:
        significance = "unclear"
        sure = (
            f"The {conf}% interval includes zero: the difference could go either way; "
            "evaluate on more shoppers before switching."
        )
    if pick.method == "conservative":
        sure += (
            f" (This evaluation does not store {x} against {rule} shopper by shopper, so the "
            "interval is a safe, wider one.)"
        )
    waste_x, waste_r = (
        est(kx.get("giveaway_spend_per_1000")),
        est(kr.get("giveaway_spend_per_1000")),
    )
    waste = (
        f"Of its concessions, {eur(waste_x)} {PER} go to shoppers who would have bought "
        f"anyway (your current rule: {eur(waste_r)})."
    )
    return {
        "policy": x,
        "policy_why": pick.policy_why,
        "current_rule": rule,
        "current_rule_why": pick.rule_why,
        "profit_difference_per_1000": diff,
        "interval_method": pick.method,
        "significance": significance,
        "profit_per_1000": {x: kx["profit_per_1000"], rule: kr["profit_per_1000"]},
        "concession_spend_per_1000": {x: kx["spend_per_1000"], rule: kr["spend_per_1000"]},
        "spend_change": spend_change,
        "offer_rate": {x: kx["offer_rate"], rule: kr["offer_rate"]},
        "offer_change": offer_change,
        "headline": headline,
        "details": [sure, waste],
    }


def judge(source: Source, rule_asked: str | None, policy_asked: str | None) -> Pick | None:
    """The current rule and the policy judged in ``source``'s evaluation, and their paired
    difference; None when ``policy_asked`` was not evaluated there."""
    ev = source.evaluation
    assert ev is not None
    rule, rule_why = choose_rule(ev, rule_asked)
    chosen = choose_policy(ev, rule, policy_asked)
    if chosen is None:
        return None
    policy, policy_why = chosen
    diff, method = difference(ev, with_pairs(ev, ev["overall"]), policy, rule)
    return Pick(source, rule, rule_why, policy, policy_why, diff, method)
