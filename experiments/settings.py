"""Typed, validated settings of a training run (built by Hydra from ``conf/train.yaml``)."""

from __future__ import annotations

from dataclasses import dataclass, field


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
            ``python -m experiments.evaluate --help`` for what exists).
        final_shoppers: shoppers of the final paired evaluation.
        budget_shadow_price: under a campaign budget, what each euro spent from it also
            costs the learner (training only; evaluations count plain euros): the
            opportunity cost of a budget all shoppers share, which a per-shopper reward
            does not see. 0 trains on the plain margin.
        torch_threads: threads torch may use in this run; 1 is fastest for these small
            networks, and keeps parallel sweep jobs from fighting over the cores.
        progress_bar: show a progress bar while training.
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
    budget_shadow_price: float = 0.0
    torch_threads: int = 1
    progress_bar: bool = True
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
        if not 0.0 <= self.budget_shadow_price <= 100.0:
            raise ValueError(
                "training.budget_shadow_price must be in [0, 100], "
                f"got {self.budget_shadow_price!r}"
            )
        if not isinstance(self.torch_threads, int) or self.torch_threads < 1:
            raise ValueError(
                f"training.torch_threads must be a whole number >= 1, got {self.torch_threads!r}"
            )
        if self.kill_at_step is not None and self.kill_at_step < 1:
            raise ValueError(
                f"training.kill_at_step must be >= 1 or null, got {self.kill_at_step!r}"
            )
        object.__setattr__(self, "baselines", tuple(self.baselines))
