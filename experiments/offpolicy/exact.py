"""The figures an evaluated policy fixes by construction: exact, not estimated.

A policy that gives every action but the default one (``wait``, an A/B test's control)
probability 0 at every logged decision never offers a concession, and the ledger books
concession spend (``concession_cost``, ``voucher_liability``, ``agent_cost``) only for
concessions taken: its spend is 0, whatever an estimator's noise would say. The verdict
is read from the policy's probabilities on the log (:mod:`.targets`), never from its
name, and only where the log agrees that the default action is free: no journey that
only ever took it booked any spend. The log's terms are not per action, so the spend of
a policy that offers some concessions, even a few, is estimated.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from experiments.offpolicy.data import SPEND, Journeys
from experiments.offpolicy.result import SPEND_KEY

NEVER_OFFERS = (
    "exact: the policy never offers (every concession has probability 0 at every logged "
    "decision), so it spends nothing"
)


def exact_outputs(
    journeys: Journeys, target: NDArray[np.float64], signals: Sequence[str]
) -> dict[str, str]:
    """The outputs the policy whose probabilities on the log are ``target`` ``(n_rows,
    n_actions)`` fixes by construction, each with why (``{"spend_per_1000": ...}``, or
    ``{}``); their value is 0."""
    if SPEND not in signals or np.any(target[:, 1:] > 0.0):
        return {}
    plain = journeys.per_journey((journeys.action != 0).astype(np.float64)) == 0
    if np.any(journeys.signals[SPEND][journeys.journey_rows(plain)] != 0.0):
        return {}
    return {SPEND_KEY: NEVER_OFFERS}
