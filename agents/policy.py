"""The one batched policy protocol shared by baselines, the oracle and learned agents, and
the one family of errors for a policy asked for that cannot be given
(:class:`PolicySpecError`)."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

from envs.core import ShopperCore


@runtime_checkable
class Policy(Protocol):
    """Decides for N shoppers at once.

    ``act`` receives the observations ``(n, n_features)`` and the action masks
    ``(n, n_actions)`` and returns one action per shopper ``(n,)``; it must only pick
    actions its mask allows (``wait``, 0, always is).
    """

    name: str

    def act(self, obs: NDArray[np.float32], mask: NDArray[np.bool_]) -> NDArray[np.int64]: ...


@runtime_checkable
class PrivilegedPolicy(Policy, Protocol):
    """A policy that sees the simulator itself (hidden shopper state, look-ahead).

    Only the oracle is one: it bounds what a policy could earn, and is never exported.
    ``bind`` is called with the core the policy will act on, before the first step.
    """

    def bind(self, core: ShopperCore, seed: int) -> None: ...


class PolicySpecError(ValueError):
    """A policy asked for (by a string of :mod:`agents.registry`) that cannot be given here;
    the message says what is wrong and what to give. Subclasses:
    ``agents.registry.UnknownPolicyError`` (no policy has that name),
    :class:`PolicyFitError` (a trained policy that does not fit the scenario) and
    ``agents.baselines.RuleError`` (a rule set that is malformed or does not fit)."""


class PolicyFitError(PolicySpecError):
    """A trained policy whose features, actions or catalogue are not the scenario's: it
    was trained for another market (the message names the mismatch)."""
