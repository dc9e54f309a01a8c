"""Off-policy evaluation: hand-computed answers, a randomised trial, diagnostics, the apps.

- every estimator on a three-journey log computed by hand;
- a coupon A/B test built here as a shop keeps it (one row per customer, arms drawn with
  known probabilities, spend as outcome), converted from pandas and evaluated by IPS,
  SNIPS and DR against the answers computed from the table and against the truth;
- a small coverage case on such trials; the on-policy case (all weights 1);
- no support: a clear verdict and warning, not a trusted number;
- logs without propensities: estimated, widened, warned;
- the apps end to end, and bad input ending with status 2 and the message.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

import envs
from agents.baselines import FixedAction
from agents.exploration import Exploration
from agents.export import export_policy
from agents.learned import LearnedPolicy
from agents.logs import LogSpec, from_dataframe, from_table, write_log
from agents.logs.simulate import simulate_logs
from agents.registry import build_policies
from agents.runtime_policy import RuntimePolicy
from experiments.offpolicy import OPESettings, evaluate_offpolicy
from experiments.offpolicy import estimators as est
from experiments.offpolicy.bootstrap import BootstrapSettings
from experiments.offpolicy.data import from_log
from experiments.offpolicy.fqe import SPLIT_SEED_STEP, ValueModelSettings
from experiments.offpolicy.run import INPUT_ERRORS, evaluate_logs, shared_state_warnings
from experiments.offpolicy.targets import PolicyMismatchError, target_probabilities

FAST = OPESettings(bootstrap=BootstrapSettings(n_resamples=200, seed=0), value_model=None)
REPO = Path(__file__).resolve().parent.parent


# ---------------------------------------------------------------- hand-computed answers


def tiny_log() -> Any:
    """Three journeys, two actions, one feature ``x``:

    A: (x=0, wait, p=0.5, r=0), (x=1, offer, p=0.5, r=10, purchase)
    B: (x=0, offer, p=0.5, r=0), (x=1, wait, p=0.8, r=4, purchase)
    C: (x=0, wait, p=0.5, r=0, abandoned)
    """
    frame = pd.DataFrame(
        {
            "journey": ["A", "A", "B", "B", "C"],
            "step": [0, 1, 0, 1, 0],
            "x": [0.0, 1.0, 0.0, 1.0, 0.0],
            "eligible_wait": True,
            "eligible_offer": True,
            "action": ["wait", "offer", "offer", "wait", "wait"],
            "propensity": [0.5, 0.5, 0.5, 0.8, 0.5],
            "reward": [0.0, 10.0, 0.0, 4.0, 0.0],
            "journey_end": [None, "purchase", None, "purchase", "abandoned"],
        }
    )
    return from_dataframe(frame)


class OfferWhenX:
    """Offers (action 1) when ``x`` = 1, else waits."""

    name = "offer_when_x"

    def act(self, obs: np.ndarray, mask: np.ndarray) -> np.ndarray:
        return (obs[:, 0] > 0.5).astype(np.int64)


def test_weights_and_every_estimator_match_the_hand_computation() -> None:
    j = from_log(tiny_log())
    target = target_probabilities(OfferWhenX(), j, ["x"])
    w = est.cumulative_weights(j, est.ratios(j, target, j.propensity))
    # A: 1/0.5, then 2 * 1/0.5; B: offered at x=0, which the policy never does; C: 1/0.5
    np.testing.assert_allclose(w, [2.0, 4.0, 0.0, 0.0, 2.0])
    y = j.signals["profit"]
    assert est.pdis(j, w, y).estimate(3) == pytest.approx(40.0 / 3.0)
    # position 0: no reward; position 1: 40 / (4 + 0 + 2, C's weight carried past its end)
    assert est.wpdis(j, w, y).estimate(3) == pytest.approx(40.0 / 6.0)
    q = np.array([1.0, 8.0, 3.0, 5.0, 2.0])
    v = np.array([6.0, 9.0, 6.0, 9.0, 6.0])
    # A: 2(0-1) + 6 + 4(10-8) + 2*9 = 30; B: 0 + 6 + 0 + 0 = 6; C: 2(0-2) + 6 = 2
    assert est.dr(j, w, y, q, v).estimate(3) == pytest.approx(38.0 / 3.0)
    # t=0: (-2 + 0 - 4)/4 + 18/3; t=1: 8/6 + 18/4
    assert est.wdr(j, w, y, q, v).estimate(3) == pytest.approx(-1.5 + 6.0 + 8.0 / 6.0 + 4.5)
    conversion = j.signals["conversion"]
    np.testing.assert_array_equal(conversion, [0, 1, 0, 1, 0])
    assert est.pdis(j, w, conversion).estimate(3) == pytest.approx(4.0 / 3.0)


def test_a_bootstrap_resample_is_the_estimate_on_the_drawn_journeys() -> None:
    j = from_log(tiny_log())
    w = est.cumulative_weights(
        j, est.ratios(j, target_probabilities(OfferWhenX(), j, ["x"]), j.propensity)
    )
    y = j.signals["profit"]
    # journeys A, A, C drawn: PDIS (40 + 40 + 0) / 3, WPDIS 80 / (4 + 4 + 2)
    counts = np.array([[2.0, 0.0, 1.0]])
    assert est.pdis(j, w, y).value(counts)[0] == pytest.approx(80.0 / 3.0)
    assert est.wpdis(j, w, y).value(counts)[0] == pytest.approx(8.0)


def test_on_policy_every_estimator_is_the_logged_mean() -> None:
    scenario = envs.load_scenario("default")
    (rules,) = build_policies(["merchant_rules"], scenario)
    log = from_table(simulate_logs(scenario, rules, 400, 2, Exploration("epsilon", 0.0)))
    settings = OPESettings(
        bootstrap=BootstrapSettings(n_resamples=100),
        value_model=ValueModelSettings(iterations=2, max_iter=10, min_journeys=50),
        signals=("profit",),
    )
    result = evaluate_offpolicy(log, [rules], settings=settings).to_json()
    logged = result["logged"]["profit_per_1000"]
    r = result["results"]["merchant_rules"]
    for name, figures in r["estimators"].items():
        assert figures["profit_per_1000"]["estimate"] == pytest.approx(
            logged["estimate"], abs=1e-6
        ), name
    assert r["diagnostics"]["ess_share"] == pytest.approx(1.0)
    assert r["trust"] == "trusted" and not r["warnings"]


def test_repeated_splits_average_the_doubly_robust_estimates_and_widen_by_their_spread() -> None:
    scenario = envs.load_scenario("default")
    rules, never = build_policies(["merchant_rules", "never"], scenario)
    log = from_table(simulate_logs(scenario, rules, 400, 3, Exploration("epsilon", 0.3)))

    def wdr_profit(repeats: int, seed: int) -> dict[str, float]:
        settings = OPESettings(
            bootstrap=BootstrapSettings(n_resamples=100),
            value_model=ValueModelSettings(
                iterations=2, max_iter=10, min_journeys=50, repeats=repeats
            ),
            signals=("profit",),
            seed=seed,
        )
        result = evaluate_offpolicy(log, [never], settings=settings).to_json()
        return result["results"]["never"]["estimators"]["wdr"]["profit_per_1000"]

    splits = [wdr_profit(1, 5 + SPLIT_SEED_STEP * r)["estimate"] for r in range(3)]
    assert np.std(splits) > 0  # the split moves the estimate: the case this is for
    both = wdr_profit(3, 5)
    assert both["estimate"] == pytest.approx(np.mean(splits), rel=1e-9)
    spread = 1.959964 * np.std(splits, ddof=1)
    assert both["high"] - both["estimate"] >= spread - 1e-6
    assert both["estimate"] - both["low"] >= spread - 1e-6


# ---------------------------------------------------------------- a randomised trial


def coupon_trial(n: int, seed: int) -> pd.DataFrame:
    """A coupon A/B test as a shop keeps it: one row per customer, the coupon arm drawn
    with probability 0.3, whether the customer is loyal, what they spent (50 EUR, 45 with
    the coupon) — buying with probability 0.2 + 0.1 coupon + 0.1 loyal."""
    rng = np.random.default_rng(seed)
    coupon = rng.random(n) < 0.3
    loyal = (rng.random(n) < 0.5).astype(float)
    spend = np.where(rng.random(n) < 0.2 + 0.1 * coupon + 0.1 * loyal, 50.0 - 5.0 * coupon, 0.0)
    return pd.DataFrame(
        {
            "customer": np.arange(n),
            "loyal": loyal,
            "arm": np.where(coupon, "coupon", "control"),
            "p_arm": np.where(coupon, 0.3, 0.7),
            "spend": spend,
        }
    )


def trial_log(trial: pd.DataFrame) -> Any:
    """The trial in the decision-log format (the README's worked example)."""
    frame = pd.DataFrame(
        {
            "journey": "customer-" + trial["customer"].astype(str),
            "step": 0,
            "loyal": trial["loyal"],
            "eligible_control": True,
            "eligible_coupon": True,
            "action": trial["arm"],
            "propensity": trial["p_arm"],
            "reward": trial["spend"],
            "journey_end": np.where(trial["spend"] > 0, "purchase", "abandoned"),
        }
    )
    return from_dataframe(frame, logger="coupon A/B test")


TRUE_SPEND = {"fixed:coupon": 45.0 * 0.35, "fixed:control": 50.0 * 0.25}


def test_a_randomised_trial_gets_ips_snips_and_dr_right() -> None:
    trial = coupon_trial(4000, 1)
    log = trial_log(trial)
    arms = ("control", "coupon")
    policies = [FixedAction(arms, "coupon"), FixedAction(arms, "control")]
    settings = OPESettings(
        bootstrap=BootstrapSettings(n_resamples=500, seed=1),
        value_model=ValueModelSettings(min_journeys=100),
    )
    result = evaluate_offpolicy(log, policies, settings=settings).to_json()
    assert result["log"]["single_decision"]
    assert result["estimator_names"] == {"pdis": "ips", "wpdis": "snips", "dr": "dr", "wdr": "sndr"}
    n = len(trial)
    for arm, p in (("coupon", 0.3), ("control", 0.7)):
        name = f"fixed:{arm}"
        r = result["results"][name]["estimators"]
        in_arm = trial["arm"] == arm
        ips = trial["spend"][in_arm].sum() / p / n
        snips = trial["spend"][in_arm].mean()
        assert r["ips"]["profit_per_1000"]["estimate"] == pytest.approx(1000 * ips, abs=1e-5)
        assert r["snips"]["profit_per_1000"]["estimate"] == pytest.approx(1000 * snips, abs=1e-5)
        bought = (trial["spend"][in_arm] > 0).mean()
        assert r["snips"]["conversion"]["estimate"] == pytest.approx(bought, abs=1e-6)
        for e in ("ips", "snips", "dr"):
            interval = r[e]["profit_per_1000"]
            assert interval["low"] <= 1000 * TRUE_SPEND[name] <= interval["high"], (name, e)
        # single decision: DR, unless its value model explains nothing (then SNIPS)
        fit = result["results"][name]["value_model_r2"]["profit"]
        expected = "dr" if fit > 0 else "snips"
        assert result["results"][name]["recommended"]["estimator"] == expected
    assert "spend" not in json.dumps(result["results"]["fixed:coupon"]["estimators"]["dr"])


def test_coverage_on_small_randomised_trials() -> None:
    """40 trials of 600 customers: the 95% intervals hold the truth at least 85% of times."""
    arms = ("control", "coupon")
    policy = FixedAction(arms, "coupon")
    settings = OPESettings(
        bootstrap=BootstrapSettings(n_resamples=300, seed=0),
        value_model=None,
        signals=("profit",),
    )
    hits: dict[str, int] = {"ips": 0, "snips": 0}
    for seed in range(40):
        result = evaluate_offpolicy(
            trial_log(coupon_trial(600, 100 + seed)), [policy], settings=settings
        ).to_json()
        for e in hits:
            i = result["results"][policy.name]["estimators"][e]["profit_per_1000"]
            hits[e] += i["low"] <= 1000 * TRUE_SPEND[policy.name] <= i["high"]
    assert hits["ips"] >= 34 and hits["snips"] >= 34, hits


# ---------------------------------------------------------------- diagnostics


def test_a_policy_the_logger_never_supports_is_not_trusted() -> None:
    scenario = envs.load_scenario("default")
    never, email = build_policies(["never", "always_recovery_email"], scenario)
    log = from_table(simulate_logs(scenario, never, 300, 4, Exploration("epsilon", 0.0)))
    result = evaluate_offpolicy(log, [email], settings=FAST).to_json()
    r = result["results"]["always_recovery_email"]
    assert r["trust"] == "not trustworthy"
    assert r["diagnostics"]["unsupported_decisions"] > 0
    assert any("no support" in w and "Do not trust" in w for w in r["warnings"])


def test_without_propensities_they_are_estimated_and_the_output_says_so() -> None:
    scenario = envs.load_scenario("default")
    (rules,) = build_policies(["merchant_rules"], scenario)
    table = simulate_logs(scenario, rules, 600, 6, Exploration("epsilon", 0.3))
    dropped = table.drop_columns(
        ["propensity"] + [c for c in table.column_names if c.startswith("p_")]
    )
    spec = from_table(table).spec.with_source(probabilities=False, propensities="none")
    bare = from_table(dropped.replace_schema_metadata(None), spec)
    settings = OPESettings(
        bootstrap=BootstrapSettings(n_resamples=200), value_model=None, propensity_refits=5
    )
    (never,) = build_policies(["never"], scenario)
    estimated = evaluate_offpolicy(bare, [never], settings=settings).to_json()
    exact = evaluate_offpolicy(from_table(table), [never], settings=settings).to_json()
    assert estimated["log"]["propensities"] == "estimated"
    assert any("NO PROPENSITIES" in w for w in estimated["warnings"])
    r = estimated["results"]["never"]
    assert r["trust"] != "trusted" and any("ESTIMATED" in w for w in r["warnings"])
    assert estimated["settings"]["propensity_refits"] == 5
    got = r["estimators"]["wpdis"]["profit_per_1000"]
    assert np.isfinite(got["estimate"]) and got["low"] < got["estimate"] < got["high"]
    assert exact["log"]["propensities"] == "logged"


def test_the_oracle_and_a_policy_of_other_actions_are_refused() -> None:
    j = from_log(tiny_log())
    with pytest.raises(PolicyMismatchError, match="decides among"):
        target_probabilities(FixedAction(("wait", "coupon", "other"), "coupon"), j, ["x"])
    scenario = envs.load_scenario("default")
    (oracle,) = build_policies(["oracle"], scenario)
    with pytest.raises(PolicyMismatchError, match="only be evaluated in the simulator"):
        target_probabilities(oracle, j, ["x"])


def test_shared_budgets_and_learned_waiting_are_named_as_biases() -> None:
    budget = shared_state_warnings(envs.load_scenario("black_friday"))
    assert any("campaign budget" in w for w in budget)
    default = shared_state_warnings(envs.load_scenario("default"))
    assert not any("campaign budget" in w for w in default)
    assert any("learn to wait" in w for w in default)


# ---------------------------------------------------------------- an exported policy


@pytest.fixture(scope="module")
def policy_dir(trained: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("policy") / "tiny_agent"
    return export_policy(trained, envs.load_scenario("default"), folder)


def test_a_policy_directory_decides_as_the_trained_model_and_is_evaluated(
    trained: Any, policy_dir: Path, tmp_path: Path
) -> None:
    scenario = envs.load_scenario("default")
    learned = LearnedPolicy(trained)
    table = simulate_logs(scenario, learned, 300, 0, Exploration("epsilon", 0.2))
    j = from_log(from_table(table))
    exported = RuntimePolicy.load(policy_dir)
    manifest = json.loads((policy_dir / "manifest.json").read_text())
    spec = LogSpec.from_manifest(manifest)  # the decision service's logs, from its manifest
    assert (spec.features, spec.actions, spec.gated) == (
        j.feature_names,
        j.action_names,
        LogSpec.from_scenario(scenario).gated,
    )
    assert spec.scenario_digest == scenario.digest()
    obs = j.observations(exported.feature_names)
    np.testing.assert_array_equal(exported.act(obs, j.mask), learned.act(obs, j.mask))
    # its scores give softmax exploration, with exact probabilities
    soft = simulate_logs(scenario, exported, 100, 1, Exploration("softmax", 1.0))
    assert from_table(soft, require_propensity=True).info.n_journeys == 100
    path = write_log(table, tmp_path / "log.parquet")
    result = evaluate_logs(path, [str(policy_dir), "never"], settings=FAST).to_json()
    assert result["policies"] == ["tiny_agent", "never"]
    assert result["results"]["tiny_agent"]["diagnostics"]["unsupported_decisions"] == 0.0


# ---------------------------------------------------------------- the apps


def _app(module: str, *overrides: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", module, *overrides, "hydra.run.dir=" + str(cwd / "hydra")],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=600,
    )


def test_the_apps_end_to_end(tmp_path: Path) -> None:
    log_path = tmp_path / "log.parquet"
    done = _app(
        "experiments.simulate_logs",
        "n_shoppers=300",
        "exploration=0.3",
        "seed=1",
        f"out={log_path}",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["journeys"] == 300 and summary["logger"] == "merchant_rules"
    assert log_path.is_file()
    out = tmp_path / "ope.json"
    done = _app(
        "experiments.ope",
        f"logs={log_path}",
        "policies=[never,always_recovery_email]",
        "bootstrap.n_resamples=100",
        "value_model.enabled=false",
        "signals=[profit,conversion]",
        f"output={out}",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["policies"] == ["never", "always_recovery_email"]
    assert result == json.loads(out.read_text())
    assert "Off-policy estimates" in done.stdout and "Diagnostics" in done.stdout


def test_the_value_model_settings_come_from_the_config() -> None:
    from omegaconf import OmegaConf

    from experiments.ope import settings_from_config

    cfg = OmegaConf.load(REPO / "conf" / "ope.yaml")
    vm = settings_from_config(cfg).value_model
    assert vm is not None and (vm.max_iter, vm.refit_iter) == (60, 15)
    cfg.value_model.refit_iter = 30
    assert settings_from_config(cfg).value_model.refit_iter == 30  # type: ignore[union-attr]
    cfg.value_model.refit_iter = 0
    with pytest.raises(ValueError, match="refit_iter"):
        settings_from_config(cfg)


def test_the_ope_app_reads_a_csv_with_the_scenario_and_refuses_bad_input(tmp_path: Path) -> None:
    scenario = envs.load_scenario("default")
    (rules,) = build_policies(["merchant_rules"], scenario)
    table = simulate_logs(scenario, rules, 200, 1, Exploration("epsilon", 0.3))
    csv = write_log(table, tmp_path / "log.csv")
    common = ("bootstrap.n_resamples=50", "value_model.enabled=false", "signals=[profit]")
    done = _app("experiments.ope", f"logs={csv}", "scenario=default", *common, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    done = _app("experiments.ope", f"logs={csv}", "policies=[never]", *common, cwd=tmp_path)
    assert done.returncode == 2 and "give scenario=" in done.stderr, done.stderr[-2000:]
    done = _app("experiments.simulate_logs", "logger=oracle", "n_shoppers=10", cwd=tmp_path)
    assert done.returncode == 2 and "only be evaluated in the simulator" in done.stderr


def test_every_bad_input_is_one_of_the_errors_the_app_ends_with_status_2(tmp_path: Path) -> None:
    scenario = envs.load_scenario("default")
    (rules,) = build_policies(["merchant_rules"], scenario)
    table = simulate_logs(scenario, rules, 100, 1, Exploration("epsilon", 0.3))
    good = write_log(table, tmp_path / "log.parquet")
    broken = table.set_column(
        table.column_names.index("propensity"),
        "propensity",
        pa.array([0.0, *table.column("propensity").to_pylist()[1:]], pa.float64()),
    )
    bad = write_log(broken, tmp_path / "bad.parquet")
    cases: dict[str, tuple[Path, list[str], str]] = {
        "missing": (tmp_path / "nope.parquet", ["never"], "no such file"),
        "policy": (good, ["nver"], "unknown policy"),
        "oracle": (good, ["oracle"], "only be evaluated in the simulator"),
        "format": (bad, ["never"], "column 'propensity', row 0"),
        "fixed": (good, ["fixed:bribe"], "no action 'bribe'"),
        "nothing": (good, [], "no policy to evaluate"),
        "run": (good, ["run:0123456789"], "run:0123456789"),
    }
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    for path, policies, message in cases.values():
        with pytest.raises(INPUT_ERRORS, match=re.escape(message)):
            evaluate_logs(path, policies, settings=FAST, tracking_uri=uri).to_json()


@pytest.mark.parametrize("scenario", ["default", "default+isolated"])
def test_the_benchmark_runs_on_a_tiny_case(
    capsys: pytest.CaptureFixture[str], scenario: str
) -> None:
    from experiments.benchmarks.ope import main as bench_main

    argv = ["--scenarios", scenario, "--policies", "never", "--draws", "3", "--workers", "1"]
    argv += ["--journeys", "300", "--truth-shoppers", "3000", "--loggers", "epsilon:0.1"]
    argv += ["--rule-shoppers", "500", "--resamples", "50"]
    assert bench_main(argv) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    (key,) = out["cells"]  # no agent trained, one logger
    never = out["cells"][key]
    assert never["policy"] == "never" and never["logs"] == 3
    if scenario == "default":  # its shoppers learn to wait: a correction is measured
        assert never["shared_state"] and never["corrected"] is not None
        assert out["targets"]["coverage_without_shared_state"] is None  # no such cell
    else:  # switched off: the cell is one the coverage target is about
        assert not never["shared_state"] and never.get("corrected") is None
        assert out["targets"]["corrected_coverage_with_shared_state"] is None
        assert out["targets"]["coverage_without_shared_state"] == (
            never["recommended"]["coverage"] >= 0.9
        )
    assert set(never["estimators"]) >= {"pdis", "wpdis", "dr", "wdr", "mdr"}
    assert never["recommended"]["coverage"] in (0.0, 1 / 3, 2 / 3, 1.0)
    assert set(out["targets"]) >= {"coverage_without_shared_state", "rmse_gain"}
