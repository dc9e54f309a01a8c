"""The service's journals: decisions and rewards, appended off the request path.

Each worker process owns its file sets, ``<log_dir>/decisions/<worker>-<n>.parquet`` and
``<log_dir>/rewards/<worker>-<n>.parquet``. A request handler hands its rows to
:meth:`JournalWriter.put` (a bounded queue, counted in rows) and answers at once; one
writer thread turns them into Arrow tables and writes a file when it holds
``rows_per_file`` rows or its first row is ``flush_seconds`` old. A file is written
whole under a temporary name and renamed: a reader never sees half a file. On shutdown
(:meth:`JournalWriter.close`) the queue is drained and every row written.

When the queue is full (the disk cannot keep up), the rows of that request are dropped,
counted (``dropped_rows``, the ``concede_log_dropped_rows_total`` metric), logged as a
warning, and the response says ``"logged": false``: the decision is still served.

The decisions journal holds, per decision: ``event_id``, then the columns of the
decision-log format that are known when deciding (``journey``, ``step``, ``timestamp``,
the features, with consent-gated ones null for a shopper without consent, the
``eligible_`` columns, for a policy with a campaign budget the ``withheld_`` columns
(the actions its ``budget`` guardrail alone forbade), ``action``, ``propensity``, the
``p_`` columns) and ``explored``.
The rewards journal holds ``event_id``, ``timestamp``, ``reward``, the ``term_`` columns
(null when only the reward was given) and ``journey_end``.
:func:`agents.serving.service.join.join_logs` joins the two into a decision log.
"""

from __future__ import annotations

import collections
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from numpy.typing import NDArray

from agents.logs.schema import (
    ACTION,
    JOURNEY,
    JOURNEY_END,
    PROPENSITY,
    REWARD,
    STEP,
    TIMESTAMP,
    LogSpec,
    term_column,
)
from envs.ledger import LEDGER_TERMS

EVENT_ID = "event_id"
EXPLORED = "explored"
DECISIONS = "decisions"
REWARDS = "rewards"
_TS = pa.timestamp("us", tz="UTC")
log = logging.getLogger("concede.service")


def decisions_schema(spec: LogSpec) -> pa.Schema:
    """The decisions journal's schema: the log format's decision-time columns, with the
    spec in the metadata."""
    fields = [pa.field(EVENT_ID, pa.string(), nullable=False)]
    fields += [f for f in spec.arrow_schema() if f.name in _decision_columns(spec)]
    fields.append(pa.field(EXPLORED, pa.bool_(), nullable=False))
    return pa.schema(fields, metadata=spec.metadata())


def _decision_columns(spec: LogSpec) -> set[str]:
    return {
        JOURNEY,
        STEP,
        TIMESTAMP,
        *spec.features,
        *spec.eligible_columns,
        *spec.withheld_columns,
        ACTION,
        PROPENSITY,
        *spec.probability_columns,
    }


REWARDS_SCHEMA = pa.schema(
    [
        pa.field(EVENT_ID, pa.string(), nullable=False),
        pa.field(TIMESTAMP, _TS),
        pa.field(REWARD, pa.float64(), nullable=False),
        *(pa.field(term_column(t), pa.float64()) for t in LEDGER_TERMS),
        pa.field(JOURNEY_END, pa.string()),
    ]
)


@dataclass
class DecisionBlock:
    """The decisions of one request, as the handler has them: ``features`` the rows of
    the features in the spec's order (``(n, n_features)``, any array-like) or the
    request's columns by name; ``allowed``, ``probs`` and ``withheld`` (the actions the
    campaign budget alone forbade; read only when the spec logs them) ``(n, n_actions)``,
    ``action`` and ``explored`` ``(n,)``, array-likes (a single event's as nested lists:
    the handler converts nothing, the writer thread does)."""

    event_ids: list[str]
    journeys: list[str]
    steps: list[int]
    time: float
    features: Any
    allowed: Any
    probs: Any
    action: Any
    explored: Any
    withheld: Any = None

    def __len__(self) -> int:
        return len(self.event_ids)

    def feature_matrix(self, names: tuple[str, ...]) -> NDArray[np.float64]:
        if isinstance(self.features, dict):
            return np.column_stack([np.asarray(self.features[f], np.float64) for f in names])
        return np.asarray(self.features, np.float64).reshape(len(self), len(names))


@dataclass
class RewardBlock:
    event_ids: list[str]
    time: float
    reward: list[float]
    terms: dict[str, list[float | None]]
    journey_end: list[str | None]

    def __len__(self) -> int:
        return len(self.event_ids)


def _timestamps(t: float, n: int) -> pa.Array:
    return pa.array(np.full(n, int(t * 1e6), dtype=np.int64), pa.int64()).cast(_TS)


def _timestamps_of(times: list[float]) -> pa.Array:
    micros = (np.asarray(times, dtype=np.float64) * 1e6).astype(np.int64)
    return pa.array(micros, pa.int64()).cast(_TS)


