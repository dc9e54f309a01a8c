"""The apps that train or compute figures pin the CPU kernels (torch's, OpenBLAS's) first.

:mod:`experiments.config.cpu_kernels` says why (the same figures on any x86-64 CPU). Each
app is imported in a fresh interpreter whose environment asks for other kernels, as a
user's shell might; the app must still run the pinned ones. And the pin must be the
app's first statement after its imports of ``os`` and of the pin itself, so that no import
added later can run torch before it.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

from experiments.config.cpu_kernels import CPU_KERNELS, PINNED

ROOT = Path(__file__).resolve().parents[1]
TRAINING_APPS = ("experiments.main", "experiments.train")
# the apps that run a trained policy or compute the figures a verdict rests on
PINNED_APPS = (
    *TRAINING_APPS,
    "experiments.evaluate",
    "experiments.ope",
    "experiments.simulate_logs",
    "experiments.calibrate",
    "experiments.export",
    "experiments.register",
)


@pytest.mark.parametrize("app", PINNED_APPS)
def test_app_runs_the_pinned_kernels_whatever_the_environment_asks(app: str) -> None:
    env = {**os.environ, "ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "AUTO"}
    code = (
        f"import {app}\n"
        "from experiments.config.cpu_kernels import cpu_kernels\n"
        "print(cpu_kernels())\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    kernels = done.stdout.strip().splitlines()[-1]
    assert kernels in (PINNED, "aten=DEFAULT mkl=unknown"), kernels


@pytest.mark.parametrize("app", PINNED_APPS)
def test_pin_comes_before_any_other_import(app: str) -> None:
    path = ROOT / Path(*app.split(".")).with_suffix(".py")
    body = ast.parse(path.read_text(encoding="utf-8")).body
    statements = [s for s in body if not (isinstance(s, ast.Expr) and s is body[0])]
    allowed = {"__future__", "os", "experiments.config.cpu_kernels"}
    for statement in statements:
        if isinstance(statement, ast.Import | ast.ImportFrom):
            names = (
                [statement.module or ""]
                if isinstance(statement, ast.ImportFrom)
                else [alias.name for alias in statement.names]
            )
            assert set(names) <= allowed, f"{path.name}: {names} imported before the pin"
            continue
        assert ast.unparse(statement) == "os.environ.update(CPU_KERNELS)", (
            f"{path.name}: the first statement after the pin's imports must be "
            f"os.environ.update(CPU_KERNELS), not {ast.unparse(statement)!r}"
        )
        return
    pytest.fail(f"{path.name} never pins the CPU kernels")


def test_pin_asks_for_kernels_every_x86_64_cpu_runs() -> None:
    assert CPU_KERNELS == {
        "ATEN_CPU_CAPABILITY": "default",
        "MKL_CBWR": "COMPATIBLE",
        "OPENBLAS_CORETYPE": "Prescott",
    }
