"""The merchant's accounting, as pure functions over arrays of shoppers.

Every step books seven signed terms per shopper (EUR). Costs are positive numbers; the
contribution margin, which is the reward, is

    profit = revenue - cost_of_goods - shipping - concession_cost
             - voucher_liability - agent_cost + future_value

``revenue`` is the cart at list price plus the standard shipping fee, so that what a
concession gives away shows up as ``concession_cost`` (discounts, a waived shipping
fee, the express upgrade, a gift's cost, a recovery e-mail) instead of hiding in a
lower revenue. ``voucher_liability`` is face value x redemption probability, booked
when the voucher is handed out with the order. ``future_value`` is the optional
relationship term: a retained customer (+) or a harassed one (-).

An order books, with every concession still valid: revenue = price + fee; cost of goods;
shipping = the carrier's rate; concession cost = the price discounts (capped at the
order's list total, so no price falls below 0) + the gift's or the upgrade's cost;
voucher liability; future value += the retained customer's value. The compiled step
(:func:`envs.kernels.step`) books them; this module owns their names, order and signs.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

LEDGER_TERMS: tuple[str, ...] = (
    "revenue",
    "cost_of_goods",
    "shipping",
    "concession_cost",
    "voucher_liability",
    "agent_cost",
    "future_value",
)
REVENUE, COST_OF_GOODS, SHIPPING, CONCESSION_COST, VOUCHER_LIABILITY, AGENT_COST, FUTURE_VALUE = (
    range(len(LEDGER_TERMS))
)
_SIGNS = np.array([1.0, -1.0, -1.0, -1.0, -1.0, -1.0, 1.0])

Array = NDArray[np.float64]


def profit(terms: Array) -> Array:
    """The contribution margin of each shopper: the signed sum of the terms, shape ``(n,)``."""
    return _SIGNS @ terms
