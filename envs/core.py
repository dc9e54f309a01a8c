"""The batched dynamics over N shoppers: the one source of truth of the simulator.

:class:`ShopperCore` holds N shopper journeys in preallocated numpy arrays and steps
them together. The Gymnasium env is its N = 1 view and the vector envs are its
N > 1 views; none of them has dynamics of its own.

One step, for every shopper still in a journey:

1. The merchant's action is checked for eligibility (:mod:`envs.eligibility`); an
   ineligible action is played as ``wait`` and flagged in ``ineligible``. A
   concession offered now is valid for its expiry; it adds annoyance (a live agent adds
   ``max(0, 1 - help_value)``, an e-mail half an interruption); an e-mail to an
   annoyed shopper may end their tracking consent (``opted_out``). A shopper interrupted
   past their tolerance leaves at once (harassment exit).
2. A shopper who left at the previous step (``away``) comes back for a new visit with
   probability ``return_probability x return_decay^(returns so far)``, plus the
   e-mail's lift and the waiting shopper's boost, times the harassment factor if they
   left harassed; else the journey ends (final abandonment).
3. A shopper on the site has an appeal ``z`` (logits) = base appeal + value of the
   valid concessions / (appeal scale x price) + help value while a live agent is on
   - annoyance weight x annoyance - wait penalty for a shopper waiting for a deal while
   none is on the table. With exit intent shown at the previous step, the shopper
   stays with probability ``sigmoid(z - z_at_intent - exit_commitment)``, else
   leaves. Otherwise, at the payment step the shopper buys with probability
   ``sigmoid(z + buy_bias)``; if not buying, shows exit intent with probability
   ``2 hazard sigmoid(-z)``, else moves one step down the funnel with probability
   ``sigmoid(z + advance_bias)``.
4. An order books the ledger with every concession still valid; the journey ends.
   A journey also ends at the horizon (truncation).

The dynamics are compiled: :mod:`envs.kernels` runs each step as one loop over the
shoppers; this class holds the arrays, draws the randomness and keeps the population
memory and the campaign budget, which the whole batch shares.

Randomness: four uniforms per shopper per step, drawn for all N rows whether or not
they are still in a journey, from the generator seeded at :meth:`reset`; shoppers are
drawn from the same generator in chunks. So a batch evaluated with the same seed meets
the same shoppers and the same draws under every policy (common random numbers).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from envs import kernels, ledger
from envs.catalogue import ActionTable, compile_actions
from envs.kernels import ABANDONED, EXIT_INTENT, HARASSED, LEFT, NOTHING, PURCHASE, RETURNED
from envs.observation import COLUMN, DWELL_CAP, OFFERED_START, feature_schema
from envs.scenario import Scenario
from envs.shoppers import Population, ShopperDraw, ShopperPool, T

__all__ = [
    "ABANDONED",
    "EVENT_NAMES",
    "EXIT_INTENT",
    "HARASSED",
    "LEFT",
    "NOTHING",
    "PURCHASE",
    "RETURNED",
    "ShopperCore",
]

EVENT_NAMES = (
    "nothing",
    "purchase",
    "exit_intent",
    "left",
    "harassment_exit",
    "returned",
    "abandoned",
)

Array = NDArray[np.float64]
IntArray = NDArray[np.int64]
BoolArray = NDArray[np.bool_]


def _params(scenario: Scenario) -> Array:
    """The scenario's numbers the kernels read, in :data:`envs.kernels.PARAMS` order."""
    f, s = scenario.funnel, scenario.strategic
    known = {
        "max_offers_per_shopper": scenario.max_offers_per_shopper,
        "max_visits": scenario.max_visits,
        "horizon": scenario.horizon,
        "opt_out_probability": f.opt_out_probability,
        "harassment_return_factor": f.harassment_return_factor,
        "return_boost": s.return_boost,
        "wait_penalty": s.wait_penalty,
        "annoyance_weight": f.annoyance_weight,
        "exit_commitment": f.exit_commitment,
        "buy_bias": f.buy_bias,
        "advance_bias": f.advance_bias,
        "session_steps": scenario.live_agents.session_steps,
        "annoyed_customer": scenario.future_value.annoyed_customer,
        "retained_customer": scenario.future_value.retained_customer,
        "dwell_cap": DWELL_CAP,
    }
    return np.array([float(known[name]) for name in kernels.PARAMS])


