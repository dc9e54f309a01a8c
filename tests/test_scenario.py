"""Scenarios: every shipped file loads, round-trips, and malformed ones name the field."""

from __future__ import annotations

import copy
import json
import random
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

import envs
from envs.scenario import ConcessionKind, Scenario, ScenarioError
from envs.scenario_files import read_scenario_mapping, scenario_dir

# ------------------------------------------------------------------ shipped files


def test_default_is_shipped() -> None:
    names = envs.available_scenarios()
    assert "default" in names
    assert names == sorted(names)
    assert names == sorted(p.stem for p in scenario_dir().glob("*.yaml"))


def test_shipped_scenario_loads(shipped_name: str) -> None:
    scenario = envs.load_scenario(shipped_name)
    assert isinstance(scenario, Scenario)
    assert scenario.name == shipped_name  # the name inside matches the file name
    assert scenario.segments and scenario.products
    assert scenario.action_names[0] == "wait"
    assert scenario.n_actions == 1 + len(scenario.concessions)
    # the same file by path gives the same scenario
    assert envs.load_scenario(scenario_dir() / f"{shipped_name}.yaml") == scenario


def test_shipped_scenario_round_trips(shipped_name: str) -> None:
    scenario = envs.load_scenario(shipped_name)
    data = scenario.to_dict()
    json.dumps(data)  # JSON-ready
    again = Scenario.from_dict(data)
    assert again == scenario
    assert again.to_dict() == data
    assert again.digest() == scenario.digest()
    assert envs.load_scenario(shipped_name).digest() == scenario.digest()
    assert re.fullmatch(r"[0-9a-f]{64}", scenario.digest())


def test_round_trip_through_a_yaml_file(shipped_name: str, tmp_path: Path) -> None:
    scenario = envs.load_scenario(shipped_name)
    path = tmp_path / "copy.yml"
    path.write_text(yaml.safe_dump(scenario.to_dict()), encoding="utf-8")
    assert envs.load_scenario(path) == scenario
    assert envs.load_scenario(str(path)).digest() == scenario.digest()


def test_digest_ignores_key_order_and_tracks_every_value(default_dict: dict[str, Any]) -> None:
    base = Scenario.from_dict(default_dict)
    shuffled = list(default_dict.items())
    random.Random(0).shuffle(shuffled)
    assert Scenario.from_dict(dict(shuffled)).digest() == base.digest()

    changed = copy.deepcopy(default_dict)
    changed["products"][0]["price"] += 0.01
    assert Scenario.from_dict(changed).digest() != base.digest()
    assert base.replace(horizon=base.horizon + 1).digest() != base.digest()


def test_defaults_fill_optional_fields() -> None:
    data = {
        "name": "minimal",
        "segments": [
            {
                "name": "only",
                "share": 1.0,
                "valuation": 1.0,
                "valuation_spread": 0.1,
                "hesitation": 0.0,
                "hesitation_spread": 0.1,
                "abandon_hazard": 0.1,
                "return_probability": 0.3,
                "return_decay": 0.5,
                "price_sensitivity": 1.0,
                "shipping_sensitivity": 1.0,
                "speed_sensitivity": 0.0,
                "gift_sensitivity": 0.0,
                "voucher_sensitivity": 0.0,
                "help_value": 0.0,
                "tolerance": 2.0,
                "retarget_lift": 0.0,
            }
        ],
        "products": [
            {"name": "p", "price": 10, "unit_cost": 5, "shipping_fee": 0, "shipping_cost": 1}
        ],
        "concessions": [{"name": "free_ship", "kind": "free_shipping"}],
    }
    scenario = Scenario.from_dict(data)
    assert scenario.horizon == 64 and scenario.consent_rate == 0.7
    assert scenario.campaign_budget_per_1000 is None
    assert scenario.segments[0].consent_rate is None
    assert scenario.products[0].price == 10.0 and isinstance(scenario.products[0].price, float)
    assert scenario.concessions[0].kind is ConcessionKind.FREE_SHIPPING
    assert scenario.concessions[0].expiry_steps == 12
    assert Scenario.from_dict(scenario.to_dict()) == scenario


