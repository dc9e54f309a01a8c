"""What a training run keeps between a kill and its resumption: its checkpoint state."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

CHECKPOINTS = "checkpoints"  # the folder of a run's checkpoints, inside its run folder
STATE_FILE = "state.json"


class SimulatedKill(RuntimeError):
    """Raised by ``training.kill_at_step``: the run stops as if its machine went away."""


@dataclass
class RunState:
    """What a resumed run needs: its MLflow run and how far it got."""

    run_id: str
    timesteps: int = 0
    curve: list[dict[str, float]] = field(default_factory=list)
    budget_shadow_price: float | None = None  # the learned price at the last checkpoint
    best_timesteps: int | None = None  # the best evaluated checkpoint (``keep_best``)
    best_profit: float | None = None

    @classmethod
    def load(cls, folder: Path) -> RunState | None:
        path = folder / STATE_FILE
        if not path.is_file():
            return None
        return cls(**json.loads(path.read_text()))

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f"{STATE_FILE}.tmp"
        tmp.write_text(json.dumps(asdict(self)))
        tmp.replace(folder / STATE_FILE)