def _table(actions: ActionTable) -> Array:
    """The catalogue's columns the kernels read, ``(len(kernels.TABLE), n_actions)``."""
    return np.array([getattr(actions, name) for name in kernels.TABLE], dtype=np.float64)


def _layout(population: Population) -> IntArray:
    """Where the kernels find each trait, ledger term and observation column."""
    return np.array(
        [*population.trait_layout]
        + [ledger.LEDGER_TERMS.index(name) for name in kernels.TERM_SLOTS]
        + [COLUMN[name] for name in kernels.COLUMN_SLOTS]
        + [OFFERED_START],
        dtype=np.int64,
    )


class ShopperCore:
    """N shopper journeys stepped together.

    Per-shopper arrays have shape ``(n,)``; per-action arrays ``(n_actions, n)``. The
    state arrays (``alive``, ``t``, ``annoyance``, ``offered``...) are views of the packed
    arrays the kernels step: read them, or write them in place, but do not rebind them.
    ``terms``, ``spend`` and ``spent`` are written in place at every step (copy what you
    keep); ``obs``, ``reward`` and the other outputs of a step are new arrays.

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
        self._in_journey = 0  # rows in a journey now, kept by reset, arrivals and steps
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
        self._arriving_all = np.ones(n, dtype=bool)
        self._params = _params(scenario)
        self._table = _table(self.actions)
        self._layout = _layout(self.population)
        self.agent_capacity = max(1, round(scenario.live_agents.capacity_per_1000 * n / 1000))
        self._budget_rate = scenario.campaign_budget_per_1000

        # the packed state the kernels step (see envs.kernels), and named views of it
        self._floats = np.zeros((len(kernels.FLOATS), n), order="F")
        self._ints = np.zeros((len(kernels.INTS), n), dtype=np.int64, order="F")
        self._flags = np.zeros((len(kernels.FLAGS), n), dtype=bool, order="F")
        self._values = np.zeros((len(kernels.VALUES), k, n), order="F")
        self._action_flags = np.zeros((len(kernels.ACTION_FLAGS), k, n), dtype=bool, order="F")
        floats = dict(zip(kernels.FLOATS, self._floats, strict=True))
        ints = dict(zip(kernels.INTS, self._ints, strict=True))
        flags = dict(zip(kernels.FLAGS, self._flags, strict=True))
        values = dict(zip(kernels.VALUES, self._values, strict=True))
        action_flags = dict(zip(kernels.ACTION_FLAGS, self._action_flags, strict=True))
        # hidden traits (see envs.shoppers) and per-action values, per shopper
        self.traits = np.zeros((len(T), n), order="F")
        self.perceived: Array = values["perceived"]
        self.discount: Array = values["discount"]
        self.expected_cost: Array = values["expected_cost"]
        self.static_ok: BoolArray = action_flags["static_ok"]
        # journey state
        self.alive: BoolArray = flags["alive"]
        self.away: BoolArray = flags["away"]
        self.exit_intent: BoolArray = flags["exit_intent"]
        self.harassed: BoolArray = flags["harassed"]
        self.consent: BoolArray = flags["consent"]
        self.waits: BoolArray = flags["waits"]
        self.hesitation_rewarded: BoolArray = flags["hesitation_rewarded"]
        self.t: IntArray = ints["t"]
        self.visit: IntArray = ints["visit"]
        self.stage: IntArray = ints["stage"]
        self.steps_at_stage: IntArray = ints["steps_at_stage"]
        self.interruptions: IntArray = ints["interruptions"]
        self.edits: IntArray = ints["edits"]
        self.substitutes: IntArray = ints["substitutes"]
        self.agent_until: IntArray = ints["agent_until"]
        self.offer_until: IntArray = ints["offer_until"]
        self.annoyance: Array = floats["annoyance"]
        self.intent_appeal: Array = floats["intent_appeal"]
        self.return_chance: Array = floats["return_chance"]
        self.dwell: Array = floats["dwell"]
        self.offered: BoolArray = action_flags["offered"]
        self.expires = np.zeros((k, n), dtype=np.int64, order="F")
        self.memory = scenario.strategic.initial_memory
        self.budget = 0.0 if self._budget_rate is not None else np.inf
        self.ended_shoppers = 0
        # outputs of the last step
        self.obs = np.zeros((n, len(self.schema)), dtype=np.float32)
        self.reward = np.zeros(n)
        self.terminated = np.zeros(n, dtype=bool)
        self.truncated = np.zeros(n, dtype=bool)
        self.terms = np.zeros((len(ledger.LEDGER_TERMS), n), order="F")
        self.spend = np.zeros((k, n), order="F")
        self.spent = np.zeros(n)  # each shopper's spend this step, summed over the actions
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
        self.obs = np.zeros((self.n, len(self.schema)), dtype=np.float32)
        self._in_journey = 0
        self._start(self._rows, self.arrival == 0)
        self._waiting = self.arrival > 0
        self.event = np.zeros(self.n, dtype=np.int8)
        self.ineligible = np.zeros(self.n, dtype=bool)
        self.opted_out = np.zeros(self.n, dtype=bool)
        self.applied = np.zeros(self.n, dtype=np.int64)
        self.terms.fill(0.0)
        self.spend.fill(0.0)
        self.spent.fill(0.0)
        self.reward = np.zeros(self.n)
        self.final_rows = np.zeros(0, dtype=np.int64)
        return self.obs

    def _start(self, rows: IntArray, arriving: BoolArray | None = None) -> None:
        """Draw new shoppers into ``rows`` and write their observations into :attr:`obs`;
        those not ``arriving`` yet wait for their step."""
        draw: ShopperDraw = self._pool.take(len(rows))
        alive = self._arriving_all[: len(rows)] if arriving is None else arriving
        kernels.start(
            rows,
            alive,
            draw.traits,
            draw.perceived,
            draw.discount,
            draw.expected_cost,
            draw.static_ok,
            self._floats,
            self._ints,
            self._flags,
            self.traits,
            self._values,
            self._action_flags,
            self.expires,
            self._layout,
        )
        self._arrive(rows if arriving is None else rows[arriving])
        self._observe(rows)

    def _arrive(self, rows: IntArray) -> None:
        """Shoppers enter the shop: they may wait for deals, and fund the campaign budget."""
        self.alive[rows] = True
        self._in_journey += len(rows)
        wait_draw = self.traits[T["wait_draw"], rows]
        self.waits[rows] = wait_draw < self.scenario.strategic.strength * self.memory
        if self._budget_rate is not None:
            self.budget += self._budget_rate * len(rows) / 1000.0

    def _observe(self, rows: IntArray) -> None:
        kernels.observe(
            rows,
            self.obs,
            self._floats,
            self._ints,
            self._flags,
            self.traits,
            self._action_flags,
            self._params,
            self._layout,
            self.agent_capacity,
        )

    # ------------------------------------------------------------------ masks
    def action_masks(self) -> BoolArray:
        """Eligible actions per shopper, shape ``(n, n_actions)``; ``wait`` is always eligible."""
        return self._masks(self.budget)[0]

    def budget_withheld(self) -> BoolArray:
        """Actions per shopper, ``(n, n_actions)``, that the campaign budget alone withholds
        now: eligible were the budget unlimited, not eligible with what is left of it
        (the live-agent desk served in row order in both). All false without a budget."""
        if not np.isfinite(self.budget):
            return np.zeros((self.n, self.n_actions), dtype=bool)
        return self._masks(np.inf)[0] & ~self._masks(self.budget)[0]

    def wants_agent(self) -> BoolArray:
        """Shoppers eligible for a live agent now, before the desk's capacity is applied
        ``(n,)``: the queue of :meth:`action_masks` serves the first of them, in row order."""
        return self._masks(self.budget)[1]

    def _masks(self, budget: float) -> tuple[BoolArray, BoolArray]:
        """The masks ``(n, n_actions)`` with ``budget`` left, and who wants an agent ``(n,)``."""
        out = np.empty((self.n, self.n_actions), dtype=bool)
        wanting = np.empty(self.n, dtype=bool)
        kernels.masks(
            out,
            wanting,
            self._ints,
            self._flags,
            self._values,
            self._action_flags,
            self._table,
            self._params,
            float(budget),
            self.free_agents(),
        )
        return out, wanting

    @property
    def running(self) -> bool:
        """Some journey is under way or some shopper has yet to arrive."""
        return self._in_journey > 0 or bool(self._waiting.any())

    def free_agents(self) -> int:
        """Live agents not in a chat now."""
        return int(self.agent_capacity - kernels.busy_agents(self._ints))

    # ------------------------------------------------------------------ step
    def step(
        self, actions: NDArray[Any]
    ) -> tuple[NDArray[np.float32], Array, BoolArray, BoolArray]:
        """Advance every shopper one decision step; returns obs, reward, terminated, truncated."""
        a = np.asarray(actions).reshape(self.n).astype(np.int64, copy=False)
        if kernels.out_of_range(a, self.n_actions):
            raise ValueError(
                f"actions must be in [0, {self.n_actions - 1}], got {a.min()}..{a.max()}"
            )
        u = self.np_random.random((4, self.n))
        obs = np.empty((self.n, len(self.schema)), dtype=np.float32)
        outcomes = np.empty((len(kernels.OUTCOMES), self.n), dtype=bool)
        applied = np.empty(self.n, dtype=np.int64)
        event = np.empty(self.n, dtype=np.int8)
        ended, rewarded, spent = kernels.step(
            self._rows,
            a,
            u,
            self._floats,
            self._ints,
            self._flags,
            self.traits,
            self._values,
            self._action_flags,
            self.expires,
            self._table,
            self._params,
            self._layout,
            float(self.budget),
            self.agent_capacity,
            self.terms,
            self.spend,
            self.spent,
            outcomes,
            applied,
            event,
            obs,
        )
        terminated, truncated, self.ineligible, self.opted_out = outcomes
        self.terminated, self.truncated = terminated, truncated
        self.applied, self.event, self.obs = applied, event, obs
        self.reward = ledger.profit(self.terms)
        if self._budget_rate is not None:
            self.budget -= spent
        self.final_rows = self.final_rows[:0]
        self.final_obs = self.final_obs[:0]
        self.clock += 1
        self._in_journey -= ended
        if self.stagger and self._waiting.any():
            arriving = self._waiting & (self.arrival <= self.clock)
            self._waiting &= ~arriving
            self._arrive(np.flatnonzero(arriving))
        if ended:
            self._end_journeys(ended, rewarded, terminated | truncated)
        return self.obs, self.reward, terminated, truncated

    def _end_journeys(self, ended: int, rewarded: int, done: BoolArray) -> None:
        """``ended`` journeys are over (``rewarded`` of them bought after their hesitation
        was rewarded): the population learns; with autoreset, new shoppers take the rows."""
        keep = (1.0 - self.scenario.strategic.memory_rate) ** ended
        self.memory = keep * self.memory + (1.0 - keep) * rewarded / ended
        self.ended_shoppers += ended
        if not self.autoreset:
            return
        rows = np.flatnonzero(done)
        self.final_rows = rows
        self.final_obs = self.obs[rows]
        self._start(rows)
