"""The merchant report's "On your logs" section: off-policy estimates beside the simulated.

Real pieces end to end on a small case: logs simulated on ``default`` from
``merchant_rules`` with 30% exploration, an off-policy evaluation of two policies on them,
a paired simulator evaluation of the same scenario, and the report of both.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import envs
from agents.exploration import Exploration
from agents.logs import from_table
from agents.logs.simulate import simulate_logs
from agents.registry import build_policies
from experiments.cli import main as concede
from experiments.evaluation.kpis import Bootstrap
from experiments.evaluation.paired import evaluate, public
from experiments.offpolicy.bootstrap import BootstrapSettings
from experiments.offpolicy.evaluation import OPESettings, evaluate_offpolicy
from experiments.offpolicy.result import OPEResult
from experiments.reporting import ReportError, write_report
from experiments.reporting.offpolicy import read_offpolicy

POLICIES = ["never", "merchant_rules"]


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """An evaluation file and an off-policy evaluation file of the same scenario."""
    folder = tmp_path_factory.mktemp("offpolicy")
    scenario = envs.load_scenario("default")
    logger = build_policies(["merchant_rules"], scenario)[0]
    table = simulate_logs(scenario, logger, 1500, seed=3, exploration=Exploration("epsilon", 0.3))
    targets = build_policies(POLICIES, scenario)
    ope = evaluate_offpolicy(
        from_table(table),
        targets,
        settings=OPESettings(bootstrap=BootstrapSettings(n_resamples=99, seed=0), value_model=None),
    ).to_json()
    ope_path = folder / "ope.json"
    ope_path.write_text(json.dumps(ope), encoding="utf-8")
    ev = public(
        evaluate(scenario, POLICIES, 600, seed=0, cohort_size=600, bootstrap=Bootstrap(100))
    )
    ev_path = folder / "evaluation.json"
    ev_path.write_text(json.dumps(ev), encoding="utf-8")
    return ev_path, ope_path


def section(out: Path) -> dict[str, Any]:
    figures = json.loads(out.with_suffix(".json").read_text())
    (only,) = figures["offpolicy"]
    return dict(only)


def test_the_section_sits_beside_the_simulated_figures(
    files: tuple[Path, Path], tmp_path: Path
) -> None:
    ev_path, ope_path = files
    out = write_report(evaluations=[ev_path], offpolicy=[ope_path], out_dir=tmp_path, name="r")
    html = out.read_text()
    assert 'id="on-your-logs"' in html and "On your logs" in html
    s = section(out)
    assert s["journeys"] == 1500 and s["logger"] == "merchant_rules"
    assert [r["policy"] for r in s["rows"]] == POLICIES
    ope = read_offpolicy(ope_path)
    ev = json.loads(ev_path.read_text())
    for row in s["rows"]:
        chosen = ope.results[row["policy"]].recommended
        assert row["on_logs"]["profit_per_1000"] == chosen.outputs["profit_per_1000"].to_json()
        assert (
            row["simulated"]["profit_per_1000"] == ev["overall"][row["policy"]]["profit_per_1000"]
        )
        assert row["policy"] in html
    assert "can be trusted" in html or "caution" in html or "not trustworthy" in html
    assert '<img src="data:image/svg+xml;base64,' in html.split('id="on-your-logs"')[1]


def test_the_file_ope_writes_and_its_last_printed_line_both_read(
    files: tuple[Path, Path], tmp_path: Path
) -> None:
    _, ope_path = files
    data = json.loads(ope_path.read_text())
    written = tmp_path / "written.json"  # as ope writes output=: indented
    written.write_text(json.dumps(data, indent=2) + "\n")
    printed = tmp_path / "printed.txt"  # its console output, the JSON last
    printed.write_text("Off-policy estimates ...\nwrote x\n" + json.dumps(data) + "\n")
    assert read_offpolicy(written) == read_offpolicy(printed) == OPEResult.from_json(data)


def test_the_app_takes_ope_files_and_refuses_bad_ones(
    files: tuple[Path, Path], tmp_path: Path
) -> None:
    ev_path, ope_path = files
    assert (
        concede(
            [
                "report",
                f"evaluations=[{ev_path}]",
                f"ope=[{ope_path}]",
                f"out_dir={tmp_path}",
                "name=r",
            ]
        )
        == 0
    )
    assert section(tmp_path / "r.html")["rows"]
    bad = tmp_path / "bad.json"
    bad.write_text('{"log": {}}')
    with pytest.raises(ReportError, match=r"not an off-policy evaluation.*log: missing 'journeys'"):
        write_report(evaluations=[ev_path], offpolicy=[bad], out_dir=tmp_path)
    # one bad verdict deep in a good file: the message names where
    data = json.loads(ope_path.read_text())
    data["results"]["never"]["trust"] = "sure"
    bad.write_text(json.dumps(data))
    with pytest.raises(ReportError, match=r"results\['never'\]\.trust: must be one of"):
        write_report(evaluations=[ev_path], offpolicy=[bad], out_dir=tmp_path)
    assert concede(["report", f"evaluations=[{ev_path}]", f"ope=[{bad}]"]) == 2
    assert concede(["report", f"evaluations=[{ev_path}]", f"ope=[{tmp_path / 'none.json'}]"]) == 2
