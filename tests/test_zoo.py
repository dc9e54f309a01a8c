"""The zoo of random unseen shops: reproducible, valid, in range, far from default, usable."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from agents.registry import build_policy
from agents.rollout import run_policy
from envs import load_scenario
from envs.core import ShopperCore
from envs.scenario import ConcessionKind, Scenario
from experiments.calibration.zoo import (
    PRODUCT_NAMES,
    RANGES,
    SEGMENT_NAMES,
    TRAITS,
    distance,
    random_shop,
    start_for,
    zoo,
)

SEED = 11
N_SHOPS = 10


@pytest.fixture(scope="module")
def default() -> Scenario:
    return load_scenario("default")


@pytest.fixture(scope="module")
def shops(default: Scenario) -> list[Scenario]:
    return zoo(N_SHOPS, SEED, default)


def within(key: str, value: float, slack: float = 1e-9) -> bool:
    low, high = RANGES[key]
    return low - slack <= value <= high + slack


def test_zoo_is_reproducible_and_varied(default: Scenario, shops: list[Scenario]) -> None:
    assert zoo(N_SHOPS, SEED, default) == shops
    assert zoo(3, SEED, default) == shops[:3]  # a shop does not depend on the zoo's size
    other = zoo(N_SHOPS, SEED + 1, default)
    assert all(a != b for a, b in zip(shops, other, strict=True))
    assert [s.name for s in shops] == [f"zoo_{SEED}_{i}" for i in range(N_SHOPS)]
    assert len({s.digest() for s in shops}) == N_SHOPS
    assert len({len(s.segments) for s in shops}) >= 3
    assert len({len(s.products) for s in shops}) >= 2
    for shop in shops:
        assert f"seed {SEED}" in shop.description
        assert Scenario.from_dict(shop.to_dict()) == shop  # passes the scenario's validation


def test_only_the_generator_passed_in_is_random(default: Scenario) -> None:
    np.random.seed(0)
    first = random_shop(np.random.default_rng(5), "a", default)
    np.random.seed(1)
    assert random_shop(np.random.default_rng(5), "a", default) == first


def test_every_shop_can_be_simulated(shops: list[Scenario]) -> None:
    for i, shop in enumerate(shops):
        core = ShopperCore(shop, 256)
        obs = core.reset(i)
        assert obs.shape[0] == 256
        wait = np.zeros(256, dtype=np.int64)
        for _ in range(5):
            obs, reward, _, _ = core.step(wait)
            assert np.isfinite(obs).all() and np.isfinite(reward).all()


def test_drawn_values_lie_in_their_ranges(default: Scenario, shops: list[Scenario]) -> None:
    default_names = {s.name for s in default.segments}
    for shop in shops:
        assert within("n_segments", len(shop.segments))
        assert within("n_products", len(shop.products))
        assert {s.name for s in shop.segments} <= set(SEGMENT_NAMES)
        assert not {s.name for s in shop.segments} & default_names
        assert sum(s.share for s in shop.segments) == pytest.approx(1.0)
        overrides = [s.consent_rate for s in shop.segments if s.consent_rate is not None]
        assert len(overrides) <= 1
        assert all(within("segment_consent_rate", c) for c in overrides)
        for segment in shop.segments:
            assert segment.share >= 0.05 - 1e-12
            for trait in TRAITS:
                assert within(trait, getattr(segment, trait)), (shop.name, segment.name, trait)
        for key in ("new_shopper_appeal", "existing_customer_appeal", "existing_customer_share"):
            assert within(key, getattr(shop.calibration, key))
        for p in shop.products:
            assert p.name in PRODUCT_NAMES
            assert within("price", p.price)
            assert within("unit_cost_fraction", p.unit_cost / p.price, slack=0.01 / p.price)
            assert within("shipping_fee", p.shipping_fee)
            assert within("shipping_cost", p.shipping_cost)
            assert within("weight", p.weight)
        assert within("consent_rate", shop.consent_rate)
        assert within("live_agent_capacity_per_1000", shop.live_agents.capacity_per_1000)
        assert within("max_offers_per_shopper", shop.max_offers_per_shopper)
        check_concessions(shop, default)


def check_concessions(shop: Scenario, reference: Scenario) -> None:
    """Same kinds as the reference, entry by entry; magnitudes and costs in range."""
    assert [c.kind for c in shop.concessions] == [c.kind for c in reference.concessions]
    for c, ref in zip(shop.concessions, reference.concessions, strict=True):
        kind = c.kind
        if kind is ConcessionKind.PERCENT_DISCOUNT:
            assert within("percent_discount", c.magnitude)
            assert c.name == f"pct{round(c.magnitude * 100)}_off"
        elif kind is ConcessionKind.FIXED_DISCOUNT:
            assert within("fixed_discount", c.magnitude)
            assert c.name == f"eur{round(c.magnitude)}_off"
        elif kind is ConcessionKind.FREE_GIFT:
            assert within("gift_value", c.magnitude)
            assert within("gift_cost_fraction", c.unit_cost / c.magnitude, slack=0.01)
        elif kind is ConcessionKind.EXPRESS_DELIVERY:
            assert within("express_cost", c.unit_cost)
        elif kind is ConcessionKind.VOUCHER:
            assert within("voucher_value", c.magnitude)
            assert within("voucher_redemption", c.redemption_probability)
        elif kind is ConcessionKind.LIVE_AGENT:
            assert within("live_agent_cost", c.unit_cost)
        elif kind is ConcessionKind.RETARGETING:
            if ref.magnitude == 0:
                assert c.magnitude == 0
            else:
                assert within("recovery_email_discount", c.magnitude)
        assert (c.expiry_steps, c.margin_floor) == (ref.expiry_steps, ref.margin_floor)


def test_structure_is_the_references(default: Scenario, shops: list[Scenario]) -> None:
    for shop in shops:
        assert (shop.horizon, shop.max_visits) == (default.horizon, default.max_visits)
        assert shop.funnel == default.funnel
        assert shop.strategic == default.strategic
        assert shop.future_value == default.future_value


def test_start_keeps_the_shops_economics_and_the_references_shoppers(
    default: Scenario, shops: list[Scenario]
) -> None:
    for shop in shops:
        start = start_for(shop, default)
        assert start.name == f"{shop.name}_start"
        assert start.products == shop.products
        assert start.concessions == shop.concessions
        assert start.consent_rate == shop.consent_rate
        assert start.live_agents == shop.live_agents
        assert start.max_offers_per_shopper == shop.max_offers_per_shopper
        assert start.campaign_budget_per_1000 == shop.campaign_budget_per_1000
        assert start.segments == default.segments
        assert start.calibration == default.calibration
        assert start.funnel == default.funnel
        assert start.strategic == default.strategic
        assert distance(start, default)["max_gap"] == 0.0
        # everything else is the shop's
        same = {"name", "description", "segments", "calibration"}
        for f in dataclasses.fields(Scenario):
            if f.name not in same:
                assert getattr(start, f.name) == getattr(shop, f.name), f.name


def test_distance_is_share_weighted(default: Scenario) -> None:
    d = distance(default, default)
    assert d["max_gap"] == 0.0
    segments = default.segments
    weighted = sum(s.share * s.valuation for s in segments) / sum(s.share for s in segments)
    assert d["valuation"] == pytest.approx(weighted)
    raised = tuple(dataclasses.replace(s, valuation=s.valuation + 0.09) for s in segments)
    higher = default.replace(segments=raised)
    low, high = RANGES["valuation"]
    assert distance(higher, default)["valuation_gap"] == pytest.approx(0.09 / (high - low))


def test_zoo_shops_are_far_from_default(default: Scenario, shops: list[Scenario]) -> None:
    key_traits = ("valuation", "hesitation", "abandon_hazard", "return_probability")
    far = [
        shop.name
        for shop in shops
        if max(abs(distance(shop, default)[f"{t}_gap"]) for t in key_traits) > 0.10
    ]
    assert len(far) >= 0.8 * N_SHOPS, far
    # and the zoo as a whole spreads over a good part of each range, not one corner
    for trait in key_traits:
        means = [distance(shop, default)[trait] for shop in shops]
        low, high = RANGES[trait]
        assert (max(means) - min(means)) / (high - low) > 0.2, trait


@pytest.mark.parametrize("policy_name", ["merchant_rules", "always_percent_discount", "never"])
def test_registry_policies_run_on_a_zoo_shop(shops: list[Scenario], policy_name: str) -> None:
    shop = shops[0]
    policy = build_policy(policy_name, shop)
    outcomes = run_policy(shop, policy, n_shoppers=500, seed=3)
    assert outcomes.n == 500
    assert outcomes.scenario == shop.name
    assert np.isfinite(outcomes.profit).all()
    if policy_name == "always_percent_discount":
        assert outcomes.offers.sum() > 0
