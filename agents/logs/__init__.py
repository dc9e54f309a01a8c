"""Decision logs: one open format (:mod:`.schema`), its reader and writer (:mod:`.io`),
its validator (:mod:`.validate`) and the simulator's logger (:mod:`.simulate`).

The format needs pyarrow and numpy; writing logs from the simulator needs ``envs`` too.
Nothing here imports ``experiments``: the decision service writes the same format.
"""

from agents.logs.io import (
    DecisionLog,
    LogReadError,
    from_dataframe,
    from_table,
    read_log,
    write_log,
)
from agents.logs.schema import LOG_SCHEMA_VERSION, LogSchemaError, LogSpec
from agents.logs.validate import LogInfo, LogValidationError, validate

__all__ = [
    "LOG_SCHEMA_VERSION",
    "DecisionLog",
    "LogInfo",
    "LogReadError",
    "LogSchemaError",
    "LogSpec",
    "LogValidationError",
    "from_dataframe",
    "from_table",
    "read_log",
    "validate",
    "write_log",
]
