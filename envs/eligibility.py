"""Which concessions may be offered to which shopper now: the action masks.

One rule, used both for the full mask (``columns=(slice(None), None)``, per-action
arrays of shape ``(n_actions, n)``) and for checking the action each shopper was sent
(``columns`` the actions, arrays of shape ``(n,)``). An action is eligible when the shopper is in a
journey and all of these hold:

- channel: pop-ups and live chat only while the shopper is on the site; an e-mail
  (retargeting) only after they left, and only with tracking consent;
- contact cap: fewer than ``max_offers_per_shopper`` offers so far;
- minimum cart and margin floor (``static_ok``, fixed for the shopper's cart);
- once per shopper: not offered before in this journey, if the entry says so;
- live agent: the shopper is not already in a chat; and an agent is free — the free
  agents go to the eligible shoppers in row order (:func:`within_capacity`), in the
  masks as in the step, so that a policy that follows the masks is never refused;
- budget: its expected cost fits in what is left of the campaign budget.

``wait`` (column 0) is always eligible; callers set it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from envs.catalogue import ActionTable

BoolArray = NDArray[np.bool_]


def eligible(
    *,
    alive: BoolArray,
    away: BoolArray,
    consent: BoolArray,
    room: BoolArray,
    in_chat: BoolArray,
    offered: BoolArray,
    static_ok: BoolArray,
    cost: NDArray[np.float64],
    budget: float,
    table: ActionTable,
    columns: Any,
) -> BoolArray:
    """Elementwise eligibility; see the module docstring for the rules."""
    channel = (table.onsite[columns] & ~away) | (table.email[columns] & away & consent)
    ok = alive & room & channel & static_ok
    ok &= ~(table.once[columns] & offered)
    ok &= ~(table.agent[columns] & in_chat)
    if np.isfinite(budget):
        ok &= cost <= budget
    return np.asarray(ok, dtype=bool)


def within_capacity(wanting: BoolArray, free: int) -> BoolArray:
    """Of the shoppers ``wanting`` a live agent, the first ``free`` in row order."""
    return wanting & (np.cumsum(wanting) <= free)
