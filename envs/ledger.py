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


def capped_discount(price_discounts: Array, price: Array, shipping_fee: Array) -> Array:
    """Discounts given on one order, never more than the order's list total (no price < 0)."""
    return np.minimum(price_discounts, price + shipping_fee)


def book_purchase(
    terms: Array,
    bought: NDArray[np.bool_],
    price: Array,
    shipping_fee: Array,
    unit_cost: Array,
    shipping_cost: Array,
    price_discounts: Array,
    other_concession_costs: Array,
    voucher_liability: Array,
    retained_value: float,
) -> None:
    """Add the order's terms, in place, for the shoppers where ``bought`` is true.

    ``terms`` has shape ``(len(LEDGER_TERMS), n)``; the other arrays have shape ``(n,)``.
    """
    b = bought.astype(np.float64)
    terms[REVENUE] += b * (price + shipping_fee)
    terms[COST_OF_GOODS] += b * unit_cost
    terms[SHIPPING] += b * shipping_cost
    terms[CONCESSION_COST] += b * (
        capped_discount(price_discounts, price, shipping_fee) + other_concession_costs
    )
    terms[VOUCHER_LIABILITY] += b * voucher_liability
    terms[FUTURE_VALUE] += b * retained_value


def profit(terms: Array) -> Array:
    """The contribution margin of each shopper: the signed sum of the terms, shape ``(n,)``."""
    return _SIGNS @ terms


def cash_paid(terms: Array, price_discounts: Array) -> Array:
    """What the shopper pays: list total less the price discounts (never above list)."""
    return terms[REVENUE] - price_discounts
