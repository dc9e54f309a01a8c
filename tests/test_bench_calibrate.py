"""``python -m experiments.bench calibrate --coverage N``: the fits alone on N data sets."""

from __future__ import annotations

import json

import pytest

from experiments.benchmarks.calibrate import coverage_summary, main


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
