"""Read and write decision logs: Parquet by default, CSV accepted, a folder as one table.

- :func:`write_log` writes a table as one Parquet file (the spec in its key-value
  metadata), as CSV (the spec is lost: a CSV is read back with the spec given, or one
  inferred from its column names), or, with ``rows_per_file``, as a folder of numbered
  Parquet files (rotated files, as a service writes them).
- :func:`read_log` reads a file or a folder of ``*.parquet`` / ``*.csv`` files (in name
  order, as one table), takes the spec from the metadata (every file must agree), else
  from ``spec``, else infers it from the columns (with ``scenario``, in that scenario's
  names and order), conforms the table to the format's types and validates it
  (:mod:`agents.logs.validate`).
- :func:`from_dataframe` turns a shop's own pandas table, its columns already named as
  the format says, into a validated log.

pyarrow does all the reading and writing.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from agents.logs.schema import PROPENSITY, LogSchemaError, LogSpec
from agents.logs.validate import LogInfo, LogValidationError, conform, validate
from envs.scenario import Scenario

SUFFIXES = (".parquet", ".csv")


class LogReadError(ValueError):
    """A log cannot be read: no such file, no log file in a folder, files that disagree."""


@dataclass(frozen=True)
class DecisionLog:
    """A validated log: the table (conformed to ``spec``), its spec, what validation found,
    and where it came from (``files``)."""

    table: pa.Table
    spec: LogSpec
    info: LogInfo
    files: tuple[Path, ...] = ()


def write_log(
    table: pa.Table,
    path: str | os.PathLike[str],
    *,
    format: str | None = None,
    rows_per_file: int | None = None,
) -> Path:
    """Write ``table`` (a log, its spec in its schema metadata) to ``path``.

    ``format`` is ``parquet`` or ``csv`` (default: from the suffix, Parquet if none). With
    ``rows_per_file``, ``path`` is a folder and the rows go to ``part-00000.parquet``,
    ``part-00001.parquet``... of at most that many rows each. Returns ``path``.
    """
    out = Path(path)
    kind = format or ("csv" if out.suffix.lower() == ".csv" else "parquet")
    if kind not in ("parquet", "csv"):
        raise ValueError(f"format must be 'parquet' or 'csv', got {kind!r}")
    if rows_per_file is not None:
        if rows_per_file < 1:
            raise ValueError(f"rows_per_file must be >= 1, got {rows_per_file}")
        out.mkdir(parents=True, exist_ok=True)
        for i, start in enumerate(range(0, max(table.num_rows, 1), rows_per_file)):
            part = table.slice(start, rows_per_file)
            write_log(part, out / f"part-{i:05d}.{kind}", format=kind)
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    if kind == "csv":
        pacsv.write_csv(table, out, pacsv.WriteOptions(quoting_header="none"))
    else:
        pq.write_table(table, out)
    return out


def log_files(path: str | os.PathLike[str]) -> list[Path]:
    """The log files at ``path``: the file itself, or a folder's ``*.parquet`` and
    ``*.csv`` files in name order."""
    where = Path(path)
    if where.is_dir():
        files = sorted(p for p in where.iterdir() if p.suffix.lower() in SUFFIXES)
        if not files:
            raise LogReadError(f"{where} holds no log file (*.parquet or *.csv)")
        return files
    if not where.is_file():
        raise LogReadError(f"{where}: no such file or folder")
    if where.suffix.lower() not in SUFFIXES:
        raise LogReadError(f"{where}: a log is a .parquet or .csv file, or a folder of them")
    return [where]


def _read_file(path: Path) -> pa.Table:
    try:
        if path.suffix.lower() == ".csv":
            return pacsv.read_csv(
                path, convert_options=pacsv.ConvertOptions(strings_can_be_null=True)
            )
        return pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as err:
        raise LogReadError(f"{path}: not a readable {path.suffix[1:]} file ({err})") from None


def read_log(
    path: str | os.PathLike[str],
    *,
    spec: LogSpec | None = None,
    scenario: Scenario | None = None,
    require_propensity: bool = False,
) -> DecisionLog:
    """Read and validate the log at ``path`` (a file or a folder of files).

    The spec is the one in the files' metadata; else ``spec``; else inferred from the
    columns (with ``scenario``: that scenario's feature and action names and order). A log
    without propensities is read with ``propensities = "none"`` unless
    ``require_propensity``.

    Raises:
        LogReadError: no such file, no log file in the folder, unreadable file, files of
            different logs.
        agents.logs.validate.LogValidationError: the log breaks the format (column, rows).
        agents.logs.schema.LogSchemaError: the metadata is of another schema version or
            malformed.
    """
    files = log_files(path)
    tables = [_read_file(f) for f in files]
    specs = [LogSpec.from_metadata(t.schema.metadata) for t in tables]
    found = next((s for s in specs if s is not None), None)
    for f, s in zip(files, specs, strict=True):
        if s is not None and s != found:
            raise LogReadError(
                f"{f} belongs to another log than {files[specs.index(found)]} (its features, "
                "actions or source differ): keep one log per folder"
            )
    chosen = found or spec
    if chosen is None:
        try:
            chosen = LogSpec.infer(tables[0].column_names, scenario=scenario)
        except LogSchemaError as err:
            raise LogValidationError(None, f"cannot infer the log's spec: {err}") from None
    parts = [conform(t, chosen) for t in tables]
    table = pa.concat_tables(parts) if len(parts) > 1 else parts[0]
    return _checked(table, chosen, require_propensity, tuple(files))


def _checked(
    table: pa.Table, spec: LogSpec, require_propensity: bool, files: tuple[Path, ...] = ()
) -> DecisionLog:
    info = validate(table, spec, require_propensity=require_propensity)
    if not info.propensity_logged and spec.propensities != "none":
        spec = spec.with_source(propensities="none")
    table = table.replace_schema_metadata(spec.metadata())
    return DecisionLog(table=table, spec=spec, info=info, files=files)


def from_table(
    table: pa.Table, spec: LogSpec | None = None, *, require_propensity: bool = False
) -> DecisionLog:
    """A validated log from an Arrow table (its metadata's spec, else ``spec``, else one
    inferred from its columns)."""
    chosen = LogSpec.from_metadata(table.schema.metadata) or spec
    if chosen is None:
        chosen = LogSpec.infer(table.column_names)
    return _checked(conform(table, chosen), chosen, require_propensity)


def from_dataframe(
    frame: Any,
    spec: LogSpec | None = None,
    *,
    scenario: Scenario | None = None,
    require_propensity: bool = False,
    **source: Any,
) -> DecisionLog:
    """A validated log from a pandas DataFrame whose columns are named as the format says.

    The spec is ``spec``, else inferred from the columns (with ``scenario``: its names);
    ``source`` sets the spec's source fields (``logger``, ``propensities``...). A frame
    without a ``propensity`` column becomes a log without propensities.
    """
    table = pa.Table.from_pandas(frame, preserve_index=False)
    chosen = spec or LogSpec.infer(table.column_names, scenario=scenario)
    if source:
        chosen = chosen.with_source(**source)
    if PROPENSITY not in table.column_names and chosen.propensities != "none":
        chosen = chosen.with_source(propensities="none")
    return _checked(conform(table, chosen), chosen, require_propensity)
