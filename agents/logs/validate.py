"""Check a decision log against its spec: every error names the column and the rows.

Two steps, both raising :class:`LogValidationError`:

- :func:`conform` fixes the table's structure: every required column is there (the
  features, one ``eligible_<action>`` per action, ``journey``, ``step``, ``action``,
  ``reward``, ``journey_end``), no column is unknown (a feature the spec does not list, an
  action's column for an action it does not list, a term that is not a ledger term), and
  each column is cast to the format's type (a value that cannot be read is named). A
  missing ``propensity`` column is added empty, the log then says it has no propensities.
- :func:`validate` checks the values:

  - ``journey`` non-empty; ``step`` strictly increasing within each journey (rows of
    different journeys may interleave, as a service writes them);
  - the first action (``wait``, an A/B test's control) eligible on every row;
  - ``action`` one of the spec's actions, and eligible at that row;
  - ``withheld_<action>`` (if logged) false wherever the action is eligible: the budget
    withholds only what it keeps from being offered;
  - ``propensity`` present, in (0, 1] (unless the log has none at all: then off-policy
    evaluation estimates them, see ``propensities``);
  - ``p_<action>`` (if logged) in [0, 1], 0 for every ineligible action, summing to 1 over
    the eligible ones, and equal to ``propensity`` for the action taken;
  - ``reward`` and terms finite; when every ledger term is logged, ``reward`` is their
    signed sum (``envs.ledger.profit``);
  - features finite where not null; a consent-gated feature of a shopper without consent
    (``consent`` = 0) is null: the format does not store it;
  - ``journey_end`` one of ``purchase``, ``abandoned``, ``horizon`` on each journey's last
    row and null on every other row.

It returns a :class:`LogInfo`, which says among other things whether the log is
**single-decision** (one row per journey: an A/B test) — the same format, detected here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numpy.typing import NDArray

from agents.logs.schema import (
    ACTION,
    ELIGIBLE_PREFIX,
    END_EVENTS,
    FIXED_COLUMNS,
    JOURNEY,
    JOURNEY_END,
    PROBABILITY_PREFIX,
    PROPENSITY,
    REWARD,
    STEP,
    TERM_PREFIX,
    TIMESTAMP,
    WITHHELD_PREFIX,
    LogSpec,
)
from envs.ledger import LEDGER_TERMS, profit

SUM_TOLERANCE = 1e-6
REWARD_TOLERANCE = 1e-6
SHOWN_ROWS = 5
OPTIONAL_COLUMNS = (TIMESTAMP, PROPENSITY)


class LogValidationError(ValueError):
    """A log breaks the format. ``column`` names the column (None for the table or its
    metadata), ``rows`` the first bad rows (0-based, in the table's order), ``n_bad``
    how many rows are bad in all."""

    def __init__(
        self, column: str | None, problem: str, rows: Sequence[int] = (), n_bad: int = 0
    ) -> None:
        self.column = column
        self.rows = [int(r) for r in rows[:SHOWN_ROWS]]
        self.n_bad = max(n_bad, len(rows))
        self.problem = problem
        where = "log" if column is None else f"column {column!r}"
        if self.rows:
            more = (
                f" (and {self.n_bad - len(self.rows)} more)" if self.n_bad > len(self.rows) else ""
            )
            label = "row" if self.n_bad == 1 else "rows"
            where += f", {label} {', '.join(map(str, self.rows))}{more}"
        super().__init__(f"{where}: {problem}")


@dataclass(frozen=True)
class LogInfo:
    """What validation found: sizes, and what the log holds."""

    n_rows: int
    n_journeys: int
    single_decision: bool
    propensity_logged: bool
    probabilities_logged: bool


def _bad(column: str, problem: str, flags: NDArray[np.bool_]) -> LogValidationError:
    rows = np.flatnonzero(flags)
    return LogValidationError(column, problem, rows[:SHOWN_ROWS].tolist(), len(rows))


# ---------------------------------------------------------------- structure


def conform(table: pa.Table, spec: LogSpec) -> pa.Table:
    """``table`` with the columns of ``spec`` in order, cast to the format's types.

    Raises:
        LogValidationError: a required column is missing, a column is unknown, or a value
            cannot be read as its column's type.
    """
    schema = spec.arrow_schema()
    present = set(table.column_names)
    for name in table.column_names:
        if table.column_names.count(name) > 1:
            raise LogValidationError(name, "the column appears twice")
    expected = set(schema.names)
    unknown = [c for c in table.column_names if c not in expected]
    if unknown:
        raise LogValidationError(unknown[0], _unknown_reason(unknown[0], spec) + _list(unknown))
    missing = [n for n in schema.names if n not in present and n not in OPTIONAL_COLUMNS]
    if missing:
        raise LogValidationError(missing[0], "required column missing" + _list(missing))
    n = table.num_rows
    arrays = []
    for f in schema:
        if f.name not in present:
            arrays.append(pa.nulls(n, f.type))
            continue
        arrays.append(_cast(table.column(f.name), f))
    return pa.Table.from_arrays(arrays, schema=schema)


def _list(names: list[str]) -> str:
    return "" if len(names) == 1 else f" (all: {names})"


def _unknown_reason(column: str, spec: LogSpec) -> str:
    if column.startswith((ELIGIBLE_PREFIX, WITHHELD_PREFIX, PROBABILITY_PREFIX)):
        return f"not an action of the log (actions: {list(spec.actions)})"
    if column.startswith(TERM_PREFIX):
        known = [f"{TERM_PREFIX}{t}" for t in LEDGER_TERMS]
        return f"not a ledger term column ({known})"
    where = f"scenario {spec.scenario!r}" if spec.scenario else "the log's features"
    return (
        f"unknown column: not one of {where} ({len(spec.features)} known) nor a log "
        f"column ({list(FIXED_COLUMNS)}, eligible_/withheld_/p_/term_<name>)"
    )


def _cast(column: pa.ChunkedArray, field: pa.Field) -> pa.ChunkedArray:
    if column.type == field.type:
        return column
    source = column
    if pa.types.is_dictionary(column.type):
        source = column.cast(column.type.value_type)
    try:
        if pa.types.is_timestamp(field.type):
            return _timestamps(source, field.type)
        return source.cast(field.type)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as err:
        values = source.to_pylist()
        bad = [i for i, v in enumerate(values) if v is not None and not _readable(v, field.type)]
        raise LogValidationError(
            field.name, f"cannot be read as {field.type} ({err})", bad, len(bad)
        ) from None


def _timestamps(column: pa.ChunkedArray, kind: pa.DataType) -> pa.ChunkedArray:
    """Times as UTC timestamps: with a zone as given, without one taken as UTC."""
    if pa.types.is_timestamp(column.type) and column.type.tz is None:
        return pc.assume_timezone(column, "UTC").cast(kind)
    try:
        return column.cast(kind)
    except pa.ArrowInvalid:
        if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
            raise
    # ISO 8601 strings, some or all without a zone offset: one by one
    parsed: list[datetime | None] = []
    for text in column.to_pylist():
        if text is None:
            parsed.append(None)
            continue
        try:
            when = datetime.fromisoformat(text)
        except ValueError:
            raise pa.ArrowInvalid(f"{text!r} is not an ISO 8601 time") from None
        parsed.append(when if when.tzinfo else when.replace(tzinfo=UTC))
    return pa.chunked_array([pa.array(parsed, kind)])


def _readable(value: Any, kind: pa.DataType) -> bool:
    try:
        column = pa.chunked_array([pa.array([value])])
        _timestamps(column, kind) if pa.types.is_timestamp(kind) else column.cast(kind)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        return False
    return True


# ---------------------------------------------------------------- values


def journey_codes(table: pa.Table) -> tuple[NDArray[np.int64], int]:
    """Each row's journey as a code 0..n_journeys-1 (in order of first appearance)."""
    encoded = pc.dictionary_encode(table.column(JOURNEY)).combine_chunks()
    return encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64), len(encoded.dictionary)


