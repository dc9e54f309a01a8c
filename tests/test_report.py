"""The merchant report: from MLflow runs (a sweep with a failed run, one run) and from
evaluation files, its figures, its errors, and the page as headless Chromium renders it.

The MLflow store is real: one tiny training run (``experiments.train.train``, 256
timesteps on 8 shoppers, 300 final shoppers) tracked as the child of a sweep parent run,
beside a child run that failed (``end_run(status="FAILED")``), made once per session
(:func:`sweep`). A small paired evaluation (``experiments.evaluate.evaluate``, 600
shoppers) stands for the output of ``python -m experiments.evaluate`` (:func:`pure`).

The browser tests use Debian's ``chromium`` (``apt-get install -y chromium``), headless,
with a fresh profile in ``tmp_path``; they are skipped, saying so, only when it is absent.
The screenshot is kept under the test's ``tmp_path`` and its path printed (``-s``).
"""

from __future__ import annotations

import base64
import copy
import json
import math
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from html import unescape
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import execution_whitelist
from mlflow.tracking import MlflowClient

import envs
from experiments.cli import main as concede
from experiments.config.trusted import TRUSTED_TARGETS
from experiments.evaluation.kpis import PER, Bootstrap, paired_interval
from experiments.evaluation.paired import PROFITS, evaluate, public
from experiments.reporting import (
    ReportError,
    Source,
    build_figures,
    load_evaluation_file,
    write_report,
)
from experiments.reporting.figures import waterfall
from experiments.reporting.verdict import difference
from experiments.tracking.names import PARENT_TAG, SWEEP_TAG
from experiments.tracking.store import Tracking
from experiments.training.job import train

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
AGENT = "maskable_ppo"
FAILED_NAME = "maskable_ppo default seed=1 (crashed)"
SHRINK = [
    "training.total_timesteps=256",
    "training.n_envs=8",
    "training.eval_every=128",
    "training.checkpoint_every=128",
    "training.eval_shoppers=200",
    "training.final_shoppers=300",
    "training.baselines=[never,merchant_rules,always_recovery_email]",
    "training.progress_bar=false",
    f"agent={AGENT}",
    "agent.model.n_steps=16",
    "agent.model.batch_size=64",
]
CHROMIUM = next(
    (p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None
)
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None,
    reason="headless Chromium not installed (Debian: apt-get install -y chromium)",
)


@dataclass(frozen=True)
class Sweep:
    """A tracked sweep: one finished training run and one failed run under one parent."""

    uri: str
    parent: str
    name: str
    finished: str
    failed: str
    evaluation: Path


@pytest.fixture(scope="session")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sweep]:
    out = tmp_path_factory.mktemp("report-store")
    with initialize_config_dir(config_dir=str(CONF), job_name="test_report"):
        cfg = compose(
            "train", overrides=[*SHRINK, f"output_dir={out}", f"tracking.store_dir={out}"]
        )
    tracking = Tracking(store_dir=str(out))
    before = mlflow.get_tracking_uri()
    experiment_id = tracking.activate()
    client = MlflowClient(tracking.tracking_uri)
    name = str(out / "multirun" / "sweep")
    parent = client.create_run(
        experiment_id, run_name="sweep", tags={SWEEP_TAG: name, PARENT_TAG: "true"}
    ).info.run_id
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny batches: more threads only cost on 2 shared cores
    try:
        with execution_whitelist(TRUSTED_TARGETS):
            train(cfg, out / "run", sweep=name)
    finally:
        torch.set_num_threads(threads)
    finished = client.search_runs([experiment_id], f"tags.`mlflow.parentRunId` = '{parent}'")
    assert len(finished) == 1 and finished[0].info.status == "FINISHED"
    failed = mlflow.start_run(
        experiment_id=experiment_id,
        run_name=FAILED_NAME,
        tags={
            "mlflow.parentRunId": parent,
            SWEEP_TAG: name,
            "concede.scenario": "default",
            "concede.agent": AGENT,
            "concede.seed": "1",
        },
    ).info.run_id
    mlflow.end_run(status="FAILED")
    client.set_terminated(parent, status="FAILED")
    yield Sweep(
        uri=tracking.tracking_uri,
        parent=parent,
        name=name,
        finished=finished[0].info.run_id,
        failed=failed,
        evaluation=out / "run" / "evaluation.json",
    )
    while mlflow.active_run() is not None:
        mlflow.end_run(status="FAILED")
    mlflow.set_tracking_uri(before)  # leave MLflow pointing where it was


