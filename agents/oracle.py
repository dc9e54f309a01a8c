"""The oracle: a hindsight merchant that sees the hidden shopper state and the future draws.

It is the upper reference of an evaluation ("how much is there to earn at all"), never a
deployable policy: it reads the simulator itself (:class:`agents.policy.PrivilegedPolicy`)
and, through common random numbers, knows what every shopper will do under any plan.

Spec. Before each cohort the rollout calls :meth:`Oracle.bind` with the cohort's core
(just reset: same shoppers, population memory and campaign budget as the run will see)
and the cohort's seed; a core reset with a separate dynamics seed
(``reset(seed, dynamics_seed=d)``) is replayed with that seed too. The oracle then:

1. Look-ahead: on a scratch core of the same size, reset with the same seed and memory,
   it plays every candidate plan on the whole cohort and records each shopper's realised
   profit, concession spend and the step a live agent was started. The campaign budget and
   the live-agent desk are lifted during this look-ahead (so a plan is judged on what it
   earns per shopper, not on who came first); shopper-level rules (channel, consent,
   contact cap, once per shopper, minimum cart, margin floor) all hold. Candidate plans:

   - ``never``;
   - for every on-site concession k: "offer k at step 0" and "offer k at exit intent"
     (the true exit intent, seen also for shoppers who refused tracking), whenever
     eligible; for every e-mail concession k: "offer k while the shopper is away";
     "at exit intent" / "away" are :class:`agents.baselines.AlwaysOffer` with the
     consent gate lifted, so they cover the ``always_*`` baselines shopper by shopper;
   - every extra candidate policy given (hand rules, concession curves, learned agents),
     played closed-loop on the observations as it would be.

2. Selection: each shopper gets the plan with the highest realised profit (ties go to the
   earlier plan, so ``never`` wins a tie). Then the shared resources are put back: live
   agents are packed greedily by gain (a shopper whose session would overflow the desk
   gets their best plan without an agent) and, with a campaign budget, shoppers are
   admitted by gain per euro spent until the cohort's budget (at the start, plus what
   its later arrivals bring) is used (the others get
   their best plan that spends nothing).
3. Verification and repair: the combined plan is played on the scratch core with the
   real budget and desk; shoppers who then earn less than under ``never`` (coupling
   through the shared resources) are switched to ``never`` and the plan verified again,
   up to ``repairs`` times. The verified plan with the highest cohort profit is kept, and
   all-``never`` if that earns more.
4. The run: :meth:`act` plays each shopper's plan closed-loop on the real core. Same
   seed, state and decisions as the verified look-ahead, so the cohort earns exactly the
   verified profit.

So, cohort by cohort and from the same starting state, the oracle earns at least as much
as ``never`` and, up to the coupling repaired in step 3, as much as the best of its
candidates for each shopper. It is an upper reference for the policies it is given as
candidates and the ``always_*`` / ``never`` baselines, not a proof over all policies.
Cost: one cohort run per candidate plus one or two verifications, per cohort.
"""

from __future__ import annotations

import multiprocessing
import pickle
import weakref
from collections.abc import Sequence
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from agents.policy import Policy
from envs.core import ShopperCore
from envs.scenario import Scenario

Actions = NDArray[np.int64]
Array = NDArray[np.float64]
IntArray = NDArray[np.int64]

START, EXIT_INTENT, AWAY = "start", "exit_intent", "away"


