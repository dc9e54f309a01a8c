"""What an evaluated policy would have done at every logged decision.

The policy sees each row's observation as the simulator would show it (features by the
names it reads, null as 0) and the row's logged eligibility mask (or another mask: the
logged one with the actions the campaign budget withheld, when the policy is evaluated
under its own budget), and returns its action; an action outside the mask is played as
the default action (``wait``), as the simulator plays it. The result is the policy's
probability of every action per row ``(n_rows, n_actions)``: one-hot, since concede's
policies decide deterministically.

Rows are decided together, as independent events: a policy that remembers past steps
itself (a recurrent network) cannot be evaluated on a log, which does not carry its
memory; a policy that sees hidden shopper state (the oracle) cannot either.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from agents.policy import Policy, PrivilegedPolicy
from experiments.offpolicy.data import Journeys

CHUNK = 65_536


class PolicyMismatchError(ValueError):
    """A policy cannot be evaluated on this log (the message says why)."""


def policy_features(policy: Policy, default: Sequence[str]) -> tuple[str, ...]:
    """The feature names a policy reads, in its column order: its own ``feature_names``
    if it declares them (an exported policy), else ``default`` (the scenario's)."""
    names = getattr(policy, "feature_names", None)
    return tuple(names) if names is not None else tuple(default)


def target_probabilities(
    policy: Policy,
    journeys: Journeys,
    feature_names: Sequence[str],
    mask: NDArray[np.bool_] | None = None,
) -> NDArray[np.float64]:
    """The policy's probability of each action at each logged row, ``(n_rows, n_actions)``,
    choosing among the actions of ``mask`` (default: the logged eligibility).

    Raises:
        PolicyMismatchError: a privileged policy, or one whose actions are not the log's.
        experiments.offpolicy.data.MissingFeaturesError: the log lacks a feature it reads.
    """
    if isinstance(policy, PrivilegedPolicy):
        raise PolicyMismatchError(
            f"{policy.name!r} sees hidden shopper state and future draws, which no log holds: "
            "it can only be evaluated in the simulator"
        )
    actions = getattr(policy, "action_names", None)
    if actions is not None and tuple(actions) != journeys.action_names:
        raise PolicyMismatchError(
            f"{policy.name!r} decides among {list(actions)}, the log's actions are "
            f"{list(journeys.action_names)}: evaluate it on a log of its own catalogue"
        )
    obs = journeys.observations(policy_features(policy, feature_names))
    allowed = journeys.mask if mask is None else mask
    chosen = np.empty(journeys.n_rows, dtype=np.int64)
    for start in range(0, journeys.n_rows, CHUNK):
        part = slice(start, start + CHUNK)
        got = np.asarray(policy.act(obs[part], allowed[part]), dtype=np.int64)
        if got.shape != (len(obs[part]),) or (
            len(got) and (got.min() < 0 or got.max() >= journeys.n_actions)
        ):
            raise PolicyMismatchError(
                f"{policy.name!r} returned actions outside 0..{journeys.n_actions - 1}"
            )
        chosen[part] = got
    rows = np.arange(journeys.n_rows)
    chosen = np.where(allowed[rows, chosen], chosen, 0)
    probs = np.zeros((journeys.n_rows, journeys.n_actions))
    probs[rows, chosen] = 1.0
    return probs