def _per_action(blocks: list[DecisionBlock], field: str, dtype: Any, k: int) -> NDArray[Any]:
    """The blocks' ``field`` (``(n, n_actions)`` each) as one column-major array: each
    column one contiguous run of memory for Arrow."""
    parts = [np.asarray(getattr(b, field), dtype).reshape(len(b), k) for b in blocks]
    return np.asfortranarray(np.concatenate(parts))


def decision_table(blocks: list[DecisionBlock], spec: LogSpec, schema: pa.Schema) -> pa.Table:
    """One Arrow table of decision blocks, in the decisions journal's schema: the
    single-event blocks first (converted together: one numpy call per field, not one per
    event), then the batches."""
    singles = [b for b in blocks if isinstance(b.features, list) and len(b) == 1]
    if singles:
        merged = DecisionBlock(
            [b.event_ids[0] for b in singles],
            [b.journeys[0] for b in singles],
            [b.steps[0] for b in singles],
            0.0,
            [b.features[0] for b in singles],
            [b.allowed[0] for b in singles],
            [b.probs[0] for b in singles],
            [b.action[0] for b in singles],
            [b.explored[0] for b in singles],
            [b.withheld[0] for b in singles] if spec.withheld else None,
        )
        stamps = [b.time for b in singles]
        blocks = [
            merged,
            *(b for b in blocks if not (isinstance(b.features, list) and len(b) == 1)),
        ]
    else:
        stamps = []
    ids = [e for b in blocks for e in b.event_ids]
    n = len(ids)
    k = len(spec.actions)
    allowed = _per_action(blocks, "allowed", bool, k)
    probs = _per_action(blocks, "probs", np.float64, k)
    action = np.concatenate([np.asarray(b.action, np.int64).reshape(len(b)) for b in blocks])
    explored = np.concatenate([np.asarray(b.explored, bool).reshape(len(b)) for b in blocks])
    features = np.asfortranarray(np.concatenate([b.feature_matrix(spec.features) for b in blocks]))
    event_ids = pa.array(ids, pa.string())
    if all(b.journeys is b.event_ids for b in blocks):  # each event a journey of its own
        journeys = event_ids
    else:
        journeys = pa.array([j for b in blocks for j in b.journeys], pa.string())
    out: dict[str, pa.Array] = {
        EVENT_ID: event_ids,
        JOURNEY: journeys,
        STEP: pa.array([s for b in blocks for s in b.steps], pa.int64()),
        TIMESTAMP: pa.concat_arrays(
            [_timestamps_of(stamps)] * bool(stamps)
            + [_timestamps(b.time, len(b)) for b in blocks[bool(stamps) :]]
        ),
    }
    no_consent = features[:, spec.features.index("consent")] == 0.0
    gated = set(spec.gated)
    for j, name in enumerate(spec.features):
        values = features[:, j]
        if name in gated:
            values = np.where(no_consent, 0.0, values)  # not kept, not even in memory
            out[name] = pa.array(values, pa.float64(), mask=no_consent)
        else:
            out[name] = pa.array(values, pa.float64())
    for j, name in enumerate(spec.eligible_columns):
        out[name] = pa.array(allowed[:, j], pa.bool_())
    if spec.withheld:
        withheld = _per_action(blocks, "withheld", bool, k)
        for j, name in enumerate(spec.withheld_columns):
            out[name] = pa.array(withheld[:, j], pa.bool_())
    names = pa.array(spec.actions, pa.string())
    out[ACTION] = pa.DictionaryArray.from_arrays(pa.array(action), names).cast(pa.string())
    out[PROPENSITY] = pa.array(probs[np.arange(n), action], pa.float64())
    for j, name in enumerate(spec.probability_columns):
        out[name] = pa.array(probs[:, j], pa.float64())
    out[EXPLORED] = pa.array(explored, pa.bool_())
    return pa.Table.from_arrays([out[f.name] for f in schema], schema=schema)


def reward_table(blocks: list[RewardBlock]) -> pa.Table:
    out: dict[str, pa.Array] = {
        EVENT_ID: pa.array([e for b in blocks for e in b.event_ids], pa.string()),
        TIMESTAMP: pa.concat_arrays([_timestamps(b.time, len(b)) for b in blocks]),
        REWARD: pa.array([r for b in blocks for r in b.reward], pa.float64()),
        JOURNEY_END: pa.array([e for b in blocks for e in b.journey_end], pa.string()),
    }
    for t in LEDGER_TERMS:
        out[term_column(t)] = pa.array([v for b in blocks for v in b.terms[t]], pa.float64())
    return pa.Table.from_arrays([out[f.name] for f in REWARDS_SCHEMA], schema=REWARDS_SCHEMA)


