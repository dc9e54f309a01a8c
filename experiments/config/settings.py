"""Typed, validated settings of a training run (built by Hydra from ``conf/train.yaml``)."""

from __future__ import annotations

from dataclasses import dataclass, field

AUTO_PRICE = "auto"


@dataclass(frozen=True)
class TrainSettings:
    """How long to train, how often to evaluate and checkpoint.

    Args:
        total_timesteps: shopper-steps of experience to collect (summed over the batch).
        n_envs: shoppers simulated together in the batched training env.
        eval_every: timesteps between evaluations on the fixed paired shoppers.
        eval_shoppers: shoppers of each evaluation (the same ones every time).
        eval_seed: seed of those shoppers.
        cohort_size: evaluation shoppers simulated together; the population memory of
            strategic shoppers carries from one cohort to the next, so smaller cohorts
            show sooner what a policy teaches shoppers.
        checkpoint_every: timesteps between checkpoints (a killed run resumes from the last).
        baselines: baseline policies the learner is compared with (names, see
            ``concede evaluate --help`` for what exists).
        final_shoppers: shoppers of the final paired evaluation.
        budget_shadow_price: under a campaign budget, what each euro spent from it also
            costs the learner (training only; evaluations count plain euros): the
            opportunity cost of a budget all shoppers share, which a per-shopper reward
            does not see. ``"auto"`` learns it while training (a Lagrange multiplier
            moved by dual ascent, :mod:`agents.budget_pricing`) with the cap lifted, so
            that the spend matches the budget; a number fixes it and keeps the cap; 0
            trains on the plain margin. Scenarios without a budget ignore it.
        budget_price_rate: with ``"auto"``, how far one rollout moves the price when the
            spend is twice the budget.
        torch_threads: threads torch may use in this run; 1 is fastest for these small
            networks, and keeps parallel sweep jobs from fighting over the cores.
        progress_bar: show a progress bar while training.
        keep_best: the policy the run reports, logs and registers is the checkpoint that
            earned most on the evaluation shoppers (RL curves are noisy, and the last
            update is not always the best); the final evaluation is on new shoppers, so
            the choice does not flatter it. False keeps the last.
        kill_at_step: stop the run abruptly after this many timesteps (fault drills).
    """

    total_timesteps: int = 300_000
    n_envs: int = 64
    eval_every: int = 50_000
    eval_shoppers: int = 4_000
    eval_seed: int = 20_240
    cohort_size: int = 2_000
    checkpoint_every: int = 50_000
    baselines: tuple[str, ...] = field(default_factory=tuple)
    final_shoppers: int = 20_000
    budget_shadow_price: float | str = "auto"
    budget_price_rate: float = 0.01
    torch_threads: int = 1
    progress_bar: bool = True
    keep_best: bool = True
    kill_at_step: int | None = None

    def __post_init__(self) -> None:
        positive = (
            "total_timesteps",
            "n_envs",
            "eval_every",
            "eval_shoppers",
            "checkpoint_every",
            "final_shoppers",
            "cohort_size",
        )
        for name in positive:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"training.{name} must be a whole number >= 1, got {value!r}")
        price = self.budget_shadow_price
        number = isinstance(price, int | float) and not isinstance(price, bool)
        if not (price == AUTO_PRICE or (number and 0.0 <= float(price) <= 100.0)):
            raise ValueError(
                f"training.budget_shadow_price must be {AUTO_PRICE!r} or a number in "
                f"[0, 100], got {price!r}"
            )
        rate = self.budget_price_rate
        if not isinstance(rate, int | float) or isinstance(rate, bool) or not 0.0 < rate <= 10.0:
            raise ValueError(f"training.budget_price_rate must be in (0, 10], got {rate!r}")
        if not isinstance(self.torch_threads, int) or self.torch_threads < 1:
            raise ValueError(
                f"training.torch_threads must be a whole number >= 1, got {self.torch_threads!r}"
            )
        if self.kill_at_step is not None and self.kill_at_step < 1:
            raise ValueError(
                f"training.kill_at_step must be >= 1 or null, got {self.kill_at_step!r}"
            )
        object.__setattr__(self, "baselines", tuple(self.baselines))

    @property
    def learns_budget_price(self) -> bool:
        """The budget's shadow price is learned while training (``"auto"``)."""
        return self.budget_shadow_price == AUTO_PRICE

    @property
    def fixed_budget_price(self) -> float:
        """The fixed shadow price (0 with ``"auto"``, where it starts from 0)."""
        return 0.0 if self.learns_budget_price else float(self.budget_shadow_price)
