"""The merchant's accounting: the ledger's signs, and orders booked end to end.

The end-to-end cases run a ``sure`` shopper of the tiny market (see ``conftest.py``):
browse -> cart -> delivery -> payment, one stage per step, and the order at step 3.
Cart: list price 100 EUR, shipping fee 5, cost of goods 60, carrier 6.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pytest

from envs import ledger
from envs.core import EVENT_NAMES, NOTHING, PURCHASE, ShopperCore
from envs.scenario import Scenario

PURCHASE_STEP = 3


def _terms(**values: float) -> dict[str, float]:
    out = dict.fromkeys(ledger.LEDGER_TERMS, 0.0)
    out.update(values)
    return out


# ------------------------------------------------------------------ pure functions


def test_ledger_terms_order_and_signs() -> None:
    assert ledger.LEDGER_TERMS == (
        "revenue",
        "cost_of_goods",
        "shipping",
        "concession_cost",
        "voucher_liability",
        "agent_cost",
        "future_value",
    )
    unit = np.eye(len(ledger.LEDGER_TERMS))
    np.testing.assert_array_equal(ledger.profit(unit), [1, -1, -1, -1, -1, -1, 1])


def test_profit_is_linear_in_the_terms() -> None:
    rng = np.random.default_rng(0)
    a = rng.normal(size=(len(ledger.LEDGER_TERMS), 5))
    b = rng.normal(size=(len(ledger.LEDGER_TERMS), 5))
    np.testing.assert_allclose(ledger.profit(a + b), ledger.profit(a) + ledger.profit(b))
    np.testing.assert_allclose(ledger.profit(2.5 * a), 2.5 * ledger.profit(a))


# ------------------------------------------------------------------ end to end

TEN_OFF = {"name": "ten_off", "kind": "percent_discount", "magnitude": 0.10, "expiry_steps": 12}
GIFT = {"name": "gift", "kind": "free_gift", "magnitude": 15.0, "unit_cost": 4.0}
VOUCHER = {
    "name": "voucher",
    "kind": "voucher",
    "magnitude": 10.0,
    "redemption_probability": 0.35,
}
FREE_SHIPPING = {"name": "free_shipping", "kind": "free_shipping"}
EXPRESS = {"name": "express", "kind": "express_delivery", "unit_cost": 6.0}
AGENT = {"name": "agent", "kind": "live_agent", "unit_cost": 3.5, "expiry_steps": 6}
HUGE_FIXED = {"name": "huge_fixed", "kind": "fixed_discount", "magnitude": 1000.0}
HALF_OFF = {"name": "half_off", "kind": "percent_discount", "magnitude": 0.5}


def _journey(
    scenario: Scenario, plan: dict[int, str], seed: int = 0
) -> tuple[ShopperCore, list[dict[str, float]], list[str]]:
    """Play ``plan`` (step -> concession name; wait otherwise) until the journey ends."""
    core = ShopperCore(scenario, 1, autoreset=False)
    core.reset(seed)
    booked: list[dict[str, float]] = []
    events: list[str] = []
    for step in range(scenario.horizon):
        action = scenario.action_names.index(plan[step]) if step in plan else 0
        _, reward, terminated, truncated = core.step(np.array([action]))
        assert core.applied[0] == action, f"step {step}: {plan.get(step)} was not applied"
        booked.append(dict(zip(ledger.LEDGER_TERMS, core.terms[:, 0].tolist(), strict=True)))
        assert reward[0] == pytest.approx(ledger.profit(core.terms)[0])
        events.append(EVENT_NAMES[core.event[0]])
        if terminated[0] or truncated[0]:
            break
    return core, booked, events


def _assert_terms(got: dict[str, float], want: dict[str, float]) -> None:
    assert got == pytest.approx(want), {k: (got[k], want[k]) for k in want if got[k] != want[k]}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sure_shopper_buys_at_payment_at_list_price(
    tiny_market: Callable[..., Scenario], seed: int
) -> None:
    scenario = tiny_market([TEN_OFF])
    core, booked, events = _journey(scenario, {}, seed)
    assert events == [EVENT_NAMES[NOTHING]] * PURCHASE_STEP + [EVENT_NAMES[PURCHASE]]
    assert core.terminated[0] and not core.truncated[0]
    for step in booked[:PURCHASE_STEP]:
        _assert_terms(step, _terms())
    # 105 - 60 - 6 = 39
    _assert_terms(booked[-1], _terms(revenue=105.0, cost_of_goods=60.0, shipping=6.0))
    assert ledger.profit(core.terms)[0] == pytest.approx(39.0)


@pytest.mark.parametrize(
    ("offer_step", "expiry", "discounted"),
    [
        (0, 12, True),
        (0, 4, True),  # offered at t=0, valid while t < 4: the order at t=3 gets it
        (0, 3, False),  # valid while t < 3: expired when the order is placed at t=3
        (1, 3, True),  # valid while t < 4
        (2, 1, False),  # valid at t=2 only
        (3, 1, True),  # offered at the payment step itself: valid for that step
    ],
)
def test_discount_booked_only_while_valid(
    tiny_market: Callable[..., Scenario], offer_step: int, expiry: int, discounted: bool
) -> None:
    scenario = tiny_market([{**TEN_OFF, "expiry_steps": expiry}])
    _, booked, events = _journey(scenario, {offer_step: "ten_off"})
    assert events[-1] == "purchase" and len(events) == PURCHASE_STEP + 1
    for step in booked[:-1]:
        _assert_terms(step, _terms())  # an onsite offer costs nothing until the order
    concession = 10.0 if discounted else 0.0
    _assert_terms(
        booked[-1],
        _terms(revenue=105.0, cost_of_goods=60.0, shipping=6.0, concession_cost=concession),
    )


def test_discount_gift_and_voucher_on_one_order(tiny_market: Callable[..., Scenario]) -> None:
    # the hand case of the ledger, end to end: 105 - 60 - 6 - (10 + 4) - 3.5 = 21.5
    scenario = tiny_market([TEN_OFF, GIFT, VOUCHER])
    core, booked, events = _journey(scenario, {0: "ten_off", 1: "gift", 2: "voucher"})
    assert events[-1] == "purchase" and len(events) == PURCHASE_STEP + 1
    _assert_terms(
        booked[-1],
        _terms(
            revenue=105.0,
            cost_of_goods=60.0,
            shipping=6.0,
            concession_cost=14.0,
            voucher_liability=3.5,
        ),
    )
    assert ledger.profit(core.terms)[0] == pytest.approx(21.5)
    assert core.interruptions[0] == 3


@pytest.mark.parametrize(
    ("concession", "want"),
    [
        (FREE_SHIPPING, {"concession_cost": 5.0}),  # the waived fee
        (EXPRESS, {"concession_cost": 6.0}),  # the upgrade, paid with the order
        (GIFT, {"concession_cost": 4.0}),  # the gift's cost, not its retail value
        (VOUCHER, {"voucher_liability": 3.5}),
    ],
)
def test_each_kind_books_its_cost_with_the_order(
    tiny_market: Callable[..., Scenario], concession: dict[str, Any], want: dict[str, float]
) -> None:
    scenario = tiny_market([concession])
    _, booked, _ = _journey(scenario, {1: concession["name"]})
    for step in booked[:-1]:
        _assert_terms(step, _terms())
    _assert_terms(booked[-1], _terms(revenue=105.0, cost_of_goods=60.0, shipping=6.0, **want))


def test_live_agent_is_paid_when_assigned(tiny_market: Callable[..., Scenario]) -> None:
    scenario = tiny_market([AGENT])
    _, booked, events = _journey(scenario, {0: "agent"})
    assert events[-1] == "purchase" and len(events) == PURCHASE_STEP + 1
    _assert_terms(booked[0], _terms(agent_cost=3.5))
    _assert_terms(booked[-1], _terms(revenue=105.0, cost_of_goods=60.0, shipping=6.0))
    episode = sum(ledger.profit(np.array([list(b.values())]).T)[0] for b in booked)
    assert episode == pytest.approx(39.0 - 3.5)


def test_discounts_beyond_the_cart_are_capped_at_its_list_total(
    tiny_market: Callable[..., Scenario],
) -> None:
    # 100 (fixed, capped at the price) + 5 (fee) + 50 (half off) = 155 > 105: the shopper
    # pays nothing, the merchant gives away exactly the list total
    scenario = tiny_market([HUGE_FIXED, FREE_SHIPPING, HALF_OFF])
    core, booked, _ = _journey(scenario, {0: "huge_fixed", 1: "free_shipping", 2: "half_off"})
    _assert_terms(
        booked[-1],
        _terms(revenue=105.0, cost_of_goods=60.0, shipping=6.0, concession_cost=105.0),
    )
    assert ledger.profit(core.terms)[0] == pytest.approx(-66.0)


def test_future_value_of_a_retained_customer(tiny_market: Callable[..., Scenario]) -> None:
    scenario = tiny_market(future_value={"retained_customer": 7.0})
    _, booked, _ = _journey(scenario, {})
    _assert_terms(
        booked[-1], _terms(revenue=105.0, cost_of_goods=60.0, shipping=6.0, future_value=7.0)
    )


def test_harassed_shopper_costs_future_value(tiny_market: Callable[..., Scenario]) -> None:
    # tolerance 0.01 x Gamma(4, 1/4) < 1: the first pop-up drives the shopper away
    scenario = tiny_market(
        [TEN_OFF],
        segments=({"base": "sure", "tolerance": 0.01},),
        future_value={"annoyed_customer": 9.0},
    )
    _, booked, events = _journey(scenario, {0: "ten_off"})
    assert events[0] == "harassment_exit"
    _assert_terms(booked[0], _terms(future_value=-9.0))
    assert events[-1] == "abandoned"  # no return probability: the journey ends
    for step in booked[1:]:
        _assert_terms(step, _terms())


def _order_terms(scenario: Scenario, plans: Sequence[dict[int, str]]) -> list[dict[str, float]]:
    return [_journey(scenario, plan)[1][-1] for plan in plans]


def test_same_offer_same_books_whenever_made_while_valid(
    tiny_market: Callable[..., Scenario],
) -> None:
    scenario = tiny_market([TEN_OFF, FREE_SHIPPING])
    orders = _order_terms(
        scenario,
        [
            {0: "ten_off", 1: "free_shipping"},
            {1: "free_shipping", 2: "ten_off"},
            {0: "free_shipping", 3: "ten_off"},
        ],
    )
    for order in orders:
        _assert_terms(
            order,
            _terms(revenue=105.0, cost_of_goods=60.0, shipping=6.0, concession_cost=15.0),
        )
