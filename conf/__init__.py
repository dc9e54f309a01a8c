"""The shipped Hydra configs, scenarios and merchant rule sets, as package data.

The folder ``conf/`` installs as the package ``concede_conf`` (``pyproject.toml``), a name
of concede's own. Hydra finds the configs as ``pkg://concede_conf`` and the simulator
through :func:`folder`, so that an installed wheel works from any working directory as
well as a checkout.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path


def folder(group: str = "") -> Path:
    """The folder of a config group (``"scenario"``, ``"rules"``, ``"agent"``...), or of
    all the configs for ``""``."""
    return Path(str(files(__name__))) / group
