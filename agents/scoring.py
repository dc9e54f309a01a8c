"""Policies that score every action, not only choose one: what softmax exploration needs.

A :class:`ScoredPolicy` is a batched :class:`agents.policy.Policy` that also returns one
score per action (higher is better; logits for actor-critic networks, Q-values for DQN),
from which a logger can draw actions with a temperature
(:func:`agents.exploration.masked_softmax`).
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
