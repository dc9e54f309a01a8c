"""Run a policy on a fixed population of shoppers and keep what happened to each.

Every policy evaluated with the same ``seed`` meets the same shoppers and the same
random draws (common random numbers): shoppers are run in cohorts of ``cohort_size``,
each cohort on a core reset with its own seed derived from ``seed``. Within a cohort,
shoppers arrive spread over ``stagger`` steps (by default one horizon), as through a
day, so that a campaign budget or the live-agent desk meets them in turn, not all at
once; every cohort runs until its last journey ends. Between cohorts the population
memory of strategic shoppers carries over, so a policy that teaches shoppers to wait
pays for it in the later cohorts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from agents.policy import Policy, PrivilegedPolicy
from envs.core import EXIT_INTENT, HARASSED, PURCHASE, ShopperCore
from envs.ledger import LEDGER_TERMS, profit
from envs.scenario import Scenario
from envs.shoppers import T

Array = NDArray[np.float64]


@dataclass
class Outcomes:
    """What happened to each of ``n`` shoppers under one policy.

    Per shopper ``(n,)``: ``profit`` (EUR), ``bought``, ``offers``, ``harassed``,
    ``opted_out``, ``exit_intents``, ``steps``; traits ``segment``, ``consent`` (at
    the start), ``existing``; ``first_offer_visit`` / ``first_offer_step`` (-1 when no
    offer was made). Per term ``terms`` ``(len(LEDGER_TERMS), n)``; per action
    ``spend`` and ``offered`` ``(n_actions, n)``; ``agent_busy`` is the mean share of
    live agents busy over the run; ``actions`` ``(steps, n)`` is the action log (steps of
    the cohort clock: a shopper's journey starts at its arrival).
    """

    policy: str
    scenario: str
    seed: int
    action_names: tuple[str, ...]
    segment_names: tuple[str, ...]
    profit: Array
    terms: Array
    spend: Array
    offered: NDArray[np.int64]
    bought: NDArray[np.bool_]
    offers: NDArray[np.int64]
    harassed: NDArray[np.bool_]
    opted_out: NDArray[np.bool_]
    exit_intents: NDArray[np.int64]
    steps: NDArray[np.int64]
    segment: NDArray[np.int64]
    consent: NDArray[np.bool_]
    existing: NDArray[np.bool_]
    first_offer_visit: NDArray[np.int64]
    first_offer_step: NDArray[np.int64]
    agent_busy: float
    actions: NDArray[np.int16]

    @property
    def n(self) -> int:
        return len(self.profit)

    def term(self, name: str) -> Array:
        return self.terms[LEDGER_TERMS.index(name)]


def cohort_seeds(seed: int, n_cohorts: int) -> list[int]:
    """The seeds of the cohorts of a run: fixed by ``seed`` alone."""
    return [int(s) for s in np.random.SeedSequence(seed).generate_state(n_cohorts, dtype=np.uint64)]


def run_policy(
    scenario: Scenario,
    policy: Policy,
    n_shoppers: int,
    seed: int,
    cohort_size: int = 10_000,
    stagger: int | None = None,
) -> Outcomes:
    """Run ``policy`` on ``n_shoppers`` shoppers drawn with ``seed``; see the module doc.

    ``stagger``: steps over which a cohort's shoppers arrive (default: the horizon).
    """
    if n_shoppers < 1:
        raise ValueError(f"n_shoppers must be at least 1, got {n_shoppers}")
    if cohort_size < 1:
        raise ValueError(f"cohort_size must be at least 1, got {cohort_size}")
    sizes = [min(cohort_size, n_shoppers - start) for start in range(0, n_shoppers, cohort_size)]
    parts: list[dict[str, NDArray[np.generic]]] = []
    busy_sum, busy_steps = 0.0, 0
    cores: dict[int, ShopperCore] = {}
    spread = scenario.horizon if stagger is None else stagger
    fresh = ShopperCore(scenario, 1, autoreset=False)
    memory, budget = fresh.memory, fresh.budget
    for size, cohort_seed in zip(sizes, cohort_seeds(seed, len(sizes)), strict=True):
        core = cores.get(size) or cores.setdefault(
            size, ShopperCore(scenario, size, autoreset=False, stagger=spread)
        )
        core.memory, core.budget = memory, budget
        part, busy = _run_cohort(core, policy, cohort_seed)
        memory, budget = core.memory, core.budget
        parts.append(part)
        busy_sum += busy
        busy_steps += core.span
    joined = {key: np.concatenate([p[key] for p in parts], axis=-1) for key in parts[0]}
    return Outcomes(
        policy=policy.name,
        scenario=scenario.name,
        seed=seed,
        action_names=scenario.action_names,
        segment_names=tuple(s.name for s in scenario.segments),
        agent_busy=busy_sum / busy_steps,
        **joined,
    )


def _run_cohort(
    core: ShopperCore, policy: Policy, seed: int
) -> tuple[dict[str, NDArray[np.generic]], float]:
    n, k = core.n, core.n_actions
    obs = core.reset(seed, keep_memory=True)
    if isinstance(policy, PrivilegedPolicy):
        policy.bind(core, seed)
    segment = core.traits[T["segment"]].astype(np.int64)
    consent = core.consent.copy()
    existing = core.traits[T["existing"]] > 0.5
    # sums of the core's step arrays, laid out as the core lays them out (shopper-major)
    terms = np.zeros_like(core.terms)
    spend = np.zeros_like(core.spend)
    offered = np.zeros((k, n), dtype=np.int64)
    harassed = np.zeros(n, dtype=bool)
    opted_out = np.zeros(n, dtype=bool)
    bought = np.zeros(n, dtype=bool)
    exit_intents = np.zeros(n, dtype=np.int64)
    first_visit = np.full(n, -1, dtype=np.int64)
    first_step = np.full(n, -1, dtype=np.int64)
    actions_log = np.zeros((core.span, n), dtype=np.int16)
    rows = np.arange(n)
    busy = 0.0
    capacity = core.agent_capacity
    for step in range(core.span):
        if not core.running:
            break
        mask = core.action_masks()
        chosen = np.asarray(policy.act(obs, mask), dtype=np.int64)
        visit, t = core.visit.copy(), core.t.copy()
        obs, _, _, _ = core.step(chosen)
        applied = core.applied
        made = applied != 0
        actions_log[step] = applied
        offered[applied, rows] += made
        newly = made & (first_visit < 0)
        first_visit[newly] = visit[newly]
        first_step[newly] = t[newly]
        terms += core.terms
        spend += core.spend
        event = core.event
        bought |= event == PURCHASE
        harassed |= event == HARASSED
        exit_intents += event == EXIT_INTENT
        opted_out |= core.opted_out
        busy += np.count_nonzero(core.agent_until > core.t) / capacity
    offered[0] = 0
    part = {
        # term-major, so that the ledger's product sums the terms in one fixed order
        "profit": profit(np.ascontiguousarray(terms)),
        "terms": terms,
        "spend": spend,
        "offered": offered,
        "bought": bought,
        "offers": offered.sum(axis=0),
        "harassed": harassed,
        "opted_out": opted_out,
        "exit_intents": exit_intents,
        "steps": core.t.copy(),
        "segment": segment,
        "consent": consent,
        "existing": existing,
        "first_offer_visit": first_visit,
        "first_offer_step": first_step,
        "actions": actions_log,
    }
    return part, busy
