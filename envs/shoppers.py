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

from envs import kernels
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


_SEGMENT_PARAMS = kernels.SEGMENT_SLOTS[:-1]  # the segment's own numbers; then its consent rate
_PRODUCT_PARAMS = kernels.PRODUCT_SLOTS
# what each kind of concession is worth to a shopper (a live agent acts on hesitation, in
# logits, not on the price)
_VALUE_RULE = {
    ConcessionKind.PERCENT_DISCOUNT: kernels.PRICE_SHARE,
    ConcessionKind.RETARGETING: kernels.PRICE_SHARE,
    ConcessionKind.FIXED_DISCOUNT: kernels.PRICE_OFF,
    ConcessionKind.FREE_SHIPPING: kernels.FEE_WAIVED,
    ConcessionKind.EXPRESS_DELIVERY: kernels.SPEED,
    ConcessionKind.FREE_GIFT: kernels.GIFT,
    ConcessionKind.VOUCHER: kernels.VOUCHER,
}


class Population:
    """The scenario's population and catalogue compiled to arrays, ready to draw shoppers.

    ``trait_layout``: where :mod:`envs.kernels` finds each trait (``kernels.TRAIT_SLOTS``
    order), the first part of the core's layout."""

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
        cal = scenario.calibration
        known = {
            "existing_customer_share": cal.existing_customer_share,
            "existing_customer_appeal": cal.existing_customer_appeal,
            "new_shopper_appeal": cal.new_shopper_appeal,
            "appeal_scale": scenario.funnel.appeal_scale,
        }
        self._draw_params = np.array([float(known[name]) for name in kernels.DRAW_PARAMS])
        self._segments = np.array([self.seg[name] for name in kernels.SEGMENT_SLOTS])
        self._products = np.array([self.prod[name] for name in kernels.PRODUCT_SLOTS])
        self._rule = np.array(
            [kernels.NO_VALUE]
            + [_VALUE_RULE.get(KINDS[kind], kernels.NO_VALUE) for kind in actions.kind[1:]],
            dtype=np.int64,
        )
        self.trait_layout = np.array([T[name] for name in kernels.TRAIT_SLOTS], dtype=np.int64)

    def draw(self, rng: np.random.Generator, n: int, out: ShopperDraw | None = None) -> ShopperDraw:
        """Draw ``n`` independent shoppers: their random numbers from ``rng`` (five
        uniforms, two normals and a Gamma(4, 1/4) each), the rest compiled
        (:func:`envs.kernels.draw`). Arrays are shopper-major, as the core stores them;
        ``out``, a draw of ``n`` shoppers no longer needed, is overwritten and returned."""
        u = rng.random((5, n))
        normals = rng.standard_normal((2, n))
        gamma = rng.gamma(4.0, 0.25, n)
        k = self.actions.n
        draw = (
            out
            if out is not None and len(out) == n
            else ShopperDraw(
                np.empty((len(TRAITS), n), order="F"),
                np.empty((k, n), order="F"),
                np.empty((k, n), order="F"),
                np.empty((k, n), order="F"),
                np.empty((k, n), dtype=bool, order="F"),
            )
        )
        kernels.draw(
            u,
            normals,
            gamma,
            self._segments,
            self._products,
            self.seg_cdf,
            self.prod_cdf,
            self._draw_params,
            self._rule,
            self.actions.magnitude,
            self.extra_cost[:, 0],
            self.actions.min_cart,
            self.actions.margin_floor,
            self.trait_layout,
            draw.traits,
            draw.perceived,
            draw.discount,
            draw.expected_cost,
            draw.static_ok,
        )
        return draw


class ShopperPool:
    """Shoppers drawn ahead in chunks from one generator; ``take(k)`` hands out the next k.

    What ``take`` returns is a view of the current chunk, valid until the next ``take``:
    a new chunk is drawn into the old one's memory (fresh memory every chunk would cost
    more in page faults than the draw itself)."""

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
            self._draw = self._population.draw(self._rng, max(k, self._chunk), self._draw)
            self._next = 0
        out = self._draw.rows(self._next, self._next + k)
        self._next += k
        return out