class JournalWriter:
    """A bounded queue of blocks and the thread that writes them to rotated files.

    ``on_written(stream, rows)`` and ``on_dropped(stream, rows)`` report to the metrics.
    """

    def __init__(
        self,
        log_dir: Path,
        worker: str,
        spec: LogSpec,
        *,
        rows_per_file: int,
        flush_seconds: float,
        queue_rows: int,
        on_written: Callable[[str, int], None] | None = None,
        on_dropped: Callable[[str, int], None] | None = None,
    ) -> None:
        self.worker = worker
        self.spec = spec
        self.rows_per_file = rows_per_file
        self.flush_seconds = flush_seconds
        self.queue_rows = queue_rows
        self._dirs = {DECISIONS: log_dir / DECISIONS, REWARDS: log_dir / REWARDS}
        for folder in self._dirs.values():
            folder.mkdir(parents=True, exist_ok=True)
        self._schema = decisions_schema(spec)
        self._queue: collections.deque[tuple[str, Any]] = collections.deque()
        self._cond = threading.Condition()
        self._queued = 0
        self._closing = False
        self._pending: dict[str, list[Any]] = {DECISIONS: [], REWARDS: []}
        self._pending_rows = {DECISIONS: 0, REWARDS: 0}
        self._first_at: dict[str, float | None] = {DECISIONS: None, REWARDS: None}
        self._files = {DECISIONS: 0, REWARDS: 0}
        self.dropped_rows = 0
        self.written_rows = 0
        self._last_warning = 0.0
        self._on_written = on_written or (lambda stream, rows: None)
        self._on_dropped = on_dropped or (lambda stream, rows: None)
        self._thread = threading.Thread(target=self._run, name="journal-writer", daemon=True)
        self._thread.start()

    @property
    def queued_rows(self) -> int:
        return self._queued

    def put(self, stream: str, block: DecisionBlock | RewardBlock) -> bool:
        """Queue a block; False (and the rows counted as dropped) if the queue is full or
        the writer is closing."""
        n = len(block)
        with self._cond:
            if self._closing or self._queued + n > self.queue_rows:
                self.dropped_rows += n
                dropped = True
            else:
                self._queue.append((stream, block))
                self._queued += n
                self._cond.notify()
                dropped = False
        if dropped:
            self._on_dropped(stream, n)
            now = time.monotonic()
            if now - self._last_warning > 10.0:
                self._last_warning = now
                log.warning(
                    "the log writer cannot keep up: %d %s rows dropped (%d in all since start; "
                    "queue holds %d of %d rows)",
                    n,
                    stream,
                    self.dropped_rows,
                    self._queued,
                    self.queue_rows,
                )
        return not dropped

    def close(self, timeout: float = 60.0) -> None:
        """Stop taking rows, write every queued row, and stop the thread."""
        with self._cond:
            self._closing = True
            self._cond.notify()
        self._thread.join(timeout)

    # ------------------------------------------------------------ the thread
    def _run(self) -> None:
        while True:
            with self._cond:
                if not self._queue and not self._closing:
                    self._cond.wait(self._wait_time())
                items = list(self._queue)
                self._queue.clear()
                closing = self._closing
            for stream in (DECISIONS, REWARDS):
                blocks = [b for kind, b in items if kind == stream]
                if blocks:
                    self._convert(stream, blocks)
            with self._cond:
                self._queued -= sum(len(b) for _, b in items)
            now = time.monotonic()
            for stream in (DECISIONS, REWARDS):
                first = self._first_at[stream]
                due = first is not None and now - first >= self.flush_seconds
                if self._pending_rows[stream] and (
                    closing or due or self._pending_rows[stream] >= self.rows_per_file
                ):
                    self._write(stream)
            if closing:
                with self._cond:
                    if not self._queue:
                        return

    def _wait_time(self) -> float:
        firsts = [t for t in self._first_at.values() if t is not None]
        if not firsts:
            return self.flush_seconds
        return max(0.01, min(firsts) + self.flush_seconds - time.monotonic())

    def _convert(self, stream: str, blocks: list[Any]) -> None:
        """Blocks into an Arrow table now, a few at a time: the request handlers share the
        interpreter with this thread, and small conversions keep their waits short."""
        rows = sum(len(b) for b in blocks)
        try:
            if stream == DECISIONS:
                table = decision_table(blocks, self.spec, self._schema)
            else:
                table = reward_table(blocks)
        except Exception:  # a conversion that fails must not stop the writer: count, say
            log.exception("converting %d %s rows failed; they are dropped", rows, stream)
            self.dropped_rows += rows
            self._on_dropped(stream, rows)
            return
        self._pending[stream].append(table)
        self._pending_rows[stream] += rows
        if self._first_at[stream] is None:
            self._first_at[stream] = time.monotonic()

    def _write(self, stream: str) -> None:
        tables = self._pending[stream]
        self._pending[stream] = []
        rows = self._pending_rows[stream]
        self._pending_rows[stream] = 0
        self._first_at[stream] = None
        try:
            table = pa.concat_tables(tables)
            path = self._dirs[stream] / f"{self.worker}-{self._files[stream]:06d}.parquet"
            self._files[stream] += 1
            tmp = path.with_suffix(".parquet.tmp")
            pq.write_table(table, tmp)
            os.replace(tmp, path)
        except Exception:  # a write that fails must not stop the writer: count and say
            log.exception("writing %d %s rows failed; they are dropped", rows, stream)
            self.dropped_rows += rows
            self._on_dropped(stream, rows)
            return
        self.written_rows += rows
        self._on_written(stream, rows)
