"""The concession catalogue compiled to arrays, one column per action (column 0 is ``wait``).

Per-action constants live here; what an action is worth to, and costs for, a given
shopper depends on the cart and is computed per shopper in :mod:`envs.shoppers`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from envs.scenario import ConcessionKind, Scenario

KINDS: tuple[ConcessionKind, ...] = tuple(ConcessionKind)


@dataclass(frozen=True)
class ActionTable:
    """Arrays of shape ``(n_actions,)``; index 0 is ``wait`` and is always eligible."""

    names: tuple[str, ...]
    kind: NDArray[np.int64]  # index into KINDS, -1 for wait
    magnitude: NDArray[np.float64]
    purchase_cost: NDArray[np.float64]  # booked with the order: express upgrade, gift cost
    send_cost: NDArray[np.float64]  # booked when sent: one e-mail (concession), one agent session
    voucher_liability: NDArray[np.float64]  # face x redemption probability, with the order
    expiry: NDArray[np.int64]
    min_cart: NDArray[np.float64]
    once: NDArray[np.bool_]
    margin_floor: NDArray[np.float64]
    onsite: NDArray[np.bool_]  # pop-up or chat: only while the shopper is on the site
    email: NDArray[np.bool_]  # only after the shopper left, and only with tracking consent
    agent: NDArray[np.bool_]
    annoyance: NDArray[np.float64]  # interruptions one use adds (agent: adjusted per shopper)

    @property
    def n(self) -> int:
        return len(self.names)

    def is_kind(self, kind: ConcessionKind) -> NDArray[np.bool_]:
        return self.kind == KINDS.index(kind)


def compile_actions(scenario: Scenario) -> ActionTable:
    """The scenario's concession catalogue as per-action arrays."""
    items = scenario.concessions

    def column(values: list[float], fill: float = 0.0) -> NDArray[np.float64]:
        return np.array([fill, *values], dtype=np.float64)

    kinds = [c.kind for c in items]
    agent = [k is ConcessionKind.LIVE_AGENT for k in kinds]
    email = [k is ConcessionKind.RETARGETING for k in kinds]
    at_purchase = (ConcessionKind.EXPRESS_DELIVERY, ConcessionKind.FREE_GIFT)
    return ActionTable(
        names=scenario.action_names,
        kind=np.array([-1, *(KINDS.index(k) for k in kinds)], dtype=np.int64),
        magnitude=column([c.magnitude for c in items]),
        purchase_cost=column([c.unit_cost if c.kind in at_purchase else 0.0 for c in items]),
        send_cost=column([0.0 if c.kind in at_purchase else c.unit_cost for c in items]),
        voucher_liability=column(
            [
                c.magnitude * c.redemption_probability if c.kind is ConcessionKind.VOUCHER else 0.0
                for c in items
            ]
        ),
        expiry=np.array([0, *(c.expiry_steps for c in items)], dtype=np.int64),
        min_cart=column([c.min_cart for c in items]),
        once=np.array([False, *(c.once_per_shopper for c in items)]),
        margin_floor=column([c.margin_floor for c in items], fill=-1.0),
        onsite=np.array([False, *(not e for e in email)]),
        email=np.array([False, *email]),
        agent=np.array([False, *agent]),
        annoyance=column([0.5 if e else 1.0 for e in email]),
    )
