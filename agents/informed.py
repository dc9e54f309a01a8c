"""The informed bound: a planner that knows each shopper but not the dice.

The clairvoyant oracle (:mod:`agents.oracle`) picks each shopper's plan by the profit it
*will* realise, knowing every future random draw; part of its edge is luck no policy can
know. The informed bound is its sibling: it knows each shopper's hidden type and drawn
parameters (valuation, hesitation, sensitivities, tolerance, consent, ...), but not the
draws to come, so the gap between a policy and it is what better information use and
learning could win, and the gap between it and the clairvoyant oracle is luck.

Spec. Before each cohort the rollout calls :meth:`InformedBound.bind` with the cohort's
core (just reset) and the cohort's seed. The bound then:

1. Expected profit of every candidate plan (the oracle's: ``never``, each concession at
   the start / at exit intent / by e-mail, and every extra closed-loop policy given), for
   every shopper, over ``futures`` fresh simulated futures of the same shoppers: a
   scratch core reset with the cohort's seed (so the same shoppers, traits and
   population memory) and a dynamics seed of its own per future
   (``ShopperCore.reset(seed, dynamics_seed=...)``), derived from the cohort's seed and
   never the one the run uses; the budget and the live-agent desk lifted, as in the
   oracle's look-ahead. It never reads the run's draws: the dynamics seed the core was
   reset with is not looked at.
2. Selection: each shopper gets the plan of highest mean profit over the futures (ties to
   the earlier plan, so ``never`` wins one). With a campaign budget, shoppers are admitted
   by expected gain per expected euro spent until the cohort's budget (at the start, plus
   its later arrivals', less the dearest offer) is used; the others get their best plan
   that spends nothing in expectation. The live-agent desk is left to the masks: a plan
   that asks for an agent when none is free waits, as any policy does.
3. The run: each shopper's plan is played closed-loop on the real core, on the same
   shoppers and draws as every other policy. Its realised profit is then an unbiased
   measure of the chosen plans: the selection did not see these draws.

So it is a bound in the sense of a reference, not a proof: with ``futures`` finite, the
choice carries some noise (more futures, closer to the best plan in expectation); and,
like the oracle, it chooses among its candidates only. Cost: ``futures`` cohort runs per
candidate plan, per cohort (the oracle: one).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from agents.oracle import _combined, _fit_budget, _trace, candidate_plans
from agents.policy import Policy
from envs.core import ShopperCore
from envs.scenario import Scenario

FUTURES_STREAM = 0x1F0  # spawn key of the informed bound's futures beside a cohort's seed


def future_seeds(seed: int, futures: int) -> list[int]:
    """The dynamics seeds of the simulated futures of the cohort drawn with ``seed``."""
    ss = np.random.SeedSequence([seed, FUTURES_STREAM])
    return [int(s) for s in ss.generate_state(futures, dtype=np.uint64)]


class InformedBound:
    """Knows the shopper, not the dice; see the module docstring for the spec.

    Args:
        scenario: the market it will be bound to.
        candidates: closed-loop policies to include among its plans (as the oracle's).
        futures: simulated futures per cohort over which each plan's profit is averaged.
    """

    name = "informed"

    def __init__(
        self, scenario: Scenario, candidates: Sequence[Policy] = (), *, futures: int = 8
    ) -> None:
        if futures < 1:
            raise ValueError(f"futures must be >= 1, got {futures}")
        self.scenario = scenario
        self.plans = candidate_plans(scenario, candidates)
        self.futures = futures
        self._scratch: ShopperCore | None = None
        self._core: ShopperCore | None = None
        self._assign = np.zeros(0, dtype=np.int64)
        self._used: list[int] = []
        self.chosen: dict[str, int] = {}  # shoppers per plan, summed over the bound cohorts
        self.expected: list[float] = []  # per bound cohort: mean expected profit of the plan

    def bind(self, core: ShopperCore, seed: int) -> None:
        """Plan the cohort about to be run on ``core`` (just reset with ``seed``)."""
        if core.scenario != self.scenario:
            raise ValueError(
                f"informed bound built for scenario {self.scenario.name!r}, bound to "
                f"{core.scenario.name!r}"
            )
        scratch = self._scratch
        if scratch is None or scratch.n != core.n or scratch.stagger != core.stagger:
            scratch = self._scratch = ShopperCore(
                self.scenario, core.n, autoreset=False, stagger=core.stagger
            )
        value, spend = self.expectations(scratch, seed, core.memory)
        assign = np.argmax(value, axis=0)
        if np.isfinite(core.budget):
            rate = self.scenario.campaign_budget_per_1000 or 0.0
            later = rate * float(np.count_nonzero(core.arrival > 0)) / 1000.0
            margin = float(np.max(core.expected_cost, initial=0.0))
            assign = _fit_budget(assign, value, spend, core.budget + later - margin)
        self._assign = assign
        self.expected.append(float(value[assign, np.arange(core.n)].mean()))
        self._core = core
        self._used = [int(p) for p in np.unique(assign)]
        for p in self._used:
            name = self.plans[p].name
            self.chosen[name] = self.chosen.get(name, 0) + int(np.sum(assign == p))

    def expectations(
        self, scratch: ShopperCore, seed: int, memory: float
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Mean profit and spend per plan and shopper ``(n_plans, n)`` over the futures."""
        value = np.zeros((len(self.plans), scratch.n))
        spend = np.zeros_like(value)
        for dice in future_seeds(seed, self.futures):
            for p, plan in enumerate(self.plans):
                trace = _trace(scratch, seed, memory, plan, dice)
                value[p] += trace.profit
                spend[p] += trace.spend
        return value / self.futures, spend / self.futures

    def act(self, obs: NDArray[np.float32], mask: NDArray[np.bool_]) -> NDArray[np.int64]:
        if self._core is None:
            raise RuntimeError("the informed bound must be bound to a core first (bind)")
        return _combined(self.plans, self._used, self._assign, self._core, obs, mask)
