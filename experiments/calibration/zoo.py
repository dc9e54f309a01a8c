"""A zoo of random "unseen" shops, and the start scenario a real shop would fit from.

A benchmark of the fit needs shops that concede was not built from: their shoppers far
from ``default``'s neighbourhood, their catalogue and economics their own. This module
draws such shops from a :class:`numpy.random.Generator` and nothing else, so that a seed
fixes a shop exactly.

API:

- :func:`random_shop` ``(rng, name, reference)``: one random shop, validated by the
  scenario's own constructors;
- :func:`zoo` ``(n, seed, reference)``: ``n`` shops named ``zoo_<seed>_<i>``, shop ``i``
  drawn from child ``i`` of ``np.random.SeedSequence(seed).spawn(n)``: the same seed gives
  the same shops, and a shop does not change when ``n`` grows;
- :func:`start_for` ``(shop, reference)``: what a real shop fits from: its own economics
  and catalogue with the reference's shoppers;
- :func:`distance` ``(shop, reference)``: share-weighted mixture means of every segment
  trait of both, and their gap in units of the trait's range in :data:`RANGES`.

What is drawn. The *shoppers* (what differs between shops, and what a fit must learn):
2 to 6 segments named from :data:`SEGMENT_NAMES` (none of the shipped scenarios' names),
shares ``0.05 + (1 - 0.05 k) * Dirichlet(2, ..., 2)`` (every share at least 0.05, summing
to 1), every trait of every segment drawn independently and uniformly from its range;
with probability 0.3 one segment gets a consent rate of its own (a privacy-minded group);
and the ``calibration`` block. The *economics and catalogue* (what a real shop knows):
2 to 5 products named from :data:`PRODUCT_NAMES`, and one concession per entry of the
reference's catalogue, of the same kind, its magnitude and cost drawn: so every kind the
reference has is present, and rule sets that name kinds work on every zoo shop. A percent
discount of p % is named ``pct<p>_off`` and a fixed discount of e EUR ``eur<e>_off`` (whole
numbers, distinct within the kind, in the reference's order); other entries keep the
reference's names. Each entry keeps the reference's expiry, once-per-shopper rule, margin
floor and every cost not drawn below (an e-mail's, a voucher's); its ``min_cart`` is
scaled by the ratio of the shop's mean list price to the reference's (weighted by
popularity), so that a cart threshold means the same on a shop of 10 EUR books as on one
of 400 EUR bicycles. A plain reminder e-mail (magnitude 0)
stays a plain reminder.

Not drawn: ``horizon``, ``max_visits``, ``funnel``, ``strategic``, ``future_value``, the
live desk's ``session_steps`` and ``campaign_budget_per_1000`` are the reference's: they are
the simulator's structure (how appeal turns into moves, how a journey is cut) or a
campaign's setting, not a property of a shop's shoppers or catalogue.

Ranges (:data:`RANGES`; uniform unless stated; default's values for comparison):

=============================  ============  ==============================================
draw                           range         why
=============================  ============  ==============================================
n_segments (integer)           2 - 6         one to a few clusters, as a marketing team
                                             would describe its shoppers
valuation                      0.7 - 1.6     median willingness to pay / list price: from a
                                             shop priced above what most will pay to one
                                             most pay gladly (default 0.95 - 1.15)
valuation_spread               0.05 - 0.4    log-normal sigma: near-uniform to very mixed
                                             budgets (default 0.1 - 0.15)
hesitation                     -0.8 - 2.2    logits of friction: decisive to very hesitant
                                             (default 0 - 1.2)
hesitation_spread              0.2 - 0.9     (default 0.3 - 0.6)
abandon_hazard                 0.03 - 0.22   per-step exit intent: sticky to flighty
                                             sessions (default 0.06 - 0.12)
return_probability             0.15 - 0.75   comeback after a visit: one-off to habitual
                                             shoppers (default 0.35 - 0.6)
return_decay                   0.3 - 0.9     (default 0.6 - 0.7)
price_sensitivity              0.1 - 2.5     perceived EUR per EUR off: from price-blind
                                             to deal-driven (default 0.7 - 1.5; luxury 0.3)
shipping_sensitivity           0.1 - 2.5     (default 1.0 - 2.0; grocery 2.5)
gift_sensitivity               0.1 - 2.5     (default 0.2 - 0.5; luxury 1.2)
voucher_sensitivity            0.1 - 2.5     (default 0.3 - 0.8)
speed_sensitivity              0.0 - 0.12    value of express / cart price: indifferent to
                                             impatient (default 0.01 - 0.08)
help_value                     -1.2 - 2.0    logits of a live agent: experts annoyed to
                                             novices rescued (default -0.8 - 1.5)
tolerance                      1.0 - 6.0     interruptions tolerated (default 1.5 - 4)
retarget_lift                  0.02 - 0.25   added comeback after an e-mail (default
                                             0.05 - 0.15)
segment_consent_rate           0.05 - 0.5    the one segment with a consent rate of its own:
                                             a privacy-minded group (default's 0.15)
new_shopper_appeal             -2.5 - 0.5    calibration logits around default's fit -0.82
existing_customer_appeal       -3.0 - 0.0    around default's fit -1.60
existing_customer_share        0.3 - 0.9     new-customer shops to repeat-business shops
                                             (default 0.79)
n_products (integer)           2 - 5         a few carts of different sizes
price (log-uniform)            8 - 600 EUR   a paperback to a bicycle; log-uniform so cheap
                                             and dear shops are equally likely
unit_cost_fraction             0.3 - 0.8     cost of goods / price: cosmetics to consumer
                                             electronics margins
shipping_fee                   0 - 12 EUR    free shipping to bulky parcels
shipping_cost_base             2 - 8 EUR     carrier cost = base + half the fee: shops that
                                             charge more ship heavier parcels, and a shop
                                             with free shipping still pays a carrier
shipping_cost                  2 - 14 EUR    bounds of that sum (clipped)
weight                         0.5 - 5       popularity of a product in the catalogue
percent_discount               0.05 - 0.30   whole percents, the usual promotion codes
fixed_discount                 3 - 15 EUR    whole euros
gift_value                     5 - 30 EUR    retail value of a sample or small item
gift_cost_fraction             0.2 - 0.5     its cost to the merchant / retail value
express_cost                   3 - 12 EUR    upgrade to next-day delivery
voucher_value                  5 - 20 EUR    face value of a next-order voucher
voucher_redemption             0.2 - 0.6     share of vouchers later redeemed
live_agent_cost                2 - 8 EUR     one chat session
recovery_email_discount        0.05 - 0.2    discount in a recovery e-mail, of the cart
consent_rate                   0.4 - 0.95    tracking consent: strict to lax audiences
live_agent_capacity_per_1000   0 - 40        no desk to a well staffed one (default 15)
max_offers_per_shopper (int)   2 - 4         contact cap over a journey (default 3)
=============================  ============  ==============================================

Money is rounded to cents; traits and shares are not rounded.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from envs.scenario import (
    Calibration,
    Concession,
    ConcessionKind,
    LiveAgents,
    Product,
    Scenario,
    Segment,
)

RANGES: dict[str, tuple[float, float]] = {
    # shoppers
    "n_segments": (2, 6),
    "valuation": (0.7, 1.6),
    "valuation_spread": (0.05, 0.4),
    "hesitation": (-0.8, 2.2),
    "hesitation_spread": (0.2, 0.9),
    "abandon_hazard": (0.03, 0.22),
    "return_probability": (0.15, 0.75),
    "return_decay": (0.3, 0.9),
    "price_sensitivity": (0.1, 2.5),
    "shipping_sensitivity": (0.1, 2.5),
    "speed_sensitivity": (0.0, 0.12),
    "gift_sensitivity": (0.1, 2.5),
    "voucher_sensitivity": (0.1, 2.5),
    "help_value": (-1.2, 2.0),
    "tolerance": (1.0, 6.0),
    "retarget_lift": (0.02, 0.25),
    "segment_consent_rate": (0.05, 0.5),
    "new_shopper_appeal": (-2.5, 0.5),
    "existing_customer_appeal": (-3.0, 0.0),
    "existing_customer_share": (0.3, 0.9),
    # catalogue
    "n_products": (2, 5),
    "price": (8.0, 600.0),
    "unit_cost_fraction": (0.3, 0.8),
    "shipping_fee": (0.0, 12.0),
    "shipping_cost_base": (2.0, 8.0),
    "shipping_cost": (2.0, 14.0),
    "weight": (0.5, 5.0),
    # concessions
    "percent_discount": (0.05, 0.30),
    "fixed_discount": (3.0, 15.0),
    "gift_value": (5.0, 30.0),
    "gift_cost_fraction": (0.2, 0.5),
    "express_cost": (3.0, 12.0),
    "voucher_value": (5.0, 20.0),
    "voucher_redemption": (0.2, 0.6),
    "live_agent_cost": (2.0, 8.0),
    "recovery_email_discount": (0.05, 0.2),
    # economics
    "consent_rate": (0.4, 0.95),
    "live_agent_capacity_per_1000": (0.0, 40.0),
    "max_offers_per_shopper": (2, 4),
}

TRAITS: tuple[str, ...] = tuple(
    f.name for f in dataclasses.fields(Segment) if f.name not in ("name", "share", "consent_rate")
)
"""The segment traits drawn per segment (every numeric field of :class:`Segment` but the
share and the consent override), in the order they are drawn."""

SEGMENT_NAMES: tuple[str, ...] = (
    "students",
    "collectors",
    "gift_buyers",
    "professionals",
    "window_shoppers",
    "hobbyists",
    "impulse_buyers",
    "researchers",
    "seniors",
    "young_parents",
    "early_adopters",
    "brand_fans",
    "small_businesses",
    "tourists",
    "commuters",
    "comparison_shoppers",
    "last_minute_buyers",
    "premium_seekers",
    "mobile_browsers",
    "eco_conscious",
)
PRODUCT_NAMES: tuple[str, ...] = (
    "books",
    "shoes",
    "garden",
    "toys",
    "kitchen",
    "cosmetics",
    "sports",
    "pet_supplies",
    "stationery",
    "jewelry",
    "furniture",
    "audio",
    "outdoor",
    "baby",
    "crafts",
    "lighting",
    "bicycles",
    "coffee",
    "wine",
    "tools",
)

SHARE_FLOOR = 0.05  # every segment's share is at least this
SHARE_CONCENTRATION = 2.0  # Dirichlet parameter of the rest of the shares
CONSENT_OVERRIDE_PROBABILITY = 0.3  # chance that one segment has a consent rate of its own


def _uniform(rng: np.random.Generator, key: str) -> float:
    """One uniform draw from ``RANGES[key]``."""
    low, high = RANGES[key]
    return float(rng.uniform(low, high))


def _integer(rng: np.random.Generator, key: str) -> int:
    """One whole number drawn uniformly from ``RANGES[key]``, both ends included."""
    low, high = RANGES[key]
    return int(rng.integers(int(low), int(high) + 1))


def _cents(value: float) -> float:
    return round(value, 2)


def _shares(rng: np.random.Generator, k: int) -> list[float]:
    """``k`` shares summing to 1, each at least :data:`SHARE_FLOOR`."""
    rest = rng.dirichlet(np.full(k, SHARE_CONCENTRATION))
    return [float(s) for s in SHARE_FLOOR + (1.0 - SHARE_FLOOR * k) * rest]


def _segments(rng: np.random.Generator) -> tuple[Segment, ...]:
    """2 to 6 segments with random names, shares and traits; maybe one consent override."""
    k = _integer(rng, "n_segments")
    names = rng.choice(len(SEGMENT_NAMES), size=k, replace=False)
    shares = _shares(rng, k)
    segments = [
        Segment(
            name=SEGMENT_NAMES[int(i)],
            share=share,
            **{trait: _uniform(rng, trait) for trait in TRAITS},
        )
        for i, share in zip(names, shares, strict=True)
    ]
    if rng.random() < CONSENT_OVERRIDE_PROBABILITY:
        j = int(rng.integers(k))
        segments[j] = dataclasses.replace(
            segments[j], consent_rate=_uniform(rng, "segment_consent_rate")
        )
    return tuple(segments)


def _calibration(rng: np.random.Generator) -> Calibration:
    """Appeal offsets and the existing-customer share."""
    return Calibration(
        new_shopper_appeal=_uniform(rng, "new_shopper_appeal"),
        existing_customer_appeal=_uniform(rng, "existing_customer_appeal"),
        existing_customer_share=_uniform(rng, "existing_customer_share"),
    )


def _product(rng: np.random.Generator, name: str) -> Product:
    """One product: log-uniform price, cost of goods and shipping drawn around it."""
    low, high = RANGES["price"]
    price = _cents(math.exp(rng.uniform(math.log(low), math.log(high))))
    unit_cost = _cents(price * _uniform(rng, "unit_cost_fraction"))
    fee = _cents(_uniform(rng, "shipping_fee"))
    cost_low, cost_high = RANGES["shipping_cost"]
    # the carrier cost rises with the fee a shop charges, but is never free
    carrier = _cents(min(max(_uniform(rng, "shipping_cost_base") + 0.5 * fee, cost_low), cost_high))
    return Product(
        name=name,
        price=price,
        unit_cost=unit_cost,
        shipping_fee=fee,
        shipping_cost=carrier,
        weight=_uniform(rng, "weight"),
    )


def _products(rng: np.random.Generator) -> tuple[Product, ...]:
    """2 to 5 products with distinct names from :data:`PRODUCT_NAMES`."""
    k = _integer(rng, "n_products")
    names = rng.choice(len(PRODUCT_NAMES), size=k, replace=False)
    return tuple(_product(rng, PRODUCT_NAMES[int(i)]) for i in names)


def mean_price(products: Sequence[Product]) -> float:
    """Popularity-weighted mean list price of a catalogue, EUR."""
    total = sum(p.weight for p in products)
    return sum(p.price * p.weight for p in products) / total


def _distinct_whole(rng: np.random.Generator, key: str, k: int, scale: float = 1.0) -> list[int]:
    """``k`` distinct whole numbers from ``RANGES[key]`` x ``scale``, ascending."""
    low, high = (round(v * scale) for v in RANGES[key])
    return sorted(int(v) for v in rng.choice(np.arange(low, high + 1), size=k, replace=False))


def _concessions(
    rng: np.random.Generator, reference: Scenario, price_ratio: float
) -> tuple[Concession, ...]:
    """The reference's catalogue entry by entry, same kinds, magnitudes and costs drawn."""
    kinds = [c.kind for c in reference.concessions]
    n_percent = kinds.count(ConcessionKind.PERCENT_DISCOUNT)
    percents = iter(_distinct_whole(rng, "percent_discount", n_percent, scale=100))
    euros = iter(_distinct_whole(rng, "fixed_discount", kinds.count(ConcessionKind.FIXED_DISCOUNT)))
    out: list[Concession] = []
    for entry in reference.concessions:
        changes: dict[str, Any] = {"min_cart": float(round(entry.min_cart * price_ratio))}
        kind = entry.kind
        if kind is ConcessionKind.PERCENT_DISCOUNT:
            p = next(percents)
            changes.update(name=f"pct{p}_off", magnitude=p / 100)
        elif kind is ConcessionKind.FIXED_DISCOUNT:
            e = next(euros)
            changes.update(name=f"eur{e}_off", magnitude=float(e))
        elif kind is ConcessionKind.FREE_GIFT:
            value = _cents(_uniform(rng, "gift_value"))
            cost = _cents(value * _uniform(rng, "gift_cost_fraction"))
            changes.update(magnitude=value, unit_cost=cost)
        elif kind is ConcessionKind.EXPRESS_DELIVERY:
            changes.update(unit_cost=_cents(_uniform(rng, "express_cost")))
        elif kind is ConcessionKind.VOUCHER:
            changes.update(
                magnitude=_cents(_uniform(rng, "voucher_value")),
                redemption_probability=_uniform(rng, "voucher_redemption"),
            )
        elif kind is ConcessionKind.LIVE_AGENT:
            changes.update(unit_cost=_cents(_uniform(rng, "live_agent_cost")))
        elif kind is ConcessionKind.RETARGETING and entry.magnitude > 0:
            changes.update(magnitude=_uniform(rng, "recovery_email_discount"))
        out.append(dataclasses.replace(entry, **changes))
    return tuple(_unique_names(out))


