"""``concede/HesitantShopper-v0``: one shopper's purchase journey as a Gymnasium env.

This env is the N = 1 view of :class:`envs.core.ShopperCore`; it has no dynamics of
its own. Training uses the batched views (:mod:`envs.vector`, ``agents.vec_env``).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from numpy.typing import NDArray

from envs.core import EVENT_NAMES, ShopperCore
from envs.ledger import LEDGER_TERMS
from envs.observation import observation_space
from envs.scenario import Scenario
from envs.scenario_files import load_scenario


def resolve_scenario(scenario: Scenario | str) -> Scenario:
    """A scenario object as given, or a shipped scenario by name, or a YAML file by path."""
    return scenario if isinstance(scenario, Scenario) else load_scenario(scenario)


class HesitantShopperEnv(gym.Env[NDArray[np.float32], np.int64]):
    """A hesitant shopper fills a cart, hesitates, leaves, may come back; the merchant
    decides at each step whether to offer a concession, and which.

    ## Description

    One episode is one shopper's purchase journey: several visits, each several decision
    steps (page views, cart edits, checkout steps, exit intent). The shopper's valuation,
    hesitation, patience, sensitivities to each kind of concession, tolerance to
    interruptions and tracking consent are hidden, drawn from the scenario's population
    mixture. See :mod:`envs.core` for the dynamics, :mod:`envs.shoppers` for the
    shopper model.

    ## Action Space

    ``Discrete(1 + len(scenario.concessions))``: 0 is ``wait``; ``k >= 1`` offers
    ``scenario.concessions[k - 1]`` (percent or fixed discount, free shipping, express
    delivery, free gift, voucher for the next order, live agent, retargeting e-mail).
    :meth:`action_masks` gives the eligible actions (channel, contact cap, minimum
    cart, margin floor, once per shopper, agent capacity, campaign budget). An
    ineligible action is played as ``wait`` and flagged with ``info["ineligible_action"]``.
    No action can raise a price.

    ## Observation Space

    ``Box(float32)`` with the named features of :func:`envs.observation.feature_schema`
    (``env.unwrapped.feature_names``):

    | Num | Observation | Min | Max | Needs consent |
    |-----|-------------|-----|-----|---------------|
    | 0 | cart_value (100 EUR) | 0 | inf | no |
    | 1 | shipping_fee (10 EUR) | 0 | inf | no |
    | 2 | margin_rate | -inf | 1 | no |
    | 3 | checkout_step | 0 | 1 | no |
    | 4 | journey_step | 0 | 1 | no |
    | 5 | away | 0 | 1 | no |
    | 6 | consent | 0 | 1 | no |
    | 7 | interruptions | 0 | inf | no |
    | 8 | offer_active | 0 | 1 | no |
    | 9 | agents_busy | 0 | 1 | no |
    | 10 | returning_visitor | 0 | 1 | yes |
    | 11 | visit_index | 0 | 1 | yes |
    | 12 | exit_intent | 0 | 1 | yes |
    | 13 | dwell_time (min) | 0 | inf | yes |
    | 14 | steps_at_stage | 0 | 1 | yes |
    | 15 | cart_edits | 0 | inf | yes |
    | 16 | substitute_views | 0 | inf | yes |
    | 17.. | offered_<concession> | 0 | 1 | no |

    Features that need consent read 0 for a shopper who refused tracking.

    ## Rewards

    The merchant's contribution margin booked at this step, in EUR.

    ## Reward accounting

    | term | sign | booked when |
    |------|------|-------------|
    | revenue | + | order: cart list price + standard shipping fee |
    | cost_of_goods | - | order |
    | shipping | - | order: the carrier's standard rate |
    | concession_cost | - | order: discounts, waived fee, express upgrade, gift; e-mail: its cost |
    | voucher_liability | - | order: face value x redemption probability |
    | agent_cost | - | live agent assigned |
    | future_value | +/- | order (retained customer), harassment exit (annoyed) |

    ``info`` carries every term at every step and ``profit``, their signed sum, which
    equals the reward; summed over an episode the terms equal its return.

    ## Starting State

    A new shopper from the scenario's population, browsing, on the first visit.

    ## Episode End

    Terminated on an order or on final abandonment (the shopper left and did not come
    back); truncated at the scenario's horizon.

    ## Arguments

    - ``scenario``: a :class:`envs.scenario.Scenario`, a shipped scenario's name
      (``default``, ``black_friday``, ``luxury``, ``grocery``, ``privacy_strict``,
      ``strategic``) or the path of a scenario YAML file.

    ``reset(seed=...)`` restarts the generator and the population memory of strategic
    shoppers; ``reset(options={"keep_memory": True})`` keeps the memory.

    ## Version History

    - v0: initial version.
    """

    metadata = {"render_modes": ["ansi"], "render_fps": 4}  # noqa: RUF012 (gymnasium's API)

    def __init__(
        self, scenario: Scenario | str = "default", render_mode: str | None = None
    ) -> None:
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be one of {self.metadata['render_modes']} or None")
        self.render_mode = render_mode
        self.scenario = resolve_scenario(scenario)
        self.core = ShopperCore(self.scenario, 1, autoreset=False)
        self.action_space = spaces.Discrete(self.scenario.n_actions)
        self.observation_space = observation_space(self.scenario)  # type: ignore[assignment]
        self.feature_names = tuple(f.name for f in self.core.schema)
        self.action_names = self.scenario.action_names

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[NDArray[np.float32], dict[str, Any]]:
        super().reset(seed=seed)
        keep = bool((options or {}).get("keep_memory", False))
        if seed is None and not self.core.seeded:
            seed = int(self.np_random.integers(2**63))
        obs = self.core.reset(seed, keep_memory=keep)
        self._np_random = self.core.np_random
        return obs[0].copy(), self._info()

    def step(
        self, action: int | np.integer[Any]
    ) -> tuple[NDArray[np.float32], float, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated = self.core.step(np.array([action], dtype=np.int64))
        return (
            obs[0].copy(),
            float(reward[0]),
            bool(terminated[0]),
            bool(truncated[0]),
            self._info(),
        )

    def action_masks(self) -> NDArray[np.bool_]:
        """Eligible actions now, shape ``(n_actions,)``, for sb3-contrib's MaskablePPO."""
        return self.core.action_masks()[0]

    def _info(self) -> dict[str, Any]:
        core = self.core
        info: dict[str, Any] = {
            name: float(core.terms[i, 0]) for i, name in enumerate(LEDGER_TERMS)
        }
        info["profit"] = float(core.reward[0])
        info["event"] = EVENT_NAMES[core.event[0]]
        info["action_applied"] = int(core.applied[0])
        info["ineligible_action"] = bool(core.ineligible[0])
        info["opted_out"] = bool(core.opted_out[0])
        return info

    def render(self) -> str | None:
        if self.render_mode != "ansi":
            return None
        c = self.core
        return (
            f"t={c.t[0]} visit={c.visit[0]} stage={c.stage[0]} away={bool(c.away[0])} "
            f"exit_intent={bool(c.exit_intent[0])} offers={c.interruptions[0]} "
            f"last={self.action_names[c.applied[0]]} event={EVENT_NAMES[c.event[0]]} "
            f"reward={c.reward[0]:.2f}"
        )
