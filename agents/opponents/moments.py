"""When an opponent decides: at hesitation (exit intent shown, or the shopper away: cart
abandonment, where a merchant's targeting model or bandit is usually asked), or at every
step. Read from the observation, as a deployed model would."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from agents.exploration import moment_columns as feature_columns
from envs.observation import feature_schema
from envs.scenario import Scenario

HESITATION, EVERY_STEP = "hesitation", "every_step"
MOMENTS = (HESITATION, EVERY_STEP)


def check_moments(moments: str, who: str) -> None:
    if moments not in MOMENTS:
        raise ValueError(f"{who}: moments must be one of {MOMENTS}, got {moments!r}")


def moment_columns(scenario: Scenario, moments: str) -> NDArray[np.int64] | None:
    """Observation columns of which one must be set for a decision (None: every step)."""
    check_moments(moments, "opponent")
    if moments == EVERY_STEP:
        return None
    return feature_columns([f.name for f in feature_schema(scenario)], ("exit_intent", "away"))