def _unique_names(entries: list[Concession]) -> list[Concession]:
    """Entries renamed ``<name>_2``, ``<name>_3``... where a drawn name repeats another."""
    seen: set[str] = set()
    out = []
    for entry in entries:
        name, i = entry.name, 2
        while name in seen:
            name, i = f"{entry.name}_{i}", i + 1
        seen.add(name)
        out.append(entry if name == entry.name else dataclasses.replace(entry, name=name))
    return out


def _seed_label(rng: np.random.Generator) -> str:
    """The generator's seed, as far as its seed sequence tells it."""
    seq = rng.bit_generator.seed_seq
    if isinstance(seq, np.random.SeedSequence):
        key = f", spawn key {tuple(seq.spawn_key)}" if seq.spawn_key else ""
        return f"seed {seq.entropy}{key}"
    return "an unrecorded seed"


def random_shop(rng: np.random.Generator, name: str, reference: Scenario) -> Scenario:
    """A random shop called ``name``: shoppers, catalogue and economics drawn from ``rng``
    within :data:`RANGES`, the simulator's structure taken from ``reference`` (module doc)."""
    label = _seed_label(rng)
    segments = _segments(rng)
    calibration = _calibration(rng)
    products = _products(rng)
    ratio = mean_price(products) / mean_price(reference.products)
    concessions = _concessions(rng, reference, ratio)
    return reference.replace(
        name=name,
        description=(
            f"Random zoo shop ({label}) drawn by experiments.calibration.zoo: "
            "its shoppers, catalogue and economics are random, not fitted to any real shop."
        ),
        segments=segments,
        calibration=calibration,
        products=products,
        concessions=concessions,
        consent_rate=_uniform(rng, "consent_rate"),
        live_agents=LiveAgents(
            capacity_per_1000=_uniform(rng, "live_agent_capacity_per_1000"),
            session_steps=reference.live_agents.session_steps,
        ),
        max_offers_per_shopper=_integer(rng, "max_offers_per_shopper"),
    )