def _floats(table: pa.Table, name: str) -> NDArray[np.float64]:
    return table.column(name).to_numpy().astype(np.float64)


def _nulls(table: pa.Table, name: str) -> NDArray[np.bool_]:
    return np.asarray(table.column(name).is_null().to_numpy(zero_copy_only=False), dtype=bool)


def validate(table: pa.Table, spec: LogSpec, *, require_propensity: bool = True) -> LogInfo:
    """Check a conformed table's values (see the module docstring).

    With ``require_propensity`` false, a log whose ``propensity`` column is empty (no row
    has one) passes, and :attr:`LogInfo.propensity_logged` says it has none; a column
    with some rows empty never passes.

    Raises:
        LogValidationError: the first problem found, with its column and rows.
    """
    n = table.num_rows
    if n == 0:
        raise LogValidationError(None, "the log has no rows")
    if table.schema.names != spec.columns:
        table = conform(table, spec)
    for field in spec.arrow_schema():
        if not field.nullable and table.column(field.name).null_count:
            raise _bad(
                field.name,
                "empty value in a column that needs one on every row",
                _nulls(table, field.name),
            )
    journeys = table.column(JOURNEY)
    empty = np.asarray(pc.equal(pc.utf8_length(journeys), 0).to_numpy(zero_copy_only=False))
    if empty.any():
        raise _bad(JOURNEY, "empty journey key", empty)
    codes, n_journeys = journey_codes(table)
    order = np.argsort(codes, kind="stable")
    first = np.ones(n, dtype=bool)
    first[1:] = codes[order][1:] != codes[order][:-1]
    last_sorted = np.ones(n, dtype=bool)
    last_sorted[:-1] = first[1:]
    is_last = np.zeros(n, dtype=bool)
    is_last[order] = last_sorted

    steps = table.column(STEP).to_numpy()
    back = np.zeros(n, dtype=bool)
    back[order[1:]] = ~first[1:] & (steps[order][1:] <= steps[order][:-1])
    if back.any():
        raise _bad(STEP, "steps must strictly increase within a journey", back)

    eligible = np.column_stack(
        [table.column(c).to_numpy(zero_copy_only=False) for c in spec.eligible_columns]
    ).astype(bool)
    default_ok = eligible[:, 0]
    if not default_ok.all():
        raise _bad(
            spec.eligible_columns[0],
            f"the first action ({spec.actions[0]!r}: wait, or an A/B test's control) must be "
            "eligible at every decision: it is what a policy does when nothing else is allowed",
            ~default_ok,
        )
    action_idx = _action_indices(table, spec)
    rows = np.arange(n)
    taken_ok = eligible[rows, action_idx]
    if not taken_ok.all():
        raise _bad(
            ACTION, "the action taken was not eligible (its eligible_ column is false)", ~taken_ok
        )

    if spec.withheld:
        _check_withheld(table, spec, eligible)

    propensity = _floats(table, PROPENSITY)
    missing = np.isnan(propensity)
    logged = not missing.all()
    if missing.any() and (logged or require_propensity):
        raise _bad(
            PROPENSITY,
            "propensity missing: every decision needs the logging policy's probability of "
            "the action taken (or leave the whole column empty to have it estimated)",
            missing,
        )
    if logged:
        out = (propensity <= 0.0) | (propensity > 1.0 + SUM_TOLERANCE)
        if out.any():
            raise _bad(
                PROPENSITY,
                f"propensity must be in (0, 1] for the action taken, got "
                f"{propensity[out][:SHOWN_ROWS].tolist()}",
                out,
            )
    if spec.probabilities:
        _check_probabilities(table, spec, eligible, action_idx, propensity if logged else None)

    reward = _floats(table, REWARD)
    if not np.isfinite(reward).all():
        raise _bad(REWARD, "reward must be a finite number of EUR", ~np.isfinite(reward))
    if spec.terms:
        terms = np.vstack([_floats(table, c) for c in spec.term_columns])
        for name, values in zip(spec.term_columns, terms, strict=True):
            if not np.isfinite(values).all():
                raise _bad(name, "terms must be finite numbers of EUR", ~np.isfinite(values))
        if spec.terms == LEDGER_TERMS:
            off = np.abs(profit(terms) - reward) > REWARD_TOLERANCE * np.maximum(
                1.0, np.abs(reward)
            )
            if off.any():
                raise _bad(
                    REWARD,
                    "reward is not the signed sum of the ledger terms "
                    "(revenue - costs + future_value)",
                    off,
                )
    _check_features(table, spec)
    _check_ends(table, is_last)
    return LogInfo(
        n_rows=n,
        n_journeys=n_journeys,
        single_decision=n_journeys == n,
        propensity_logged=logged,
        probabilities_logged=spec.probabilities,
    )


