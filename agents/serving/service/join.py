"""Decisions joined to their rewards by event id: the service's decision log.

The service appends decisions and rewards to separate journals (any worker or replica
may take an event's reward, so nothing is held in memory waiting for it). This module
joins them when the log is read, as production decision services do:

- each decision gets the reward given for its event id (the last one, if several were
  given), with its ledger terms and its ``journey_end``; a decision without a reward
  booked no margin (reward 0);
- a journey is **complete** when one of its decisions has a reward saying how it ended
  (``journey_end``; then its later rows, if any, are dropped as after the end), or when
  its last decision is older than ``reward_window`` seconds (then it ended ``abandoned``:
  no order was reported in time). Other journeys are still under way and left out
  (``JoinReport.open_journeys``), to be joined in a later read;
- rewards whose event id no decision of the journals has are counted
  (``orphan_rewards``): an event id from another deployment, or a typo.

The result is a decision log in the format of ``agents.logs`` (its spec, from the
policy's manifest, is in the journal's metadata): :func:`read_service_log` validates it,
:func:`write_service_log` writes it as a folder that ``agents.logs.read_log`` and
``concede ope logs=<folder>`` read.

When every joined reward came with its ledger terms, the log has the ``term_`` columns;
otherwise only ``reward`` (a decision without a reward: 0 in every term).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from agents.logs.io import DecisionLog, from_table, write_log
from agents.logs.schema import (
    ABANDONED,
    JOURNEY,
    JOURNEY_END,
    REWARD,
    STEP,
    TIMESTAMP,
    LogSpec,
    term_column,
)
from agents.serving.service.journal import DECISIONS, EVENT_ID, REWARDS, REWARDS_SCHEMA
from envs.ledger import LEDGER_TERMS


class JoinError(ValueError):
    """The journals cannot be joined (none, or of different policies)."""


@dataclass(frozen=True)
class JoinReport:
    decisions: int
    rewards: int
    rows: int
    journeys: int
    open_journeys: int
    open_rows: int
    orphan_rewards: int
    after_end_rows: int
    duplicate_steps: int


def _read(folder: Path) -> list[pa.Table]:
    if not folder.is_dir():
        return []
    return [pq.read_table(p) for p in sorted(folder.glob("*.parquet"))]


def join_logs(
    log_dir: str | os.PathLike[str], *, reward_window: float = 86_400.0, now: float | None = None
) -> tuple[pa.Table, JoinReport]:
    """The decision log of the journals in ``log_dir`` (see the module docstring), as an
    Arrow table carrying its spec, and what the join found."""
    root = Path(log_dir)
    parts = _read(root / DECISIONS)
    if not parts:
        raise JoinError(f"{root / DECISIONS} holds no journal file: no decision was logged yet")
    specs = {p.schema.metadata.get(b"concede.decision_log") for p in parts}
    if len(specs) != 1:
        raise JoinError(
            f"{root / DECISIONS} holds journals of different policies or settings: "
            "give each deployment its own log folder"
        )
    spec = LogSpec.from_metadata(parts[0].schema.metadata)
    assert spec is not None
    decisions = pa.concat_tables(parts)
    rewards_parts = _read(root / REWARDS)
    rewards = pa.concat_tables(rewards_parts) if rewards_parts else REWARDS_SCHEMA.empty_table()
    n = decisions.num_rows

    # the last reward of each event id
    reward_ids = rewards.column(EVENT_ID).to_pylist()
    order = np.argsort(rewards.column(TIMESTAMP).cast(pa.int64()).to_numpy(), kind="stable")
    last: dict[str, int] = {reward_ids[i]: int(i) for i in order}
    ids = decisions.column(EVENT_ID).to_pylist()
    index = {e: i for i, e in enumerate(ids)}
    orphans = sum(1 for e in last if e not in index)
    match = np.array([last.get(e, -1) for e in ids], dtype=np.int64)
    has = match >= 0
    take = pa.array(np.where(has, match, 0))
    reward = np.where(has, _col(rewards, REWARD, take), 0.0) if len(rewards) else np.zeros(n)
    terms_given = {
        t: (
            np.where(has, _col(rewards, term_column(t), take), 0.0) if len(rewards) else np.zeros(n)
        )
        for t in LEDGER_TERMS
    }
    with_terms = bool(has.any()) and not any(np.isnan(v[has]).any() for v in terms_given.values())
    if len(rewards):
        end_col = rewards.column(JOURNEY_END).take(take).to_pylist()
        ends: list[str | None] = [e if h else None for e, h in zip(end_col, has, strict=True)]
    else:
        ends = [None] * n

    # journeys: sort by (journey, step), drop duplicate steps and rows after an end
    journeys = decisions.column(JOURNEY).to_pylist()
    steps = decisions.column(STEP).to_numpy()
    stamps = decisions.column(TIMESTAMP).cast(pa.int64()).to_numpy() / 1e6
    rows = sorted(range(n), key=lambda i: (journeys[i], int(steps[i])))
    keep: list[int] = []
    end_of: list[str | None] = []
    duplicates = after_end = open_rows = open_journeys = n_journeys = 0
    now = time.time() if now is None else now
    i = 0
    while i < n:
        j = i
        while j < n and journeys[rows[j]] == journeys[rows[i]]:
            j += 1
        group = rows[i:j]
        i = j
        chosen: list[int] = []
        ended: str | None = None
        previous = None
        for r in group:
            if previous is not None and steps[r] == previous:
                duplicates += 1
                continue
            if ended is not None:
                after_end += 1
                continue
            previous = steps[r]
            chosen.append(r)
            ended = ends[r]
        if ended is None:
            if now - float(stamps[chosen[-1]]) < reward_window:
                open_journeys += 1
                open_rows += len(chosen)
                continue
            ended = ABANDONED
        n_journeys += 1
        keep.extend(chosen)
        end_of.extend([None] * (len(chosen) - 1) + [ended])

    joined_spec = spec if with_terms else spec.with_source(terms=())
    take_rows = pa.array(keep, pa.int64())
    schema = joined_spec.arrow_schema()
    columns: dict[str, pa.Array | pa.ChunkedArray] = {}
    for f in schema:
        if f.name in decisions.column_names:
            columns[f.name] = decisions.column(f.name).take(take_rows)
    columns[REWARD] = pa.array(reward[keep], pa.float64())
    for t in joined_spec.terms:
        columns[term_column(t)] = pa.array(terms_given[t][keep], pa.float64())
    columns[JOURNEY_END] = pa.array(end_of, pa.string())
    table = pa.Table.from_arrays([columns[f.name] for f in schema], schema=schema)
    report = JoinReport(
        decisions=n,
        rewards=rewards.num_rows,
        rows=len(keep),
        journeys=n_journeys,
        open_journeys=open_journeys,
        open_rows=open_rows,
        orphan_rewards=orphans,
        after_end_rows=after_end,
        duplicate_steps=duplicates,
    )
    return table, report


def _col(table: pa.Table, name: str, take: pa.Array) -> np.ndarray:
    values = pc.fill_null(table.column(name).take(take), float("nan"))
    return np.asarray(values.to_numpy(), dtype=np.float64)


def read_service_log(
    log_dir: str | os.PathLike[str], *, reward_window: float = 86_400.0, now: float | None = None
) -> tuple[DecisionLog, JoinReport]:
    """The joined decision log of ``log_dir``, validated by ``agents.logs``."""
    table, report = join_logs(log_dir, reward_window=reward_window, now=now)
    return from_table(table, require_propensity=True), report


def write_service_log(
    log_dir: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    reward_window: float = 86_400.0,
    now: float | None = None,
    rows_per_file: int = 1_000_000,
) -> tuple[Path, JoinReport]:
    """Join the journals of ``log_dir`` and write the validated log as a folder of
    Parquet files at ``out`` (what ``concede ope logs=<out>`` reads)."""
    log, report = read_service_log(log_dir, reward_window=reward_window, now=now)
    return write_log(log.table, out, rows_per_file=rows_per_file), report
