"""Invariants of the simulator, over seeds and action sequences drawn by hypothesis.

- accounting: each step's reward is ``ledger.profit(terms)`` and ``info["profit"]``; an
  episode's terms sum to its return;
- masks: a masked-out action is played as ``wait`` and flagged; an eligible one is played;
- no price ever rises: an order's revenue is the cart's list price plus its shipping fee,
  concession costs are never negative, and the shopper pays between 0 and the list total;
- consent: the gated features read 0 whenever ``consent`` is 0;
- rewards are finite and observations lie in the observation space.

Each property runs on every shipped scenario and on the ``stress`` market of conftest.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import envs
from envs import HesitantShopperEnv, Scenario, ShopperCore, ledger
from envs.core import PURCHASE
from envs.observation import COLUMN, GATED_SLICE, observation_space
from envs.shoppers import T

pytestmark = pytest.mark.filterwarnings("ignore:.*maximum and minimum values are equal")

SCENARIOS = [*envs.available_scenarios(), "stress"]
PROPS = settings(
    max_examples=12,
    deadline=None,
    derandomize=True,  # the same examples on every run: the suite is seeded
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
seeds = st.integers(min_value=0, max_value=2**32 - 1)
# an action sequence: the action sent at each step, and whether to follow the mask
# (``follow``: the k-th eligible action, wrapping around; else the raw action, which may
# be ineligible)
steps = st.lists(
    st.tuples(st.integers(min_value=0, max_value=63), st.booleans()), min_size=1, max_size=80
)


def _pick(mask: np.ndarray, raw: int, follow: bool) -> int:
    if follow:
        eligible = np.flatnonzero(mask)
        return int(eligible[raw % len(eligible)])
    return raw % len(mask)


def _check_obs(space_low: np.ndarray, space_high: np.ndarray, obs: np.ndarray) -> None:
    assert obs.dtype == np.float32
    assert np.isfinite(obs).all()
    assert (obs >= space_low).all() and (obs <= space_high).all(), np.argwhere(
        (obs < space_low) | (obs > space_high)
    )
    # consent gating: behavioural features exist only for shoppers who accepted tracking
    obs2 = np.atleast_2d(obs)
    refused = obs2[:, COLUMN["consent"]] == 0.0
    assert (obs2[refused][:, GATED_SLICE] == 0.0).all()
    assert np.isin(obs2[:, COLUMN["consent"]], (0.0, 1.0)).all()


def _check_orders(core: ShopperCore) -> None:
    """Check the orders booked by the last step of a core without autoreset."""
    table, terms = core.actions, core.terms
    assert (terms[ledger.CONCESSION_COST] >= 0.0).all()
    assert (terms[ledger.VOUCHER_LIABILITY] >= 0.0).all()
    assert (terms[ledger.AGENT_COST] >= 0.0).all()
    buyers = core.event == PURCHASE
    # revenue, goods and carrier are booked on orders only
    for term in (ledger.REVENUE, ledger.COST_OF_GOODS, ledger.SHIPPING):
        assert (terms[term][~buyers] == 0.0).all()
    catalogue = {(p.price, p.shipping_fee) for p in core.scenario.products}
    for i in np.flatnonzero(buyers):
        price, fee = core.traits[T["price"], i], core.traits[T["shipping_fee"], i]
        assert (price, fee) in catalogue
        revenue = terms[ledger.REVENUE, i]
        assert revenue == pytest.approx(price + fee)  # never more than the list total
        assert terms[ledger.COST_OF_GOODS, i] == core.traits[T["unit_cost"], i]
        assert terms[ledger.SHIPPING, i] == core.traits[T["shipping_cost"], i]
        # the concessions on the order: those still valid at the purchase step (t - 1)
        valid = core.expires[:, i] > core.t[i] - 1
        applied = core.applied[i]
        sent = 0.0 if table.agent[applied] else table.send_cost[applied]
        non_price = sent + float(table.purchase_cost @ valid)
        price_discounts = terms[ledger.CONCESSION_COST, i] - non_price
        paid = revenue - price_discounts
        assert price_discounts >= -1e-9
        assert -1e-9 <= paid <= revenue + 1e-9, (paid, revenue)
        assert terms[ledger.VOUCHER_LIABILITY, i] == pytest.approx(
            float(table.voucher_liability @ valid)
        )


# ------------------------------------------------------------------ the single env


@pytest.mark.parametrize("name", SCENARIOS)
@PROPS
@given(seed=seeds, plan=steps)
def test_single_env_invariants(
    scenario_by_name: Callable[[str], Scenario], name: str, seed: int, plan: list[tuple[int, bool]]
) -> None:
    env = HesitantShopperEnv(scenario_by_name(name))
    low, high = env.observation_space.low, env.observation_space.high
    obs, info = env.reset(seed=seed)
    _check_obs(low, high, obs)
    episode_return, episode_terms = 0.0, np.zeros(len(ledger.LEDGER_TERMS))
    for raw, follow in plan:
        mask = env.action_masks()
        assert mask[0]
        action = _pick(mask, raw, follow)
        obs, reward, terminated, truncated, info = env.step(action)
        terms = env.core.terms[:, 0]
        # accounting identity
        assert np.isfinite(reward)
        assert reward == info["profit"]
        assert reward == pytest.approx(float(ledger.profit(terms[:, None])[0]), abs=1e-9)
        assert [info[t] for t in ledger.LEDGER_TERMS] == terms.tolist()
        episode_return += reward
        episode_terms += terms
        # masks honoured
        if mask[action]:
            assert info["action_applied"] == action and not info["ineligible_action"]
        else:
            assert info["action_applied"] == 0 and info["ineligible_action"]
        _check_obs(low, high, obs)
        _check_orders(env.core)
        if terminated or truncated:
            assert not (terminated and truncated)
            assert episode_return == pytest.approx(
                float(ledger.profit(episode_terms[:, None])[0]), abs=1e-6
            )
            obs, _ = env.reset()
            _check_obs(low, high, obs)
            episode_return, episode_terms = 0.0, np.zeros(len(ledger.LEDGER_TERMS))


# ------------------------------------------------------------------ the batched core


@pytest.mark.parametrize("name", SCENARIOS)
@PROPS
@given(
    seed=seeds,
    policy_seed=seeds,
    follow=st.floats(min_value=0.0, max_value=1.0),
    offer=st.floats(min_value=0.0, max_value=1.0),
)
def test_batched_core_invariants(
    scenario_by_name: Callable[[str], Scenario],
    name: str,
    seed: int,
    policy_seed: int,
    follow: float,
    offer: float,
) -> None:
    scenario = scenario_by_name(name)
    n = 16
    core = ShopperCore(scenario, n, autoreset=False)
    space = observation_space(scenario)
    rng = np.random.default_rng(policy_seed)
    obs = core.reset(seed)
    _check_obs(space.low, space.high, obs)
    rows = np.arange(n)
    returns = np.zeros(n)
    summed = np.zeros((len(ledger.LEDGER_TERMS), n))
    gated_refused: list[np.ndarray] = []
    for _ in range(scenario.horizon):
        mask = core.action_masks()
        assert mask.shape == (n, scenario.n_actions) and mask[:, 0].all()
        raw = rng.integers(0, scenario.n_actions, n)
        for i in range(n):
            if rng.random() < follow:
                eligible = np.flatnonzero(mask[i, 1:]) + 1
                raw[i] = rng.choice(eligible) if len(eligible) and rng.random() < offer else 0
        busy = int(np.count_nonzero(core.agent_until > core.t))
        alive = core.alive.copy()
        obs, reward, terminated, truncated = core.step(raw)
        # accounting identity
        assert np.isfinite(reward).all()
        np.testing.assert_allclose(reward, ledger.profit(core.terms), atol=1e-9)
        returns += reward
        summed += core.terms
        assert (reward[~alive] == 0.0).all() and (core.terms[:, ~alive] == 0.0).all()
        # masks honoured: masked out -> wait and flagged; eligible -> played (a live agent
        # only as far as the free capacity goes, in row order)
        ok = mask[rows, raw]
        is_agent = core.actions.agent[raw]
        assert (core.applied[~ok] == 0).all()
        assert core.ineligible[~ok & (raw != 0)].all()
        assert not core.ineligible[raw == 0].any()
        assert not core.ineligible[ok & ~is_agent].any()
        np.testing.assert_array_equal(core.applied[ok & ~is_agent], raw[ok & ~is_agent])
        granted = int((is_agent & (core.applied == raw)).sum())
        assert granted <= max(0, core.agent_capacity - busy)
        assert not (terminated & truncated).any()
        assert not (terminated | truncated)[~alive].any()
        _check_obs(space.low, space.high, obs)
        _check_orders(core)
        refused = obs[:, COLUMN["consent"]] == 0.0
        gated_refused.append(obs[refused][:, GATED_SLICE])
        if not core.alive.any():
            break
    assert not core.alive.any()  # every journey ends by the horizon
    np.testing.assert_allclose(returns, ledger.profit(summed), atol=1e-6)
    # two shoppers without consent are indistinguishable on the gated features
    refused_rows = np.concatenate(gated_refused)
    if len(refused_rows) > 1:
        assert np.ptp(refused_rows, axis=0).max() == 0.0


@pytest.mark.parametrize("name", SCENARIOS)
@PROPS
@given(seed=seeds, policy_seed=seeds)
def test_autoreset_final_observations_are_valid(
    scenario_by_name: Callable[[str], Scenario], name: str, seed: int, policy_seed: int
) -> None:
    scenario = scenario_by_name(name)
    core = ShopperCore(scenario, 32, autoreset=True)
    space = observation_space(scenario)
    rng = np.random.default_rng(policy_seed)
    core.reset(seed)
    for _ in range(scenario.horizon):
        mask = core.action_masks()
        actions = np.array([rng.choice(np.flatnonzero(m)) for m in mask])
        obs, reward, terminated, truncated = core.step(actions)
        assert np.isfinite(reward).all()
        np.testing.assert_allclose(reward, ledger.profit(core.terms), atol=1e-9)
        _check_obs(space.low, space.high, obs)
        done = terminated | truncated
        if done.any():
            np.testing.assert_array_equal(core.final_rows, np.flatnonzero(done))
            _check_obs(space.low, space.high, core.final_obs)


@PROPS
@given(seed=seeds)
def test_stacked_discounts_never_make_a_price_negative(
    scenario_by_name: Callable[[str], Scenario], seed: int
) -> None:
    # the stress market without its budget, a merchant who offers every price discount it
    # may: the discounts on many orders add up to more than the list total
    scenario = scenario_by_name("stress").replace(campaign_budget_per_1000=None)
    core = ShopperCore(scenario, 64, autoreset=False)
    table = core.actions
    price_kinds = [
        envs.ConcessionKind.PERCENT_DISCOUNT,
        envs.ConcessionKind.FIXED_DISCOUNT,
        envs.ConcessionKind.FREE_SHIPPING,
        envs.ConcessionKind.RETARGETING,
    ]
    discounts = np.flatnonzero(np.any([table.is_kind(k) for k in price_kinds], axis=0))
    core.reset(seed)
    beyond_list = 0
    for _ in range(scenario.horizon):
        eligible = core.action_masks()[:, discounts]
        first = np.argmax(eligible, axis=1)
        actions = np.where(eligible.any(axis=1), discounts[first], 0)
        core.step(actions)
        _check_orders(core)
        for i in np.flatnonzero(core.event == PURCHASE):
            valid = core.expires[:, i] > core.t[i] - 1
            beyond_list += core.discount[:, i] @ valid > core.terms[ledger.REVENUE, i]
        if not core.alive.any():
            break
    assert beyond_list > 0  # the cap was exercised


# ------------------------------------------------------------------ consent, by hand


@PROPS
@given(seed=seeds, policy_seed=seeds)
def test_gated_features_never_vary_without_consent(
    scenario_by_name: Callable[[str], Scenario], seed: int, policy_seed: int
) -> None:
    # nobody consents: whatever the shoppers do, the gated columns stay 0 for all of them
    base = scenario_by_name("default")
    segments = tuple(dataclasses.replace(s, consent_rate=None) for s in base.segments)
    scenario = base.replace(consent_rate=0.0, segments=segments)
    core = ShopperCore(scenario, 24, autoreset=True)
    rng = np.random.default_rng(policy_seed)
    seen = [core.reset(seed)[:, GATED_SLICE]]
    for _ in range(scenario.horizon):
        actions = np.array([rng.choice(np.flatnonzero(m)) for m in core.action_masks()])
        obs, *_ = core.step(actions)
        assert (obs[:, COLUMN["consent"]] == 0.0).all()
        seen.append(obs[:, GATED_SLICE])
        seen.append(core.final_obs[:, GATED_SLICE])
    assert (np.concatenate(seen) == 0.0).all()
    # ... while with consent they do vary: the gating is what hides them
    core = ShopperCore(base.replace(consent_rate=1.0, segments=segments), 24, autoreset=True)
    core.reset(seed)
    varied = [core.step(np.zeros(24, dtype=np.int64))[0][:, GATED_SLICE] for _ in range(8)]
    assert np.ptp(np.concatenate(varied), axis=0).max() > 0.0


# ------------------------------------------------------------------ masks, by hand

AGENT = {"name": "agent", "kind": "live_agent", "unit_cost": 3.5, "expiry_steps": 6}


def test_every_action_a_mask_allows_is_played_in_a_batch(
    tiny_market: Callable[..., Scenario],
) -> None:
    scenario = tiny_market([AGENT], live_agents={"capacity_per_1000": 1.0, "session_steps": 6})
    core = ShopperCore(scenario, 4, autoreset=False)
    core.reset(0)
    assert core.agent_capacity == 1
    mask = core.action_masks()
    actions = np.where(mask[:, 1], 1, 0)
    core.step(actions)
    assert not core.ineligible.any()
    np.testing.assert_array_equal(core.applied, actions)


def test_ineligible_agent_request_does_not_use_up_capacity(
    tiny_market: Callable[..., Scenario],
) -> None:
    # two carts: the agent is for carts of 150 EUR or more (min_cart); capacity 1
    cheap = {"name": "cheap", "price": 100.0, "unit_cost": 60.0, "shipping_fee": 5.0}
    dear = {"name": "dear", "price": 200.0, "unit_cost": 100.0, "shipping_fee": 5.0}
    scenario = tiny_market(
        [{**AGENT, "min_cart": 150.0}],
        products=[{**cheap, "shipping_cost": 6.0}, {**dear, "shipping_cost": 6.0}],
        live_agents={"capacity_per_1000": 1.0, "session_steps": 6},
    )
    core = ShopperCore(scenario, 8, autoreset=False)
    core.reset(0)
    price = core.traits[T["price"]]
    first_cheap = int(np.flatnonzero(price == 100.0)[0])
    later_dear = [i for i in np.flatnonzero(price == 200.0) if i > first_cheap]
    assert later_dear, "seed 0 should draw a dear cart after a cheap one"
    dear_row = int(np.flatnonzero(price == 200.0)[0])  # the head of the agent queue
    mask = core.action_masks()
    assert not mask[first_cheap, 1] and mask[dear_row, 1] and mask[:, 1].sum() == 1
    actions = np.zeros(core.n, dtype=np.int64)
    actions[[first_cheap, dear_row]] = 1
    core.step(actions)
    assert core.ineligible[first_cheap] and core.applied[first_cheap] == 0
    assert core.applied[dear_row] == 1  # the only agent was free: the eligible shopper gets it
