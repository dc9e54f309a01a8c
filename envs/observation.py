"""What the merchant may see: the named feature schema of the flat float32 observation.

Features marked ``gated`` are behavioural signals that exist only through tracking;
for a shopper who refused tracking (``consent`` = 0) they are reported as 0, whatever
the shopper does. Everything else is the merchant's own data (the cart, the checkout
step reached, what the merchant itself offered), visible for every shopper.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from gymnasium import spaces

from envs.scenario import Scenario


@dataclass(frozen=True)
class Feature:
    name: str
    low: float
    high: float
    gated: bool
    description: str


DWELL_CAP = 30.0

_BASE: tuple[Feature, ...] = (
    Feature("cart_value", 0.0, 1.0, False, "cart list price, in hundreds of EUR"),
    Feature("shipping_fee", 0.0, 1.0, False, "standard shipping fee, in tens of EUR"),
    Feature("margin_rate", 0.0, 1.0, False, "(price - cost of goods) / price"),
    Feature("checkout_step", 0.0, 1.0, False, "funnel stage / 3: browse, cart, delivery, payment"),
    Feature("journey_step", 0.0, 1.0, False, "decision steps so far / horizon"),
    Feature("away", 0.0, 1.0, False, "1 while the shopper has left the site (e-mail window)"),
    Feature("consent", 0.0, 1.0, False, "1 if the shopper accepted behavioural tracking"),
    Feature("interruptions", 0.0, 1.0, False, "offers made so far / contact cap"),
    Feature("offer_active", 0.0, 1.0, False, "1 while a concession made earlier is still valid"),
    Feature("agents_busy", 0.0, 1.0, False, "share of live agents busy"),
    Feature("returning_visitor", 0.0, 1.0, True, "1 if seen before: earlier journey or visit"),
    Feature("visit_index", 0.0, 1.0, True, "visits in this journey / max visits"),
    Feature("exit_intent", 0.0, 1.0, True, "1 if the shopper is about to leave"),
    Feature("dwell_time", 0.0, DWELL_CAP, True, "time on the last page, minutes (capped)"),
    Feature("steps_at_stage", 0.0, 1.0, True, "steps without progress in the funnel / horizon"),
    Feature("cart_edits", 0.0, 1.0, True, "cart edits this journey / 10"),
    Feature("substitute_views", 0.0, 1.0, True, "substitute products viewed / 10"),
)


def feature_schema(scenario: Scenario) -> tuple[Feature, ...]:
    """All features in column order: the base features, then one ``offered_<name>`` per
    concession; the bounds of cart, fee and counts follow the scenario's catalogue."""
    prices = [p.price for p in scenario.products]
    bounds = {
        "cart_value": (min(prices) / 100.0, max(prices) / 100.0),
        "shipping_fee": (0.0, max(p.shipping_fee for p in scenario.products) / 10.0),
        "margin_rate": (min(1.0 - p.unit_cost / p.price for p in scenario.products), 1.0),
        "cart_edits": (0.0, scenario.horizon / 10.0),
        "substitute_views": (0.0, scenario.horizon / 10.0),
    }
    base = tuple(
        replace(f, low=bounds[f.name][0], high=bounds[f.name][1]) if f.name in bounds else f
        for f in _BASE
    )
    offered = tuple(
        Feature(f"offered_{name}", 0.0, 1.0, False, f"1 if '{name}' was offered this journey")
        for name in scenario.action_names[1:]
    )
    return base + offered


COLUMN = {f.name: i for i, f in enumerate(_BASE)}
GATED = np.array([f.gated for f in _BASE])
GATED_SLICE = slice(COLUMN["returning_visitor"], COLUMN["substitute_views"] + 1)
OFFERED_START = len(_BASE)
assert GATED[GATED_SLICE].all() and GATED.sum() == GATED_SLICE.stop - GATED_SLICE.start


def observation_space(scenario: Scenario) -> spaces.Box:
    schema = feature_schema(scenario)
    low = np.array([f.low for f in schema], dtype=np.float32)
    high = np.array([f.high for f in schema], dtype=np.float32)
    return spaces.Box(low, high, dtype=np.float32)
