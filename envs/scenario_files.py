"""Shipped scenarios by name, and scenario files by path.

The shipped scenarios are the YAML files of the Hydra config group ``conf/scenario/``
(package data of the ``conf`` package):
one source for Hydra sweeps and for ``gymnasium.make(..., scenario="black_friday")``.
A file may start from another of its folder with a Hydra defaults list
(``defaults: [default, _self_]``): its own keys are merged over the named file, maps
key by key and lists replaced whole, as Hydra composes them.

Reading YAML needs PyYAML (installed with concede); the simulator itself does not.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import concede_conf
from envs.scenario import Scenario, ScenarioError

SCENARIO_DIR_ENV = "CONCEDE_SCENARIO_DIR"


def scenario_dir() -> Path:
    """The folder of shipped scenarios (``$CONCEDE_SCENARIO_DIR`` overrides it)."""
    override = os.environ.get(SCENARIO_DIR_ENV)
    if override:
        return Path(override)
    return concede_conf.folder("scenario")


def available_scenarios() -> list[str]:
    """Names of the shipped scenarios, sorted."""
    return sorted(p.stem for p in scenario_dir().glob("*.yaml"))


def load_scenario(name_or_path: str | os.PathLike[str]) -> Scenario:
    """A shipped scenario by name (``"default"``) or a scenario YAML file by path."""
    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml"):
        path = scenario_dir() / f"{name_or_path}.yaml"
        if not path.is_file():
            raise ScenarioError(
                "scenario",
                f"no scenario named {str(name_or_path)!r}; available: {available_scenarios()}",
            )
    elif not path.is_file():
        raise ScenarioError("scenario", f"no scenario file at {str(path)!r}")
    return Scenario.from_dict(read_scenario_mapping(path))


def read_scenario_mapping(path: Path, _seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """The file's mapping with its defaults list resolved: each name is a scenario file
    beside it, else a shipped one (a file may not include itself)."""
    data = _read_yaml(path)
    defaults = data.pop("defaults", None)
    if defaults is None:
        return data
    if not isinstance(defaults, list):
        raise ScenarioError(f"{path.name}: defaults", "must be a list such as [default, _self_]")
    merged: dict[str, Any] = {}
    for entry in defaults:
        if entry == "_self_":
            merged = _merge(merged, data)
            continue
        if not isinstance(entry, str):
            raise ScenarioError(f"{path.name}: defaults", f"entries must be names, got {entry!r}")
        base = path.parent / f"{entry}.yaml"
        if not base.is_file():  # as Hydra's search path: beside the file, then shipped
            base = scenario_dir() / f"{entry}.yaml"
        if base.resolve() in _seen or base.resolve() == path.resolve():
            raise ScenarioError(f"{path.name}: defaults", f"{entry!r} includes itself")
        if not base.is_file():
            raise ScenarioError(
                f"{path.name}: defaults",
                f"no scenario {entry!r} beside it or shipped; shipped: {available_scenarios()}",
            )
        merged = _merge(merged, read_scenario_mapping(base, (*_seen, path.resolve())))
    if "_self_" not in defaults:
        merged = _merge(merged, data)
    return merged


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        import yaml
    except ImportError as err:  # pragma: no cover - PyYAML is a dependency of concede
        raise ImportError("reading scenario files needs PyYAML: pip install pyyaml") from err
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise ScenarioError(path.name, f"is not valid YAML: {err}") from None
    if not isinstance(data, dict):
        raise ScenarioError(path.name, "must hold a mapping of scenario fields")
    return data


def _merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out
