"""The start of the apps with a typed schema: their options, or ``error: ...`` and exit 2."""

from __future__ import annotations

import sys
from typing import NoReturn, TypeVar

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue, OmegaConfBaseException

T = TypeVar("T")


def fail(message: str) -> NoReturn:
    """Print ``error: message`` on stderr and exit with status 2 (bad input)."""
    print(f"error: {message}", file=sys.stderr, flush=True)
    raise SystemExit(2)


def options_of(cfg: DictConfig, schema: type[T]) -> T:
    """The options of a config composed on ``schema`` (a dataclass of
    :mod:`experiments.config.app_schemas`), checked by its ``__post_init__``. A missing
    required value or a failed check exits with status 2, naming the option."""
    try:
        options = OmegaConf.to_object(cfg)
    except MissingMandatoryValue as err:
        fail(f"{err.full_key} is required: give {err.full_key}=...")
    except OmegaConfBaseException as err:
        fail(f"{err.full_key}: {err.msg}" if err.full_key else str(err.msg))
    except ValueError as err:
        fail(str(err))
    if not isinstance(options, schema):
        fail(f"the config is not a {schema.__name__}")
    return options
