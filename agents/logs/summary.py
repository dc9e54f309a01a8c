"""A decision log in a few figures: what it holds, before anyone evaluates it."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from agents.logs.schema import ACTION, JOURNEY, JOURNEY_END, PROPENSITY, PURCHASE, REWARD, LogSpec

PER = 1000.0


def summarise(table: pa.Table) -> dict[str, Any]:
    """``journeys``, ``decisions``, ``conversion`` (share of journeys ending in a purchase),
    ``profit_per_1000`` (the rewards summed, per 1,000 journeys), ``offers`` (share of
    decisions that were not the default action) and ``explored`` (share of decisions whose
    action had a logged probability below 1; None without propensities)."""
    journeys = pc.count_distinct(table.column(JOURNEY)).as_py()
    decisions = table.num_rows
    purchases = pc.sum(pc.equal(table.column(JOURNEY_END), PURCHASE)).as_py() or 0
    reward = pc.sum(table.column(REWARD)).as_py() or 0.0
    propensity = table.column(PROPENSITY)
    explored = None
    if propensity.null_count < decisions:
        explored = float(np.mean(propensity.to_numpy(zero_copy_only=False) < 1.0))
    actions = table.column(ACTION)
    spec = LogSpec.from_metadata(table.schema.metadata)
    default = spec.actions[0] if spec is not None else "wait"
    offers = pc.sum(pc.not_equal(actions, default)).as_py() or 0
    return {
        "journeys": journeys,
        "decisions": decisions,
        "conversion": purchases / journeys if journeys else None,
        "profit_per_1000": reward / journeys * PER if journeys else None,
        "offers": offers / decisions if decisions else None,
        "explored": explored,
    }
