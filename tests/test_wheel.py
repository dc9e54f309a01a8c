"""An installed, non-editable wheel works outside the repository.

The wheel is built from a copy of the project's sources, installed without dependencies
into a temporary folder, and used from another working directory: the shipped
scenarios, rule sets and Hydra configs must come from the installed package, not from
the checkout.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("envs", "agents", "experiments", "conf", "pyproject.toml", "README.md")


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder the wheel is installed into."""
    base = tmp_path_factory.mktemp("wheel")
    src = base / "src"
    src.mkdir()
    for name in SOURCES:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, src / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copyfile(source, src / name)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--quiet"]
    dist = base / "dist"
    subprocess.run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(dist), str(src)],
        check=True,
        cwd=base,
    )
    (wheel,) = dist.glob("concede-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for packaged in (
        "concede_conf/train.yaml",
        "concede_conf/scenario/black_friday.yaml",
        "concede_conf/rules/merchant_rules.yaml",
        "concede_conf/hydra/help/concede.yaml",
        "experiments/calibration/data/online_shoppers_intention.csv",
    ):
        assert packaged in names, f"{packaged} is not in the wheel"
    site = base / "site"
    subprocess.run([*pip, "install", "--no-deps", "--target", str(site), str(wheel)], check=True)
    return site


def run_installed(site: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``python *args`` in ``cwd`` with the installed copy first on the path."""
    env = dict(os.environ, PYTHONPATH=str(site))
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )


def test_the_wheel_lists_every_package_folder() -> None:
    """``pyproject.toml`` names the packages one by one (the configs install under
    another name): a new sub-package must be added there, or the wheel would lack it."""
    listed = set(
        tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    )
    folders = {
        ".".join(init.parent.relative_to(ROOT).parts)
        for top in ("envs", "agents", "experiments")
        for init in (ROOT / top).rglob("__init__.py")
    }
    assert listed == folders | {"concede_conf"}


def test_the_console_script_runs_from_the_wheel(installed: Path, tmp_path: Path) -> None:
    done = run_installed(
        installed,
        tmp_path,
        "-c",
        "from experiments.cli import main; raise SystemExit(main())",
    )
    assert done.returncode == 2 and "calibrate" in done.stdout


def test_the_simulator_finds_its_scenarios(installed: Path, tmp_path: Path) -> None:
    script = (
        "import gymnasium as gym, envs, agents.baselines, json;"
        "env = gym.make('concede/HesitantShopper-v0', scenario='black_friday');"
        "obs, info = env.reset(seed=0);"
        "print(json.dumps({'envs': envs.__file__, 'rules': str(agents.baselines.rules_dir()),"
        " 'scenarios': envs.available_scenarios(), 'shape': list(obs.shape)}))"
    )
    done = run_installed(installed, tmp_path, "-c", script)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["envs"].startswith(str(installed)), "the checkout was imported, not the wheel"
    assert seen["rules"].startswith(str(installed))
    assert "black_friday" in seen["scenarios"] and "default" in seen["scenarios"]
    assert seen["shape"][0] > 0


def test_an_evaluation_runs_from_another_folder(installed: Path, tmp_path: Path) -> None:
    done = run_installed(
        installed,
        tmp_path,
        "-m",
        "experiments.evaluate",
        "scenario=black_friday",
        "n_shoppers=300",
        "cohort_size=300",
        "'policies=[never,merchant_rules]'".strip("'"),
        "oracle_workers=1",
        "bootstrap.n_resamples=50",
        f"output={tmp_path / 'evaluation.json'}",
        f"hydra.run.dir={tmp_path / 'run'}",
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["scenario"] == "black_friday"
    assert result["policies"] == ["never", "merchant_rules", "oracle"]
    assert (tmp_path / "evaluation.json").is_file()
