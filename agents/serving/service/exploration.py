"""Exploration over the actions the guardrails allow, with exact probabilities.

- ``epsilon`` (a share ε): the runtime's decision with probability 1 - ε, else an action
  drawn uniformly among the allowed ones; the probability of action ``a`` is
  ``(1 - ε) [a = decision] + ε / (number of allowed actions)``.
- ``softmax`` (a temperature τ): ``softmax(scores / τ)`` over the allowed actions.

A forbidden action has probability 0 and is never drawn. The probability of the action
returned is what the decision log stores as its ``propensity``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray


@dataclass(frozen=True)
class Explorer:
    """``kind`` ``epsilon`` or ``softmax``; ``value`` the share or the temperature."""

    kind: str
    value: float

    def probabilities(
        self,
        decided: NDArray[np.int64],
        allowed: NDArray[np.bool_],
        scores: NDArray[np.float32],
    ) -> NDArray[np.float64]:
        """Every action's probability per row, ``(n, k)``: 0 where not allowed, rows
        summing to 1."""
        n = len(decided)
        if self.kind == "softmax":
            z = np.where(allowed, scores.astype(np.float64) / self.value, -np.inf)
            z -= z.max(axis=1, keepdims=True)
            e = np.exp(z)
            return np.asarray(e / e.sum(axis=1, keepdims=True), dtype=np.float64)
        p = allowed * (self.value / allowed.sum(axis=1, keepdims=True))
        p[np.arange(n), decided] += 1.0 - self.value
        return p

    def draw(self, p: NDArray[np.float64], rng: np.random.Generator) -> NDArray[np.int64]:
        """One action per row from ``p`` (inverse CDF); an action of probability 0 is
        never drawn."""
        cdf = np.cumsum(p, axis=1)
        v = (1.0 - rng.random(len(p))) * cdf[:, -1]  # in (0, total]
        return np.minimum((cdf < v[:, None]).sum(axis=1), p.shape[1] - 1).astype(np.int64)