@dataclass(frozen=True)
class Plan:
    """One candidate plan: ``never`` (action 0), a trigger (offer ``action`` when
    ``trigger`` holds and the mask allows it), or a closed-loop ``policy``."""

    name: str
    action: int = 0
    trigger: str = ""
    policy: Policy | None = None

    @property
    def is_never(self) -> bool:
        return self.policy is None and self.action == 0

    def decide(
        self, core: ShopperCore, obs: NDArray[np.float32], mask: NDArray[np.bool_] | None
    ) -> Actions:
        """Actions for all of ``core``'s shoppers. Without a mask, a trigger plan sends its
        action wherever the trigger holds and lets the core play an ineligible one as
        ``wait`` (same outcome, no mask to compute); a policy plan needs the mask."""
        if self.policy is not None:
            if mask is None:
                mask = core.action_masks()
            return np.asarray(self.policy.act(obs, mask), dtype=np.int64)
        if self.action == 0:
            return np.zeros(core.n, dtype=np.int64)
        if self.trigger == START:
            fire = core.t == 0
        elif self.trigger == EXIT_INTENT:
            fire = core.exit_intent & ~core.away
        else:
            fire = core.away.copy()
        fire &= core.alive
        if mask is not None:
            fire &= mask[:, self.action]
        return fire.astype(np.int64) * self.action


def candidate_plans(scenario: Scenario, policies: Sequence[Policy] = ()) -> list[Plan]:
    """``never``, the trigger plans of every catalogue entry, then one plan per policy."""
    plans = [Plan("never")]
    for k, c in enumerate(scenario.concessions, start=1):
        if c.channel == "email":
            plans.append(Plan(f"{c.name}@away", k, AWAY))
        else:
            plans.append(Plan(f"{c.name}@start", k, START))
            plans.append(Plan(f"{c.name}@exit_intent", k, EXIT_INTENT))
    plans.extend(Plan(p.name, policy=p) for p in policies)
    return plans


@dataclass
class Trace:
    """Per shopper of one look-ahead: profit and spend (EUR), first agent step (-1: none)."""

    profit: Array
    spend: Array
    agent_step: IntArray


@dataclass(frozen=True)
class Start:
    """The state a cohort starts from: population memory, campaign budget (EUR), and the
    budget its later arrivals will bring (EUR)."""

    memory: float
    budget: float
    arrivals: float = 0.0
    dice: int | None = None  # the core's dynamics seed, when it was reset with one


