"""Write a fitted scenario as a YAML file that states only what the fit changed.

The file starts from the scenario the fit started from with a defaults list, as the
README's "Scenarios" section shows (``defaults: [default, _self_]``), and holds only the
top-level fields that differ: within a block (``calibration``, ``funnel``...) only the
changed keys, since blocks merge key by key; a list (``segments``, ``products``) whole,
since lists are replaced whole. Beside a shipped scenario the defaults entry is its name;
elsewhere it is the start file's path relative to the new file, without ``.yaml``
(:func:`envs.scenario_files.read_scenario_mapping` resolves both). A comment header says
what was fitted to what, each parameter with its 95% interval, and which parameters the
data did not pin down (left at their start values).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from envs.scenario import Scenario
from envs.scenario_files import scenario_dir
from experiments.calibration.intervals import Interval


def _round(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 4)
    if isinstance(value, dict):
        return {k: _round(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_round(v) for v in value]
    return value


def changes(start: Scenario, fitted: Scenario) -> dict[str, Any]:
    """The top-level fields of ``fitted`` that differ from ``start`` (blocks: changed keys)."""
    a, b = start.to_dict(), _round(fitted.to_dict())
    out: dict[str, Any] = {}
    for key, value in b.items():
        before = _round(a[key])
        if value == before:
            continue
        if isinstance(value, dict):
            out[key] = {k: v for k, v in value.items() if before.get(k) != v}
        else:
            out[key] = value
    return out


def _dump(key: str, value: Any) -> str:
    def flow(v: Any) -> str:
        text: str = yaml.safe_dump(v, default_flow_style=True, width=10_000, sort_keys=False)
        text = text.strip()
        return text[:-3].strip() if text.endswith("\n...") else text  # a scalar's end mark

    if isinstance(value, list):
        return f"{key}:\n" + "".join(f"  - {flow(v)}\n" for v in value)
    if isinstance(value, dict):
        return f"{key}:\n" + "".join(f"  {k}: {flow(v)}\n" for k, v in value.items())
    return f"{key}: {flow(value)}\n"


def defaults_entry(start_path: Path, out: Path) -> str:
    """How the new file at ``out`` names the start file in its defaults list: by its name
    beside it or when it is a shipped scenario (found by name from anywhere, by Hydra and
    by :func:`envs.load_scenario`), else by its path relative to ``out``."""
    start_path, out = start_path.resolve(), out.resolve()
    if start_path.parent in (out.parent, scenario_dir().resolve()):
        return start_path.stem
    relative = os.path.relpath(start_path.with_suffix(""), out.parent)
    return Path(relative).as_posix()


def write_fitted(
    out: Path,
    start: Scenario,
    start_path: Path,
    fitted: Scenario,
    params: Sequence[Interval],
    provenance: Sequence[str] = (),
) -> Path:
    """Write the fitted scenario to ``out`` (see the module docstring); returns ``out``."""
    if out.resolve() == start_path.resolve():
        raise ValueError(f"{out}: the fitted file would overwrite the start scenario")
    diff = changes(start, fitted)
    lines = [
        f"# {fitted.name}: {start.name} fitted to a shop's data by "
        "`concede calibrate` (rewritten by it).",
        *(f"# {p}" for p in provenance),
        "# fitted parameters, 95% intervals (bootstrap over journeys):",
    ]
    for p in params:
        lines.append(f"#   {p.name}: {p.text()}")
        if p.reason:
            lines.append(f"#     because {p.reason}")
    body = [
        f"defaults: [{defaults_entry(start_path, out)}, _self_]\n",
        _dump("name", fitted.name),
    ]
    if "description" not in diff:
        body.append(_dump("description", f"{start.name} fitted to a shop's data"))
    body += [_dump(k, v) for k, v in diff.items() if k != "name"]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n" + "".join(body), encoding="utf-8")
    return out
