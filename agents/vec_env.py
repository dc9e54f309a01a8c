"""The Stable-Baselines3 ``VecEnv`` view of the batched core, for training.

SB3's VecEnv is not Gymnasium's: a finished env is reset within the same step and its
last observation travels in ``infos[i]["terminal_observation"]``, with
``infos[i]["TimeLimit.truncated"]`` when the horizon cut it. ``env_method("action_masks")``
returns one mask per shopper, as sb3-contrib's MaskablePPO asks.

The info dicts of shoppers whose journey did not end are shared empty dicts (one list
built per step would cost more than the step itself at N = 4,096): read them, do not
write into them. The dicts of finished shoppers are fresh and carry the journey's
ledger totals.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import gymnasium as gym
import numpy as np
from numpy.typing import NDArray
from stable_baselines3.common.vec_env.base_vec_env import VecEnv, VecEnvIndices, VecEnvStepReturn

from envs.core import ShopperCore
from envs.ledger import LEDGER_TERMS
from envs.observation import observation_space
from envs.scenario import Scenario
from envs.shopper_env import resolve_scenario


class ShopperVecEnv(VecEnv):
    """``num_envs`` shopper journeys on one batched :class:`envs.core.ShopperCore`.

    Args:
        scenario: a scenario object, a shipped scenario's name or a YAML path.
        num_envs: shoppers stepped together.
        seed: seed of the first reset (``VecEnv.seed`` overrides it).
        budget_shadow_price: for training only, under a campaign budget: each euro spent
            from the budget also costs the learner this much, so that a shopper's reward
            carries what the shared budget could have earned elsewhere (0: plain margin).
            It may be changed between steps (see :mod:`agents.budget_pricing`).
        relax_budget: for training only, under a campaign budget: lift the cap (no offer is
            refused for want of budget) and only price the spend; the cap is then kept on
            average by a shadow price that makes the spend match the budget.

    Under a campaign budget, :attr:`budget_spent` and :attr:`budget_allowance` count the
    euros spent from the budget and the euros the arriving shoppers brought to it since
    the last reset.
    """

    def __init__(
        self,
        scenario: Scenario | str = "default",
        num_envs: int = 16,
        seed: int | None = None,
        budget_shadow_price: float = 0.0,
        relax_budget: bool = False,
    ) -> None:
        self.scenario = resolve_scenario(scenario)
        rate = self.scenario.campaign_budget_per_1000
        self.capped = rate is not None
        simulated = replace(self.scenario, campaign_budget_per_1000=None) if relax_budget else None
        self.core = ShopperCore(simulated or self.scenario, num_envs, autoreset=True)
        self.budget_shadow_price = budget_shadow_price if self.capped else 0.0
        self._budget_per_shopper = (rate or 0.0) / 1000.0
        self.budget_spent = 0.0
        self.budget_allowance = 0.0
        self.render_mode = None
        super().__init__(
            num_envs,
            observation_space(self.scenario),
            gym.spaces.Discrete(self.scenario.n_actions),
        )
        self._seeds = [seed] * num_envs
        self._actions = np.zeros(num_envs, dtype=np.int64)
        self._blank: list[dict[str, Any]] = [{} for _ in range(num_envs)]
        self._returns = np.zeros_like(self.core.terms)

    def reset(self) -> NDArray[np.float32]:
        seed = self._seeds[0]
        obs = self.core.reset(seed)
        self._reset_seeds()
        self._reset_options()
        self._returns.fill(0.0)
        self.budget_spent = 0.0
        self.budget_allowance = self._budget_per_shopper * self.num_envs
        return obs

    def step_async(self, actions: NDArray[Any]) -> None:
        self._actions = np.asarray(actions)

    def step_wait(self) -> VecEnvStepReturn:
        core = self.core
        obs, reward, terminated, truncated = core.step(self._actions)
        if self.capped:
            spend = core.spent
            self.budget_spent += float(spend.sum())
            self.budget_allowance += self._budget_per_shopper * len(core.final_rows)
            if self.budget_shadow_price:
                reward = reward - self.budget_shadow_price * spend
        self._returns += core.terms
        dones = terminated | truncated
        infos = list(self._blank)
        for row, last in zip(core.final_rows, core.final_obs, strict=True):
            totals = self._returns[:, row]
            info: dict[str, Any] = {name: float(totals[i]) for i, name in enumerate(LEDGER_TERMS)}
            info["terminal_observation"] = last
            info["TimeLimit.truncated"] = bool(truncated[row])
            infos[row] = info
        self._returns[:, core.final_rows] = 0.0
        return obs, reward.astype(np.float32), dones, infos

    def action_masks(self) -> NDArray[np.bool_]:
        return self.core.action_masks()

    def close(self) -> None:
        return None

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        return [getattr(self, attr_name) for _ in self._get_indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        setattr(self, attr_name, value)

    def env_method(
        self,
        method_name: str,
        *method_args: Any,
        indices: VecEnvIndices = None,
        **method_kwargs: Any,
    ) -> list[Any]:
        rows = list(self._get_indices(indices))
        if method_name == "action_masks":
            masks = self.core.action_masks()
            return [masks[i] for i in rows]
        result = getattr(self, method_name)(*method_args, **method_kwargs)
        return [result for _ in rows]

    def env_is_wrapped(
        self, wrapper_class: type[gym.Wrapper], indices: VecEnvIndices = None
    ) -> list[bool]:
        return [False for _ in self._get_indices(indices)]

    def get_images(self) -> Sequence[np.ndarray | None]:
        return [None for _ in range(self.num_envs)]
