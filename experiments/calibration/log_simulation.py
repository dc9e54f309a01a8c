"""Decision logs simulated for a fit: the offers, the purchases, on common random numbers.

:func:`agents.logs.simulate.simulate_logs` writes complete logs, as a shop's would be. A
fit needs something narrower and steadier: the rows :func:`.log_targets.log_targets`
reads (every offer, each journey's last row, the cart value), from two candidate
scenarios that meet the same shoppers **and the same exploration draws**. There, the
exploration generator draws only for the shoppers still in a journey, so a candidate
that keeps one more shopper alive shifts every later draw and the objective jumps;
here one uniform is drawn per row and step, whether the shopper is in a journey or not.

Otherwise the run is the same: cohorts of ``cohort_size`` shoppers on seeds from
:func:`agents.rollout.cohort_seeds`, arrivals spread over one horizon, population memory
and campaign budget carried from cohort to cohort, each decision drawn from the logger's
probabilities (:meth:`agents.exploration.Exploration.probabilities`, drawn by
:func:`agents.exploration.draw_from`) over the eligible actions. Each row also names its
shopper's segment (column ``segment``, an index), which a shop's log cannot: the fit
reweights segments with it (:mod:`.objective`).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from agents.exploration import Exploration, draw_from
from agents.logs.schema import ABANDONED, ACTION, HORIZON, JOURNEY, JOURNEY_END, PURCHASE, STEP
from agents.logs.simulate import EXPLORATION_STREAM
from agents.policy import Policy
from agents.rollout import cohort_seeds
from envs.core import PURCHASE as PURCHASE_EVENT
from envs.core import ShopperCore
from envs.observation import feature_schema
from envs.scenario import Scenario
from envs.shoppers import T
from experiments.calibration.log_targets import CART_VALUE, log_targets
from experiments.calibration.targets import TargetTable

SEGMENT = "segment"  # the index of the shopper's segment (the fit's own column, not a log's)


def simulate_offer_log(
    scenario: Scenario,
    logger: Policy,
    exploration: Exploration,
    n_journeys: int,
    seed: int,
    cohort_size: int = 10_000,
) -> pa.Table:
    """The offer rows and last rows of ``n_journeys`` logged journeys (see the module doc)."""
    names = np.array(scenario.action_names, dtype=object)
    features = [f.name for f in feature_schema(scenario)]
    sizes = [min(cohort_size, n_journeys - s) for s in range(0, n_journeys, cohort_size)]
    fresh = ShopperCore(scenario, 1, autoreset=False)
    memory, budget = fresh.memory, fresh.budget
    cores: dict[int, ShopperCore] = {}
    journeys, steps, actions, ends, carts, segments = [], [], [], [], [], []
    first = 0
    for size, cohort_seed in zip(sizes, cohort_seeds(seed, len(sizes)), strict=True):
        core = cores.get(size) or cores.setdefault(
            size, ShopperCore(scenario, size, autoreset=False, stagger=scenario.horizon)
        )
        core.memory, core.budget = memory, budget
        rng = np.random.default_rng([cohort_seed, EXPLORATION_STREAM])
        obs = core.reset(cohort_seed, keep_memory=True)
        price = core.traits[T["price"]].copy()
        segment = core.traits[T["segment"]].astype(np.int64)
        for _ in range(core.span):
            if not core.running:
                break
            mask = core.action_masks()
            alive = core.alive.copy()
            u = 1.0 - rng.random(core.n)  # drawn for every row: the stream stays the same
            # the logger decides for the shoppers in a journey only (a policy's choice for
            # one row never depends on another's)
            live = np.flatnonzero(alive)
            chosen = np.zeros(core.n, dtype=np.int64)
            p = exploration.probabilities(logger, obs[live], mask[live], features)
            chosen[live] = draw_from(p, u[live])
            t = core.t.copy()
            obs, _, terminated, truncated = core.step(chosen)
            done = alive & (terminated | truncated)
            keep = alive & ((chosen > 0) | done)
            rows = np.flatnonzero(keep)
            end = np.full(len(rows), None, dtype=object)
            bought = (core.event[rows] == PURCHASE_EVENT) & done[rows]
            end[done[rows]] = ABANDONED
            end[truncated[rows]] = HORIZON
            end[bought] = PURCHASE
            journeys.append(rows + first)
            steps.append(t[rows])
            actions.append(names[chosen[rows]])
            ends.append(end)
            carts.append(price[rows] / 100.0)
            segments.append(segment[rows])
        memory, budget = core.memory, core.budget
        first += size
    return pa.table(
        {
            JOURNEY: pa.array(np.concatenate(journeys).astype(str)),
            STEP: pa.array(np.concatenate(steps), pa.int64()),
            ACTION: pa.array(np.concatenate(actions).tolist(), pa.string()),
            JOURNEY_END: pa.array(np.concatenate(ends).tolist(), pa.string()),
            CART_VALUE: pa.array(np.concatenate(carts), pa.float64()),
            SEGMENT: pa.array(np.concatenate(segments), pa.int64()),
        }
    )


def simulate_log_targets(
    scenario: Scenario,
    logger: Policy,
    exploration: Exploration,
    n_journeys: int,
    seed: int,
) -> TargetTable:
    """The log targets of ``n_journeys`` journeys logged by ``logger`` on ``scenario``."""
    return log_targets(
        simulate_offer_log(scenario, logger, exploration, n_journeys, seed), scenario
    )
