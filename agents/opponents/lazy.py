"""An opponent trained on first use: naming it (in a list of references, a registry test)
costs nothing until it is asked to act or to say what it was trained on."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import NDArray

from agents.policy import Policy


class TrainedOnDemand:
    """Stands for the policy ``build()`` returns, building it on the first ``act``/``info``."""

    def __init__(self, name: str, build: Callable[[], Policy]) -> None:
        self.name = name
        self._build = build
        self._policy: Policy | None = None

    @property
    def policy(self) -> Policy:
        if self._policy is None:
            self._policy = self._build()
        return self._policy

    @property
    def info(self) -> dict[str, Any]:
        info = getattr(self.policy, "info", None)
        return info if isinstance(info, dict) else {}

    def act(self, obs: NDArray[np.float32], mask: NDArray[np.bool_]) -> NDArray[np.int64]:
        return self.policy.act(obs, mask)
