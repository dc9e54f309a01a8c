"""Baselines: masks honoured, triggers as specified, curves, costs, rule sets and their errors."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import envs
from agents.baselines import (
    CURVE_EXPONENTS,
    AlwaysOffer,
    NeverOffer,
    RuleError,
    RulePolicy,
    RuleSet,
    TimeCurvePolicy,
    always_policies,
    available_rule_sets,
    concession_costs,
    concession_index,
    feature_columns,
    load_rules,
)
from agents.registry import UnknownPolicyError, available_policies, build_policies, build_policy
from envs.catalogue import compile_actions
from envs.core import ShopperCore
from envs.scenario import Scenario


def _all_baselines(scenario: Scenario) -> list:
    return [
        NeverOffer(),
        *always_policies(scenario),
        *(TimeCurvePolicy(scenario, c) for c in CURVE_EXPONENTS),
        *(RulePolicy(scenario, load_rules(name)) for name in available_rule_sets()),
    ]


def test_every_baseline_follows_the_masks(shipped_name: str) -> None:
    scenario = envs.load_scenario(shipped_name)
    for policy in _all_baselines(scenario):
        core = ShopperCore(scenario, 300, autoreset=False)
        obs = core.reset(7)
        offered = 0
        for _ in range(scenario.horizon):
            mask = core.action_masks()
            actions = policy.act(obs, mask)
            assert actions.shape == (core.n,) and actions.dtype == np.int64
            assert mask[np.arange(core.n), actions].all(), policy.name
            obs, *_ = core.step(actions)
            assert not core.ineligible.any(), policy.name
            offered += int((actions != 0).sum())
        if isinstance(policy, NeverOffer):
            assert offered == 0


def test_always_offer_fires_at_exit_intent_or_when_away(shipped_name: str) -> None:
    scenario = envs.load_scenario(shipped_name)
    col = feature_columns(scenario)
    core = ShopperCore(scenario, 2000, autoreset=False)
    obs = core.reset(3)
    policies = always_policies(scenario)
    fired = {p.name: 0 for p in policies}
    for _ in range(20):
        mask = core.action_masks()
        for p in policies:
            a = p.act(obs, mask)
            on = a != 0
            assert set(np.unique(a)) <= {0, p.action}
            entry = scenario.concessions[p.action - 1]
            trigger = "away" if entry.channel == "email" else "exit_intent"
            assert (obs[on, col[trigger]] == 1).all()
            # exit intent is consent-gated: on-site rules never reach non-consenting shoppers
            assert (obs[on, col["consent"]] == 1).all()
            # and whenever the trigger holds and the mask allows, it fires
            should = (obs[:, col[trigger]] == 1) & mask[:, p.action]
            assert np.array_equal(on, should)
            fired[p.name] += int(on.sum())
        obs, *_ = core.step(np.zeros(core.n, dtype=np.int64))
    assert all(v > 0 for v in fired.values()), fired


def test_concession_index_by_name_or_kind_and_errors() -> None:
    scenario = envs.load_scenario("default")
    assert concession_index(scenario, "free_shipping") == scenario.action_names.index(
        "free_shipping"
    )
    first_percent = next(
        i for i, c in enumerate(scenario.concessions, 1) if c.kind.value == "percent_discount"
    )
    assert concession_index(scenario, "percent_discount") == first_percent
    with pytest.raises(ValueError, match="catalogue") as err:
        concession_index(scenario, "free_lunch")
    assert "ten_percent_off" in str(err.value)


def test_concession_costs_by_hand() -> None:
    scenario = envs.load_scenario("default")
    table = compile_actions(scenario)
    cost = concession_costs(table, np.array([70.0]), np.array([4.9]))[0]
    by_name = dict(zip(scenario.action_names, cost, strict=True))
    assert by_name["wait"] == 0.0
    assert by_name["ten_percent_off"] == pytest.approx(7.0)
    assert by_name["twenty_percent_off"] == pytest.approx(14.0)
    assert by_name["five_euros_off"] == pytest.approx(5.0)
    assert by_name["free_shipping"] == pytest.approx(4.9)
    assert by_name["express_delivery"] == pytest.approx(6.0)
    assert by_name["free_gift"] == pytest.approx(4.0)
    assert by_name["voucher_next_order"] == pytest.approx(10.0 * 0.35)
    assert by_name["live_agent"] == pytest.approx(3.5)
    assert by_name["recovery_email"] == pytest.approx(7.0 + 0.05)
    assert by_name["reminder_email"] == pytest.approx(0.05)


def test_curve_levels_follow_the_negmas_table() -> None:
    scenario = envs.load_scenario("default")
    tau = np.array([0.0, 0.5, 1.0])
    for name, e in {"boulware": 4.0, "linear": 1.0, "conceder": 0.25}.items():
        np.testing.assert_allclose(TimeCurvePolicy(scenario, name).level(tau), tau**e)
    assert TimeCurvePolicy(scenario, "boulware").level(np.array([0.5]))[0] == 0.0625
    with pytest.raises(ValueError, match="known"):
        TimeCurvePolicy(scenario, "hardball")


def test_curve_picks_cheap_early_and_dear_late() -> None:
    scenario = envs.load_scenario("default")
    col = feature_columns(scenario)
    n = len(feature_columns(scenario))
    obs = np.zeros((3, n), dtype=np.float32)
    obs[:, col["cart_value"]] = 0.7
    obs[:, col["shipping_fee"]] = 0.49
    obs[:, col["exit_intent"]] = 1.0
    obs[:, col["journey_step"]] = [0.0, 0.5, 1.0]
    mask = np.zeros((3, scenario.n_actions), dtype=bool)
    names = scenario.action_names
    allowed = ["ten_percent_off", "free_shipping", "twenty_percent_off"]  # 7, 4.9, 14 EUR
    mask[:, [names.index(a) for a in allowed]] = True
    mask[:, 0] = True
    picks = [names[a] for a in TimeCurvePolicy(scenario, "linear").act(obs, mask)]
    assert picks == ["free_shipping", "ten_percent_off", "twenty_percent_off"]
    boulware = [names[a] for a in TimeCurvePolicy(scenario, "boulware").act(obs, mask)]
    assert boulware == ["free_shipping", "free_shipping", "twenty_percent_off"]
    obs[:, col["exit_intent"]] = 0.0  # no hesitation, no offer
    assert not TimeCurvePolicy(scenario, "conceder").act(obs, mask).any()


# ------------------------------------------------------------------ rules


def _rules(*rules: dict[str, Any], **top: object) -> RuleSet:
    return RuleSet.from_dict({"name": "test_rules", "rules": list(rules), **top})


def test_shipped_rule_sets_bind_on_every_scenario(shipped_name: str) -> None:
    scenario = envs.load_scenario(shipped_name)
    assert "merchant_rules" in available_rule_sets()
    for name in available_rule_sets():
        policy = RulePolicy(scenario, load_rules(name))
        assert policy.name == name


def test_rule_conditions_in_all_three_forms_and_scales() -> None:
    scenario = envs.load_scenario("default").replace(max_visits=4)
    forms = [
        "visit_index >= 2/max_visits",
        ["visit_index", ">=", "2/max_visits"],
        {"feature": "visit_index", "op": ">=", "value": 0.5},
    ]
    col = feature_columns(scenario)
    obs = np.zeros((4, len(col)), dtype=np.float32)
    obs[:, col["visit_index"]] = np.array([1, 2, 3, 4], dtype=np.float64) / 4
    mask = np.ones((4, scenario.n_actions), dtype=bool)
    for form in forms:
        policy = RulePolicy(scenario, _rules({"offer": "ten_percent_off", "when": [form]}))
        assert policy.act(obs, mask).tolist() == [0, 1, 1, 1]


def test_first_matching_rule_wins_and_masks_are_honoured() -> None:
    scenario = envs.load_scenario("default")
    col = feature_columns(scenario)
    names = scenario.action_names
    obs = np.zeros((3, len(col)), dtype=np.float32)
    obs[:, col["cart_value"]] = [0.3, 0.7, 0.7]
    rules: list[dict[str, Any]] = [
        {"offer": "free_shipping", "when": ["cart_value >= 50/100"]},
        {"offer": "ten_percent_off"},
    ]
    mask = np.ones((3, scenario.n_actions), dtype=bool)
    mask[2, names.index("free_shipping")] = False
    strict = RulePolicy(scenario, _rules(*rules)).act(obs, mask)
    assert [names[a] for a in strict] == ["ten_percent_off", "free_shipping", "wait"]
    skipping = RulePolicy(scenario, _rules(*rules, skip_ineligible=True)).act(obs, mask)
    assert [names[a] for a in skipping] == ["ten_percent_off", "free_shipping", "ten_percent_off"]
    explicit_wait = RulePolicy(
        scenario, _rules({"offer": "wait", "when": ["cart_value < 0.5"]}, *rules)
    ).act(obs, mask)
    assert [names[a] for a in explicit_wait] == ["wait", "free_shipping", "wait"]


def test_offer_alternatives_take_the_first_the_catalogue_has() -> None:
    luxury = envs.load_scenario("luxury")
    policy = RulePolicy(luxury, _rules({"offer": ["free_shipping", "free_gift"]}))
    assert luxury.action_names[policy._compiled[0][0]] == "gift_wrapping_and_sample"


def test_unknown_feature_lists_the_features() -> None:
    scenario = envs.load_scenario("default")
    with pytest.raises(RuleError) as err:
        RulePolicy(scenario, _rules({"offer": "free_shipping", "when": ["exit_intnet == 1"]}))
    text = str(err.value)
    assert "unknown feature 'exit_intnet'" in text and "rules[0]" in text and "when[0]" in text
    for feature in ("exit_intent", "cart_value", "offered_free_shipping"):
        assert feature in text


def test_unknown_concession_lists_the_catalogue() -> None:
    scenario = envs.load_scenario("default")
    with pytest.raises(RuleError) as err:
        RulePolicy(scenario, _rules({"offer": "free_lunch"}))
    text = str(err.value)
    assert "free_lunch" in text and "catalogue" in text
    for name in ("ten_percent_off", "live_agent", "reminder_email"):
        assert name in text


@pytest.mark.parametrize(
    ("data", "match"),
    [
        ({"rules": [{"offer": "x"}]}, r"name: is required"),
        ({"name": "r", "rules": []}, r"rules: must be a non-empty list"),
        ({"name": "r", "rules": [{"when": []}]}, r"rules\[0\]\.offer: is required"),
        ({"name": "r", "rules": [{"offer": "x", "when": ["a =< 1"]}]}, r"when\[0\]: cannot read"),
        ({"name": "r", "rules": [{"offer": "x", "when": [["a", "!=", 1]]}]}, "unknown operator"),
        ({"name": "r", "rules": [{"offer": "x", "when": ["a >= 2/max_vists"]}]}, "divisor"),
        ({"name": "r", "rules": [{"offer": "x", "when": ["a >= 1/0"]}]}, "non-zero"),
        ({"name": "r", "rules": [{"offer": "x", "colour": 1}]}, r"unknown key\(s\) \['colour'\]"),
        ({"name": "r", "rules": [{"offer": "x"}], "extra": 1}, r"unknown key\(s\) \['extra'\]"),
    ],
)
def test_malformed_rule_sets_say_what_is_wrong(data: dict, match: str) -> None:
    with pytest.raises(RuleError, match=match):
        RuleSet.from_dict(data, "my_rules.yaml")


def test_rule_files_by_name_or_path(tmp_path: Path) -> None:
    good = tmp_path / "mine.yaml"
    good.write_text("name: mine\nrules:\n  - offer: free_shipping\n    when: [exit_intent == 1]\n")
    assert load_rules(good).rules[0].offer == ("free_shipping",)
    assert load_rules("mine", tmp_path).name == "mine"
    with pytest.raises(RuleError, match=r"available: \['mine'\]"):
        load_rules("nope", tmp_path)
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(RuleError, match="not valid YAML"):
        load_rules(bad)


# ------------------------------------------------------------------ registry


def test_registry_builds_every_listed_name(shipped_name: str) -> None:
    scenario = envs.load_scenario(shipped_name)
    names = [n for n in available_policies(scenario) if "<" not in n]
    built = build_policies(names, scenario)
    built_names = [p.name for p in built]
    assert built_names[0] == "never" and built_names[-1] == "oracle"
    assert len(built_names) == len(set(built_names))
    for c in scenario.concessions:
        assert f"always_{c.name}" in built_names


def test_registry_errors_list_what_exists() -> None:
    scenario = envs.load_scenario("default")
    with pytest.raises(UnknownPolicyError) as err:
        build_policies(["never", "alwayz_free_shipping", "oracle", "bouleware"], scenario)
    text = str(err.value)
    assert "'alwayz_free_shipping'" in text and "'bouleware'" in text
    for name in ("never", "always_free_shipping", "boulware", "merchant_rules", "oracle"):
        assert name in text
    with pytest.raises(UnknownPolicyError, match="kinds"):
        build_policy("always_free_lunch", scenario)


def test_kind_aliases_make_one_list_work_everywhere(
    shipped_name: str, scenario_by_name: Callable[[str], Scenario]
) -> None:
    scenario = scenario_by_name(shipped_name)
    for name in ("always_percent_discount", "always_retargeting", "always_live_agent"):
        policy = build_policy(name, scenario)
        assert isinstance(policy, AlwaysOffer)
