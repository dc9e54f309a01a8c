"""Sweeps: ``python -m experiments.train -m`` (and the main job's ``-m``) through the joblib
and Ray launchers.

Each test starts the real app in a subprocess on tiny runs, into a fresh output folder
(so ``PrepareStore`` creates the MLflow store from scratch in the launching process), and
reads the SQLite store afterwards. The subprocess runs in its own session; whatever it
leaves behind on a timeout (loky or Ray workers) is ended by process group.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from mlflow.entities import Run
from mlflow.tracking import MlflowClient

ROOT = Path(__file__).resolve().parents[1]

TINY = [
    "training.total_timesteps=256",
    "training.n_envs=8",
    "training.eval_every=128",
    "training.checkpoint_every=128",
    "training.eval_shoppers=200",
    "training.final_shoppers=300",
    "training.baselines=[never]",
    "training.progress_bar=false",
    "agent=maskable_ppo",
    "agent.model.n_steps=16",
    "agent.model.batch_size=64",
    "agent.model.policy_kwargs.net_arch=[16,16]",
]


def app_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "RAY_"))}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env["OMP_NUM_THREADS"] = "1"  # two jobs on two cores: one torch thread each
    env.update(extra)
    return env


def run_app(
    args: list[str],
    out: Path,
    timeout: float,
    env: dict[str, str] | None = None,
    app: str = "experiments.train",
) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", app, "-m", *args, *TINY, f"output_dir={out}"]
    proc = subprocess.Popen(
        cmd,
        cwd=ROOT,
        env=env or app_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        stdout, stderr = proc.communicate()
        pytest.fail(f"the sweep took over {timeout:.0f} s\n{stderr[-3000:]}")
    return subprocess.CompletedProcess(cmd, proc.returncode, stdout, stderr)


def sweep_runs(out: Path) -> tuple[Run, list[Run]]:
    """The sweep's parent run and its children, from the store under ``out``."""
    client = MlflowClient(f"sqlite:///{out / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("concede")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id])
    parents = [r for r in runs if r.data.tags.get("concede.sweep_parent") == "true"]
    assert len(parents) == 1, runs
    parent = parents[0]
    children = [r for r in runs if r.info.run_id != parent.info.run_id]
    sweep = parent.data.tags["concede.sweep"]
    assert Path(sweep).is_dir() and Path(sweep).parent == out / "multirun"
    for child in children:
        assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert child.data.tags["concede.sweep"] == sweep
    return parent, children


def check_two_finished_children(out: Path) -> None:
    parent, children = sweep_runs(out)
    assert sorted(c.data.tags["concede.seed"] for c in children) == ["0", "1"]
    assert [c.info.status for c in children] == ["FINISHED", "FINISHED"]
    assert all("final/profit_captured" in c.data.metrics for c in children)
    assert parent.info.status == "FINISHED"
    assert parent.info.end_time >= max(c.info.end_time for c in children)
    jobs = sorted((Path(parent.data.tags["concede.sweep"])).glob("*_maskable_ppo_default_s*"))
    assert len(jobs) == 2
    for job in jobs:
        assert (job / "evaluation.json").is_file()
        assert (job / "checkpoints" / "model.zip").is_file()


def test_joblib_sweep_tracks_two_children_of_one_parent(tmp_path: Path) -> None:
    out = tmp_path / "out"
    done = run_app(
        ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "seed=0,1"], out, timeout=180
    )
    assert done.returncode == 0, done.stderr[-3000:]
    check_two_finished_children(out)


def test_the_main_job_groups_and_tags_a_multirun_as_train_does(tmp_path: Path) -> None:
    out = tmp_path / "out"
    done = run_app(
        ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "seed=0,1"],
        out,
        timeout=500,
        app="experiments.main",
    )
    assert done.returncode == 0, done.stderr[-3000:]
    uri = f"sqlite:///{out / 'mlflow.db'}"
    # the registry named explicitly: a registration earlier in this process (another
    # test) may have set MLflow's global registry URI, which a client would read instead
    client = MlflowClient(uri, registry_uri=uri)
    experiment = client.get_experiment_by_name("concede")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id])
    (parent,) = [r for r in runs if r.data.tags.get("concede.sweep_parent") == "true"]
    sweep = parent.data.tags["concede.sweep"]
    jobs = [
        r
        for r in runs
        if r.data.tags.get("concede.sweep") == sweep and r.info.run_id != parent.info.run_id
    ]
    assert sorted(j.data.tags["concede.seed"] for j in jobs) == ["0", "1"]
    assert all(j.data.tags["mlflow.parentRunId"] == parent.info.run_id for j in jobs)
    assert [j.info.status for j in jobs] == ["FINISHED", "FINISHED"]
    assert parent.info.status == "FINISHED"
    # each job wrote its report and registered its own policy
    folders = sorted(Path(sweep).glob("*_maskable_ppo_default_s*"))
    assert len(folders) == 2 and all((f / "report.html").is_file() for f in folders)
    versions = client.search_model_versions("name='concede-default'")
    seen = [(r.info.run_id, r.info.run_name, r.info.status, dict(r.data.tags)) for r in runs] + [
        (v.version, v.run_id, dict(v.tags)) for v in versions
    ]
    assert {v.tags["concede.run_id"] for v in versions} == {j.info.run_id for j in jobs}, seen


