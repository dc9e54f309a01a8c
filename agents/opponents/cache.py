"""Trained opponents kept once per scenario digest and settings, in a cache folder.

The folder is ``$CONCEDE_CACHE_DIR`` when set (``off``: no cache), else
``outputs/cache/opponents`` under the working directory (git-ignored). A file is named by
the opponent, the scenario's name and a hash of its digest, the settings and this
format's version; it holds the policy as Python's pickle, written by this code only and
read back only from that folder.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from envs.scenario import Scenario

CACHE_ENV = "CONCEDE_CACHE_DIR"
FORMAT = 1
P = TypeVar("P")


def cache_dir() -> Path | None:
    """Where trained opponents are kept (None: nowhere)."""
    value = os.environ.get(CACHE_ENV)
    if value is not None and value.strip().lower() in ("", "off", "none", "0"):
        return None
    return Path(value) if value else Path("outputs") / "cache" / "opponents"


def cache_key(kind: str, scenario: Scenario, settings: dict[str, Any]) -> str:
    blob = json.dumps([FORMAT, kind, scenario.digest(), settings], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def cached(kind: str, scenario: Scenario, settings: dict[str, Any], build: Callable[[], P]) -> P:
    """The opponent ``kind`` for ``scenario`` and ``settings``: from the cache, else built
    with ``build()`` and stored. Its ``info`` (when it has one) says which."""
    folder = cache_dir()
    if folder is None:
        return build()
    path = folder / f"{kind}-{scenario.name}-{cache_key(kind, scenario, settings)}.pkl"
    if path.exists():
        with path.open("rb") as fh:
            policy: P = pickle.load(fh)
        info = getattr(policy, "info", None)
        if isinstance(info, dict):
            info["cache"] = str(path)
        return policy
    policy = build()
    folder.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    with tmp.open("wb") as fh:
        pickle.dump(policy, fh)
    tmp.replace(path)
    return policy