@pytest.fixture(scope="session")
def pure_full() -> dict[str, Any]:
    """A paired evaluation without training, per-shopper profits kept (private key)."""
    return evaluate(
        envs.load_scenario("default"),
        ["never", "merchant_rules", "always_free_shipping", "always_recovery_email", "oracle"],
        n_shoppers=600,
        seed=5,
        cohort_size=600,
        bootstrap=Bootstrap(n_resamples=100),
    )


@pytest.fixture(scope="session")
def pure(pure_full: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """That evaluation as ``python -m experiments.evaluate`` writes it."""
    path = tmp_path_factory.mktemp("evaluation") / "evaluation.json"
    path.write_text(json.dumps(public(pure_full), indent=2), encoding="utf-8")
    return path


def figures_of(html: Path) -> dict[str, Any]:
    return json.loads(html.with_suffix(".json").read_text(encoding="utf-8"))


# ---------------------------------------------------------------- from MLflow


def test_sweep_report_lists_the_failed_run(sweep: Sweep, tmp_path: Path) -> None:
    html = write_report(sweep=sweep.parent, tracking_uri=sweep.uri, out_dir=tmp_path, name="r")
    figures = figures_of(html)
    runs = {r["run_id"]: r for r in figures["runs"]}
    assert set(runs) == {sweep.finished, sweep.failed}  # the parent is not a training run
    failed = runs[sweep.failed]
    assert failed["status"] == "FAILED" and not failed["has_evaluation"]
    assert "failed" in failed["note"] and "not in the figures" in failed["note"]
    assert runs[sweep.finished]["has_evaluation"]
    page = html.read_text(encoding="utf-8")
    assert FAILED_NAME in page and ">FAILED<" in page
    assert "1 of 2 runs asked for have no evaluation" in page
    # the sweep by its folder (the concede.sweep tag) is the same sweep
    again = figures_of(write_report(sweep=sweep.name, tracking_uri=sweep.uri, out_dir=tmp_path))
    assert {r["run_id"] for r in again["runs"]} == set(runs)


def test_single_run_report_says_what_the_agent_earns(sweep: Sweep, tmp_path: Path) -> None:
    html = write_report([sweep.finished], tracking_uri=sweep.uri, out_dir=tmp_path, name="one")
    figures = figures_of(html)
    assert [r["run_id"] for r in figures["runs"]] == [sweep.finished]
    (scn,) = figures["scenarios"]
    evaluation = json.loads(sweep.evaluation.read_text())
    v = scn["verdict"]
    assert v["policy"] == AGENT and v["current_rule"] == "merchant_rules"
    assert "current_rule=" in v["current_rule_why"]
    if evaluation["best_baseline"] == "merchant_rules":  # then the run's own verdict is paired
        assert v["interval_method"] == "paired"
        assert v["profit_difference_per_1000"] == evaluation["verdict"]["diff_per_1000"]
    diff = v["profit_difference_per_1000"]
    assert diff["low"] <= diff["estimate"] <= diff["high"]
    assert v["headline"].startswith(f"{AGENT} earns €")
    assert "than your current rule (merchant_rules) [95% interval: " in v["headline"]
    assert "shoppers" in v["headline"] and "in concessions" in v["headline"]
    assert {"more": "more", "less": "less", "unclear": "either way"}[v["significance"]] in (
        " ".join(v["details"])
    )
    # learning curve from the metric history: the two evaluations of the run
    (curve,) = scn["curves"]
    assert [p["timesteps"] for p in curve["points"]] == [128.0, 256.0]
    # every table carries the judged policy and the rule first, with intervals
    for key in ("profit", "given", "contact"):
        rows = scn[key]["rows"]
        assert [r["policy"] for r in rows[:2]] == [AGENT, "merchant_rules"]
        assert len(scn[key]["columns"]) <= 6
    assert html.read_text(encoding="utf-8").count("<table") >= 8


def test_cli_names_a_missing_experiment(sweep: Sweep, tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "experiments.report", f"tracking_uri={sweep.uri}",
         "experiment_name=no_such_experiment", f"out_dir={tmp_path}"],
        capture_output=True, text=True, cwd=ROOT, check=False, timeout=120,
    )  # fmt: skip
    assert out.returncode == 2, out.stderr
    assert "no MLflow experiment named 'no_such_experiment'" in out.stderr
    assert "concede" in out.stderr  # the experiments that do exist
    assert not list(tmp_path.iterdir())


