"""``python -m experiments.bench calibrate --coverage N``: the fits alone on N data sets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from envs.scenario_files import load_scenario
from experiments.benchmarks.calibrate import coverage_summary, main
from experiments.calibration.parameters import resolve
from experiments.calibration.zoo import start_for, zoo

DEFAULT = load_scenario("default")


def _row(true: float, fitted: float, low: float, high: float, identified: bool = True) -> dict:
    return {
        "true": true,
        "fitted": fitted,
        "low": low,
        "high": high,
        "identified": identified,
        "covered": low <= true <= high,
    }


def test_coverage_summary_counts_identified_fits_only() -> None:
    # half-widths 0.196 -> the error in units of half-width / 1.96 is error / 0.1
    seeds = {
        "1": {"a": _row(1.0, 1.1, 0.904, 1.296), "b": _row(0.5, 0.5, 0.0, 1.0, False)},
        "2": {"a": _row(1.0, 0.7, 0.504, 0.896), "b": _row(0.5, 0.5, 0.0, 1.0, False)},
    }
    out = coverage_summary(seeds)
    assert out["a"]["identified"] == 2
    assert out["a"]["covered"] == 1
    assert out["a"]["mean_error"] == pytest.approx(-0.1)
    assert out["a"]["rms_z"] == pytest.approx(((1.0**2 + 3.0**2) / 2) ** 0.5)
    assert out["b"] == {"identified": 0, "covered": 0, "mean_error": None, "rms_z": None}


def test_coverage_run_on_tiny_data(capsys: pytest.CaptureFixture[str]) -> None:
    tiny = ["--shoppers", "3000", "--sessions", "1500", "--logged", "1500"]
    assert main(["--coverage", "2", "--cases", "shares", "--seed", "5", *tiny]) == 0
    out = capsys.readouterr().out
    result = json.loads(out.strip().splitlines()[-1])
    case = result["coverage"]["shares"]
    assert list(case["seeds"]) == ["5", "6"]
    for name, p in case["parameters"].items():
        assert name in case["seeds"]["5"]
        assert 0 <= p["covered"] <= p["identified"] <= 2
    assert "coverage of 'shares' over 2 data sets (seeds 5, 6)" in out


def test_a_preset_replaces_the_cases_own(capsys: pytest.CaptureFixture[str]) -> None:
    tiny = ["--shoppers", "3000", "--sessions", "1500", "--logged", "1500"]
    argv = ["--coverage", "1", "--cases", "shares", "--preset", "appeal", *tiny]
    assert main(argv) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    fitted = set(result["coverage"]["shares"]["seeds"]["2024"])
    assert fitted and all(name.startswith("calibration.") for name in fitted), fitted


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--coverage", "-1"], "--coverage must be 0 or more"),
        (["--coverage", "2", "--train-steps", "1000"], "drop --train-steps"),
        (["--coverage", "1", "--preset", "appeal,no_such_parameter"], "--preset"),
    ],
)
def test_bad_coverage_arguments_are_refused(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_the_zoo_benchmark_fits_an_unseen_shop_end_to_end(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    tiny = ["--shoppers", "2000", "--sessions", "1500", "--logged", "1500"]
    argv = [
        "--zoo", "1", "--zoo-seed", "3", "--zoo-preset", "appeal,returns",
        "--zoo-train-steps", "2048", "--eval-shoppers", "2000", "--forecast-scenarios", "3",
        "--replicates", "20", "--workers", "2", *tiny,
    ]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    result = json.loads(out.strip().splitlines()[-1])
    (shop,) = result["shops"]
    assert shop["shop"] == "zoo_3_0" and shop["segments"] >= 2
    assert set(shop["parameters"]) == {
        "calibration.new_shopper_appeal",
        "calibration.existing_customer_appeal",
        "calibration.existing_customer_share",
        "segments[*].return_probability",
        "segments[*].return_decay",
    }
    for p in shop["parameters"].values():
        assert p["low"] <= p["value"] <= p["high"], p
    # the truth's own agreement, on the same held-out journeys, is the reference
    assert shop["held_out_truth"]["targets"] == shop["held_out"]["targets"]
    assert 0.0 <= shop["held_out_truth"]["within_95"] <= 1.0
    names = set(shop["policies"]["true_within_forecast"])
    assert {"never", "merchant_rules", "agent_on_fit"} <= names
    assert any(n.startswith("always_") for n in names)
    agents = shop["agents"]
    assert set(agents["profit_per_1000"]) >= {"agent_on_fit", "agent_on_truth", "never"}
    assert agents["best_rule"] in agents["profit_per_1000"]
    totals = result["totals"]
    assert totals["shops"] == 1 and totals["forecast_pairs"] == len(names)
    assert shop["trust"]["level"] in {"trust it", "use with care", "do not trust it"}
    assert "zoo of 1 shops (seed 3)" in out and "held-out targets within 95%" in out

    # the agents alone, on the fit rebuilt from the run's log: the same figures
    log = tmp_path / "zoo.log"
    log.write_text(out, encoding="utf-8")
    assert main(["--zoo-agents-of", str(log), "--zoo-train-steps", "2048"]) == 0
    again = capsys.readouterr().out
    rerun = json.loads(again.strip().splitlines()[-1])
    assert rerun["shops"][0]["agents"] == agents
    assert rerun["totals"]["agents"] == 1
    assert f"agents on the fits of {log}" in again


@pytest.mark.parametrize(
    "argv",
    [["--zoo", "-1"], ["--zoo", "2", "--zoo-first", "2"], ["--zoo", "1", "--zoo-preset", "nope"]],
)
def test_the_zoo_benchmark_refuses_bad_options(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2


def _run(preset: str, shop: str) -> str:
    settings = f'"zoo": 1, "zoo_seed": 0, "zoo_preset": "{preset}", "seed": 1, "eval_shoppers": 9'
    return f'{{"benchmark": "calibrate --zoo", "settings": {{{settings}}}, "shops": [{shop}]}}'


def _bad_values(preset: str) -> str:
    names = [p.name for p in resolve(preset, start_for(zoo(1, 0, DEFAULT)[0], DEFAULT))]
    values = ", ".join(f'"{n}": {{"value": "n/a"}}' for n in names)
    return f'{{"shop": "zoo_0_0", "parameters": {{{values}}}}}'


@pytest.mark.parametrize(
    ("content", "extra", "message"),
    [
        (None, [], "cannot read"),
        ("", [], "is empty"),
        ("fitting zoo_0_0 ...\n", [], "not a JSON result"),
        ('{"benchmark": "calibrate", "cases": {}}\n', [], "not the result of a calibrate --zoo"),
        ('{"benchmark": "calibrate --zoo", "settings": {}, "shops": []}', [], "lacks"),
        (_run("wide", '{"shop": "zoo_9_9"}'), [], "no shop 'zoo_9_9'"),
        (_run("wide", '{"shop": "zoo_0_0", "parameters": {}}'), [], "has no value for"),
        (_run("nope", '{"shop": "zoo_0_0"}'), [], "the run's preset 'nope'"),
        (_run("appeal", '{"shop": "zoo_0_0", "parameters": [1]}'), [], "has no value for"),
        (_run("returns", _bad_values("returns")), [], "are not numbers"),
        ("", ["--zoo", "1"], "drop --zoo"),
        ("", ["--zoo-train-steps", "0"], "above 0"),
    ],
)
def test_agents_of_a_zoo_run_refuse_a_bad_log(
    content: str | None,
    extra: list[str],
    message: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    log = tmp_path / "zoo.log"
    if content is not None:
        log.write_text(content, encoding="utf-8")
    with pytest.raises(SystemExit) as exc:
        main(["--zoo-agents-of", str(log), *extra])
    assert exc.value.code == 2
    assert message in capsys.readouterr().err
