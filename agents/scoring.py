"""Policies that score every action, not only choose one: what softmax exploration needs.

A :class:`ScoredPolicy` is a batched :class:`agents.policy.Policy` that also returns one
score per action (higher is better; logits for actor-critic networks, Q-values for DQN),
from which a logger can draw actions with a temperature (:mod:`agents.logs.simulate`).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

from agents.policy import Policy


@runtime_checkable
class ScoredPolicy(Policy, Protocol):
    """A policy whose ``scores(obs, mask)`` gives ``(n, n_actions)`` finite scores; ``act``
    picks among the eligible actions by them."""

    def scores(self, obs: NDArray[np.float32], mask: NDArray[np.bool_]) -> NDArray[np.float64]: ...


def masked_softmax(
    scores: NDArray[np.floating], mask: NDArray[np.bool_], temperature: float
) -> NDArray[np.float64]:
    """Probabilities ``softmax(scores / temperature)`` over the eligible actions of each
    row (0 for the others); rows sum to 1. ``temperature`` must be > 0."""
    if not temperature > 0.0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    z = np.where(mask, np.asarray(scores, dtype=np.float64) / temperature, -np.inf)
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)
