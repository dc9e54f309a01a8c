"""What a deployment of the decision service sets, passed to its workers as JSON.

uvicorn starts each worker by importing :func:`agents.serving.service.app.create_app`;
the settings travel in the environment variable :data:`ENV_VAR`.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from agents.exploration import Exploration

ENV_VAR = "CONCEDE_SERVICE_SETTINGS"


@dataclass(frozen=True)
class ServiceSettings:
    """Args:
    policy: the exported policy directory (``manifest.json`` + ``policy.onnx``).
    log_dir: where the journals go (``decisions/`` and ``rewards/``, one file set per
        worker process).
    exploration: ``epsilon`` (``exploration_value`` the share of decisions drawn uniformly
        among the allowed actions, in [0, 1]) or ``softmax`` (``exploration_value`` the
        temperature, > 0, over the allowed actions' scores); see
        :class:`agents.exploration.Exploration`.
    exploration_value: the share or the temperature.
    explore_at: binary features (``exit_intent``, ``away``...) one of which must be 1 in
        an event, as the policy sees it, for it to be explored; elsewhere the policy's
        decision with probability 1. Empty: every event is explored.
    seed: seed of the exploration draws (each worker derives its own stream from it).
    max_offers_per_shopper: a tighter contact cap than the manifest's (None: the manifest's).
    disabled: concessions this deployment never offers.
    max_body_bytes: larger bodies are refused with 413.
    max_events: more events in one request are refused with 413.
    rows_per_file: a journal file is closed at this many rows...
    flush_seconds: ...or this many seconds after its first row, whichever comes first.
    queue_rows: rows the log queue holds at most; beyond, rows are dropped and counted.
    """

    policy: str
    log_dir: str
    exploration: str = "epsilon"
    exploration_value: float = 0.05
    explore_at: tuple[str, ...] = ()
    seed: int = 0
    max_offers_per_shopper: int | None = None
    disabled: tuple[str, ...] = ()
    max_body_bytes: int = 1_000_000
    max_events: int = 10_000
    rows_per_file: int = 100_000
    flush_seconds: float = 10.0
    queue_rows: int = 1_000_000
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "disabled", tuple(self.disabled))
        object.__setattr__(self, "explore_at", tuple(self.explore_at))
        self.explorer()  # raises on a bad pair or moment
        for name in ("max_body_bytes", "max_events", "rows_per_file", "queue_rows"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not self.flush_seconds > 0:
            raise ValueError(f"flush_seconds must be > 0, got {self.flush_seconds}")

    def explorer(self) -> Exploration:
        """The deployment's :class:`agents.exploration.Exploration`."""
        moments = self.explore_at or None
        return Exploration(self.exploration, self.exploration_value, moments)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ServiceSettings:
        data = json.loads(text)
        data["disabled"] = tuple(data.get("disabled", ()))
        data["explore_at"] = tuple(data.get("explore_at", ()))
        return cls(**data)

    @classmethod
    def from_env(cls) -> ServiceSettings:
        text = os.environ.get(ENV_VAR)
        if not text:
            raise RuntimeError(f"{ENV_VAR} is not set: start the service with concede serve")
        return cls.from_json(text)

    @property
    def decisions_dir(self) -> Path:
        return Path(self.log_dir) / "decisions"

    @property
    def rewards_dir(self) -> Path:
        return Path(self.log_dir) / "rewards"
