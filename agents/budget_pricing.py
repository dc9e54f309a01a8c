"""A shadow price on a capped campaign budget, learned while training (dual ascent).

Under a campaign budget that all shoppers share, the best policy gives each euro of it
to the shoppers where it earns most. A shopper's own reward cannot teach that: a euro
given now is a euro missing for a later shopper, and nothing in the reward says so. The
constrained problem

    maximise  E[profit]   subject to   E[spend] <= E[allowance]

(the allowance is what each arriving shopper brings to the budget) has the Lagrangian
``profit - price x (spend - allowance)``. For a fixed price the learner maximises
``profit - price x spend``, a per-shopper reward; the price is moved by dual ascent so
that the spend matches the allowance: up while the policy spends more than the shoppers
bring, down (never below 0) while it spends less. At the fixed point the budget goes to
the offers that return more than ``1 + price`` euros of margin per euro spent.

Training runs with the cap lifted (``ShopperVecEnv(relax_budget=True)``) so that the
spend the policy wants is seen whole; the price keeps it within the budget on average.
Evaluations keep the cap.

Whose spend: the learner explores, so while training it offers more than the policy it
deploys, which takes its most likely action. Matching the exploring policy's spend to
the budget leaves budget unspent once deployed. With a ``probe`` env, the spend is
measured on the deployed (deterministic) policy instead, run for a few steps on its own
stream of shoppers after every rollout.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from stable_baselines3.common.callbacks import BaseCallback

from agents.learned import LearnedPolicy
from agents.vec_env import ShopperVecEnv


class BudgetPricer(BaseCallback):
    """Adjusts ``venv.budget_shadow_price`` at the end of every rollout.

    price <- clip(price + rate x (spent / allowance - 1), 0, max_price), where spent and
    allowance are exponential moving averages of the per-rollout euros (``smoothing`` is
    the weight of the past), so that one noisy rollout does not swing the price.

    Args:
        venv: the training env; its price is written (and its spend read without a probe).
        rate: price step per rollout for a spend 100% over the allowance.
        smoothing: weight of the past in the moving averages, in [0, 1).
        max_price: the price never goes above this.
        probe: an env of the same scenario (cap lifted) on which the deployed policy is
            run ``probe_steps`` steps after every rollout, its spend measured there.
        probe_steps: steps of the probe per rollout.
    """

    def __init__(
        self,
        venv: ShopperVecEnv,
        rate: float = 0.01,
        smoothing: float = 0.8,
        max_price: float = 100.0,
        probe: ShopperVecEnv | None = None,
        probe_steps: int = 32,
    ) -> None:
        super().__init__()
        if rate <= 0.0 or not 0.0 <= smoothing < 1.0:
            raise ValueError(f"need rate > 0 and 0 <= smoothing < 1, got {rate}, {smoothing}")
        if probe_steps < 1:
            raise ValueError(f"probe_steps must be >= 1, got {probe_steps}")
        self.venv = venv
        self.rate = rate
        self.smoothing = smoothing
        self.max_price = max_price
        self.probe = probe
        self.probe_steps = probe_steps
        self.spent: float | None = None
        self.allowance: float | None = None
        self._probe_obs: NDArray[np.float32] | None = None
        measured = probe if probe is not None else venv
        self._seen = (measured.budget_spent, measured.budget_allowance)

    @property
    def price(self) -> float:
        return self.venv.budget_shadow_price

    def _on_step(self) -> bool:
        return True

    def _run_probe(self, probe: ShopperVecEnv) -> None:
        if self._probe_obs is None:
            self._probe_obs = probe.reset()
            self._seen = (probe.budget_spent, probe.budget_allowance)
        policy = LearnedPolicy(self.model)
        obs = self._probe_obs
        for _ in range(self.probe_steps):
            result = probe.step(policy.act(obs, probe.action_masks()))
            obs = np.asarray(result[0], dtype=np.float32)
        self._probe_obs = obs

    def _on_rollout_end(self) -> None:
        measured = self.venv
        if self.probe is not None:
            self._run_probe(self.probe)
            measured = self.probe
        spent = measured.budget_spent - self._seen[0]
        allowance = measured.budget_allowance - self._seen[1]
        self._seen = (measured.budget_spent, measured.budget_allowance)
        if allowance <= 0.0:  # the counters restarted (an env reset)
            return
        if self.spent is None or self.allowance is None:
            self.spent, self.allowance = spent, allowance
        else:
            keep = self.smoothing
            self.spent = keep * self.spent + (1.0 - keep) * spent
            self.allowance = keep * self.allowance + (1.0 - keep) * allowance
        ratio = self.spent / self.allowance
        price = min(self.max_price, max(0.0, self.price + self.rate * (ratio - 1.0)))
        self.venv.budget_shadow_price = price
        self.logger.record("budget/shadow_price", price)
        self.logger.record("budget/spend_to_allowance", ratio)