def test_cli_names_missing_run_ids_and_sweeps(
    sweep: Sweep, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ghost = "0" * 32
    argv = ["report", f"tracking_uri={sweep.uri}", f"out_dir={tmp_path}"]
    assert concede([*argv, f"run_ids=[{sweep.finished},{ghost}]"]) == 2
    err = capsys.readouterr().err
    assert f"run id(s) not found in {sweep.uri}: {ghost}" in err
    assert sweep.finished not in err.split("not found")[1]
    assert concede([*argv, "sweep=/no/such/sweep"]) == 2
    err = capsys.readouterr().err
    assert "no sweep '/no/such/sweep'" in err and sweep.parent in err  # lists the real one
    missing = tmp_path / "nowhere" / "mlflow.db"
    assert concede(["report", f"tracking_uri=sqlite:///{missing}", f"out_dir={tmp_path}"]) == 2
    assert f"no MLflow store at {missing}" in capsys.readouterr().err
    assert not missing.exists()  # not created by asking
    assert not list(tmp_path.glob("*.html"))


def test_only_failed_runs_is_an_error_that_lists_them(sweep: Sweep, tmp_path: Path) -> None:
    with pytest.raises(ReportError, match="nothing to report") as err:
        write_report([sweep.failed], tracking_uri=sweep.uri, out_dir=tmp_path)
    assert FAILED_NAME in str(err.value) and "FAILED" in str(err.value)


# ---------------------------------------------------------------- from evaluation files


def test_report_from_an_evaluation_file(pure: Path, tmp_path: Path) -> None:
    html = write_report(evaluations=[pure], out_dir=tmp_path, name="file")
    figures = figures_of(html)
    assert figures["tracking_uri"] is None  # MLflow not touched
    (scn,) = figures["scenarios"]
    evaluation = json.loads(pure.read_text())
    v = scn["verdict"]
    assert v["current_rule"] == "merchant_rules"
    others = [p for p in evaluation["policies"] if p not in ("merchant_rules", "oracle")]
    best = max(others, key=lambda p: evaluation["overall"][p]["profit_per_1000"]["estimate"])
    assert v["policy"] == best and "policy=" in v["policy_why"]
    assert scn["curves"] == [] and figures["runs"][0]["status"] == "FILE"
    # segments then consent groups, each with both policies
    groups = [r["group"] for r in scn["segments"]["rows"]]
    assert groups == ["segment"] * len(evaluation["by_segment"]) + ["consent"] * 2
    assert scn["privacy"]["consent_shoppers"] + scn["privacy"]["no_consent_shoppers"] == 600
    # older evaluations do not say when offers come: the report says so instead
    timing_missing = any("first_offer_visit" in m for m in figures["missing"])
    assert timing_missing == (scn["timing"] is None)


def test_current_rule_and_policy_can_be_chosen(pure: Path, tmp_path: Path) -> None:
    html = write_report(
        evaluations=[pure], out_dir=tmp_path, current_rule="never", policy="always_free_shipping"
    )
    v = figures_of(html)["scenarios"][0]["verdict"]
    assert (v["current_rule"], v["policy"]) == ("never", "always_free_shipping")
    assert v["interval_method"] == "paired"  # every evaluation pairs each policy with never
    assert v["current_rule_why"] == "chosen with current_rule="
    with pytest.raises(ReportError, match="current_rule=boulware was not evaluated"):
        write_report(evaluations=[pure], out_dir=tmp_path, current_rule="boulware")
    with pytest.raises(ReportError, match="policy=boulware is in none of the evaluations"):
        write_report(evaluations=[pure], out_dir=tmp_path, policy="boulware")


def test_a_file_that_is_not_an_evaluation_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "x.json"
    bad.write_text('{"scenario": "default"}')
    with pytest.raises(ReportError, match=r"x.json is not an evaluation .* missing"):
        load_evaluation_file(bad)
    with pytest.raises(ReportError, match="no evaluation file at"):
        load_evaluation_file(tmp_path / "absent.json")


def test_unpaired_differences_get_a_safe_interval(pure_full: dict[str, Any]) -> None:
    """Between two policies neither of which is never nor the best baseline, the interval
    made from their differences with a common reference contains the exact paired one."""
    ev = public(pure_full)
    a, b = [p for p in ev["policies"] if p not in (ev["best_baseline"], "never", "oracle")][:2]
    safe, method = difference(ev, ev["overall"], a, b)
    assert method == "conservative"
    profits = pure_full[PROFITS]
    exact = paired_interval(profits[a], profits[b]).scaled(PER)
    low, estimate, high = safe["low"], safe["estimate"], safe["high"]
    assert low is not None and estimate is not None and high is not None
    assert math.isclose(estimate, exact.estimate, rel_tol=1e-9, abs_tol=1e-6)
    assert low <= exact.low and exact.high <= high
    # with every pair stored in the evaluation, the verdict uses the exact interval
    with_pairs = {**ev, "paired_diffs_per_1000": {a: {b: exact.to_json()}}}
    source = Source(label="pairs.json", status="FILE", evaluation=with_pairs)
    figures = build_figures([source], current_rule=b, policy=a)
    verdict = figures["scenarios"][0]["verdict"]
    assert verdict["interval_method"] == "paired"
    assert verdict["profit_difference_per_1000"] == exact.to_json()


def test_waterfall_goes_from_revenue_to_profit(pure: Path) -> None:
    evaluation = json.loads(pure.read_text())
    for policy, k in evaluation["overall"].items():
        steps = waterfall(k)
        assert steps[0]["label"] == "Revenue" and steps[-1]["label"] == "Profit"
        total = sum(s["value"] for s in steps[:-1])
        assert math.isclose(total, k["profit_per_1000"]["estimate"], abs_tol=1e-6), policy
        assert all(s["value"] <= 0 for s in steps[1:-1] if s["label"] != "Future value")


def test_newer_evaluation_fields_are_shown_when_present(pure: Path, tmp_path: Path) -> None:
    """Timing of the first offer and the ledger terms, once evaluations record them."""
    evaluation = json.loads(pure.read_text())
    rng = np.random.default_rng(0)
    for k in evaluation["overall"].values():
        revenue = k["revenue_per_1000"]["estimate"]
        k["cost_of_goods_per_1000"] = {"estimate": 0.5 * revenue, "low": None, "high": None}
        k["shipping_per_1000"] = {"estimate": 0.05 * revenue, "low": None, "high": None}
        shares = rng.dirichlet(np.ones(4)) * k["offer_rate"]["estimate"]
        k["first_offer_visit"] = {
            label: {"estimate": float(s), "low": float(s) * 0.8, "high": float(s) * 1.2}
            for label, s in zip(("1", "2", "3+"), shares, strict=False)
        }
        k["first_offer_step"] = copy.deepcopy(k["first_offer_visit"])
    newer = tmp_path / "newer.json"
    newer.write_text(json.dumps(evaluation))
    html = write_report(evaluations=[newer], out_dir=tmp_path, name="newer")
    figures = figures_of(html)
    (scn,) = figures["scenarios"]
    assert [b["bin"] for b in scn["timing"]["first_offer_visit"]] == ["1", "2", "3+"]
    labels = [s["label"] for s in scn["waterfall"][scn["verdict"]["policy"]]]
    assert labels[:3] == ["Revenue", "Cost of goods", "Delivery"]
    assert figures["missing"] == []
    page = html.read_text(encoding="utf-8")
    assert "First offer, by visit" not in page  # plot titles are in the images, not the text
    assert "<th>Visit</th>" in page and "<td>3+</td>" in page


def test_what_an_opponent_learned_from_stands_beside_it(pure: Path, tmp_path: Path) -> None:
    """An evaluation's ``training_data`` (uplift, bandit) is said in the policy list: the
    amount of shopper experience, what it chose, where it is cached."""
    evaluation = json.loads(pure.read_text())
    evaluation["training_data"] = {
        "always_recovery_email": {
            "trained_on": "randomised decision log",
            "journeys": 336000,
            "chosen": "always recovery_email",
            "cache": "outputs/cache/opponents/uplift-default-0123.pkl",
        },
        "merchant_rules": {"trained_on": "online in the simulator", "journeys": 1000},
    }
    path = tmp_path / "opponents.json"
    path.write_text(json.dumps(evaluation))
    (scn,) = figures_of(write_report(evaluations=[path], out_dir=tmp_path, name="o"))["scenarios"]
    assert scn["policies"]["always_recovery_email"].endswith(
        "(learned from a randomised test of 336,000 shoppers; chose always recovery_email; "
        "trained once for this scenario and kept in "
        "outputs/cache/opponents/uplift-default-0123.pkl)"
    )
    assert "1,000 shoppers served online in the simulator" in scn["policies"]["merchant_rules"]
    assert "learned from" not in scn["policies"]["never"]


def test_figures_are_json_and_plots_are_svg_images(pure: Path, tmp_path: Path) -> None:
    html = write_report(evaluations=[pure], out_dir=tmp_path, name="svg")
    page = html.read_text(encoding="utf-8")
    json.loads(html.with_suffix(".json").read_text(encoding="utf-8"))
    images = re.findall(r'<img src="data:image/svg\+xml;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(images) >= 6
    for data in images:
        root = ET.fromstring(base64.b64decode(data))
        assert root.tag.endswith("svg")
    # self-contained: no scripts, nothing fetched from elsewhere
    assert "<script" not in page
    links = re.findall(r'(?:src|href)="([^"]*)"', page)
    assert links and all(u.startswith(("data:", "#")) for u in links), links
    assert "@import" not in page and "url(" not in page


def test_build_figures_needs_an_evaluation() -> None:
    with pytest.raises(ReportError, match="none of the 0 run"):
        build_figures([])


# ---------------------------------------------------------------- in the browser


def chromium(*args: str, profile: Path, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    """Headless Chromium with a fresh profile, logging the page's console to stderr."""
    assert CHROMIUM is not None
    return subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--no-first-run", f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0",
         "--hide-scrollbars", *args],
        capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip


def html_text(markup: str) -> str:
    """The text of some HTML, tags dropped, entities decoded, spaces collapsed."""
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", markup)))


def console_messages(stderr: str) -> list[str]:
    """The page's console lines in Chromium's log (any level) and uncaught errors."""
    return [line for line in stderr.splitlines() if ":CONSOLE" in line or "Uncaught" in line]


@needs_chromium
def test_console_scan_catches_a_page_error(tmp_path: Path) -> None:
    """The scan below is only worth something if it sees an error when there is one."""
    bad = tmp_path / "bad.html"
    bad.write_text("<html><body><p>x</p><script>no_such_function();</script></body></html>")
    out = chromium("--dump-dom", bad.as_uri(), profile=tmp_path / "profile")
    assert any("no_such_function" in m for m in console_messages(out.stderr)), out.stderr[-2000:]


@needs_chromium
def test_report_renders_in_chromium(sweep: Sweep, tmp_path: Path) -> None:
    html = write_report(sweep=sweep.parent, tracking_uri=sweep.uri, out_dir=tmp_path, name="web")
    figures = figures_of(html)
    dom = chromium("--dump-dom", html.as_uri(), profile=tmp_path / "profile-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert console_messages(dom.stderr) == []
    body = re.sub(r"<(style|title)>.*?</\1>", " ", dom.stdout, flags=re.S)
    text = html_text(body)
    verdict = figures["scenarios"][0]["verdict"]
    # the verdict first, then the tables, the runs (the failed one too) and the glossary
    order = [
        "Verdict",
        verdict["headline"][:60],
        "Profit and sales",
        "What is given away",
        "Where the margin goes",
        "How often shoppers are interrupted",
        "Who gets offers",
        "What privacy costs",
        "Headroom: the oracle's bound",
        "Learning curves",
        "Runs in this report",
        FAILED_NAME,
        "How to read this report",
    ]
    at = 0
    for t in order:  # each after the one before
        found = text.find(t, at)
        assert found >= 0, f"{t!r} missing after position {at}: {text[at : at + 300]!r}"
        at = found + len(t)
    assert dom.stdout.count("<img") >= 7

    shot = tmp_path / "report.png"
    out = chromium(
        f"--screenshot={shot}", "--window-size=1366,4000", html.as_uri(),
        profile=tmp_path / "profile-shot",
    )  # fmt: skip
    assert out.returncode == 0 and shot.is_file(), out.stderr[-2000:]
    assert console_messages(out.stderr) == []
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 50_000
    print(f"\nreport screenshot: {shot}\nreport: {html}")
