"""Simulator states as the runtime's input: the events a deployed policy would be asked.

:func:`simulator_context` turns the batched core's state into the merchant-side context
fields the runtime needs beside the features (offers made, live chat, free agents,
carrier cost, budget left); :func:`simulator_events` collects states of shoppers in a
journey, for tests and benchmarks that check the runtime against the simulator.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from envs.core import ShopperCore
from envs.eligibility import within_capacity
from envs.scenario import Scenario
from envs.shoppers import T


@dataclass
class Events:
    """``n`` simulator states: observations, the simulator's masks, runtime columns."""

    obs: np.ndarray
    masks: np.ndarray
    columns: dict[str, np.ndarray]

    def event(self, i: int) -> dict[str, float]:
        return {name: float(column[i]) for name, column in self.columns.items()}


def simulator_context(core: ShopperCore) -> dict[str, np.ndarray]:
    """The runtime's merchant-side context for every shopper of ``core`` now.

    Rows are independent events: each gets the live-agent desk as the simulator's queue
    sees it (a free agent for the shoppers the queue would serve, none for the others).
    """
    wanting = core.wants_agent()
    queue = within_capacity(wanting, core.free_agents())
    context = {
        "offers_made": core.interruptions.astype(float),
        "in_chat": (core.agent_until > core.t).astype(float),
        "agents_free": np.where(~wanting | queue, 1.0, 0.0),
        "carrier_cost": core.traits[T["shipping_cost"]].copy(),
    }
    if np.isfinite(core.budget):
        context["budget_left"] = np.full(core.n, core.budget)
    return context


def simulator_events(scenario: Scenario, names: tuple[str, ...], n: int, seed: int = 0) -> Events:
    """States of shoppers in a journey under random eligible actions, with their context."""
    core = ShopperCore(scenario, 256)
    obs = core.reset(seed)
    rng = np.random.default_rng(seed)
    parts: list[tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]] = []
    total = 0
    while total < n:
        mask = core.action_masks()
        alive = core.alive.copy()
        context = simulator_context(core)
        parts.append((obs[alive], mask[alive], {k: v[alive] for k, v in context.items()}))
        total += int(alive.sum())
        obs, *_ = core.step(np.array([rng.choice(np.flatnonzero(m)) for m in mask]))
    all_obs = np.concatenate([p[0] for p in parts])[:n]
    all_masks = np.concatenate([p[1] for p in parts])[:n]
    columns = {f: np.ascontiguousarray(all_obs[:, i]) for i, f in enumerate(names)}
    for key in parts[0][2]:
        columns[key] = np.concatenate([p[2][key] for p in parts])[:n]
    return Events(np.ascontiguousarray(all_obs), all_masks, columns)
