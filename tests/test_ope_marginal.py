"""The marginalised off-policy estimators (``mis``, ``wmis``, ``mdr``, ``wmdr``).

- with the ratio that remembers the whole history (``u_t = w_{t-1}``) they are exactly
  ``pdis``, ``wpdis``, ``dr``, ``wdr``; on a single-decision log exactly IPS, SNIPS, DR,
  SNDR (and ``ope`` does not compute them there);
- on the logger's own log (all weights 1) the ratio model is exact and every estimator
  is the logged mean;
- on a sequential log where ``never`` is worth few journeys to ``pdis``, the marginalised
  weights are worth many more per decision, and the recommended and marginalised doubly
  robust intervals hold the simulator's truth;
- ``mdr`` is recommended by the stated rule (its interval narrower than ``wdr``'s and
  overlapping it), else the earlier rule holds;
- the result goes to JSON and back; the console and the report show them.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from rich.console import Console

import envs
from agents.baselines import FixedAction
from agents.exploration import Exploration
from agents.logs import from_dataframe, from_table
from agents.logs.simulate import simulate_logs
from agents.registry import build_policies
from experiments.evaluation.kpis import Bootstrap
from experiments.evaluation.paired import evaluate, public
from experiments.offpolicy import OPESettings, evaluate_offpolicy
from experiments.offpolicy import estimators as est
from experiments.offpolicy.bootstrap import BootstrapSettings
from experiments.offpolicy.data import Journeys, from_log
from experiments.offpolicy.evaluation import _recommend
from experiments.offpolicy.fqe import ValueModelSettings
from experiments.offpolicy.marginal import RatioModelSettings, fit_state_ratios
from experiments.offpolicy.render import render
from experiments.offpolicy.result import Estimate, OPEResult
from experiments.offpolicy.targets import target_probabilities
from experiments.reporting.offpolicy import offpolicy_figures, offpolicy_html, read_offpolicy

SMALL = OPESettings(
    bootstrap=BootstrapSettings(n_resamples=100, seed=0),
    value_model=ValueModelSettings(iterations=2, max_iter=20, min_journeys=50, repeats=2),
    ratio_model=RatioModelSettings(max_iter=30, min_journeys=50, repeats=2),
    signals=("profit",),
)


def sequential(n: int, seed: int, epsilon: float = 0.3) -> Journeys:
    scenario = envs.load_scenario("default")
    (logger,) = build_policies(["always_recovery_email"], scenario)
    return from_log(
        from_table(simulate_logs(scenario, logger, n, seed, Exploration("epsilon", epsilon)))
    )


def every_estimator(
    j: Journeys, u: np.ndarray, rho: np.ndarray, y: np.ndarray, q: np.ndarray, v: np.ndarray
) -> dict[str, float]:
    w = est.cumulative_weights(j, rho)
    n = j.n_journeys
    return {
        "pdis": est.pdis(j, w, y).estimate(n),
        "wpdis": est.wpdis(j, w, y).estimate(n),
        "dr": est.dr(j, w, y, q, v).estimate(n),
        "wdr": est.wdr(j, w, y, q, v).estimate(n),
        "mis": est.mis(j, u, rho, y).estimate(n),
        "wmis": est.wmis(j, u, rho, w, y).estimate(n),
        "mdr": est.mdr(j, u, rho, y, q, v).estimate(n),
        "wmdr": est.wmdr(j, u, rho, w, y, q, v).estimate(n),
    }


def test_with_the_history_as_ratio_they_are_the_per_decision_estimators() -> None:
    j = sequential(300, 4)
    scenario = envs.load_scenario("default")
    (never,) = build_policies(["never"], scenario)
    target = target_probabilities(never, j, j.feature_names)
    rho = est.ratios(j, target, j.propensity)
    w = est.cumulative_weights(j, rho)
    rng = np.random.default_rng(0)
    q, v = rng.normal(5, 2, j.n_rows), rng.normal(5, 2, j.n_rows)
    got = every_estimator(j, est.previous_weights(j, w), rho, j.signals["profit"], q, v)
    assert got["pdis"] != 0.0
    for plain, marginal in (("pdis", "mis"), ("wpdis", "wmis"), ("dr", "mdr"), ("wdr", "wmdr")):
        assert got[marginal] == pytest.approx(got[plain], rel=1e-12, abs=1e-9), marginal


def test_on_a_single_decision_log_they_are_ips_snips_dr_and_sndr() -> None:
    rng = np.random.default_rng(2)
    n = 400
    coupon = rng.random(n) < 0.3
    frame = pd.DataFrame(
        {
            "journey": np.arange(n).astype(str),
            "step": 0,
            "loyal": (rng.random(n) < 0.5).astype(float),
            "eligible_control": True,
            "eligible_coupon": True,
            "action": np.where(coupon, "coupon", "control"),
            "propensity": np.where(coupon, 0.3, 0.7),
            "reward": np.where(rng.random(n) < 0.2 + 0.1 * coupon, 45.0, 0.0),
            "journey_end": "abandoned",
        }
    )
    log = from_dataframe(frame, logger="ab")
    j = from_log(log)
    target = np.zeros((j.n_rows, 2))
    target[:, 1] = 1.0  # always the coupon
    rho = est.ratios(j, target, j.propensity)
    u = fit_state_ratios(j, est.cumulative_weights(j, rho), RatioModelSettings(), seed=0)
    np.testing.assert_array_equal(u, 1.0)  # both policies start alike
    q, v = rng.normal(9, 1, n), rng.normal(9, 1, n)
    got = every_estimator(j, u, rho, j.signals["profit"], q, v)
    for plain, marginal in (("pdis", "mis"), ("wpdis", "wmis"), ("dr", "mdr"), ("wdr", "wmdr")):
        assert got[marginal] == pytest.approx(got[plain], rel=1e-12), marginal
    # the app names them IPS... and does not repeat them as marginalised estimators
    policy = FixedAction(("control", "coupon"), "coupon")
    result = evaluate_offpolicy(log, [policy], settings=SMALL)
    assert set(result.results[policy.name].estimators) == {"ips", "snips", "dr", "sndr"}


def test_on_the_loggers_own_log_every_estimator_is_the_logged_mean() -> None:
    scenario = envs.load_scenario("default")
    (logger,) = build_policies(["always_recovery_email"], scenario)
    log = from_table(simulate_logs(scenario, logger, 300, 5, Exploration("epsilon", 0.0)))
    result = evaluate_offpolicy(log, [logger], settings=SMALL).to_json()
    logged = result["logged"]["profit_per_1000"]["estimate"]
    r = result["results"]["always_recovery_email"]
    assert {"mis", "wmis", "mdr", "wmdr"} <= set(r["estimators"])
    for name, figures in r["estimators"].items():
        assert figures["profit_per_1000"]["estimate"] == pytest.approx(logged, abs=1e-6), name
    assert r["diagnostics"]["marginal_ess"] == pytest.approx(300.0)


@pytest.fixture(scope="module")
def never_result() -> OPEResult:
    scenario = envs.load_scenario("default")
    (logger, never) = build_policies(["always_recovery_email", "never"], scenario)
    table = simulate_logs(scenario, logger, 2000, 6, Exploration("epsilon", 0.3))
    return evaluate_offpolicy(from_table(table), [never], settings=SMALL)


def test_the_marginalised_weights_are_worth_many_more_journeys_and_cover_the_truth(
    never_result: OPEResult,
) -> None:
    r = never_result.results["never"]
    d = r.diagnostics
    assert d.ess < 100  # the curse of horizon: pdis has next to nothing
    assert d.marginal_ess is not None and d.step_ess is not None
    assert d.marginal_ess > 10 * d.ess
    assert d.marginal_ess >= 0.9 * d.step_ess
    truth = public(
        evaluate(
            envs.load_scenario("default"),
            ["never"],
            4000,
            seed=11,
            cohort_size=4000,
            bootstrap=Bootstrap(100),
        )
    )["overall"]["never"]["profit_per_1000"]
    for name in ("mdr", "wmdr", r.recommended.estimator):
        e = r.estimators[name]["profit_per_1000"]
        assert e.low is not None and e.high is not None
        # the truth's own interval overlaps the estimate's
        assert e.low <= truth["high"] and truth["low"] <= e.high, (name, e, truth)
    mis = r.estimators["mis"]["profit_per_1000"]
    pdis = r.estimators["pdis"]["profit_per_1000"]
    assert mis.high - mis.low < 1.2 * (pdis.high - pdis.low)  # type: ignore[operator]


def test_the_result_round_trips_and_the_console_and_report_show_them(
    never_result: OPEResult, tmp_path: Path
) -> None:
    data = never_result.to_json()
    again = OPEResult.from_json(json.loads(json.dumps(data)))
    assert again == never_result
    assert {"mis", "wmis", "mdr", "wmdr"} <= set(again.results["never"].estimators)
    assert again.settings.ratio_model is not None
    out = io.StringIO()
    render(never_result, Console(file=out, width=250))
    text = out.getvalue()
    for name in ("mis", "wmis", "mdr", "wmdr", "marginalised"):
        assert name in text, name
    # a file from before the marginalised estimators still loads
    old = json.loads(json.dumps(data))
    for key in ("step_ess", "marginal_ess"):
        del old["results"]["never"]["diagnostics"][key]
    del old["settings"]["ratio_model"]
    assert OPEResult.from_json(old).results["never"].diagnostics.marginal_ess is None
    path = tmp_path / "ope.json"
    path.write_text(json.dumps(data))
    html = offpolicy_html(offpolicy_figures(read_offpolicy(path), []), None)
    assert "marginalised weights" in html


def test_the_marginalised_doubly_robust_estimate_is_recommended_by_the_stated_rule() -> None:
    def chosen(mdr: tuple[float, float] | None, r2: float = 0.4) -> tuple[str, str]:
        wdr = Estimate(9000.0, 7000.0, 11000.0)
        profit = {"wdr": wdr} if mdr is None else {"wdr": wdr, "mdr": Estimate(sum(mdr) / 2, *mdr)}
        return _recommend(True, {"profit": r2}, SMALL, 1000, False, False, profit)

    assert chosen((8000.0, 10000.0))[0] == "mdr"  # narrower and overlapping
    assert chosen((6000.0, 12000.0))[0] == "wdr"  # wider
    assert chosen((11500.0, 12500.0))[0] == "wdr"  # narrower but disagreeing
    assert chosen(None)[0] == "wdr"  # no ratio model
    assert chosen((8000.0, 10000.0), r2=0.0)[0] == "wpdis"  # the value model explains nothing
    assert "2,000 against 4,000" in chosen((8000.0, 10000.0))[1]