def test_defaults_list_merges_over_the_named_file(tmp_path: Path) -> None:
    (tmp_path / "default.yaml").write_text(
        (scenario_dir() / "default.yaml").read_text(encoding="utf-8"), encoding="utf-8"
    )
    base = envs.load_scenario(tmp_path / "default.yaml")
    (tmp_path / "child.yaml").write_text(
        "defaults: [default, _self_]\n"
        "name: child\n"
        "horizon: 32\n"
        "funnel: {buy_bias: 0.5}\n"
        "products:\n"
        "  - {name: only, price: 50.0, unit_cost: 20.0, shipping_fee: 3.0, shipping_cost: 4.0}\n",
        encoding="utf-8",
    )
    child = envs.load_scenario(tmp_path / "child.yaml")
    assert child.name == "child" and child.horizon == 32
    # maps are merged key by key
    assert child.funnel.buy_bias == 0.5
    assert child.funnel.appeal_scale == base.funnel.appeal_scale
    # lists are replaced whole
    assert [p.name for p in child.products] == ["only"]
    assert child.segments == base.segments and child.concessions == base.concessions


# ------------------------------------------------------------------ malformed mappings


def _error(data: dict[str, Any]) -> str:
    with pytest.raises(ScenarioError) as info:
        Scenario.from_dict(data)
    return str(info.value)


def test_unknown_top_level_key_lists_allowed(default_dict: dict[str, Any]) -> None:
    default_dict["colour"] = "blue"
    message = _error(default_dict)
    assert message.startswith("scenario: ")
    assert "'colour'" in message
    assert "allowed:" in message
    for field in ("segments", "products", "concessions", "horizon", "consent_rate"):
        assert f"'{field}'" in message


def test_unknown_nested_key_names_its_entry(default_dict: dict[str, Any]) -> None:
    default_dict["segments"][1]["patience"] = 3
    message = _error(default_dict)
    assert message.startswith("scenario.segments[1]: ")
    assert "'patience'" in message and "'tolerance'" in message

    default_dict["segments"][1].pop("patience")
    default_dict["funnel"]["apeal_scale"] = 0.2
    message = _error(default_dict)
    assert message.startswith("scenario.funnel: ") and "'appeal_scale'" in message


@pytest.mark.parametrize(
    ("where", "field", "path"),
    [
        ((), "name", "scenario.name"),
        ((), "segments", "scenario.segments"),
        (("segments", 0), "valuation", "scenario.segments[0].valuation"),
        (("products", 2), "unit_cost", "scenario.products[2].unit_cost"),
        (("concessions", 3), "kind", "scenario.concessions[3].kind"),
    ],
)
def test_missing_required_field(
    default_dict: dict[str, Any], where: tuple[Any, ...], field: str, path: str
) -> None:
    node: Any = default_dict
    for key in where:
        node = node[key]
    del node[field]
    assert _error(default_dict) == f"{path}: is required"


@pytest.mark.parametrize(
    ("where", "field", "value", "expected"),
    [
        (("segments", 0), "share", -1, "scenario.segments[0].share: must be in (0, inf), got -1.0"),
        (("segments", 0), "share", 0.0, "scenario.segments[0].share: must be in (0, inf), got 0.0"),
        ((), "consent_rate", 1.5, "scenario.consent_rate: must be in [0, 1], got 1.5"),
        (
            ("segments", 4),
            "consent_rate",
            1.5,
            "scenario.segments[4].consent_rate: must be in [0, 1], got 1.5",
        ),
        (
            ("products", 1),
            "unit_cost",
            70.0,
            "scenario.products[1].unit_cost: must be in [0, 70), got 70.0",
        ),
        (
            ("products", 1),
            "unit_cost",
            99,
            "scenario.products[1].unit_cost: must be in [0, 70), got 99.0",
        ),
        (("products", 0), "price", 0, "scenario.products[0].price: must be in (0, 1e+06], got 0.0"),
        ((), "horizon", 1, "scenario.horizon: must be in [2, 10000], got 1"),
        (
            ("concessions", 0),
            "magnitude",
            0.95,
            "scenario.concessions[0].magnitude: must be in [0, 0.9], got 0.95",
        ),
        (
            ("funnel",),
            "appeal_scale",
            0.0,
            "scenario.funnel.appeal_scale: must be in (0, 10], got 0.0",
        ),
        (
            ("live_agents",),
            "session_steps",
            0,
            "scenario.live_agents.session_steps: must be in [1, 1000], got 0",
        ),
        (
            ("segments", 2),
            "valuation",
            float("nan"),
            "scenario.segments[2].valuation: must be finite, got nan",
        ),
    ],
)
def test_out_of_range_value_names_field_and_range(
    default_dict: dict[str, Any], where: tuple[Any, ...], field: str, value: Any, expected: str
) -> None:
    node: Any = default_dict
    for key in where:
        node = node[key]
    node[field] = value
    assert _error(default_dict) == expected


