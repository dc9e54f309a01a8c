"""The Gymnasium ``VectorEnv`` view of the batched core (``gymnasium.make_vec``).

N shoppers stepped together by one :class:`envs.core.ShopperCore`, with same-step
autoreset: when a journey ends, the returned observation is already the next shopper's
and ``info["final_obs"]`` (masked by ``info["_final_obs"]``) holds the last one.
``info`` also carries the ledger terms, ``profit``, the ``event`` code (see
:data:`envs.core.EVENT_NAMES`) and ``ineligible_action`` as arrays over the N shoppers.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space
from numpy.typing import NDArray

from envs.core import ShopperCore
from envs.ledger import LEDGER_TERMS
from envs.observation import observation_space
from envs.scenario import Scenario
from envs.shopper_env import resolve_scenario


class HesitantShopperVectorEnv(VectorEnv[NDArray[np.float32], NDArray[np.int64], NDArray[Any]]):
    """``num_envs`` shopper journeys on one batched core; see :class:`envs.HesitantShopperEnv`."""

    metadata = {  # noqa: RUF012 (gymnasium's API)
        "autoreset_mode": AutoresetMode.SAME_STEP,
        "render_modes": [],
    }

    def __init__(self, num_envs: int = 1, scenario: Scenario | str = "default", **_: Any) -> None:
        self.scenario = resolve_scenario(scenario)
        self.num_envs = num_envs
        self.core = ShopperCore(self.scenario, num_envs, autoreset=True)
        self.single_action_space = spaces.Discrete(self.scenario.n_actions)
        self.single_observation_space = observation_space(self.scenario)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.feature_names = tuple(f.name for f in self.core.schema)
        self.action_names = self.scenario.action_names

    def reset(
        self, *, seed: int | list[int | None] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[NDArray[np.float32], dict[str, Any]]:
        if isinstance(seed, list):
            seed = seed[0]
        self._np_random_seed = seed
        keep = bool((options or {}).get("keep_memory", False))
        obs = self.core.reset(seed, keep_memory=keep)
        self._np_random = self.core.np_random
        return obs, self._info()

    def step(
        self, actions: NDArray[np.int64]
    ) -> tuple[
        NDArray[np.float32],
        NDArray[np.float64],
        NDArray[np.bool_],
        NDArray[np.bool_],
        dict[str, Any],
    ]:
        obs, reward, terminated, truncated = self.core.step(actions)
        info = self._info()
        rows = self.core.final_rows
        if len(rows):
            final = np.full(self.num_envs, None, dtype=object)
            for row, last in zip(rows.tolist(), self.core.final_obs, strict=True):
                final[row] = last
            mask = np.zeros(self.num_envs, dtype=bool)
            mask[rows] = True
            info["final_obs"], info["_final_obs"] = final, mask
        return obs, reward.copy(), terminated.copy(), truncated.copy(), info

    def action_masks(self) -> NDArray[np.bool_]:
        """Eligible actions, shape ``(num_envs, n_actions)``."""
        return self.core.action_masks()

    def _info(self) -> dict[str, Any]:
        core = self.core
        terms = core.terms.copy()  # one copy; each term a row of it
        info: dict[str, Any] = dict(zip(LEDGER_TERMS, terms, strict=True))
        info["profit"] = core.reward.copy()
        info["event"] = core.event.copy()
        info["ineligible_action"] = core.ineligible.copy()
        return info
