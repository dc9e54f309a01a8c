"""A trained Stable-Baselines3 model seen through the batched :class:`agents.policy.Policy`.

Deterministic actions. Maskable algorithms receive the masks; for the others an action
the mask forbids is replaced by ``wait`` (as the simulator itself would play it), so
every policy is judged on what it could really do. Recurrent policies keep their LSTM
state between calls and restart it for a shopper whose journey starts (``journey_step``
= 0). Given the scenario it was trained on (``trained_on``), it declares the features it
reads and the actions it decides among (``feature_names``, ``action_names``), as an
exported policy does, so that a decision log of another catalogue is refused.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray
from sb3_contrib import MaskablePPO, RecurrentPPO
from stable_baselines3.common.base_class import BaseAlgorithm

from envs.observation import COLUMN, feature_schema
from envs.scenario import Scenario


class LearnedPolicy:
    """Wraps ``model`` (any SB3 / sb3-contrib algorithm) as a batched policy."""

    def __init__(
        self, model: BaseAlgorithm, name: str = "learned", trained_on: Scenario | None = None
    ) -> None:
        self.model = model
        self.name = name
        self.feature_names: tuple[str, ...] | None = None
        self.action_names: tuple[str, ...] | None = None
        if trained_on is not None:
            self.feature_names = tuple(f.name for f in feature_schema(trained_on))
            self.action_names = tuple(trained_on.action_names)
        self._maskable = isinstance(model, MaskablePPO)
        self._recurrent = isinstance(model, RecurrentPPO)
        self._state: Any = None

    def act(self, obs: NDArray[np.float32], mask: NDArray[np.bool_]) -> NDArray[np.int64]:
        obs = np.ascontiguousarray(obs)
        if self._maskable:
            maskable: Any = self.model
            actions, _ = maskable.predict(obs, deterministic=True, action_masks=mask)
        elif self._recurrent:
            starts = obs[:, COLUMN["journey_step"]] == 0.0
            if self._state is not None and len(self._state[0][0]) != len(obs):
                self._state = None
            actions, self._state = self.model.predict(
                obs, state=self._state, episode_start=starts, deterministic=True
            )
        else:
            actions, _ = self.model.predict(obs, deterministic=True)
        actions = np.asarray(actions, dtype=np.int64).reshape(len(obs))
        allowed = mask[np.arange(len(obs)), actions]
        return np.where(allowed, actions, 0)