def _check_withheld(table: pa.Table, spec: LogSpec, eligible: NDArray[np.bool_]) -> None:
    for j, name in enumerate(spec.withheld_columns):
        both = np.asarray(table.column(name).to_numpy(zero_copy_only=False), bool) & eligible[:, j]
        if both.any():
            raise _bad(
                name,
                f"{spec.actions[j]!r} is both eligible and withheld by the budget: the budget "
                "withholds only an action it keeps from being offered (eligible_ false)",
                both,
            )


def _action_indices(table: pa.Table, spec: LogSpec) -> NDArray[np.int64]:
    actions = table.column(ACTION)
    idx = pc.index_in(actions, value_set=pa.array(spec.actions)).to_numpy(zero_copy_only=False)
    unknown = np.isnan(idx.astype(np.float64))
    if unknown.any():
        names = sorted({str(v) for v in np.asarray(actions.to_pylist(), dtype=object)[unknown]})
        raise _bad(
            ACTION, f"unknown action(s) {names}; the log's actions: {list(spec.actions)}", unknown
        )
    return np.nan_to_num(idx.astype(np.float64)).astype(np.int64)


def _check_probabilities(
    table: pa.Table,
    spec: LogSpec,
    eligible: NDArray[np.bool_],
    action_idx: NDArray[np.int64],
    propensity: NDArray[np.float64] | None,
) -> None:
    probs = np.column_stack([_floats(table, c) for c in spec.probability_columns])
    for j, name in enumerate(spec.probability_columns):
        col = probs[:, j]
        bad = np.isnan(col) | (col < 0.0) | (col > 1.0 + SUM_TOLERANCE)
        if bad.any():
            raise _bad(name, "a logged probability must be a number in [0, 1]", bad)
        given = (col > 0.0) & ~eligible[:, j]
        if given.any():
            raise _bad(name, "an ineligible action must have probability 0", given)
    total = probs.sum(axis=1)
    off = np.abs(total - 1.0) > SUM_TOLERANCE
    if off.any():
        raise _bad(
            PROBABILITY_PREFIX + "*",
            f"the probabilities of the eligible actions must sum to 1, got "
            f"{np.round(total[off][:SHOWN_ROWS], 6).tolist()}",
            off,
        )
    if propensity is not None:
        taken = probs[np.arange(len(probs)), action_idx]
        differ = np.abs(taken - propensity) > SUM_TOLERANCE
        if differ.any():
            raise _bad(
                PROPENSITY, "propensity differs from the p_ column of the action taken", differ
            )