@pytest.mark.parametrize(
    ("where", "field", "value", "path", "problem"),
    [
        (("segments", 0), "share", "a lot", "scenario.segments[0].share", "must be a number"),
        (("segments", 0), "share", True, "scenario.segments[0].share", "must be a number"),
        (("products", 0), "price", None, "scenario.products[0].price", "must be a number"),
        (
            (),
            "campaign_budget_per_1000",
            "plenty",
            "scenario.campaign_budget_per_1000",
            "must be a number",
        ),
        ((), "horizon", "64", "scenario.horizon", "must be a whole number"),
        ((), "horizon", 64.0, "scenario.horizon", "must be a whole number"),
        ((), "horizon", False, "scenario.horizon", "must be a whole number"),
        (
            ("concessions", 0),
            "once_per_shopper",
            "yes",
            "scenario.concessions[0].once_per_shopper",
            "must be true or false",
        ),
        ((), "segments", {"name": "x"}, "scenario.segments", "must be a list"),
        ((), "funnel", [1, 2], "scenario.funnel", "must be a mapping"),
        (("segments",), 1, "loyal", "scenario.segments[1]", "must be a mapping"),
        ((), "name", 7, "scenario.name", "must be a string"),
        ((), "consent_rate", float("inf"), "scenario.consent_rate", "must be finite"),
    ],
)
def test_wrong_type_names_field(
    default_dict: dict[str, Any],
    where: tuple[Any, ...],
    field: Any,
    value: Any,
    path: str,
    problem: str,
) -> None:
    node: Any = default_dict
    for key in where:
        node = node[key]
    node[field] = value
    message = _error(default_dict)
    assert message.startswith(f"{path}: {problem}"), message


def test_unknown_concession_kind_lists_kinds(default_dict: dict[str, Any]) -> None:
    default_dict["concessions"][2]["kind"] = "bribe"
    message = _error(default_dict)
    assert message.startswith("scenario.concessions[2].kind: must be one of ")
    assert "'bribe'" in message
    for kind in ConcessionKind:
        assert repr(kind.value) in message


def test_magnitude_must_fit_the_kind(default_dict: dict[str, Any]) -> None:
    default_dict["concessions"][3]["magnitude"] = 2.0  # free_shipping
    message = _error(default_dict)
    assert message.startswith("scenario.concessions[3].magnitude: must be 0 for kind free_shipping")


@pytest.mark.parametrize("group", ["segments", "products", "concessions"])
def test_duplicate_names(default_dict: dict[str, Any], group: str) -> None:
    entries = default_dict[group]
    entries.append(copy.deepcopy(entries[0]))
    message = _error(default_dict)
    assert message.startswith(f"scenario.{group}: names must be unique")
    assert repr(entries[0]["name"]) in message


@pytest.mark.parametrize("group", ["segments", "products"])
def test_empty_population_or_catalogue(default_dict: dict[str, Any], group: str) -> None:
    default_dict[group] = []
    assert _error(default_dict) == f"scenario.{group}: must list at least one entry"


def test_concession_name_must_be_an_identifier(default_dict: dict[str, Any]) -> None:
    default_dict["concessions"][0]["name"] = "ten % off"
    assert _error(default_dict).startswith("scenario.concessions[0].name: must be letters")


def test_scenario_error_is_a_value_error_with_its_parts(default_dict: dict[str, Any]) -> None:
    default_dict["segments"][0]["share"] = -1
    with pytest.raises(ValueError) as info:
        Scenario.from_dict(default_dict)
    err = info.value
    assert isinstance(err, ScenarioError)
    assert err.path == "scenario.segments[0].share"
    assert err.problem.startswith("must be in")


def test_replace_validates_again() -> None:
    base = envs.load_scenario("default")
    with pytest.raises(ScenarioError, match=r"^consent_rate: must be in \[0, 1\]"):
        base.replace(consent_rate=2.0)


# ------------------------------------------------------------------ malformed files


def _write(tmp_path: Path, name: str, data: dict[str, Any] | str) -> Path:
    path = tmp_path / name
    text = data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False)
    path.write_text(text, encoding="utf-8")
    return path


