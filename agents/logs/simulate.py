"""Decision logs written by the simulator: any policy plus exploration, exact propensities.

:func:`simulate_logs` runs a logging policy on ``n_journeys`` shoppers exactly as
:func:`agents.rollout.run_policy` runs a policy (same cohorts, cohort seeds, arrivals
spread over the day, population memory and campaign budget carried from cohort to
cohort), except that each decision is drawn from the logger's probabilities
(:class:`agents.exploration.Exploration`, the one home of exploration) over the actions
**eligible** at that step:

- ``epsilon`` (a share ε in [0, 1]): with probability ε a uniformly drawn eligible action,
  else the policy's own; the action taken has probability
  ``(1 - ε) [a = policy's action] + ε / (number of eligible actions)``;
- ``softmax`` (a temperature τ > 0, for a :class:`agents.scoring.ScoredPolicy` only):
  ``softmax(scores / τ)`` over the eligible actions;
- either only at decision moments (``Exploration(..., moments=("exit_intent", "away"))``):
  where none of those features is 1, the policy's own action with probability 1.

The exploration draws come from their own generator, derived from each cohort's seed:
the simulator's draws (shoppers, their moves) are the same as in the paired evaluation.
So with exploration 0 the log holds the very journeys ``run_policy(scenario, policy,
n_journeys, seed)`` runs, and each journey's rewards sum to its ``Outcomes.profit``.

**Which rows.** One row per decision: every step at which the shopper is in a journey
(arrived and not yet ended), whatever the merchant did, ``wait`` included, on the site or
away. Nothing is booked outside those steps, so a journey's rows hold all its margin.
Each row has the observation before the decision (consent-gated features null for a
shopper without consent), the eligible actions (and on a scenario with a campaign budget
the actions the budget alone withheld), the action, its propensity and every
action's probability, the margin and ledger terms booked at the step, and on the last
row how the journey ended. Journeys are keyed ``"<seed>-<index>"`` (index in
``0..n_journeys-1``, as in ``Outcomes``): no shopper identity exists to leak.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
from numpy.typing import NDArray

from agents.exploration import Exploration, draw_actions
from agents.logs.schema import (
    ABANDONED,
    ACTION,
    HORIZON,
    JOURNEY,
    JOURNEY_END,
    PROPENSITY,
    PURCHASE,
    REWARD,
    STEP,
    LogSpec,
)
from agents.policy import Policy, PrivilegedPolicy
from agents.rollout import cohort_seeds
from envs.core import PURCHASE as PURCHASE_EVENT
from envs.core import ShopperCore
from envs.ledger import LEDGER_TERMS
from envs.observation import feature_schema
from envs.scenario import Scenario

__all__ = ["EXPLORATION_STREAM", "Exploration", "draw_actions", "simulate_logs"]

EXPLORATION_STREAM = 0x0E7  # spawn key of the exploration generator beside a cohort's seed


@dataclass
class _Rows:
    """Decisions of one cohort, row-wise numpy arrays."""

    journey: NDArray[np.int64]
    step: NDArray[np.int64]
    obs: NDArray[np.float32]
    mask: NDArray[np.bool_]
    withheld: NDArray[np.bool_]
    action: NDArray[np.int64]
    probs: NDArray[np.float64]
    reward: NDArray[np.float64]
    terms: NDArray[np.float64]
    end: NDArray[np.int8]  # -1: none, else index in (purchase, abandoned, horizon)


def simulate_logs(
    scenario: Scenario,
    policy: Policy,
    n_journeys: int,
    seed: int,
    exploration: Exploration | None = None,
    *,
    cohort_size: int = 10_000,
    stagger: int | None = None,
) -> pa.Table:
    """The decision log of ``policy`` with ``exploration`` on ``n_journeys`` shoppers of
    ``scenario`` drawn with ``seed``; see the module docstring. The table carries its
    :class:`agents.logs.schema.LogSpec` (exact propensities, every action's probability)
    in its metadata.

    Raises:
        ValueError: bad sizes, a privileged policy (the oracle) as logger, softmax
            exploration of a policy without scores, a moment that is no feature.
    """
    if n_journeys < 1:
        raise ValueError(f"n_journeys must be at least 1, got {n_journeys}")
    if cohort_size < 1:
        raise ValueError(f"cohort_size must be at least 1, got {cohort_size}")
    if isinstance(policy, PrivilegedPolicy):
        raise ValueError(
            f"{policy.name!r} sees hidden shopper state: a shop cannot log it; choose a policy "
            "that decides on what the merchant observes"
        )
    explore = exploration or Exploration()
    names = [f.name for f in feature_schema(scenario)]
    explore.columns(names)  # a moment that is no feature fails now, named
    sizes = [min(cohort_size, n_journeys - s) for s in range(0, n_journeys, cohort_size)]
    spread = scenario.horizon if stagger is None else stagger
    fresh = ShopperCore(scenario, 1, autoreset=False)
    memory, budget = fresh.memory, fresh.budget
    cores: dict[int, ShopperCore] = {}
    parts: list[_Rows] = []
    first = 0
    for size, cohort_seed in zip(sizes, cohort_seeds(seed, len(sizes)), strict=True):
        core = cores.get(size) or cores.setdefault(
            size, ShopperCore(scenario, size, autoreset=False, stagger=spread)
        )
        core.memory, core.budget = memory, budget
        rng = np.random.default_rng([cohort_seed, EXPLORATION_STREAM])
        part = _run_cohort(core, policy, explore, names, cohort_seed, rng)
        part.journey += first
        parts.append(part)
        memory, budget = core.memory, core.budget
        first += size
    spec = LogSpec.from_scenario(
        scenario,
        probabilities=True,
        logger=policy.name,
        exploration=explore.to_dict(),
        propensities="exact",
        withheld=scenario.campaign_budget_per_1000 is not None,
    )
    return _to_table(parts, spec, seed, n_journeys)


def _run_cohort(
    core: ShopperCore,
    policy: Policy,
    explore: Exploration,
    names: list[str],
    seed: int,
    rng: np.random.Generator,
) -> _Rows:
    obs = core.reset(seed, keep_memory=True)
    steps: list[_Rows] = []
    end_codes = np.array([-1, 0], dtype=np.int8)
    for _ in range(core.span):
        if not core.running:
            break
        mask = core.action_masks()
        withheld = core.budget_withheld()
        # the policy sees every row, as in run_policy (a policy may depend on the batch)
        probs = explore.probabilities(policy, obs, mask, names)
        alive = np.flatnonzero(core.alive)
        actions = np.zeros(core.n, dtype=np.int64)
        p = probs[alive]
        actions[alive] = draw_actions(p, rng)
        t = core.t[alive].copy()
        o, m = obs[alive], mask[alive]
        obs, reward, terminated, truncated = core.step(actions)
        if not len(alive):
            continue
        purchase = core.event[alive] == PURCHASE_EVENT
        end = end_codes[purchase.astype(np.intp)]  # purchase -> 0
        end[terminated[alive] & ~purchase] = 1  # abandoned
        end[truncated[alive]] = 2  # horizon
        steps.append(
            _Rows(
                journey=alive.astype(np.int64),
                step=t,
                obs=o,
                mask=m,
                withheld=withheld[alive],
                action=actions[alive],
                probs=p,
                reward=reward[alive].copy(),
                terms=core.terms[:, alive].T.copy(),
                end=end,
            )
        )
    joined = _Rows(
        **{f: np.concatenate([getattr(s, f) for s in steps]) for f in _Rows.__dataclass_fields__}
    )
    order = np.lexsort((joined.step, joined.journey))
    return _Rows(**{f: getattr(joined, f)[order] for f in _Rows.__dataclass_fields__})


def _to_table(parts: list[_Rows], spec: LogSpec, seed: int, n_journeys: int) -> pa.Table:
    rows = _Rows(
        **{f: np.concatenate([getattr(p, f) for p in parts]) for f in _Rows.__dataclass_fields__}
    )
    keys = pa.array([f"{seed}-{i}" for i in range(n_journeys)], pa.string())
    consent = rows.obs[:, spec.features.index("consent")] > 0.5
    columns: dict[str, pa.Array] = {
        JOURNEY: pa.DictionaryArray.from_arrays(pa.array(rows.journey, pa.int64()), keys).cast(
            pa.string()
        ),
        STEP: pa.array(rows.step, pa.int64()),
    }
    gated = set(spec.gated)
    for j, name in enumerate(spec.features):
        values = rows.obs[:, j].astype(np.float64)
        columns[name] = pa.array(values, pa.float64(), mask=~consent if name in gated else None)
    for j, name in enumerate(spec.eligible_columns):
        columns[name] = pa.array(rows.mask[:, j], pa.bool_())
    for j, name in enumerate(spec.withheld_columns if spec.withheld else ()):
        columns[name] = pa.array(rows.withheld[:, j], pa.bool_())
    actions = pa.array(list(spec.actions), pa.string())
    columns[ACTION] = pa.DictionaryArray.from_arrays(pa.array(rows.action), actions).cast(
        pa.string()
    )
    n = len(rows.action)
    columns[PROPENSITY] = pa.array(rows.probs[np.arange(n), rows.action], pa.float64())
    for j, name in enumerate(spec.probability_columns):
        columns[name] = pa.array(rows.probs[:, j], pa.float64())
    columns[REWARD] = pa.array(rows.reward, pa.float64())
    for name, term in zip(spec.term_columns, spec.terms, strict=True):
        columns[name] = pa.array(rows.terms[:, LEDGER_TERMS.index(term)], pa.float64())
    ends = pa.array([PURCHASE, ABANDONED, HORIZON], pa.string())
    codes = pa.array(np.maximum(rows.end, 0).astype(np.int8), mask=rows.end < 0)
    columns[JOURNEY_END] = pa.DictionaryArray.from_arrays(codes, ends).cast(pa.string())
    schema = spec.arrow_schema()
    return pa.Table.from_arrays([columns[f.name] for f in schema], schema=schema)
