"""A shop's files, recognised and read: session tables and decision logs.

A file (CSV or Parquet) with ``journey``, ``visit`` and ``purchase`` columns is a session
table (:mod:`.sessions`); a file or folder with ``action`` and ``propensity`` columns is a
decision log (:mod:`agents.logs`), read and validated by :func:`agents.logs.read_log` in
the starting scenario's names. A log must say how it was written — its logging policy
(a name :func:`agents.registry.build_policy` knows) and its exploration — in its
metadata, as the simulator and the decision service write it, or through ``logger`` and
``exploration`` (``epsilon:0.3``, ``softmax:0.5``, ``epsilon:0.3@exit_intent+away`` for
a logger that explored at those moments only). Anything else raises
:class:`InputError` naming the file and what is wrong.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from agents.exploration import Exploration
from agents.logs import LogReadError, LogSchemaError, LogValidationError, read_log
from agents.registry import UnknownPolicyError, build_policy
from envs.scenario import Scenario
from experiments.calibration.objective import LogData, ShopData
from experiments.calibration.sessions import REQUIRED, read_sessions


class InputError(ValueError):
    """A data file that cannot be used for a fit (the message says which and why)."""


def _columns(path: Path) -> list[str]:
    if path.is_dir():
        files = sorted([*path.glob("*.parquet"), *path.glob("*.csv")])
        if not files:
            raise InputError(f"{path}: a folder with no .parquet or .csv file")
        path = files[0]
    if path.suffix.lower() == ".parquet":
        return list(pq.read_schema(path).names)
    if path.suffix.lower() == ".csv":
        with path.open(encoding="utf-8") as f:
            return [c.strip().strip('"') for c in f.readline().strip().split(",")]
    raise InputError(f"{path}: data files are .csv or .parquet (or a folder of them)")


def parse_exploration(text: str | Mapping[str, Any] | None) -> Exploration | None:
    """``epsilon:0.3``, ``epsilon:0.3@exit_intent+away`` or a ``{"kind", "value"}``
    mapping (with ``"moments"``, as a log's metadata holds it) as an :class:`Exploration`."""
    if text is None:
        return None
    try:
        if isinstance(text, Mapping):
            return Exploration.from_dict(text)
        return Exploration.from_text(text)
    except (KeyError, ValueError, TypeError) as err:
        raise InputError(
            f"exploration {text!r}: {err}; write it as epsilon:0.3, or as "
            "epsilon:0.3@exit_intent+away for exploration at those moments only"
        ) from None


def load_shop_data(
    paths: Sequence[str | Path],
    start: Scenario,
    logger: str | None = None,
    exploration: str | None = None,
) -> tuple[ShopData, list[str]]:
    """The shop's data from ``paths`` (at most one session table and one log), and one line
    per file saying what it is."""
    sessions, logs, sources = None, None, []
    for given in paths:
        path = Path(given)
        if not path.exists():
            raise InputError(f"no data file at {str(path)!r}")
        columns = _columns(path)
        if {"action", "propensity"} <= set(columns):
            if logs is not None:
                raise InputError(f"{path}: a second decision log; join the logs into one folder")
            try:
                log = read_log(path, scenario=start)
            except (LogReadError, LogSchemaError, LogValidationError) as err:
                raise InputError(f"{path}: {err}") from None
            name = logger or log.spec.logger
            if not name:
                raise InputError(f"{path}: the log does not name its logging policy: pass --logger")
            try:
                policy = build_policy(name, start)
            except UnknownPolicyError as err:
                raise InputError(f"{path}: logger {name!r}: {err}") from None
            explore = parse_exploration(exploration) or parse_exploration(log.spec.exploration)
            if explore is None:
                raise InputError(
                    f"{path}: the log does not say how it explored: pass --exploration"
                )
            logs = LogData(log.table, policy, explore)
            sources.append(
                f"decision log {path.name}: {log.table.num_rows:,} decisions, logger {name} "
                f"with {explore.describe()}"
            )
        elif set(REQUIRED) <= set(columns):
            if sessions is not None:
                raise InputError(f"{path}: a second session table; join them into one")
            sessions = read_sessions(path)
            sources.append(
                f"session table {path.name}: {len(sessions):,} visits, "
                f"{sessions['journey'].nunique():,} journeys"
            )
        else:
            raise InputError(
                f"{path}: neither a session table (needs columns {list(REQUIRED)}) nor a "
                f"decision log (needs 'action' and 'propensity'); its columns: {columns[:12]}"
            )
    return ShopData(sessions=sessions, logs=logs), sources
