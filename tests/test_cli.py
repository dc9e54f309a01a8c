"""``concede``: one command, a subcommand per app, one argument style, help on each.

Every subcommand answers ``--help`` with its options and an example, in process through
:func:`experiments.cli.main` and from the installed console script; a wrong command or a
bad option exits non-zero with the reason; the benchmarks take ``key=value`` options like
the other commands.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from experiments.bench import BENCHMARKS, EXAMPLES, as_flags
from experiments.cli import COMMANDS, main

ROOT = Path(__file__).resolve().parents[1]
HYDRA_COMMANDS = sorted(set(COMMANDS) - {"serve", "bench"})


def test_the_console_script_is_concede() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert project["project"]["scripts"] == {"concede": "experiments.cli:main"}


def test_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for name, command in COMMANDS.items():
        assert f"  {name} " in out and command.summary in out


def test_a_wrong_command_is_refused_with_the_list(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["trian"]) == 2
    err = capsys.readouterr().err
    assert "unknown command 'trian'" in err and "calibrate" in err
    assert main([]) == 2


@pytest.mark.parametrize("name", HYDRA_COMMANDS)
def test_each_hydra_command_helps_with_its_options_and_an_example(
    name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([name, "--help"]) == 0
    out = capsys.readouterr().out
    assert "Options are Hydra overrides" in out
    assert "== Options, with their defaults ==" in out
    assert f"concede {name if name != 'run' else 'train'}" in out.split("Example")[1]


@pytest.mark.parametrize("name", ["serve", "bench"])
def test_the_flag_commands_help_with_an_example(
    name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [name, "env", "--help"] if name == "bench" else [name, "--help"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "options:" in out and f"example: concede {name}" in out


def test_every_benchmark_has_an_example() -> None:
    assert set(EXAMPLES) == set(BENCHMARKS)
    for name, example in EXAMPLES.items():
        assert example.startswith(f"concede bench {name}")


@pytest.mark.parametrize(
    ("given", "flags"),
    [
        (["fps", "n_envs=16"], ["fps", "--n-envs", "16"]),
        (["quick=true"], ["--quick"]),
        (["quick=false", "seed=3"], ["--seed", "3"]),
        (["scenarios=[default, luxury]"], ["--scenarios", "default", "luxury"]),
        (["--zoo", "10", "run/dir"], ["--zoo", "10", "run/dir"]),
        (["outputs/runs/a=b"], ["outputs/runs/a=b"]),  # a path, not an option
    ],
)
def test_benchmark_options_are_key_value(given: list[str], flags: list[str]) -> None:
    assert as_flags(given) == flags


def test_a_bad_option_exits_non_zero_naming_it(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "env", "speed=3"]) == 2
    assert "--speed" in capsys.readouterr().err
    assert main(["register"]) == 2
    assert "run_id is required" in capsys.readouterr().err
    assert main(["report", "no_such_option=1"]) == 1  # Hydra: not in the schema
    assert "no_such_option" in capsys.readouterr().err


def test_the_installed_script_and_the_module_run_the_same_app(tmp_path: Path) -> None:
    script = shutil.which("concede", path=str(Path(sys.executable).parent))
    assert script is not None, "the console script is installed by `make setup`"
    for argv in ([script, "export", "--help"], [sys.executable, "-m", "experiments.export"]):
        done = subprocess.run(
            [*argv] if "--help" in argv else [*argv, "run_id=nope", f"out={tmp_path}/p"],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            timeout=120,
            check=False,
        )
        if "--help" in argv:
            assert done.returncode == 0 and "concede export run_id=" in done.stdout
        else:
            assert done.returncode == 2 and "no run 'nope'" in done.stderr
            assert not (tmp_path / "p").exists()
