"""The off-policy result as a typed tree and as JSON.

- an evaluation's :class:`OPEResult` goes to JSON and back unchanged, and its JSON is the
  format ``ope`` has always written (the keys, their order, a budget block only where a
  budget was judged, an exact block only where a figure is known by construction);
- a JSON that does not match is refused with an :class:`OPEResultError` naming the key
  and what is wrong;
- the verdicts are declared once (:class:`Trust`), and a new estimator is a new key.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest

import envs
from agents.exploration import Exploration
from agents.logs import from_table
from agents.logs.simulate import simulate_logs
from agents.registry import build_policies
from experiments.offpolicy import OPESettings, evaluate_offpolicy
from experiments.offpolicy.bootstrap import BootstrapSettings
from experiments.offpolicy.result import (
    BudgetSummary,
    Estimate,
    OPEResult,
    OPEResultError,
    Trust,
)


@pytest.fixture(scope="module")
def result() -> OPEResult:
    scenario = envs.load_scenario("default")
    logger, never = build_policies(["merchant_rules", "never"], scenario)
    table = simulate_logs(scenario, logger, 300, 1, Exploration("epsilon", 0.3))
    settings = OPESettings(bootstrap=BootstrapSettings(n_resamples=50), value_model=None)
    return evaluate_offpolicy(from_table(table), [never, logger], settings=settings)


def test_the_result_goes_to_json_and_back_unchanged(result: OPEResult) -> None:
    data = result.to_json()
    text = json.dumps(data)
    again = OPEResult.from_json(json.loads(text))
    assert again == result
    assert json.dumps(again.to_json()) == text
    assert list(data) == [
        "log", "settings", "estimator_names", "logged", "policies", "results", "warnings"
    ]  # fmt: skip
    r = data["results"]["never"]
    # never's spend is exact (it never offers), the logger's is estimated
    assert list(r) == [
        "estimators", "recommended", "diagnostics", "value_model_r2", "trust", "warnings", "exact"
    ]  # fmt: skip
    assert "exact" not in data["results"]["merchant_rules"]
    assert list(r["recommended"])[:2] == ["estimator", "why"]
    assert r["trust"] in {t.value for t in Trust}
    assert isinstance(result.results["never"].trust, Trust)


def test_a_budget_block_and_a_new_estimator_round_trip(result: OPEResult) -> None:
    never = result.results["never"]
    spend = Estimate(12.5, None, None)  # no interval
    budget = BudgetSummary("own budget", 600.0, spend, "fits", 0.25, Estimate(1.0, 0.5, 2.0))
    marginal = {"mis": {"profit_per_1000": Estimate(1.0, 0.0, 2.0)}}  # another session's
    policy = replace(never, budget=budget, estimators={**never.estimators, **marginal})
    bigger = replace(result, results={**result.results, "never": policy})
    data = json.loads(json.dumps(bigger.to_json()))
    block = data["results"]["never"]["budget"]
    assert "logged_eligibility_profit_per_1000" not in block
    assert block["spend_per_1000"] == {"estimate": 12.5, "low": None, "high": None}
    assert OPEResult.from_json(data) == bigger


def _broken(data: dict[str, Any], path: list[Any], value: Any) -> dict[str, Any]:
    """A copy of ``data`` with the key at ``path`` set to ``value`` (``...``: deleted)."""
    copy = json.loads(json.dumps(data))
    node = copy
    for key in path[:-1]:
        node = node[key]
    if value is ...:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return copy


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (["log"], ..., "the result: missing 'log'"),
        (["log", "journeys"], "300", "log.journeys: must be a whole number, got str '300'"),
        (["log", "single_decision"], 1, "log.single_decision: must be true or false"),
        (["settings", "confidence"], None, "settings.confidence: must be a number, got null"),
        (["policies"], "never", "policies: must be a list of strings"),
        (["results", "never", "trust"], "sure", "results['never'].trust: must be one of"),
        (
            ["results", "never", "estimators", "pdis", "profit_per_1000", "low"],
            "12",
            "results['never'].estimators['pdis']['profit_per_1000'].low: must be a number or null",
        ),
        (["results", "never", "recommended", "estimator"], ..., "recommended: missing 'estimator'"),
        (["results", "never", "diagnostics", "ess"], ..., "diagnostics: missing 'ess'"),
        (["results", "never", "budget"], [], "results['never'].budget: must be an object"),
        (["results", "merchant_rules"], ..., "results: missing the policies ['merchant_rules']"),
    ],
)
def test_a_json_that_does_not_match_is_refused_naming_the_key(
    result: OPEResult, path: list[Any], value: Any, message: str
) -> None:
    bad = _broken(result.to_json(), path, value)
    with pytest.raises(OPEResultError) as err:
        OPEResult.from_json(bad)
    assert message in str(err.value)


def test_not_an_object_is_refused() -> None:
    cases: list[Any] = [[], "text", None, 3]
    for data in cases:
        with pytest.raises(OPEResultError, match="the result: must be an object"):
            OPEResult.from_json(data)