def _file_error(path: Path | str) -> str:
    with pytest.raises(ScenarioError) as info:
        envs.load_scenario(path)
    return str(info.value)


@pytest.mark.parametrize(
    ("mutate", "starts"),
    [
        (lambda d: d.update(colour="blue"), "scenario: unknown field(s) ['colour']; allowed: "),
        (
            lambda d: d["segments"][0].pop("valuation"),
            "scenario.segments[0].valuation: is required",
        ),
        (lambda d: d["segments"][0].update(share=-1), "scenario.segments[0].share: must be in"),
        (lambda d: d.update(consent_rate=1.5), "scenario.consent_rate: must be in [0, 1]"),
        (
            lambda d: d["products"][0].update(unit_cost=d["products"][0]["price"]),
            "scenario.products[0].unit_cost: must be in [0, 35)",
        ),
        (lambda d: d.update(horizon="long"), "scenario.horizon: must be a whole number"),
        (
            lambda d: d["segments"][0].update(share=True),
            "scenario.segments[0].share: must be a number",
        ),
        (
            lambda d: d["concessions"][0].update(kind="bribe"),
            "scenario.concessions[0].kind: must be one of ['percent_discount'",
        ),
        (
            lambda d: d["products"].append(dict(d["products"][0])),
            "scenario.products: names must be unique, repeated: ['accessory']",
        ),
    ],
)
def test_malformed_file_names_the_field(
    tmp_path: Path, default_dict: dict[str, Any], mutate: Any, starts: str
) -> None:
    mutate(default_dict)
    assert _file_error(_write(tmp_path, "bad.yaml", default_dict)).startswith(starts)


def test_invalid_yaml_text(tmp_path: Path) -> None:
    path = _write(tmp_path, "broken.yaml", "name: broken\nsegments: [ {name: a, share: 1\n")
    message = _file_error(path)
    assert message.startswith("broken.yaml: is not valid YAML")


def test_yaml_that_is_not_a_mapping(tmp_path: Path) -> None:
    path = _write(tmp_path, "list.yaml", "- name: a\n- name: b\n")
    assert _file_error(path) == "list.yaml: must hold a mapping of scenario fields"


def test_defaults_naming_a_missing_scenario(tmp_path: Path) -> None:
    path = _write(tmp_path, "child.yaml", "defaults: [nowhere, _self_]\nname: child\n")
    message = _file_error(path)
    assert message.startswith("child.yaml: defaults: ")
    assert "'nowhere'" in message


def test_defaults_fall_back_on_the_shipped_scenarios(tmp_path: Path) -> None:
    """A file anywhere (as ``concede calibrate out=...`` writes one) may start from a
    shipped scenario, as it does under Hydra's search path; one beside it comes first."""
    path = _write(tmp_path, "my_shop.yaml", "defaults: [black_friday, _self_]\nname: my_shop\n")
    shop = envs.load_scenario(path)
    assert shop.name == "my_shop"
    assert shop.replace(name="black_friday") == envs.load_scenario("black_friday")
    _write(tmp_path, "black_friday.yaml", "defaults: [default, _self_]\nname: local\n")
    assert envs.load_scenario(path).replace(name="x") == envs.load_scenario("default").replace(
        name="x"
    )


def test_defaults_that_include_themselves(tmp_path: Path) -> None:
    _write(tmp_path, "a.yaml", "defaults: [b, _self_]\nname: a\n")
    _write(tmp_path, "b.yaml", "defaults: [a, _self_]\nname: b\n")
    assert "includes itself" in _file_error(tmp_path / "a.yaml")
    _write(tmp_path, "c.yaml", "defaults: [c]\nname: c\n")
    assert "includes itself" in _file_error(tmp_path / "c.yaml")


def test_defaults_must_be_a_list(tmp_path: Path) -> None:
    path = _write(tmp_path, "child.yaml", "defaults: default\nname: child\n")
    with pytest.raises(ScenarioError, match=r"^child\.yaml: defaults: must be a list"):
        read_scenario_mapping(path)


def test_unknown_name_lists_available() -> None:
    message = _file_error("no_such_market")
    assert message.startswith("scenario: no scenario named 'no_such_market'; available: ")
    for name in envs.available_scenarios():
        assert repr(name) in message


def test_missing_file_path(tmp_path: Path) -> None:
    message = _file_error(tmp_path / "absent.yaml")
    assert message.startswith("scenario: no scenario file at ") and "absent.yaml" in message
