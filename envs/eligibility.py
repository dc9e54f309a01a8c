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

``wait`` (column 0) is always eligible. The rule is compiled with the dynamics
(:func:`envs.kernels.eligible`, the masks :func:`envs.kernels.masks`); this module keeps
the live-agent queue as a function of its own, for callers outside the simulator that
model the desk (the decision service's simulated events).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

BoolArray = NDArray[np.bool_]


def within_capacity(wanting: BoolArray, free: int) -> BoolArray:
    """Of the shoppers ``wanting`` a live agent, the first ``free`` in row order."""
    return wanting & (np.cumsum(wanting) <= free)
