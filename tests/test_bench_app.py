"""``concede bench <name>`` (``python -m experiments.bench``): one entry point dispatching to
every benchmark."""

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
    assert "concede bench env" in capsys.readouterr().out


def test_arguments_reach_the_benchmark(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["env", "--no-such-option"]) == 2
    assert "concede bench env" in capsys.readouterr().err
    assert main(["env", "no_such_option=1"]) == 2  # key=value reaches it as --no-such-option
    assert "--no-such-option" in capsys.readouterr().err
