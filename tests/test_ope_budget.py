"""A campaign budget in the logs and in off-policy evaluation.

- the simulator says which actions the budget alone withheld: exactly those eligible with
  an unlimited budget and not with what is left;
- simulated logs of a scenario with a budget carry them and the allowance; the validator
  refuses an action both eligible and withheld; a version 1 log (without them) is read;
- under whose budget a policy is evaluated: its own when its spending fits the allowance
  and a value model can value the withheld offers; the logged eligibility, warned, when
  it exceeds it or nothing can tell; both, spanned, when its spend interval holds it;
- end to end on a simulated ``black_friday`` log.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

import envs
from agents.exploration import Exploration
from agents.logs import LogSpec, from_dataframe, from_table, read_log, write_log
from agents.logs.schema import METADATA_KEY, withheld_column
from agents.logs.simulate import simulate_logs
from agents.logs.validate import LogValidationError
from agents.registry import build_policies
from envs.core import ShopperCore
from experiments.offpolicy import OPESettings, evaluate_offpolicy
from experiments.offpolicy import budget as bud
from experiments.offpolicy.bootstrap import BootstrapSettings
from experiments.offpolicy.data import from_log
from experiments.offpolicy.evaluation import _evaluate_budgeted
from experiments.offpolicy.fqe import ValueModelSettings
from experiments.offpolicy.result import (
    Diagnostics,
    Estimate,
    PolicyEstimates,
    Recommendation,
    Trust,
)
from experiments.offpolicy.run import shared_state_warnings

SETTINGS = OPESettings(
    bootstrap=BootstrapSettings(n_resamples=200, seed=0),
    value_model=ValueModelSettings(repeats=1, iterations=3, max_iter=30),
    signals=("profit",),
)


@pytest.fixture(scope="module")
def black_friday() -> envs.Scenario:
    return envs.load_scenario("black_friday")


@pytest.fixture(scope="module")
def bf_table(black_friday: envs.Scenario) -> pa.Table:
    (logger,) = build_policies(["merchant_rules"], black_friday)
    return simulate_logs(black_friday, logger, 3000, 5, Exploration("epsilon", 0.1))


# ---------------------------------------------------------------- the simulator


@pytest.mark.parametrize("left", [0.0, 3.0, 40.0])
def test_the_budget_withholds_exactly_what_it_alone_blocks(
    black_friday: envs.Scenario, left: float
) -> None:
    core = ShopperCore(black_friday, 200)
    core.reset(3)
    for _ in range(4):
        core.step(np.zeros(core.n, dtype=np.int64))
    core.budget = left
    mask = core.action_masks()
    withheld = core.budget_withheld()
    core.budget = np.inf
    free = core.action_masks()
    core.budget = left
    assert np.array_equal(withheld, free & ~mask)
    assert withheld.any() or left == 40.0
    assert not (withheld & mask).any() and not withheld[:, 0].any()
    costs = core.expected_cost.T  # (n, n_actions)
    assert (costs[withheld] > left).all()  # withheld only for what the budget cannot pay


def test_without_a_budget_nothing_is_withheld() -> None:
    core = ShopperCore(envs.load_scenario("default"), 50)
    core.reset(0)
    assert not core.budget_withheld().any()


# ---------------------------------------------------------------- the log format


def test_a_log_of_a_budgeted_scenario_records_what_was_withheld(
    bf_table: pa.Table, tmp_path: Path
) -> None:
    log = read_log(write_log(bf_table, tmp_path / "bf.parquet"))
    assert log.spec.withheld and log.spec.budget_per_1000 == 600.0
    withheld = np.column_stack([log.table.column(c).to_numpy() for c in log.spec.withheld_columns])
    assert withheld.any() and not withheld[:, 0].any()
    default = envs.load_scenario("default")
    (never,) = build_policies(["never"], default)
    plain = from_table(simulate_logs(default, never, 50, 0))
    assert not plain.spec.withheld and plain.spec.budget_per_1000 is None
    assert not any(c.startswith("withheld_") for c in plain.table.column_names)


def test_an_action_both_eligible_and_withheld_is_refused(bf_table: pa.Table) -> None:
    spec = LogSpec.from_metadata(bf_table.schema.metadata)
    assert spec is not None
    name = withheld_column("free_shipping")
    eligible = np.asarray(bf_table.column("eligible_free_shipping").to_numpy(), bool)
    row = int(np.flatnonzero(eligible)[0])
    values = bf_table.column(name).to_pylist()
    values[row] = True
    bad = bf_table.set_column(bf_table.schema.get_field_index(name), name, pa.array(values))
    with pytest.raises(LogValidationError, match="both eligible and withheld") as err:
        from_table(bad)
    assert err.value.column == name and err.value.rows == [row]


def test_a_version_1_log_is_read_without_withheld_columns(bf_table: pa.Table) -> None:
    spec = LogSpec.from_metadata(bf_table.schema.metadata)
    assert spec is not None
    meta = json.loads(bf_table.schema.metadata[METADATA_KEY])
    meta.update(schema_version="1", withheld=False)
    del meta["budget_per_1000"]
    old = bf_table.drop_columns(list(spec.withheld_columns)).replace_schema_metadata(
        {METADATA_KEY: json.dumps(meta).encode()}
    )
    log = from_table(old)
    assert not log.spec.withheld and log.spec.budget_per_1000 is None
    assert from_log(log).withheld is None


def test_a_bad_allowance_is_refused() -> None:
    with pytest.raises(ValueError, match="budget_per_1000"):
        LogSpec(features=("x",), actions=("wait", "coupon"), budget_per_1000=-5.0)


# ---------------------------------------------------------------- whose budget


def _budget_log(allowance: float | None, spend: bool = True) -> Any:
    """Four single-decision journeys; the coupon withheld by the budget on rows 2 and 3;
    with ``spend`` the terms that make concession spend."""
    frame = pd.DataFrame(
        {
            "journey": ["a", "b", "c", "d"],
            "step": 0,
            "x": [0.0, 1.0, 0.0, 1.0],
            "eligible_wait": True,
            "eligible_coupon": [True, True, False, False],
            "withheld_wait": False,
            "withheld_coupon": [False, False, True, True],
            "action": ["coupon", "wait", "wait", "wait"],
            "propensity": [0.5, 0.5, 1.0, 1.0],
            "reward": [5.0, 3.0, 2.0, 1.0],
            "term_concession_cost": [1.0, 0.0, 0.0, 0.0],
            "term_voucher_liability": 0.0,
            "term_agent_cost": 0.0,
            "journey_end": "purchase",
        }
    )
    spec = LogSpec(
        features=("x",),
        actions=("wait", "coupon"),
        terms=("concession_cost", "voucher_liability", "agent_cost"),
        withheld=True,
        budget_per_1000=allowance,
    )
    if not spend:
        frame = frame.drop(columns=[c for c in frame if c.startswith("term_")])
        spec = replace(spec, terms=())
    return from_log(from_dataframe(frame, spec))


def _stub(
    spend_high: float, estimator: str = "dr", spend_low: float = 0.0
) -> tuple[Any, list[np.ndarray]]:
    """An evaluation that records the targets it was given and answers fixed figures: the
    n-th call's profit 10 n [0, 20 n], its spend (``spend_high`` - 1) [``spend_low``,
    ``spend_high``]."""
    seen: list[np.ndarray] = []

    def evaluate(target: np.ndarray, signals: list[str]) -> PolicyEstimates:
        seen.append(target)
        profit = Estimate(10.0 * len(seen), 0.0, 20.0 * len(seen))
        spend = Estimate(spend_high - 1.0, spend_low, spend_high)
        outputs = {"profit_per_1000": profit, "spend_per_1000": spend}
        outputs = {k: v for k, v in outputs.items() if k.split("_")[0] in signals}
        return PolicyEstimates(
            estimators={estimator: dict(outputs)},
            recommended=Recommendation(estimator, "", outputs),
            diagnostics=Diagnostics(1.0, 1.0, 0.0, 1.0, 0.0, 0.0, "logged probabilities"),
            value_model_r2={s: 0.5 for s in signals},
            trust=Trust.TRUSTED,
        )

    return evaluate, seen


def _targets(j: Any) -> tuple[np.ndarray, np.ndarray]:
    logged = np.zeros((j.n_rows, 2))
    logged[:, 1] = j.mask[:, 1]
    logged[:, 0] = 1.0 - logged[:, 1]
    own = np.zeros((j.n_rows, 2))
    own[:, 1] = 1.0  # the coupon everywhere: withheld on rows 2 and 3
    return logged, own


def test_a_policy_whose_spending_fits_is_evaluated_under_its_own_budget() -> None:
    j = _budget_log(600.0)
    logged, own = _targets(j)
    evaluate, seen = _stub(spend_high=400.0)
    result = _evaluate_budgeted("coupon", j, logged, own, evaluate, ["profit"]).to_json()
    assert len(seen) == 1 and np.array_equal(seen[0], own)
    block = result["budget"]
    assert block["evaluated_under"] == bud.OWN and block["spend_verdict"] == bud.FITS
    assert block["withheld_decisions"] == 0.5
    assert "spend_per_1000" not in result["recommended"]  # computed to judge, not asked
    assert result["trust"] == "caution"
    assert any("under its own campaign budget" in w for w in result["warnings"])


@pytest.mark.parametrize(
    ("allowance", "spend_high", "estimator", "said"),
    [
        (600.0, 900.0, "dr", "would spend"),  # its spending exceeds the allowance
        (None, 100.0, "dr", "logged eligibility"),  # the allowance is unknown
        ("no spend", 100.0, "dr", "logged eligibility"),  # its spend is unknown
        (600.0, 100.0, "snips", "without a value model"),  # nothing values the withheld offers
    ],
)
def test_otherwise_it_is_evaluated_on_the_logged_eligibility_and_warned(
    allowance: float | str | None, spend_high: float, estimator: str, said: str
) -> None:
    j = _budget_log(600.0, spend=False) if allowance == "no spend" else _budget_log(allowance)
    logged, own = _targets(j)
    evaluate, seen = _stub(spend_high, estimator, spend_low=700.0)
    signals = [s for s in ("profit", "spend") if s in j.signals]  # as the evaluation asks
    result = _evaluate_budgeted("coupon", j, logged, own, evaluate, signals).to_json()
    assert len(seen) == 2 and np.array_equal(seen[1], logged)
    block = result["budget"]
    assert block["evaluated_under"] == bud.LOGGED
    assert block["own_budget_profit_per_1000"]["estimate"] == 10.0  # the first evaluation's
    assert result["recommended"]["profit_per_1000"]["estimate"] == 20.0  # the second's
    assert any(said in w for w in result["warnings"]) and result["trust"] == "caution"


@pytest.mark.parametrize(("spend_high", "first"), [(601.0, 1), (800.0, 2)])
def test_a_spend_interval_across_the_allowance_spans_both_evaluations(
    spend_high: float, first: int
) -> None:
    j = _budget_log(600.0)
    logged, own = _targets(j)
    evaluate, seen = _stub(spend_high)  # spend [0, spend_high]: across 600 in both cases
    result = _evaluate_budgeted("coupon", j, logged, own, evaluate, ["profit"]).to_json()
    assert len(seen) == 2 and np.array_equal(seen[0], own) and np.array_equal(seen[1], logged)
    block = result["budget"]
    assert block["evaluated_under"] == bud.SPANNED and block["spend_verdict"] == bud.UNCERTAIN
    assert block["own_budget_profit_per_1000"]["estimate"] == 10.0
    assert block["logged_eligibility_profit_per_1000"]["estimate"] == 20.0
    # the estimate of the side the spend estimate is on (own: 600 <= 600; logged: 799 >
    # 600), the interval from the lower end of both to the higher
    profit = result["recommended"]["profit_per_1000"]
    assert profit == {"estimate": 10.0 * first, "low": 0.0, "high": 40.0}
    assert result["estimators"]["dr"]["profit_per_1000"] == profit
    assert "spend_per_1000" not in result["recommended"]
    assert any("span both" in w for w in result["warnings"]) and result["trust"] == "caution"


def test_a_policy_that_never_wants_a_withheld_offer_is_judged_by_its_spend() -> None:
    j = _budget_log(600.0)
    logged, _ = _targets(j)
    for high, warned in ((100.0, False), (900.0, True)):
        evaluate, seen = _stub(high)
        result = _evaluate_budgeted("rule", j, logged, logged, evaluate, ["profit"]).to_json()
        assert len(seen) == 1 and result["budget"]["evaluated_under"] == bud.LOGGED
        assert result["budget"]["withheld_decisions"] == 0.0
        assert bool(result["warnings"]) is warned
        assert ("used the budget up" in " ".join(result["warnings"])) is warned


# ---------------------------------------------------------------- end to end


def test_on_a_black_friday_log_the_recovery_email_is_evaluated_under_its_own_budget(
    bf_table: pa.Table, black_friday: envs.Scenario
) -> None:
    policies = build_policies(["always_recovery_email", "never"], black_friday)
    result = evaluate_offpolicy(from_table(bf_table), policies, settings=SETTINGS).to_json()
    email = result["results"]["always_recovery_email"]
    assert email["budget"]["evaluated_under"] == bud.OWN
    assert email["budget"]["withheld_decisions"] > 0.0
    assert email["diagnostics"]["unsupported_decisions"] == 0.0  # withheld is not "no support"
    assert email["recommended"]["estimator"] in ("wdr", "mdr")  # the doubly robust pair
    assert set(email["recommended"]) == {"estimator", "why", "profit_per_1000"}
    never = result["results"]["never"]
    assert never["budget"]["evaluated_under"] == bud.LOGGED
    assert not any("budget" in w for w in never["warnings"])
    # the same log without the withheld columns: the logged eligibility, and the
    # recovery e-mail found fewer chances to be sent
    spec = LogSpec.from_metadata(bf_table.schema.metadata)
    assert spec is not None
    bare = bf_table.drop_columns(list(spec.withheld_columns)).replace_schema_metadata(
        spec.with_source(withheld=False).metadata()
    )
    plain = evaluate_offpolicy(from_table(bare), policies[:1], settings=SETTINGS).to_json()
    logged = plain["results"]["always_recovery_email"]
    assert logged["budget"]["evaluated_under"] == bud.LOGGED
    assert logged["budget"]["withheld_decisions"] == 0.0
    assert (
        email["recommended"]["profit_per_1000"]["estimate"]
        != logged["recommended"]["profit_per_1000"]["estimate"]
    )
    assert shared_state_warnings(black_friday, budget_logged=True) == [
        w for w in shared_state_warnings(black_friday) if "campaign budget" not in w
    ]