class Oracle:
    """The hindsight oracle; see the module docstring for the spec.

    Args:
        scenario: the market it will be bound to.
        candidates: closed-loop policies to include among its plans (it covers ``never``
            and the ``always_*`` baselines by itself).
        repairs: verification rounds after the first one (0: verify once, no repair).
        workers: processes for the look-ahead (1: in this process). With more, candidate
            policies must be picklable (those that are not run in this process); the
            result is the same, only faster.
    """

    name = "oracle"

    def __init__(
        self,
        scenario: Scenario,
        candidates: Sequence[Policy] = (),
        *,
        repairs: int = 1,
        workers: int = 1,
    ) -> None:
        if repairs < 0:
            raise ValueError(f"repairs must be >= 0, got {repairs}")
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        self.scenario = scenario
        self.plans = candidate_plans(scenario, candidates)
        self.repairs = repairs
        self.workers = workers
        self._scratch: ShopperCore | None = None
        self._core: ShopperCore | None = None
        self._assign = np.zeros(0, dtype=np.int64)
        self._used: list[int] = []
        self._pool: Executor | None = None
        self.chosen: dict[str, int] = {}  # shoppers per plan, summed over the bound cohorts
        self.verified: list[float] = []  # per bound cohort: the profit its run will earn

    # ------------------------------------------------------------------ protocol
    def bind(self, core: ShopperCore, seed: int) -> None:
        """Plan the cohort about to be run on ``core`` (just reset with ``seed``)."""
        if core.scenario != self.scenario:
            raise ValueError(
                f"oracle built for scenario {self.scenario.name!r}, bound to {core.scenario.name!r}"
            )
        scratch = self._scratch
        if scratch is None or scratch.n != core.n or scratch.stagger != core.stagger:
            scratch = self._scratch = ShopperCore(
                self.scenario, core.n, autoreset=False, stagger=core.stagger
            )
        rate = self.scenario.campaign_budget_per_1000 or 0.0
        later = rate * int(np.count_nonzero(core.arrival > 0)) / 1000.0
        start = Start(core.memory, core.budget, later, core.dynamics_seed)
        # the dearest offer any shopper of the cohort could be sent: what the budget must
        # still hold at the end for every admitted offer to stay eligible
        margin = float(np.max(core.expected_cost, initial=0.0))
        self._assign, total = self._plan(scratch, seed, start, core.agent_capacity, margin)
        self.verified.append(total)
        self._core = core
        self._used = [int(p) for p in np.unique(self._assign)]
        for p in self._used:
            name = self.plans[p].name
            self.chosen[name] = self.chosen.get(name, 0) + int(np.sum(self._assign == p))

    def act(self, obs: NDArray[np.float32], mask: NDArray[np.bool_]) -> Actions:
        if self._core is None:
            raise RuntimeError("the oracle must be bound to a core first (bind(core, seed))")
        return _combined(self.plans, self._used, self._assign, self._core, obs, mask)

    def close(self) -> None:
        """Stop the look-ahead worker processes, if any (they restart when needed)."""
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None

    # ------------------------------------------------------------------ planning
    def _plan(
        self, scratch: ShopperCore, seed: int, start: Start, capacity: int, margin: float
    ) -> tuple[IntArray, float]:
        """Each shopper's plan (index into ``plans``) and the cohort's verified profit."""
        n = scratch.n
        traces = self._lookahead(scratch, seed, start.memory, start.dice)
        value = np.stack([t.profit for t in traces])
        spend = np.stack([t.spend for t in traces])
        agent = np.stack([t.agent_step for t in traces])
        assign = np.argmax(value, axis=0)
        assign = _fit_agents(
            assign, value, agent, capacity, self.scenario.live_agents.session_steps
        )
        if np.isfinite(start.budget):
            assign = _fit_budget(assign, value, spend, start.budget + start.arrivals - margin)
        never = value[0]
        best_assign, best_total = np.zeros(n, dtype=np.int64), float(never.sum())
        for _ in range(self.repairs + 1):
            realised = _verify(scratch, seed, start, capacity, self.plans, assign)
            if realised.sum() > best_total:
                best_assign, best_total = assign.copy(), float(realised.sum())
            worse = realised < never - 1e-9
            if not worse.any():
                break
            assign = np.where(worse, 0, assign)
        return best_assign, best_total

    def _lookahead(
        self, scratch: ShopperCore, seed: int, memory: float, dice: int | None = None
    ) -> list[Trace]:
        """One unconstrained trace per plan, in plan order."""
        if self.workers == 1:
            return [_trace(scratch, seed, memory, plan, dice) for plan in self.plans]
        if self._pool is None:
            context = multiprocessing.get_context("fork")
            pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=context)
            weakref.finalize(self, pool.shutdown, cancel_futures=True)
            self._pool = pool
        futures = {}
        for i, plan in enumerate(self.plans):
            if _picklable(plan):
                futures[i] = self._pool.submit(
                    _trace_job,
                    self.scenario,
                    scratch.n,
                    scratch.stagger,
                    seed,
                    memory,
                    plan,
                    dice,
                )
        local = {
            i: _trace(scratch, seed, memory, plan, dice)
            for i, plan in enumerate(self.plans)
            if i not in futures
        }
        return [futures[i].result() if i in futures else local[i] for i in range(len(self.plans))]


def _picklable(plan: Plan) -> bool:
    try:
        pickle.dumps(plan)
    except Exception:  # any failure to pickle means: run it here
        return False
    return True


_WORKER_CORES: dict[tuple[str, int, int], ShopperCore] = {}


def _trace_job(
    scenario: Scenario,
    n: int,
    stagger: int,
    seed: int,
    memory: float,
    plan: Plan,
    dice: int | None = None,
) -> Trace:
    """A look-ahead in a worker process, on a core kept for the next job of the same size."""
    key = (scenario.digest(), n, stagger)
    core = _WORKER_CORES.get(key)
    if core is None:
        core = _WORKER_CORES[key] = ShopperCore(scenario, n, autoreset=False, stagger=stagger)
    return _trace(core, seed, memory, plan, dice)


