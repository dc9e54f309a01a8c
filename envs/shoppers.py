"""The hidden shopper model: traits drawn per shopper, and what each concession is worth.

A shopper's traits are fixed for the journey and never observed directly:

- segment and cart (a product of the catalogue, drawn by popularity);
- existing customer or first-time shopper; tracking consent;
- valuation ``v``: willingness to pay for the cart as a multiple of its list price;
- hesitation ``h`` (logits), per-step abandonment hazard, return probability and its
  decay per visit, interruption tolerance, help value of a live agent, retargeting lift;
- per-kind sensitivities, turned here into the euros of perceived value each catalogue
  entry is worth to this shopper, and what it would cost the merchant.

Base appeal, in logits, is the surplus at list price over the appeal scale, less
hesitation, plus the calibrated offset of first-time or existing shoppers::

    base_appeal = (v * price - price - shipping_sensitivity * shipping_fee)
                  / (appeal_scale * price) - h + offset

Traits are drawn in chunks from the generator passed in, so that resetting a few
shoppers of a large batch costs one copy, not one draw per trait.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from envs.catalogue import KINDS, ActionTable
from envs.scenario import ConcessionKind, Scenario

TRAITS: tuple[str, ...] = (
    "segment",
    "product",
    "price",
    "unit_cost",
    "shipping_fee",
    "shipping_cost",
    "existing",
    "consent",
    "valuation",
    "hesitation",
    "hazard",
    "return_probability",
    "return_decay",
    "help_value",
    "tolerance",
    "retarget_lift",
    "wait_draw",
    "base_appeal",
    "surplus_scale",
    "dwell_base",
    "edit_rate",
    "substitute_rate",
)
T = {name: i for i, name in enumerate(TRAITS)}

Array = NDArray[np.float64]


@dataclass
class ShopperDraw:
    """Traits of ``n`` shoppers: ``traits`` ``(len(TRAITS), n)``; the rest ``(n_actions, n)``.

    ``perceived``: euros of value each action is worth to the shopper; ``discount``: the
    price given up if the order is placed with it (discounts, waived fee); ``expected_cost``:
    everything it may cost, for budget checks; ``static_ok``: minimum cart and margin floor.
    """

    traits: Array
    perceived: Array
    discount: Array
    expected_cost: Array
    static_ok: NDArray[np.bool_]

    def __len__(self) -> int:
        return self.traits.shape[1]

    def rows(self, start: int, stop: int) -> ShopperDraw:
        cut = slice(start, stop)
        return ShopperDraw(
            self.traits[:, cut],
            self.perceived[:, cut],
            self.discount[:, cut],
            self.expected_cost[:, cut],
            self.static_ok[:, cut],
        )


_SEGMENT_PARAMS = (
    "valuation",
    "valuation_spread",
    "hesitation",
    "hesitation_spread",
    "abandon_hazard",
    "return_probability",
    "return_decay",
    "help_value",
    "tolerance",
    "retarget_lift",
    "price_sensitivity",
    "shipping_sensitivity",
    "speed_sensitivity",
    "gift_sensitivity",
    "voucher_sensitivity",
)
_PRODUCT_PARAMS = ("price", "unit_cost", "shipping_fee", "shipping_cost")


class Population:
    """The scenario's population and catalogue compiled to arrays, ready to draw shoppers."""

    def __init__(self, scenario: Scenario, actions: ActionTable) -> None:
        self.scenario = scenario
        self.actions = actions
        segs, prods = scenario.segments, scenario.products
        self.seg = {p: np.array([float(getattr(s, p)) for s in segs]) for p in _SEGMENT_PARAMS}
        self.seg["consent_rate"] = np.array(
            [scenario.consent_rate if s.consent_rate is None else s.consent_rate for s in segs]
        )
        self.prod = {p: np.array([float(getattr(q, p)) for q in prods]) for p in _PRODUCT_PARAMS}
        share = np.array([s.share for s in segs])
        weight = np.array([q.weight for q in prods])
        self.seg_cdf = np.cumsum(share / share.sum())
        self.prod_cdf = np.cumsum(weight / weight.sum())
        self.extra_cost = (actions.purchase_cost + actions.voucher_liability + actions.send_cost)[
            :, None
        ]

    def draw(self, rng: np.random.Generator, n: int) -> ShopperDraw:
        """Draw ``n`` independent shoppers."""
        scenario, cal = self.scenario, self.scenario.calibration
        u = rng.random((5, n))
        normals = rng.standard_normal((2, n))
        gamma = rng.gamma(4.0, 0.25, n)
        seg = (u[0] > self.seg_cdf[:-1, None]).sum(axis=0)
        prod = (u[1] > self.prod_cdf[:-1, None]).sum(axis=0)
        sp = {k: v[seg] for k, v in self.seg.items()}
        tr = np.empty((len(TRAITS), n))
        tr[T["segment"]] = seg
        tr[T["product"]] = prod
        for name in _PRODUCT_PARAMS:
            tr[T[name]] = self.prod[name][prod]
        price, fee = tr[T["price"]], tr[T["shipping_fee"]]
        existing = tr[T["existing"]] = u[2] < cal.existing_customer_share
        tr[T["consent"]] = u[3] < sp["consent_rate"]
        v = tr[T["valuation"]] = sp["valuation"] * np.exp(sp["valuation_spread"] * normals[0])
        h = tr[T["hesitation"]] = sp["hesitation"] + sp["hesitation_spread"] * normals[1]
        tr[T["hazard"]] = sp["abandon_hazard"]
        tr[T["return_probability"]] = sp["return_probability"]
        tr[T["return_decay"]] = sp["return_decay"]
        help_value = tr[T["help_value"]] = sp["help_value"]
        tr[T["tolerance"]] = sp["tolerance"] * gamma
        tr[T["retarget_lift"]] = sp["retarget_lift"]
        tr[T["wait_draw"]] = u[4]
        scale = tr[T["surplus_scale"]] = 1.0 / (scenario.funnel.appeal_scale * price)
        offset = np.where(existing, cal.existing_customer_appeal, cal.new_shopper_appeal)
        base = (v - 1.0) * price - sp["shipping_sensitivity"] * fee
        tr[T["base_appeal"]] = base * scale - h + offset
        # visible signals: hesitant shoppers and novices linger and edit, low valuers compare
        tr[T["dwell_base"]] = 0.8 * np.exp(0.3 * h + 0.4 * np.maximum(help_value, 0.0))
        tr[T["edit_rate"]] = 0.05 + 0.15 / (1.0 + np.exp(-h))
        tr[T["substitute_rate"]] = 0.3 / (1.0 + np.exp(np.clip((v - 1.0) * 10.0, -50.0, 50.0)))

        perceived, discount = self._action_values(sp, price, fee)
        expected = discount + self.extra_cost
        margin_left = price + fee - tr[T["unit_cost"]] - tr[T["shipping_cost"]] - expected
        static_ok = (price >= self.actions.min_cart[:, None]) & (
            margin_left >= self.actions.margin_floor[:, None] * price
        )
        static_ok[0] = True
        return ShopperDraw(tr, perceived, discount, expected, static_ok)

    def _action_values(self, sp: dict[str, Array], price: Array, fee: Array) -> tuple[Array, Array]:
        """Perceived value (EUR) and price given up (EUR) of each action, shape ``(k, n)``."""
        actions = self.actions
        perceived = np.zeros((actions.n, len(price)))
        discount = np.zeros((actions.n, len(price)))
        for a in range(1, actions.n):
            kind = KINDS[actions.kind[a]]
            m = actions.magnitude[a]
            if kind in (ConcessionKind.PERCENT_DISCOUNT, ConcessionKind.RETARGETING):
                discount[a] = m * price
                perceived[a] = sp["price_sensitivity"] * discount[a]
            elif kind is ConcessionKind.FIXED_DISCOUNT:
                discount[a] = np.minimum(m, price)
                perceived[a] = sp["price_sensitivity"] * discount[a]
            elif kind is ConcessionKind.FREE_SHIPPING:
                discount[a] = fee
                perceived[a] = sp["shipping_sensitivity"] * fee
            elif kind is ConcessionKind.EXPRESS_DELIVERY:
                perceived[a] = sp["speed_sensitivity"] * price
            elif kind is ConcessionKind.FREE_GIFT:
                perceived[a] = sp["gift_sensitivity"] * m
            elif kind is ConcessionKind.VOUCHER:
                perceived[a] = sp["voucher_sensitivity"] * m
            # a live agent acts on hesitation (help value, in logits), not on the price
        return perceived, discount


class ShopperPool:
    """Shoppers drawn ahead in chunks from one generator; ``take(k)`` hands out the next k."""

    def __init__(
        self, population: Population, rng: np.random.Generator, chunk: int = 16384
    ) -> None:
        self._population = population
        self._rng = rng
        self._chunk = chunk
        self._draw: ShopperDraw | None = None
        self._next = 0

    def take(self, k: int) -> ShopperDraw:
        if self._draw is None or self._next + k > len(self._draw):
            self._draw = self._population.draw(self._rng, max(k, self._chunk))
            self._next = 0
        out = self._draw.rows(self._next, self._next + k)
        self._next += k
        return out
