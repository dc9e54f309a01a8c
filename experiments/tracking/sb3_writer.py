"""Stable-Baselines3's training metrics, sent to the active MLflow run."""

from __future__ import annotations

import numbers
from typing import Any

import mlflow
import numpy as np
from stable_baselines3.common.logger import KVWriter


class MLflowWriter(KVWriter):
    """Sends SB3's training metrics (``train/approx_kl``, ``rollout/ep_rew_mean``...) to MLflow."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id

    def write(
        self, key_values: dict[str, Any], key_excluded: dict[str, tuple[str, ...]], step: int = 0
    ) -> None:
        metrics = {
            key.replace("/", "."): float(value)
            for key, value in key_values.items()
            if _is_number(value) and "mlflow" not in key_excluded.get(key, ())
        }
        if metrics:
            mlflow.log_metrics(metrics, step=step, run_id=self.run_id)

    def close(self) -> None:
        return None


def _is_number(value: Any) -> bool:
    """A real number, numpy scalar or one-element tensor; not a bool or a string."""
    if isinstance(value, bool | np.bool_):
        return False
    if isinstance(value, numbers.Real | np.number):
        return True
    size = getattr(value, "numel", None)  # a torch tensor, without importing torch here
    return callable(size) and size() == 1 and not getattr(value, "is_complex", lambda: False)()