def test_a_dying_job_does_not_stop_the_sweep(tmp_path: Path) -> None:
    """Job 0 is killed mid-run; job 1 runs after it (one worker) and finishes."""
    out = tmp_path / "out"
    done = run_app(
        ["hydra/launcher=joblib", "hydra.launcher.n_jobs=1", "training.kill_at_step=128,null"],
        out,
        timeout=180,
    )
    assert done.returncode != 0
    assert "SimulatedKill" in done.stderr
    parent, children = sweep_runs(out)
    by_kill = {c.data.params["training.kill_at_step"]: c for c in children}
    assert set(by_kill) == {"128", "None"}
    died, lived = by_kill["128"], by_kill["None"]
    assert died.info.status in ("KILLED", "FAILED")
    assert lived.info.status == "FINISHED"
    assert died.info.end_time <= lived.info.start_time  # it ran after the death
    assert parent.info.status == "FAILED"


@pytest.fixture
def ray_temp_dir() -> Iterator[Path]:
    """A short folder for Ray's sockets (< 100 characters); Ray's processes mention it."""
    folder = Path(tempfile.mkdtemp(prefix="cr", dir="/tmp"))
    yield folder
    leftovers = _processes_mentioning(str(folder))
    for pid in leftovers:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    subprocess.run(["rm", "-rf", str(folder)], check=False)
    assert not leftovers, f"Ray left processes behind: {leftovers}"


def _processes_mentioning(text: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if text in cmdline:
            found.append(int(entry.name))
    return found


@pytest.mark.server
def test_ray_sweep_on_a_local_two_cpu_cluster(tmp_path: Path, ray_temp_dir: Path) -> None:
    out = tmp_path / "out"
    env = app_env(RAY_USAGE_STATS_ENABLED="0", RAY_AUTH_MODE="disabled")
    done = run_app(
        [
            "hydra/launcher=ray",
            "hydra.launcher.ray.init.address=null",
            "+hydra.launcher.ray.init.num_cpus=2",
            "+hydra.launcher.ray.init.include_dashboard=false",
            f"+hydra.launcher.ray.init._temp_dir={ray_temp_dir}",
            "+hydra.launcher.ray.remote.num_cpus=1",
            "seed=0,1",
        ],
        out,
        timeout=150,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Started a local Ray instance" in done.stderr
    check_two_finished_children(out)
    # the launcher's process exiting shut the local cluster down
    assert _processes_mentioning(str(ray_temp_dir)) == []


@pytest.mark.slow
def test_optuna_search_runs_trials_as_children_of_one_parent(tmp_path: Path) -> None:
    out = tmp_path / "out"
    done = run_app(
        ["hparams_search=optuna", "hydra.sweeper.n_trials=2", "hydra.sweeper.n_jobs=1"],
        out,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    parent, children = sweep_runs(out)
    assert [c.info.status for c in children] == ["FINISHED", "FINISHED"]
    assert parent.info.status == "FINISHED"
    learning_rates = {c.data.params["agent.model.learning_rate"] for c in children}
    assert len(learning_rates) == 2  # the sampler proposed two trials
    results = Path(parent.data.tags["concede.sweep"]) / "optimization_results.yaml"
    best = yaml.safe_load(results.read_text())
    assert best["best_value"] == pytest.approx(
        max(c.data.metrics["final/profit_captured"] for c in children)
    )


def test_a_single_run_prepares_its_store_in_the_callback_without_warnings(
    tmp_path: Path,
) -> None:
    # the default output folder, ${hydra:runtime.cwd}/outputs: started from tmp_path
    cmd = [sys.executable, "-m", "experiments.train", "scenario=black_friday", *TINY]
    proc = subprocess.run(
        cmd, cwd=tmp_path, env=app_env(), capture_output=True, text=True, timeout=300, check=False
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "PrepareStore" not in proc.stderr  # Hydra reports a failing callback as a warning
    client = MlflowClient(f"sqlite:///{tmp_path / 'outputs' / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("concede")
    assert experiment is not None
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FINISHED"
    assert run.data.metrics["final/budget_shadow_price"] >= 0.0
    assert "budget.shadow_price" in run.data.metrics