def _check_features(table: pa.Table, spec: LogSpec) -> None:
    for name in spec.features:
        values = _floats(table, name)
        bad = np.isinf(values)
        if bad.any():
            raise _bad(name, "a feature must be a finite number or null", bad)
    if "consent" in spec.features and spec.gated:
        no_consent = _floats(table, "consent") == 0.0
        for name in spec.gated:
            stored = no_consent & ~_nulls(table, name)
            if stored.any():
                raise _bad(
                    name,
                    "a consent-gated feature is stored for a shopper without consent "
                    "(consent = 0): the format keeps it null",
                    stored,
                )


def _check_ends(table: pa.Table, is_last: NDArray[np.bool_]) -> None:
    ends = table.column(JOURNEY_END)
    null = _nulls(table, JOURNEY_END)
    known = np.asarray(
        pc.is_in(ends, value_set=pa.array(END_EVENTS)).to_numpy(zero_copy_only=False)
    )
    wrong = ~null & ~known
    if wrong.any():
        raise _bad(JOURNEY_END, f"must be one of {list(END_EVENTS)} or null", wrong)
    early = ~null & ~is_last
    if early.any():
        raise _bad(
            JOURNEY_END,
            "a journey's end is set on a row that is not its last: only the last row of a "
            "journey says how it ended",
            early,
        )
    open_end = null & is_last
    if open_end.any():
        raise _bad(
            JOURNEY_END,
            "the journey's last row has no end event: a journey still under way cannot be "
            "evaluated (drop it, or log it once it ended)",
            open_end,
        )
