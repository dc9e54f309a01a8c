"""The evaluation: every scenario, references, paired intervals, the Hydra app and its errors."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from rich.console import Console

import envs
from agents.oracle import Oracle
from agents.registry import UnknownPolicyError, build_policies
from experiments.evaluate import run
from experiments.evaluation.kpis import Bootstrap
from experiments.evaluation.paired import PROFITS, evaluate, public, with_references

ROOT = Path(__file__).resolve().parent.parent
CONF = ROOT / "conf"
SMALL = ["n_shoppers=600", "cohort_size=600", "bootstrap.n_resamples=100", "oracle_workers=1"]


@pytest.fixture(scope="module")
def results() -> dict[str, dict[str, Any]]:
    """One small evaluation of the default policy list per shipped scenario."""
    from experiments.evaluation.paired import DEFAULT_POLICIES

    return {
        name: evaluate(
            envs.load_scenario(name),
            DEFAULT_POLICIES,
            n_shoppers=1500,
            seed=3,
            cohort_size=1500,
            bootstrap=Bootstrap(n_resamples=200),
        )
        for name in envs.available_scenarios()
    }


def test_every_scenario_reports_every_kpi(
    results: dict[str, dict[str, Any]], shipped_name: str
) -> None:
    r = results[shipped_name]
    json.loads(json.dumps(public(r), allow_nan=False))
    assert set(r[PROFITS]) == set(r["policies"])
    assert all(len(v) == r["n_shoppers"] for v in r[PROFITS].values())
    assert r["policies"][0] == "never" and r["policies"][-1] == "oracle"
    assert r["best_baseline"] in r["policies"][:-1]
    for group in (r["overall"], *r["by_segment"].values(), *r["by_consent"].values()):
        assert list(group) == r["policies"]
        for kpis in group.values():
            for key in (
                "profit_per_1000",
                "conversion",
                "revenue_per_1000",
                "spend_per_1000",
                "offer_rate",
                "giveaway_rate",
                "interruptions_per_shopper",
                "harassment_exits",
                "opt_outs",
                "agent_sessions_per_1000",
                "regret_per_1000",
                "profit_captured",
                "diff_vs_never_per_1000",
                "diff_vs_best_per_1000",
            ):
                assert set(kpis[key]) == {"estimate", "low", "high"}, key
    segments = {s.name for s in envs.load_scenario(shipped_name).segments}
    assert set(r["by_segment"]) <= segments
    assert sum(g["never"]["shoppers"] for g in r["by_segment"].values()) == r["n_shoppers"]
    assert sum(g["never"]["shoppers"] for g in r["by_consent"].values()) == r["n_shoppers"]


def test_never_spends_nothing_and_gives_nothing_away(
    results: dict[str, dict[str, Any]], shipped_name: str
) -> None:
    for group in (results[shipped_name]["overall"], *results[shipped_name]["by_segment"].values()):
        never = group["never"]
        for key in ("spend_per_1000", "giveaway_spend_per_1000", "giveaway_rate", "offer_rate"):
            assert never[key] == {"estimate": 0.0, "low": 0.0, "high": 0.0}, key
        assert all(v["estimate"] == 0.0 for v in never["spend_by_kind_per_1000"].values())
        assert never["diff_vs_never_per_1000"]["estimate"] == 0.0
        assert never["profit_captured"]["estimate"] == 0.0


def test_oracle_is_the_top_and_paired_beats_unpaired(
    results: dict[str, dict[str, Any]], shipped_name: str
) -> None:
    overall = results[shipped_name]["overall"]
    assert overall["oracle"]["profit_captured"]["estimate"] == 1.0
    for name, kpis in overall.items():
        if name == "oracle":
            continue
        assert kpis["regret_per_1000"]["estimate"] > 0, name
        assert kpis["profit_captured"]["estimate"] < 1.0, name
        paired, unpaired = kpis["diff_vs_never_per_1000"], kpis["diff_vs_never_unpaired_per_1000"]
        if name != "never" and paired["high"] != paired["low"]:
            assert paired["high"] - paired["low"] < unpaired["high"] - unpaired["low"], name


def test_references_are_added_and_bad_names_list_what_exists() -> None:
    assert with_references(["boulware"]) == ["never", "boulware", "oracle"]
    assert with_references(["oracle", "never"]) == ["oracle", "never"]
    with pytest.raises(UnknownPolicyError) as err:
        evaluate(envs.load_scenario("default"), ["never", "nope"], 100, 0)
    assert "'nope'" in str(err.value) and "merchant_rules" in str(err.value)


class Generous:
    """Offers the first concession the mask allows: an agent under test, not a baseline."""

    name = "generous"

    def act(self, obs: np.ndarray, mask: np.ndarray) -> np.ndarray:
        first = mask[:, 1:].argmax(axis=1) + 1
        return np.where(mask[:, 1:].any(axis=1), first, 0)


def test_a_policy_object_is_compared_with_the_baselines_not_one_of_them() -> None:
    scenario = envs.load_scenario("default")
    oracle = build_policies(["never", Generous(), "oracle"], scenario)[-1]
    assert isinstance(oracle, Oracle) and "generous" in {p.name for p in oracle.plans}
    r = evaluate(scenario, ["never", "boulware", Generous()], 400, 1, 400, bootstrap=Bootstrap(100))
    assert r["policies"] == ["never", "boulware", "generous", "oracle"]
    assert r["best_baseline"] in ("never", "boulware")
    generous = r["overall"]["generous"]
    assert generous["offer_rate"]["estimate"] > 0.5
    assert generous["regret_per_1000"]["estimate"] > 0


def test_hydra_composes_every_scenario_like_the_loader(shipped_name: str, tmp_path: Path) -> None:
    with initialize_config_dir(config_dir=str(CONF)):
        cfg = compose(
            "evaluate",
            [
                f"scenario={shipped_name}",
                *SMALL,
                "policies=[never,boulware]",
                f"output={tmp_path}/e.json",
            ],
        )
    from experiments.config.scenarios import scenario_from_config

    assert scenario_from_config(cfg.scenario).digest() == envs.load_scenario(shipped_name).digest()
    if shipped_name == "grocery":
        out = io.StringIO()
        result = run(cfg, Console(file=out, width=160))
        assert result["policies"] == ["never", "boulware", "oracle"]
        assert "Profit" in out.getvalue()
        assert json.loads((tmp_path / "e.json").read_text()) == result


def _app(*overrides: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "experiments.evaluate", *overrides, f"hydra.run.dir={tmp_path}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_app_prints_tables_and_the_json_as_its_last_line(tmp_path: Path) -> None:
    done = _app(
        "scenario=black_friday",
        *SMALL,
        "policies=[never,always_*,merchant_rules]",
        f"output={tmp_path}/out.json",
        tmp_path=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    last = done.stdout.strip().splitlines()[-1]
    result = json.loads(last)
    assert result["scenario"] == "black_friday"
    assert "always_twenty_percent_off" in result["policies"]
    assert json.loads((tmp_path / "out.json").read_text()) == result
    assert "Profit" in done.stdout and "Concession spend by kind" in done.stdout


def test_app_bad_policy_name_exits_with_the_list(tmp_path: Path) -> None:
    done = _app("policies=[never,alwayz_free_shipping]", *SMALL, tmp_path=tmp_path)
    assert done.returncode == 2
    assert "unknown policy name(s) ['alwayz_free_shipping']" in done.stderr
    for name in ("always_free_shipping", "merchant_rules", "boulware", "oracle"):
        assert name in done.stderr


def test_app_bad_scenario_name_exits_with_the_list(tmp_path: Path) -> None:
    done = _app("scenario=black_fryday", *SMALL, tmp_path=tmp_path)
    assert done.returncode != 0
    assert "black_fryday" in done.stderr
    for name in envs.available_scenarios():
        assert name in done.stderr
