"""The shared ending of the Hydra apps that answer in JSON: run, print, exit 2 on bad input."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

from omegaconf import DictConfig
from rich.console import Console

from experiments.config.typed_app import fail


def run_json_app(
    run: Callable[[DictConfig, Console], dict[str, Any]],
    cfg: DictConfig,
    input_errors: tuple[type[Exception], ...],
) -> None:
    """``run(cfg, console)``, then its result as one compact JSON line (the last line
    printed); an error of ``input_errors`` is printed as ``error: ...`` and exits with 2."""
    console = Console(width=None if sys.stdout.isatty() else 160)
    try:
        result = run(cfg, console)
    except input_errors as err:
        fail(str(err))
    print(json.dumps(result, separators=(",", ":")), flush=True)