def zoo(n: int, seed: int, reference: Scenario) -> list[Scenario]:
    """``n`` random shops ``zoo_<seed>_<i>``, shop ``i`` from child ``i`` of ``seed``."""
    children = np.random.SeedSequence(seed).spawn(n)
    return [
        random_shop(np.random.default_rng(child), f"zoo_{seed}_{i}", reference)
        for i, child in enumerate(children)
    ]


def start_for(shop: Scenario, reference: Scenario) -> Scenario:
    """The scenario a real shop would start a fit from: everything the shop knows of itself
    (catalogue, concessions, consent, live desk, caps, budget, horizon, future value) with
    the reference's shoppers (segments, calibration, funnel, strategic learning)."""
    return shop.replace(
        name=f"{shop.name}_start",
        description=(
            f"Start of a fit to {shop.name}: its catalogue and economics, "
            f"{reference.name}'s shoppers."
        ),
        segments=reference.segments,
        calibration=reference.calibration,
        funnel=reference.funnel,
        strategic=reference.strategic,
    )


def mixture_mean(scenario: Scenario, trait: str) -> float:
    """Share-weighted mean of a segment trait over the scenario's segments."""
    total = sum(s.share for s in scenario.segments)
    return sum(s.share * float(getattr(s, trait)) for s in scenario.segments) / total


def distance(shop: Scenario, reference: Scenario) -> dict[str, float]:
    """How far ``shop``'s shoppers are from ``reference``'s, trait by trait.

    For every trait of :data:`TRAITS`: ``<trait>`` the shop's share-weighted mixture mean,
    ``<trait>_reference`` the reference's, ``<trait>_gap`` their signed difference (shop
    minus reference) in units of the width of the trait's range in :data:`RANGES`; and
    ``max_gap``, the largest absolute gap.
    """
    out: dict[str, float] = {}
    for trait in TRAITS:
        low, high = RANGES[trait]
        mine, theirs = mixture_mean(shop, trait), mixture_mean(reference, trait)
        out[trait] = mine
        out[f"{trait}_reference"] = theirs
        out[f"{trait}_gap"] = (mine - theirs) / (high - low)
    out["max_gap"] = max(abs(out[f"{t}_gap"]) for t in TRAITS)
    return out
