"""The numpy dynamics the compiled core replaced, kept as the tests' oracle.

:class:`ReferenceCore` is the batched core as it was written in numpy, array operation by
array operation, before :mod:`envs.kernels` compiled it into one loop over shoppers.
``tests/test_compiled_core.py`` steps both with the same seeds and actions and checks that
they agree. The product never imports this file.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from envs import ledger
from envs.catalogue import KINDS, compile_actions
from envs.kernels import (
    ABANDONED,
    EXIT_INTENT,
    HARASSED,
    LEFT,
    NOTHING,
    PURCHASE,
    RETURNED,
)
from envs.observation import COLUMN, DWELL_CAP, GATED_SLICE, OFFERED_START, feature_schema
from envs.scenario import ConcessionKind, Scenario
from envs.shoppers import TRAITS, Population, ShopperDraw, ShopperPool, T

Array = NDArray[np.float64]
IntArray = NDArray[np.int64]
BoolArray = NDArray[np.bool_]


def eligible(
    *,
    alive: BoolArray,
    away: BoolArray,
    consent: BoolArray,
    room: BoolArray,
    in_chat: BoolArray,
    offered: BoolArray,
    static_ok: BoolArray,
    cost: NDArray[np.float64],
    budget: float,
    table: Any,
    columns: Any,
) -> BoolArray:
    channel = (table.onsite[columns] & ~away) | (table.email[columns] & away & consent)
    ok = alive & room & channel & static_ok
    ok &= ~(table.once[columns] & offered)
    ok &= ~(table.agent[columns] & in_chat)
    if np.isfinite(budget):
        ok &= cost <= budget
    return np.asarray(ok, dtype=bool)


def within_capacity(wanting: BoolArray, free: int) -> BoolArray:
    return wanting & (np.cumsum(wanting) <= free)


def book_purchase(
    terms: Array,
    price: Array,
    shipping_fee: Array,
    unit_cost: Array,
    shipping_cost: Array,
    price_discounts: Array,
    other_concession_costs: Array,
    voucher_liability: Array,
    retained_value: float,
) -> None:
    terms[ledger.REVENUE] += price + shipping_fee
    terms[ledger.COST_OF_GOODS] += unit_cost
    terms[ledger.SHIPPING] += shipping_cost
    terms[ledger.CONCESSION_COST] += (
        np.minimum(price_discounts, price + shipping_fee) + other_concession_costs
    )
    terms[ledger.VOUCHER_LIABILITY] += voucher_liability
    terms[ledger.FUTURE_VALUE] += retained_value


def _sigmoid(x: Array) -> Array:
    return 0.5 + 0.5 * np.tanh(0.5 * x)


class ReferenceCore:
    """N shopper journeys stepped together.

    Per-shopper arrays have shape ``(n,)``; per-action arrays ``(n_actions, n)``.

    Args:
        scenario: the market to simulate.
        n: number of shoppers stepped together.
        autoreset: replace a shopper whose journey ended by a new one within the same
            step (the final observations are kept in ``final_obs``, rows ``final_rows``);
            without it, a finished row stays finished (reward 0) until :meth:`reset`.
        stagger: without autoreset, spread the shoppers' arrivals over this many steps
            (row i arrives at step ``i * stagger // n``), as shoppers arrive through the
            day, so that a campaign budget or the live-agent desk is not met by all of
            them at once; every journey has ended after :attr:`span` steps.
        chunk: how many shoppers are drawn at once from the generator.
    """

    def __init__(
        self,
        scenario: Scenario,
        n: int,
        *,
        autoreset: bool = True,
        stagger: int = 0,
        chunk: int = 16384,
    ) -> None:
        if n < 1:
            raise ValueError(f"n must be at least 1, got {n}")
        if stagger < 0 or (stagger and autoreset):
            raise ValueError(f"stagger must be >= 0 and needs autoreset=False, got {stagger}")
        self.scenario = scenario
        self.n = n
        self.autoreset = autoreset
        self.stagger = stagger
        self.span = scenario.horizon + stagger
        self.arrival = (np.arange(n) * stagger) // n
        self.clock = 0
        self._waiting = np.zeros(n, dtype=bool)
        self.chunk = chunk
        self.actions = compile_actions(scenario)
        self.population = Population(scenario, self.actions)
        self.schema = feature_schema(scenario)
        k = self.n_actions = self.actions.n
        self.np_random = np.random.default_rng()
        self.seeded = False
        self.dynamics_seed: int | None = None  # set by reset(seed, dynamics_seed=...)
        self._pool = ShopperPool(self.population, self.np_random, chunk)
        self._rows = np.arange(n)
        self._agent_columns = np.flatnonzero(self.actions.agent)
        f = scenario.funnel
        self._annoy_w, self._commit = f.annoyance_weight, f.exit_commitment
        self._buy_bias, self._adv_bias = f.buy_bias, f.advance_bias
        self.agent_capacity = max(1, round(scenario.live_agents.capacity_per_1000 * n / 1000))
        self._budget_rate = scenario.campaign_budget_per_1000
        is_agent = self.actions.agent
        self._send_agent = np.where(is_agent, self.actions.send_cost, 0.0)
        self._send_other = np.where(is_agent, 0.0, self.actions.send_cost)
        self._at_purchase = (self.actions.purchase_cost + self.actions.voucher_liability)[:, None]

        # hidden traits (see envs.shoppers) and per-action values, per shopper
        self.traits = np.zeros((len(T), n))
        self.perceived = np.zeros((k, n))
        self.discount = np.zeros((k, n))
        self.expected_cost = np.zeros((k, n))
        self.static_ok = np.zeros((k, n), dtype=bool)
        # journey state
        self.alive = np.zeros(n, dtype=bool)
        self.t = np.zeros(n, dtype=np.int64)
        self.visit = np.ones(n, dtype=np.int64)
        self.stage = np.zeros(n, dtype=np.int64)
        self.steps_at_stage = np.zeros(n, dtype=np.int64)
        self.away = np.zeros(n, dtype=bool)
        self.exit_intent = np.zeros(n, dtype=bool)
        self.intent_appeal = np.zeros(n)
        self.annoyance = np.zeros(n)
        self.interruptions = np.zeros(n, dtype=np.int64)
        self.harassed = np.zeros(n, dtype=bool)
        self.consent = np.zeros(n, dtype=bool)
        self.waits = np.zeros(n, dtype=bool)
        self.hesitation_rewarded = np.zeros(n, dtype=bool)
        self.return_chance = np.zeros(n)
        self.dwell = np.zeros(n)
        self.edits = np.zeros(n, dtype=np.int64)
        self.substitutes = np.zeros(n, dtype=np.int64)
        self.agent_until = np.zeros(n, dtype=np.int64)
        self.offer_until = np.zeros(n, dtype=np.int64)
        self.offered = np.zeros((k, n), dtype=bool)
        self.expires = np.zeros((k, n), dtype=np.int64)
        self.memory = scenario.strategic.initial_memory
        self.budget = 0.0 if self._budget_rate is not None else np.inf
        self.ended_shoppers = 0
        # outputs of the last step
        self._obs_t = np.zeros((len(self.schema), n), dtype=np.float32)
        self.obs = np.zeros((n, len(self.schema)), dtype=np.float32)
        self.reward = np.zeros(n)
        self.terminated = np.zeros(n, dtype=bool)
        self.truncated = np.zeros(n, dtype=bool)
        self.terms = np.zeros((len(ledger.LEDGER_TERMS), n))
        self.spend = np.zeros((k, n))
        self.event = np.zeros(n, dtype=np.int8)
        self.ineligible = np.zeros(n, dtype=bool)
        self.applied = np.zeros(n, dtype=np.int64)
        self.opted_out = np.zeros(n, dtype=bool)
        self.final_obs = np.zeros((0, len(self.schema)), dtype=np.float32)
        self.final_rows = np.zeros(0, dtype=np.int64)

    # ------------------------------------------------------------------ reset
    def reset(
        self,
        seed: int | None = None,
        *,
        keep_memory: bool = False,
        dynamics_seed: int | None = None,
    ) -> NDArray[np.float32]:
        """Start N new journeys.

        A seed (or the first reset) restarts the generator, and with it the shoppers and
        draws to come. Unless ``keep_memory``, the population memory of strategic
        shoppers and the campaign budget restart too; with it, they go on from their
        current values (which a caller may set, to carry them over from another core).

        ``dynamics_seed`` (with ``seed``) replays the same shoppers with other dice: the
        shoppers of this reset are drawn from ``seed`` exactly as ``reset(seed)`` draws
        them, and every later draw of the step (and, with autoreset, later shoppers: those
        come from ``seed``'s stream then) from a generator of its own seeded with
        ``dynamics_seed``. Without it nothing changes: one generator, seeded with ``seed``.
        """
        if dynamics_seed is not None:
            if seed is None:
                raise ValueError("dynamics_seed needs a seed: the shoppers are drawn from it")
            self._pool = ShopperPool(self.population, np.random.default_rng(seed), self.chunk)
            self.np_random = np.random.default_rng(dynamics_seed)
            self.seeded = True
        elif seed is not None or not self.seeded:
            self.np_random = np.random.default_rng(seed)
            self._pool = ShopperPool(self.population, self.np_random, self.chunk)
            self.seeded = True
        if seed is not None:
            self.dynamics_seed = dynamics_seed
        if not keep_memory:
            self.memory = self.scenario.strategic.initial_memory
            self.budget = 0.0 if self._budget_rate is not None else np.inf
            self.ended_shoppers = 0
        self.clock = 0
        self._start(self._rows, arriving=self.arrival == 0)
        self._waiting = self.arrival > 0
        self.event[:] = NOTHING
        self.ineligible[:] = False
        self.opted_out[:] = False
        self.applied[:] = 0
        self.terms.fill(0.0)
        self.spend.fill(0.0)
        self.reward = np.zeros(self.n)
        self.final_rows = np.zeros(0, dtype=np.int64)
        self._observe()
        return self.obs

    def _start(self, rows: IntArray, arriving: BoolArray | None = None) -> None:
        """Draw new shoppers into ``rows``; those not ``arriving`` yet wait for their step."""
        draw: ShopperDraw = self._pool.take(len(rows))
        self.traits[:, rows] = draw.traits
        self.perceived[:, rows] = draw.perceived
        self.discount[:, rows] = draw.discount
        self.expected_cost[:, rows] = draw.expected_cost
        self.static_ok[:, rows] = draw.static_ok
        tr = draw.traits
        self.alive[rows] = True if arriving is None else arriving
        for arr in (
            self.t,
            self.stage,
            self.steps_at_stage,
            self.interruptions,
            self.edits,
            self.substitutes,
            self.agent_until,
            self.offer_until,
            self.annoyance,
            self.dwell,
            self.intent_appeal,
        ):
            arr[rows] = 0
        self.visit[rows] = 1
        for flags in (self.away, self.exit_intent, self.harassed, self.hesitation_rewarded):
            flags[rows] = False
        self.consent[rows] = tr[T["consent"]] > 0.5
        self.return_chance[rows] = tr[T["return_probability"]]
        self.offered[:, rows] = False
        self.expires[:, rows] = 0
        self._arrive(rows if arriving is None else rows[arriving])

    def _arrive(self, rows: IntArray) -> None:
        """Shoppers enter the shop: they may wait for deals, and fund the campaign budget."""
        self.alive[rows] = True
        wait_draw = self.traits[T["wait_draw"], rows]
        self.waits[rows] = wait_draw < self.scenario.strategic.strength * self.memory
        if self._budget_rate is not None:
            self.budget += self._budget_rate * len(rows) / 1000.0

    # ------------------------------------------------------------------ masks
    def action_masks(self) -> BoolArray:
        """Eligible actions per shopper, shape ``(n, n_actions)``; ``wait`` is always eligible."""
        return self._masks(self.budget)

    def budget_withheld(self) -> BoolArray:
        """Actions per shopper, ``(n, n_actions)``, that the campaign budget alone withholds
        now: eligible were the budget unlimited, not eligible with what is left of it
        (the live-agent desk served in row order in both). All false without a budget."""
        if not np.isfinite(self.budget):
            return np.zeros((self.n, self.n_actions), dtype=bool)
        return self._masks(np.inf) & ~self._masks(self.budget)

    def _masks(self, budget: float) -> BoolArray:
        mask = self._eligible_columns(slice(None), budget)
        mask[self.actions.agent] &= self._agent_queue(mask[self.actions.agent])
        mask[0] = True
        return np.ascontiguousarray(mask.T)

    def _eligible_columns(self, columns: Any, budget: float | None = None) -> BoolArray:
        """Eligibility of the given action columns for every shopper, ``(len(columns), n)``,
        with ``budget`` left in the campaign budget (default: what is left now)."""
        return eligible(
            alive=self.alive,
            away=self.away,
            consent=self.consent,
            room=self.interruptions < self.scenario.max_offers_per_shopper,
            in_chat=self.agent_until > self.t,
            offered=self.offered[columns],
            static_ok=self.static_ok[columns],
            cost=self.expected_cost[columns],
            budget=self.budget if budget is None else budget,
            table=self.actions,
            columns=(columns, None) if isinstance(columns, slice) else columns[:, None],
        )

    def wants_agent(self) -> BoolArray:
        """Shoppers eligible for a live agent now, before the desk's capacity is applied
        ``(n,)``: the queue of :meth:`action_masks` serves the first of them, in row order."""
        return np.asarray(self._eligible_columns(self._agent_columns).any(axis=0), dtype=bool)

    def _agent_queue(self, agent_eligible: BoolArray) -> BoolArray:
        """Shoppers who may have a live agent now: the free agents go to the first
        shoppers eligible for one, in row order, in the masks and in the step alike, so
        that a policy following the masks is never refused."""
        wanting = np.asarray(agent_eligible.any(axis=0), dtype=bool)
        return within_capacity(wanting, self.free_agents())

    @property
    def running(self) -> bool:
        """Some journey is under way or some shopper has yet to arrive."""
        return bool(self.alive.any() or self._waiting.any())

    def free_agents(self) -> int:
        """Live agents not in a chat now."""
        return self.agent_capacity - int(np.count_nonzero(self.agent_until > self.t))

    # ------------------------------------------------------------------ step
    def step(
        self, actions: NDArray[Any]
    ) -> tuple[NDArray[np.float32], Array, BoolArray, BoolArray]:
        """Advance every shopper one decision step; returns obs, reward, terminated, truncated."""
        a = np.asarray(actions).reshape(self.n).astype(np.int64, copy=False)
        if a.min() < 0 or a.max() >= self.n_actions:
            raise ValueError(
                f"actions must be in [0, {self.n_actions - 1}], got {a.min()}..{a.max()}"
            )
        tr, rows, t, tbl = self.traits, self._rows, self.t, self.actions
        u = self.np_random.random((4, self.n))
        alive = self.alive
        terms = self.terms
        terms.fill(0.0)
        self.spend.fill(0.0)

        # 1. the merchant's move
        self.final_rows = self.final_rows[:0]
        self.final_obs = self.final_obs[:0]
        ok = eligible(
            alive=alive,
            away=self.away,
            consent=self.consent,
            room=self.interruptions < self.scenario.max_offers_per_shopper,
            in_chat=self.agent_until > t,
            offered=self.offered[a, rows],
            static_ok=self.static_ok[a, rows],
            cost=self.expected_cost[a, rows],
            budget=self.budget,
            table=tbl,
            columns=a,
        )
        if self._agent_columns.size:
            queue = self._agent_queue(self._eligible_columns(self._agent_columns))
            ok &= ~tbl.agent[a] | queue
        act = ok & (a != 0)
        self.ineligible = (a != 0) & ~ok
        a = a * act
        self.applied = a
        self.offered[a, rows] |= act
        until = t + tbl.expiry[a]
        self.expires[a, rows] = until
        self.offer_until = np.maximum(self.offer_until, until * (act & ~tbl.agent[a]))
        self.interruptions += act
        agent_now = act & tbl.agent[a]
        help_value = tr[T["help_value"]]
        self.annoyance += np.where(agent_now, np.maximum(0.0, 1.0 - help_value), tbl.annoyance[a])
        self.agent_until = np.where(
            agent_now, t + self.scenario.live_agents.session_steps, self.agent_until
        )
        terms[ledger.AGENT_COST] = self._send_agent[a]
        terms[ledger.CONCESSION_COST] = self._send_other[a]
        self.spend[a, rows] = tbl.send_cost[a]
        self.hesitation_rewarded |= act & (self.exit_intent | self.away | (self.visit > 1))
        tolerance = tr[T["tolerance"]]
        emailed = act & tbl.email[a]
        self.opted_out = (
            emailed
            & (self.annoyance > 0.5 * tolerance)
            & (u[1] < self.scenario.funnel.opt_out_probability)
        )
        self.consent &= ~self.opted_out
        on_site = alive & ~self.away
        harass = on_site & act & (self.annoyance > tolerance)

        # 2. shoppers who left: come back, or end the journey
        away = alive & self.away
        chance = self.return_chance + tr[T["retarget_lift"]] * emailed
        chance += self.scenario.strategic.return_boost * self.waits
        chance *= np.where(self.harassed, self.scenario.funnel.harassment_return_factor, 1.0)
        chance *= self.visit < self.scenario.max_visits
        returns = away & (u[0] < chance)
        abandoned = away & ~returns

        # 3. shoppers on the site
        valid = self.expires > t
        value = np.einsum("kn,kn->n", self.perceived, valid)
        agent_on = self.agent_until > t
        z = tr[T["base_appeal"]] + value * tr[T["surplus_scale"]] + help_value * agent_on
        z -= self._annoy_w * self.annoyance
        z -= self.scenario.strategic.wait_penalty * (self.waits & (value == 0.0) & ~agent_on)
        deciding = on_site & ~harass
        intent = deciding & self.exit_intent
        leaves = intent & (u[0] >= _sigmoid(z - self.intent_appeal - self._commit))
        free = deciding & ~self.exit_intent
        buys = free & (self.stage == 3) & (u[0] < _sigmoid(z + self._buy_bias))
        new_intent = free & ~buys & (u[0] > 1.0 - 2.0 * tr[T["hazard"]] * _sigmoid(-z))
        advances = (
            free & ~buys & ~new_intent & (self.stage < 3) & (u[1] < _sigmoid(z + self._adv_bias))
        )

        # 4. books and state
        buyers = np.flatnonzero(buys)
        if len(buyers):
            self._book(buyers, valid[:, buyers])
        if self._budget_rate is not None:
            self.budget -= float(self.spend.sum())
        fv = self.scenario.future_value
        if fv.annoyed_customer:
            terms[ledger.FUTURE_VALUE] -= fv.annoyed_customer * harass
        left = leaves | harass
        self.harassed |= harass
        self.away = (self.away & ~returns) | left
        self.exit_intent = (self.exit_intent & ~intent) | new_intent
        self.intent_appeal = np.where(new_intent, z, self.intent_appeal)
        self.return_chance = np.where(
            returns, self.return_chance * tr[T["return_decay"]], self.return_chance
        )
        self.visit += returns
        self.stage = np.where(returns, np.minimum(self.stage, 1), self.stage + advances)
        self.steps_at_stage = np.where(advances | returns, 0, self.steps_at_stage + deciding)
        self.dwell = np.minimum(deciding * tr[T["dwell_base"]] * (0.5 + u[2]), DWELL_CAP)
        self.edits += deciding & (u[3] < tr[T["edit_rate"]])
        self.substitutes += deciding & (u[3] > 1.0 - tr[T["substitute_rate"]])
        self.t += alive

        terminated = buys | abandoned
        truncated = alive & ~terminated & (self.t >= self.scenario.horizon)
        self.terminated, self.truncated = terminated, truncated
        # the events are exclusive: each shopper is in one branch of the step
        event = np.multiply(buys, PURCHASE, dtype=np.int8)
        for flags, code in (
            (new_intent, EXIT_INTENT),
            (leaves, LEFT),
            (harass, HARASSED),
            (returns, RETURNED),
            (abandoned, ABANDONED),
        ):
            event += np.multiply(flags, code, dtype=np.int8)
        self.event = event
        self.reward = ledger.profit(terms)
        done = terminated | truncated
        self.alive &= ~done
        self.agent_until[done] = 0  # a finished journey frees its agent
        self.clock += 1
        if self._waiting.any():
            arriving = self._waiting & (self.arrival <= self.clock)
            self._waiting &= ~arriving
            self._arrive(np.flatnonzero(arriving))
        if done.any():
            self._end_journeys(done, buys)
        self._observe()
        return self.obs, self.reward, terminated, truncated

    def _book(self, buyers: IntArray, valid: BoolArray) -> None:
        """Book the orders of ``buyers`` with the concessions still ``valid`` for them."""
        tr = self.traits[:, buyers]
        on_order = valid.astype(np.float64)
        discounts = np.einsum("kn,kn->n", self.discount[:, buyers], on_order)
        part = np.zeros((len(ledger.LEDGER_TERMS), len(buyers)))
        book_purchase(
            part,
            price=tr[T["price"]],
            shipping_fee=tr[T["shipping_fee"]],
            unit_cost=tr[T["unit_cost"]],
            shipping_cost=tr[T["shipping_cost"]],
            price_discounts=discounts,
            other_concession_costs=self.actions.purchase_cost @ on_order,
            voucher_liability=self.actions.voucher_liability @ on_order,
            retained_value=self.scenario.future_value.retained_customer,
        )
        self.terms[:, buyers] += part
        self.spend[:, buyers] += on_order * (self.discount[:, buyers] + self._at_purchase)

    def _end_journeys(self, done: BoolArray, buys: BoolArray) -> None:
        ended = int(done.sum())
        rewarded = int((buys & self.hesitation_rewarded).sum())
        keep = (1.0 - self.scenario.strategic.memory_rate) ** ended
        self.memory = keep * self.memory + (1.0 - keep) * rewarded / ended
        self.ended_shoppers += ended
        if not self.autoreset:
            return
        rows = np.flatnonzero(done)
        self.final_rows = rows
        self._observation(None, self._obs_t)
        self.final_obs = self._obs_t[:, rows].T.copy()
        self._start(rows)

    # ------------------------------------------------------------ observation
    def _observe(self) -> None:
        # a fresh array every step (learners keep the last one); Fortran order, as a
        # transposed copy of the feature-major buffer, is 8x cheaper than a C-order one
        self._observation(None, self._obs_t)
        self.obs = self._obs_t.copy().T

    def _observation(
        self, rows: IntArray | None, out: NDArray[np.float32] | None = None
    ) -> NDArray[np.float32]:
        """The observation of all shoppers, or of ``rows`` only, shape ``(n_features, n)``."""

        def at(arr: NDArray[Any]) -> NDArray[Any]:
            return arr if rows is None else arr[..., rows]

        tr = at(self.traits)
        n = self.n if rows is None else len(rows)
        obs = out if out is not None else np.empty((len(self.schema), n), np.float32)
        s, c = self.scenario, COLUMN
        price, t, visit, consent = tr[T["price"]], at(self.t), at(self.visit), at(self.consent)
        obs[c["cart_value"]] = price / 100.0
        obs[c["shipping_fee"]] = tr[T["shipping_fee"]] / 10.0
        obs[c["margin_rate"]] = 1.0 - tr[T["unit_cost"]] / price
        obs[c["checkout_step"]] = at(self.stage) / 3.0
        obs[c["journey_step"]] = t / s.horizon
        obs[c["away"]] = at(self.away)
        obs[c["consent"]] = consent
        obs[c["interruptions"]] = at(self.interruptions) / max(1, s.max_offers_per_shopper)
        obs[c["offer_active"]] = at(self.offer_until) > t
        obs[c["agents_busy"]] = min(
            1.0, np.count_nonzero(self.agent_until > self.t) / self.agent_capacity
        )
        obs[c["returning_visitor"]] = (tr[T["existing"]] > 0.5) | (visit > 1)
        obs[c["visit_index"]] = visit / s.max_visits
        obs[c["exit_intent"]] = at(self.exit_intent)
        obs[c["dwell_time"]] = at(self.dwell)
        obs[c["steps_at_stage"]] = at(self.steps_at_stage) / s.horizon
        obs[c["cart_edits"]] = at(self.edits) / 10.0
        obs[c["substitute_views"]] = at(self.substitutes) / 10.0
        obs[GATED_SLICE] *= consent
        obs[OFFERED_START:] = at(self.offered)[1:]
        return obs


# ------------------------------------------------------------------ the shoppers
def reference_draw(self: Any, rng: np.random.Generator, n: int) -> ShopperDraw:
    """The numpy draw of ``n`` shoppers from ``Population`` ``self``, as it was."""
    scenario, cal = self.scenario, self.scenario.calibration
    u = rng.random((5, n))
    normals = rng.standard_normal((2, n))
    gamma = rng.gamma(4.0, 0.25, n)
    seg = (u[0] > self.seg_cdf[:-1, None]).sum(axis=0)
    prod = (u[1] > self.prod_cdf[:-1, None]).sum(axis=0)
    sp = {k: v[seg] for k, v in self.seg.items()}
    tr = np.empty((len(TRAITS), n), order="F")  # shopper-major, as the core stores them
    tr[T["segment"]] = seg
    tr[T["product"]] = prod
    for name in ("price", "unit_cost", "shipping_fee", "shipping_cost"):
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

    perceived, discount = _action_values(self, sp, price, fee)
    expected = discount + self.extra_cost
    margin_left = price + fee - tr[T["unit_cost"]] - tr[T["shipping_cost"]] - expected
    static_ok = np.asfortranarray(
        (price >= self.actions.min_cart[:, None])
        & (margin_left >= self.actions.margin_floor[:, None] * price)
    )
    static_ok[0] = True
    return ShopperDraw(tr, perceived, discount, expected, static_ok)


def _action_values(
    self: Any, sp: dict[str, Array], price: Array, fee: Array
) -> tuple[Array, Array]:
    """Perceived value (EUR) and price given up (EUR) of each action, shape ``(k, n)``."""
    actions = self.actions
    perceived = np.zeros((actions.n, len(price)), order="F")
    discount = np.zeros((actions.n, len(price)), order="F")
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
