"""An exported policy directory as a batched :class:`agents.policy.Policy`.

:class:`RuntimePolicy` asks :class:`agents.serving.runtime.PolicyRuntime` for the
network's scores (``decide_batch(...).scores``: consent masking and normalisation as
deployed) and chooses with the eligibility mask it is given instead of the runtime's
guardrails, the way the policy was trained and is evaluated: ``masked_argmax`` (maskable
algorithms) takes the best-scoring eligible action, ``argmax_else_wait`` the model's
choice if eligible, else ``wait``. So the same directory can be run in the simulator, and
evaluated off-policy on a decision log, whose rows carry their own eligibility.

The merchant-side context the runtime needs for its guardrails is filled with values
that forbid nothing (no offers made, not in chat, an agent free, no carrier cost, an
unlimited budget): here the mask decides, not the guardrails.
"""

from __future__ import annotations

import os

import numpy as np
from numpy.typing import NDArray

from agents.serving.runtime import PolicyRuntime

_PERMISSIVE_CONTEXT = {
    "offers_made": 0.0,
    "in_chat": 0.0,
    "agents_free": 1.0,
    "carrier_cost": 0.0,
    "budget_left": 1e12,
}


class RuntimePolicy:
    """``runtime``'s network choosing among the actions of a given mask.

    ``feature_names`` is the column order of the observations ``act`` and ``scores`` take
    (the manifest's); ``name`` defaults to the manifest's agent name, else ``policy``.
    """

    def __init__(self, runtime: PolicyRuntime, name: str | None = None) -> None:
        self.runtime = runtime
        training = runtime.manifest.get("training") or {}
        self.name = name or str(training.get("agent") or "policy")
        self.feature_names: tuple[str, ...] = tuple(runtime.feature_names)
        self.action_names: tuple[str, ...] = tuple(runtime.action_names)
        self.maskable = runtime.selection == "masked_argmax"

    @classmethod
    def load(cls, path: str | os.PathLike[str], name: str | None = None) -> RuntimePolicy:
        """Load and verify a policy directory (raises ``PolicyLoadError`` as the runtime)."""
        return cls(PolicyRuntime.load(path), name)

    def scores(self, obs: NDArray[np.float32], mask: NDArray[np.bool_]) -> NDArray[np.float64]:
        """The network's score of every action per row, ``(n, n_actions)``.

        Raises ``PolicyInputError`` naming the feature and row of an observation outside
        the manifest's bounds."""
        n = len(obs)
        columns = {name: obs[:, i].astype(np.float64) for i, name in enumerate(self.feature_names)}
        for name in self.runtime.context_names:
            columns[name] = np.full(n, _PERMISSIVE_CONTEXT[name])
        return np.asarray(self.runtime.decide_batch(columns).scores, dtype=np.float64)

    def act(self, obs: NDArray[np.float32], mask: NDArray[np.bool_]) -> NDArray[np.int64]:
        s = self.scores(obs, mask)
        if self.maskable:
            return np.where(mask, s, -np.inf).argmax(axis=1).astype(np.int64)
        top = s.argmax(axis=1)
        return np.where(mask[np.arange(len(s)), top], top, 0).astype(np.int64)
