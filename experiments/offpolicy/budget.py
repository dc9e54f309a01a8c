"""Under whose campaign budget a policy is evaluated: its own, when the log allows.

A campaign budget is shared between shoppers: what the logger had spent decided which
offers later shoppers were eligible for. Evaluated on the logged eligibility, a policy
that spends less than the logger is rationed by the logger's spending, not its own, and
its figure is too low by an amount no interval shows (on ``black_friday`` the benchmark
saw ``always_recovery_email`` underestimated by about 500 EUR per 1,000 journeys).

When the log says which actions the budget alone withheld at each decision (the
``withheld_<action>`` columns) and what the budget allows (``budget_per_1000`` in its
metadata), a policy is evaluated **under its own budget**:

1. it chooses among the eligible actions *and* the withheld ones (:func:`own_mask`);
2. where it picks a withheld action the logger could not have taken it: those decisions
   have no support in the log, and the doubly robust estimators take their value from
   the value model, learned at states where the budget allowed the action (regression
   extrapolation for deficient support; Sachdeva, Su and Joachims, 2020). The budget is
   not a feature, so the model values a shopper the same whatever was left of it. The
   importance-sampling estimators leave those decisions out, so this needs a value model
   that explains something of the returns;
3. its concession spend per 1,000 journeys is estimated the same way and compared with
   the allowance (:func:`judge`). Its whole 95% interval within the allowance: its own
   spending would not have used the budget up, and the own-budget figure stands. Its
   whole interval above: its spending would have rationed its own offers, as the log
   cannot show; it is evaluated on the logged eligibility, and warned about. The
   interval across the allowance: the log cannot tell whether the budget would have
   rationed it, so the answer **spans both** evaluations (:func:`span`): each interval
   runs from the lower of the two ends to the higher, around the estimate of the one the
   spend estimate points to — wider, and honest about what the log cannot say.

A policy that never picks a withheld action is evaluated on the logged eligibility; its
spend is still compared with the allowance, since a policy spending more than the
logger would have found the budget empty sooner than the log shows.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from numpy.typing import NDArray

from experiments.evaluation.formatting import amount, eur_interval
from experiments.offpolicy.data import Journeys
from experiments.offpolicy.result import BudgetSummary, Estimate, PolicyEstimates

OWN = "own budget"
LOGGED = "logged eligibility"
SPANNED = "both, spanned"
FITS, EXCEEDS, UNCERTAIN = "fits", "exceeds", "uncertain"


def own_mask(journeys: Journeys) -> NDArray[np.bool_] | None:
    """The actions a policy may choose under its own budget, ``(n_rows, n_actions)``: the
    logged eligible ones and those the budget alone withheld. None when the log does not
    say what the budget withheld, or it withheld nothing."""
    if journeys.withheld is None or not journeys.withheld.any():
        return None
    return np.asarray(journeys.mask | journeys.withheld, dtype=bool)


def picks_withheld(target: NDArray[np.float64], journeys: Journeys) -> NDArray[np.bool_]:
    """Per row, whether the policy's choice (``target``, its probabilities) is an action
    the budget withheld from the logger."""
    if journeys.withheld is None:
        return np.zeros(journeys.n_rows, dtype=bool)
    return np.asarray(((target > 0.0) & journeys.withheld).any(axis=1), dtype=bool)


@dataclass(frozen=True)
class Judgement:
    """Whether a policy's own spending fits the campaign's allowance.

    ``verdict``: ``fits`` (its whole spend interval is within the allowance), ``exceeds``
    (its whole interval is above it), ``uncertain`` (the interval holds the allowance;
    ``likely_fits`` says on which side the estimate is) or None (no allowance or no spend
    estimate: cannot tell).
    """

    allowance: float | None
    spend: Estimate | None
    verdict: str | None
    likely_fits: bool | None = None


def judge(allowance: float | None, spend: Estimate | None) -> Judgement:
    """Compare a spend estimate (per 1,000 journeys) with the allowance per 1,000
    journeys."""
    if allowance is None or spend is None or spend.high is None or spend.estimate is None:
        return Judgement(allowance, spend, None)
    likely = bool(spend.estimate <= allowance)
    if spend.high <= allowance:
        return Judgement(allowance, spend, FITS, likely)
    if spend.low is not None and spend.low > allowance:
        return Judgement(allowance, spend, EXCEEDS, likely)
    return Judgement(allowance, spend, UNCERTAIN, likely)


def stretch(a: Estimate, b: Estimate | None) -> Estimate:
    """``a`` with its interval stretched to hold ``b``'s (the estimate stays ``a``'s)."""
    if b is None or a.low is None or b.low is None or a.high is None or b.high is None:
        return a
    return replace(a, low=min(a.low, b.low), high=max(a.high, b.high))


def span(first: PolicyEstimates, second: PolicyEstimates) -> PolicyEstimates:
    """``first``'s result with every interval stretched to hold ``second``'s too (the
    estimates stay ``first``'s): for an answer the log cannot settle between the two."""
    estimators = {
        name: {k: stretch(v, second.estimators.get(name, {}).get(k)) for k, v in outputs.items()}
        for name, outputs in first.estimators.items()
    }
    rec = first.recommended
    outputs = {k: stretch(v, second.recommended.outputs.get(k)) for k, v in rec.outputs.items()}
    return replace(first, estimators=estimators, recommended=replace(rec, outputs=outputs))


def summary(
    evaluated_under: str,
    judgement: Judgement,
    withheld_share: float,
    own_profit: Estimate | None = None,
    logged_profit: Estimate | None = None,
) -> BudgetSummary:
    """The ``budget`` block of a policy's result."""
    return BudgetSummary(
        evaluated_under=evaluated_under,
        allowance_per_1000=judgement.allowance,
        spend_per_1000=judgement.spend,
        spend_verdict=judgement.verdict,
        withheld_decisions=round(withheld_share, 6),
        own_budget_profit_per_1000=own_profit,
        logged_eligibility_profit_per_1000=logged_profit,
    )


def warning(name: str, block: BudgetSummary, reason: str = "") -> str | None:
    """What a user should know about a policy's budget, in words (None: nothing)."""
    spend, allowance = block.spend_per_1000, block.allowance_per_1000
    share = block.withheld_decisions
    spent = (
        f"it would spend {eur_interval(spend.to_json(), bare_point=False)} EUR per 1,000 "
        f"journeys against an allowance of {amount(allowance)}"
        if spend and allowance is not None
        else ""
    )
    if block.evaluated_under == SPANNED:
        return (
            f"{name}: {spent}, an interval across the allowance: the log cannot tell "
            "whether the budget would have rationed its offers. In "
            f"{share:.1%} of decisions it would offer what the budget had withheld from the "
            "logger; its intervals span both the figure under its own budget (the value "
            "model valuing those offers) and the figure on the logged eligibility."
        )
    if block.evaluated_under == OWN:
        return (
            f"{name}: evaluated under its own campaign budget: {spent}, so the budget the "
            f"logger used up would have been left for it; in {share:.1%} of decisions it "
            "offers what the budget had withheld from the logger, and the doubly robust "
            "figure takes those offers' value from its value model (the importance-sampling "
            "figures leave them out)."
        )
    if share > 0.0:
        return (
            f"{name}: in {share:.1%} of decisions it would offer what the campaign budget had "
            f"withheld from the logger, but {reason or spent}: it is evaluated on the logged "
            "eligibility, rationed by the logger's spending rather than its own, and the "
            "figure may be off either way by an amount its interval does not show."
        )
    if block.spend_verdict in (EXCEEDS, UNCERTAIN):
        return (
            f"{name}: {spent}: its own spending would have used the budget up sooner than "
            "the logger's did, which the log cannot show; the figure is likely too high."
        )
    return None
