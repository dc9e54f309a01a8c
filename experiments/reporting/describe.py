"""A merchant's one-line descriptions of policies and scenarios, for the report's lists."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import yaml

from agents.baselines import rules_dir
from agents.registry import BANDIT, INFORMED, NEVER, ORACLE, UPLIFT
from envs.scenario_files import scenario_dir

CURVES = {
    "boulware": "holds out: concedes little until late in the journey",
    "linear": "concedes steadily as the journey goes on",
    "conceder": "concedes early in the journey",
}


def _yaml_description(path: Path) -> str:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return ""
    return str(data.get("description", "")) if isinstance(data, dict) else ""


def describe_policy(name: str, learners: Iterable[str] = ()) -> str:
    """A merchant's one-line description of a policy name."""
    if name in learners:
        return f"trained agent ({name}): learned from simulated shoppers when to offer what"
    if name == NEVER:
        return "never offers anything"
    if name == ORACLE:
        return (
            "a cheat that sees each shopper's hidden willingness to buy: an upper bound, "
            "not something you can deploy"
        )
    if name == INFORMED:
        return (
            "a bound that knows each shopper's hidden type but not what chance will do: "
            "what better information use could reach, not something you can deploy"
        )
    if name == UPLIFT:
        return (
            "uplift targeting: models fitted on a randomised coupon test; the targeting "
            "rule that lifted profit most on held-out shoppers, one offer per shopper"
        )
    if name == BANDIT:
        return "contextual bandit: learned online which offer pays at cart abandonment"
    if name.startswith("always_"):
        what = name.removeprefix("always_").replace("_", " ")
        return f"offers {what} to every shopper about to leave, whenever allowed"
    if name in CURVES:
        return f"concession curve: {CURVES[name]}"
    rules = rules_dir() / f"{name.removeprefix('rules:')}.yaml"
    text = _yaml_description(rules) if rules.is_file() else ""
    return f"hand-written rules ({rules.name}): {text}" if text else name.replace("_", " ")


def describe_scenario(name: str) -> str:
    """The description in a shipped scenario's YAML file; empty if it has none."""
    return _yaml_description(scenario_dir() / f"{name}.yaml")
