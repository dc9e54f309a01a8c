"""What the log cannot show, measured: shared state between shoppers in ``concede ope``.

- the mixed population assigns each shopper to an arm with the generator given, the same
  on the same seed, and each arm decides as its policy;
- without shared state the correction is exactly 0 and nothing is corrected or shown;
- on ``black_friday`` the logger's exploration spends the campaign budget, so
  ``always_recovery_email`` alone earns more than among the logger's shoppers, and the
  attribution names the budget;
- the corrected figure's arithmetic and which plain figure it corrects;
- the block goes to JSON and back, and a JSON without it still reads;
- the app end to end, and a log that does not name its logger.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

import envs
from agents.exploration import Exploration
from agents.logs import write_log
from agents.logs.simulate import simulate_logs
from agents.registry import build_policy
from agents.rollout import run_policy
from envs.core import ShopperCore
from envs.scenario import Scenario
from experiments.offpolicy import OPESettings
from experiments.offpolicy.bootstrap import BootstrapSettings
from experiments.offpolicy.budget import OWN, SPANNED
from experiments.offpolicy.interference import (
    BUDGET,
    DESK,
    LEARNING,
    AmongLogger,
    InterferenceSettings,
    corrected,
    measure_interference,
    shared_state,
    summarise,
    switched_off,
)
from experiments.offpolicy.result import (
    PROFIT_KEY,
    BudgetSummary,
    Estimate,
    Interference,
    PolicyEstimates,
)
from experiments.offpolicy.run import InterferenceInputError, evaluate_logs

REPO = Path(__file__).resolve().parent.parent
FAST = OPESettings(
    bootstrap=BootstrapSettings(n_resamples=50, seed=0),
    value_model=None,
    ratio_model=None,
    signals=("profit",),
)
TINY = InterferenceSettings(n_shoppers=1000, replicates=2, attribute=False)
EPSILON = Exploration("epsilon", 0.1)


@pytest.fixture(scope="module")
def black_friday() -> Scenario:
    return envs.load_scenario("black_friday")


def independent() -> Scenario:
    """``default`` with every shared-state component switched off."""
    scenario = envs.load_scenario("default")
    for component in shared_state(scenario):
        scenario = switched_off(scenario, component)
    return replace(scenario, name="independent")


# ---------------------------------------------------------------- the mixed population


def test_arms_are_drawn_from_the_generator_per_cohort_and_reproducibly() -> None:
    scenario = independent()
    never, rules = build_policy("never", scenario), build_policy("merchant_rules", scenario)

    def arms(seed: int) -> np.ndarray:
        mixed = AmongLogger(never, rules, EPSILON, 0.3, np.random.default_rng(seed))
        run_policy(scenario, mixed, 250, 7, cohort_size=100)
        return mixed.arms

    first = arms(1)
    assert first.shape == (250,)
    np.testing.assert_array_equal(first, arms(1))
    assert not np.array_equal(first, arms(2))
    # the first cohort's assignment is the generator's first draws
    np.testing.assert_array_equal(first[:100], np.random.default_rng(1).random(100) < 0.3)
    assert 0.15 < first.mean() < 0.45


def test_each_shopper_is_served_by_its_arm(black_friday: Scenario) -> None:
    email = build_policy("always_recovery_email", black_friday)
    never = build_policy("never", black_friday)
    core = ShopperCore(black_friday, 400, autoreset=False)
    obs, mask = core.reset(0), core.action_masks()
    mixed = AmongLogger(email, never, Exploration("epsilon", 0.0), 0.5, np.random.default_rng(0))
    mixed.bind(core, 0)
    chosen = mixed.act(obs, mask)
    mine = mixed.arms
    np.testing.assert_array_equal(chosen[mine], email.act(obs, mask)[mine])
    assert (chosen[~mine] == 0).all()  # the logger never offers, and explores with 0


def test_a_policy_that_sees_hidden_state_is_refused(black_friday: Scenario) -> None:
    from agents.registry import build_policies

    (oracle,) = build_policies(["oracle"], black_friday)
    never = build_policy("never", black_friday)
    with pytest.raises(ValueError, match="hidden shopper state"):
        AmongLogger(oracle, never, EPSILON, 0.1, np.random.default_rng(0))


# ---------------------------------------------------------------- without shared state


def test_without_shared_state_the_correction_is_zero_and_nothing_is_shown(tmp_path: Path) -> None:
    scenario = independent()
    assert shared_state(scenario) == ()
    assert shared_state(envs.load_scenario("black_friday")) == (BUDGET, LEARNING, DESK)
    email, rules = (build_policy(p, scenario) for p in ("always_recovery_email", "merchant_rules"))
    measured = measure_interference(
        scenario, email, rules, EPSILON, InterferenceSettings(n_shoppers=2000, replicates=3)
    )
    fix = measured.correction
    assert fix.low is not None and fix.high is not None and fix.low <= 0.0 <= fix.high
    assert fix.estimate == 0.0  # the same shoppers meet the same fate: exactly
    table = simulate_logs(scenario, rules, 300, 0, EPSILON)
    path = write_log(table, tmp_path / "log.parquet")
    result = evaluate_logs(
        path, ["always_recovery_email"], scenario=scenario, settings=FAST, interference=TINY
    )
    assert result.results["always_recovery_email"].interference is None
    assert not any("share state" in w for w in result.warnings)


# ---------------------------------------------------------------- black_friday


@pytest.fixture(scope="module")
def measured(black_friday: Scenario) -> Interference:
    email = build_policy("always_recovery_email", black_friday)
    rules = build_policy("merchant_rules", black_friday)
    return measure_interference(
        black_friday, email, rules, EPSILON, InterferenceSettings(n_shoppers=20_000, replicates=4)
    )


def test_the_logger_spending_the_budget_makes_the_rule_alone_earn_more(
    measured: Interference,
) -> None:
    fix = measured.correction
    assert fix.low is not None and fix.low > 0.0, fix
    assert fix.estimate == pytest.approx(
        (measured.alone.estimate or 0.0) - (measured.among_logger.estimate or 0.0), abs=1e-3
    )


def test_the_attribution_names_the_campaign_budget(measured: Interference) -> None:
    from experiments.offpolicy.interference import cause

    assert set(measured.components) == {BUDGET, LEARNING, DESK}
    part = measured.components[BUDGET]
    assert part.low is not None and part.low > 0.0
    # with the budget off, little is left
    left = measured.without[BUDGET].estimate or 0.0
    assert abs(left) < 0.25 * (measured.correction.estimate or 0.0)
    words = cause(measured)
    assert "carried by the campaign budget: +" in words, words


# ---------------------------------------------------------------- the corrected figure


def test_the_corrected_interval_adds_the_half_widths_in_quadrature() -> None:
    plain = Estimate(1000.0, 900.0, 1200.0)
    fix = Estimate(300.0, 260.0, 330.0)
    got = corrected(plain, fix)
    assert got.estimate == 1300.0
    assert got.low == pytest.approx(1300.0 - np.hypot(100.0, 40.0))
    assert got.high == pytest.approx(1300.0 + np.hypot(200.0, 30.0))
    assert corrected(Estimate(None, None, None), fix) == Estimate(None, None, None)


def _result(profit: Estimate, block: BudgetSummary | None) -> PolicyEstimates:
    from experiments.offpolicy.result import Diagnostics, Recommendation, Trust

    diag = Diagnostics(1.0, 1.0, 0.1, 1.0, 0.0, 0.0, "logged probabilities")
    rec = Recommendation("wdr", "why", {PROFIT_KEY: profit})
    return PolicyEstimates({"wdr": {PROFIT_KEY: profit}}, rec, diag, {}, Trust.TRUSTED, (), block)


@pytest.mark.parametrize("spend, point", [(550.0, "own"), (650.0, "logged")])
def test_a_spanned_verdict_corrects_both_figures_and_holds_both(
    measured: Interference, spend: float, point: str
) -> None:
    own, logged = Estimate(5000.0, 4800.0, 5200.0), Estimate(4500.0, 4300.0, 4700.0)
    spent = Estimate(spend, 450.0, 750.0)  # across the allowance of 600
    spanned = BudgetSummary(SPANNED, 600.0, spent, "uncertain", 0.05, own, logged)
    figure = own if point == "own" else logged
    s = summarise(_result(Estimate(figure.estimate, 4300.0, 5200.0), spanned), measured)
    assert s is not None and s.basis == SPANNED
    on_own = corrected(own, measured.without[BUDGET])
    on_logged = corrected(logged, measured.correction)
    first = on_own if point == "own" else on_logged
    assert s.applied == (measured.without[BUDGET] if point == "own" else measured.correction)
    assert s.corrected.estimate == first.estimate
    assert s.corrected.low == min(on_own.low, on_logged.low)  # type: ignore[type-var]
    assert s.corrected.high == max(on_own.high, on_logged.high)  # type: ignore[type-var]


def test_the_correction_applies_to_the_logged_eligibility_figure(measured: Interference) -> None:
    logged = Estimate(4500.0, 4300.0, 4700.0)
    s = summarise(_result(logged, None), measured)
    assert s is not None and s.basis == "logged eligibility" and s.plain == logged
    assert s.applied == measured.correction
    assert s.corrected == corrected(logged, measured.correction)
    # under its own budget, the budget's part is the log's: the rest is applied
    own = Estimate(5000.0, 4800.0, 5200.0)
    s = summarise(_result(own, BudgetSummary(OWN, 600.0, None, "fits", 0.05)), measured)
    assert s is not None and s.basis == "own budget" and s.applied == measured.without[BUDGET]
    assert summarise(_result(Estimate(None, None, None), None), measured) is not None


def test_the_block_goes_to_json_and_back(measured: Interference) -> None:
    again = Interference.from_json(json.loads(json.dumps(measured.to_json())))
    assert again == measured
    block = summarise(_result(Estimate(4000.0, 3800.0, 4200.0), None), measured)
    assert block is not None
    result = _result(Estimate(4000.0, 3800.0, 4200.0), None)
    with_block = replace(result, interference=block)
    data = json.loads(json.dumps(with_block.to_json()))
    assert PolicyEstimates.from_json(data) == with_block
    del data["interference"]  # a file from before the block
    assert PolicyEstimates.from_json(data).interference is None


# ---------------------------------------------------------------- the app


def _app(*overrides: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "experiments.ope", *overrides, f"hydra.run.dir={cwd / 'hydra'}"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=600,
    )


COMMON = (
    "bootstrap.n_resamples=50",
    "value_model.enabled=false",
    "ratio_model.enabled=false",
    "signals=[profit]",
    "interference.n_shoppers=2000",
    "interference.replicates=2",
    "interference.attribute=false",
)


def test_the_app_prints_the_corrected_figure_on_black_friday(
    black_friday: Scenario, tmp_path: Path
) -> None:
    rules = build_policy("merchant_rules", black_friday)
    path = write_log(simulate_logs(black_friday, rules, 500, 2, EPSILON), tmp_path / "l.parquet")
    out = tmp_path / "ope.json"
    done = _app(
        f"logs={path}",
        "scenario=black_friday",
        "policies=[always_recovery_email]",
        *COMMON,
        f"output={out}",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "What the log cannot show" in done.stdout and "corrected" in done.stdout
    assert "shoppers do not affect one another" in done.stdout
    result = json.loads(done.stdout.strip().splitlines()[-1])
    block = result["results"]["always_recovery_email"]["interference"]
    assert block["measured"]["logger"] == "merchant_rules"
    assert block["measured"]["exploration"] == "epsilon:0.1"
    assert block["corrected"]["estimate"] == pytest.approx(
        block["plain"]["estimate"] + block["applied"]["estimate"], abs=1e-3
    )
    assert any("share state" in w and "per 1,000 journeys" in w for w in result["warnings"])


def test_a_log_that_does_not_name_its_logger(black_friday: Scenario, tmp_path: Path) -> None:
    rules = build_policy("merchant_rules", black_friday)
    csv = write_log(simulate_logs(black_friday, rules, 200, 1, EPSILON), tmp_path / "l.csv")
    args = (csv, ["never"])
    # left to decide (auto): a warning that says what to give
    auto = evaluate_logs(*args, scenario=black_friday, settings=FAST, interference=TINY)
    assert any("interference.logger=" in w for w in auto.warnings)
    assert auto.results["never"].interference is None
    required = replace(TINY, required=True)
    with pytest.raises(InterferenceInputError, match="does not name its logging policy"):
        evaluate_logs(*args, scenario=black_friday, settings=FAST, interference=required)
    given = replace(required, logger="merchant_rules", exploration="epsilon:0.1")
    named = evaluate_logs(*args, scenario=black_friday, settings=FAST, interference=given)
    assert named.results["never"].interference is not None
    done = _app(
        f"logs={csv}", "scenario=black_friday", "policies=[never]", *COMMON,
        "interference.enabled=true", cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr[-2000:]
    assert "does not name its logging policy" in done.stderr
    assert "interference.logger=" in done.stderr