def _reset(
    core: ShopperCore,
    seed: int,
    memory: float,
    budget: float,
    capacity: int,
    dice: int | None = None,
) -> None:
    core.memory = memory
    core.reset(seed, keep_memory=True, dynamics_seed=dice)
    core.budget = budget
    core.agent_capacity = capacity


def _trace(
    core: ShopperCore, seed: int, memory: float, plan: Plan, dice: int | None = None
) -> Trace:
    """Play one plan for the whole cohort with the budget and the live-agent desk lifted
    (``dice``: the dynamics seed, when the shoppers are replayed with other draws)."""
    _reset(core, seed, memory, np.inf, core.n, dice)
    obs = core.obs
    n = core.n
    profit = np.zeros(n)
    spend = np.zeros(n)
    agent_step = np.full(n, -1, dtype=np.int64)
    is_agent = core.actions.agent
    for step in range(core.span):
        if not core.running:
            break
        obs, reward, _, _ = core.step(plan.decide(core, obs, None))
        profit += reward
        spend += core.spent
        started = is_agent[core.applied] & (agent_step < 0)
        agent_step[started] = step
    return Trace(profit, spend, agent_step)


def _verify(
    core: ShopperCore,
    seed: int,
    start: Start,
    capacity: int,
    plans: Sequence[Plan],
    assign: IntArray,
) -> Array:
    """Per-shopper profit of the combined plan under the real budget and desk: exactly what
    the real run of the cohort will earn."""
    _reset(core, seed, start.memory, start.budget, capacity, start.dice)
    obs = core.obs
    used = [int(p) for p in np.unique(assign)]
    profit = np.zeros(core.n)
    for _ in range(core.span):
        if not core.running:
            break
        actions = _combined(plans, used, assign, core, obs, core.action_masks())
        obs, reward, _, _ = core.step(actions)
        profit += reward
    return profit


def _combined(
    plans: Sequence[Plan],
    used: Sequence[int],
    assign: IntArray,
    core: ShopperCore,
    obs: NDArray[np.float32],
    mask: NDArray[np.bool_],
) -> Actions:
    """Each shopper's action under their own plan (never an action the mask forbids)."""
    out = np.zeros(core.n, dtype=np.int64)
    for p in used:
        if plans[p].is_never:
            continue
        rows = assign == p
        out[rows] = plans[p].decide(core, obs, mask)[rows]
    return out


def _fit_agents(
    assign: IntArray, value: Array, agent: IntArray, capacity: int, session: int
) -> IntArray:
    """Greedy by gain: keep a shopper's agent session only while the desk has room."""
    rows = np.arange(assign.size)
    start = agent[assign, rows]
    users = np.flatnonzero(start >= 0)
    if not len(users):
        return assign
    busy = np.zeros(int(start.max()) + session + 1, dtype=np.int64)
    no_agent = np.where(agent < 0, value, -np.inf)
    fallback = np.argmax(no_agent, axis=0)
    gain = value[assign, rows] - value[fallback, rows]
    out = assign.copy()
    for i in users[np.argsort(-gain[users], kind="stable")]:
        window = slice(int(start[i]), int(start[i]) + session)
        if busy[window].max() < capacity:
            busy[window] += 1
        else:
            out[i] = fallback[i]
    return out


def _fit_budget(assign: IntArray, value: Array, spend: Array, budget: float) -> IntArray:
    """Admit spending shoppers by gain per euro until ``budget``; others spend nothing."""
    rows = np.arange(assign.size)
    cost = spend[assign, rows]
    spenders = np.flatnonzero(cost > 0)
    if not len(spenders) or cost.sum() <= budget:
        return assign
    free = np.where(spend <= 0, value, -np.inf)
    fallback = np.argmax(free, axis=0)
    gain = value[assign, rows] - value[fallback, rows]
    order = spenders[np.argsort(-gain[spenders] / cost[spenders], kind="stable")]
    admitted = np.cumsum(cost[order]) <= max(budget, 0.0)
    out = assign.copy()
    out[order[~admitted]] = fallback[order[~admitted]]
    return out
