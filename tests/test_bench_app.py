"""``python -m experiments.bench <name>``: one entry point dispatching to every benchmark."""

from __future__ import annotations

import importlib

import pytest

from experiments.bench import BENCHMARKS, main


@pytest.mark.parametrize("name", sorted(BENCHMARKS))
def test_every_benchmark_has_a_main(name: str) -> None:
    module = importlib.import_module(BENCHMARKS[name])
    assert callable(module.main), f"{BENCHMARKS[name]} has no main(argv)"


def test_unknown_or_missing_names_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["nope"]) == 2
    assert "unknown benchmark 'nope'" in capsys.readouterr().err
    assert main([]) == 2
    assert main(["--help"]) == 0
    assert "python -m experiments.bench env" in capsys.readouterr().out


def test_arguments_reach_the_benchmark(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["env", "--no-such-option"])
    assert exit_info.value.code == 2
    assert "python -m experiments.bench env" in capsys.readouterr().err
