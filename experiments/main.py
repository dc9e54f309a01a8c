"""The main job: train an agent on a scenario, evaluate it, export it, report on it.

``concede run`` (or ``make run``) trains MaskablePPO on ``default`` with
a progress bar, evaluates it on new paired shoppers against the baselines and the
oracle, tracks everything in the embedded MLflow store, prints the KPI tables and the
verdict, writes the merchant report, and exports and registers the policy
(``concede-<scenario>``, alias ``champion`` unless it is worse than the best baseline,
else ``challenger``). It takes the same Hydra overrides as ``experiments.train``::

    concede run experiment=quick          # a first look in about a minute
    concede run scenario=black_friday
    concede run -m scenario=default,luxury hydra/launcher=joblib

A multirun groups its runs under one parent run and tags them with their sweep, as
``concede train -m`` does; each job writes its own report and registers
its own policy.
"""

from __future__ import annotations

import os

from experiments.config.cpu_kernels import CPU_KERNELS

# first, before torch or numpy loads: the same kernels, so the same figures, on any x86-64
# CPU (experiments/config/cpu_kernels.py says why and what it costs)
os.environ.update(CPU_KERNELS)

import json
import logging
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig
from rich.console import Console

from experiments.config import CONFIG_PATH
from experiments.config.trusted import TRUSTED_TARGETS
from experiments.evaluation.console import render
from experiments.evaluation.evaluation_file import EVALUATION_FILE, read_evaluation
from experiments.tracking.callback import sweep_name
from experiments.tracking.store import Tracking
from experiments.training.job import train
from experiments.training.publish import publish_run
from experiments.training.state import CHECKPOINTS, RunState

QUIET_LOGGERS = ("onnx_ir", "onnxscript", "torch.onnx")  # the exporter's pass-by-pass notes


@hydra.main(config_path=CONFIG_PATH, config_name="train", execution_whitelist=TRUSTED_TARGETS)
def main(cfg: DictConfig) -> float:
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    hydra_cfg = HydraConfig.get()
    multirun = hydra_cfg.mode is not None and hydra_cfg.mode.name == "MULTIRUN"
    sweep = sweep_name(str(hydra_cfg.sweep.dir)) if multirun else None
    run_dir = Path(hydra_cfg.runtime.output_dir)
    metrics = train(cfg, run_dir, sweep)
    console = Console()
    report = read_evaluation(run_dir / EVALUATION_FILE)
    render(report, console)
    console.print(f"\n[bold]{report['verdict']['sentence']}[/bold]")
    captured = metrics["profit_captured"]
    console.print(
        f"profit captured: {captured:.1%} of what the oracle earns over never-offer "
        "(the oracle sees hidden shopper state: 100% is out of reach by design)"
    )
    console.print(f"run folder: {run_dir}")
    tracking: Tracking = instantiate(cfg.tracking, _execution_whitelist_=TRUSTED_TARGETS)
    console.print(f"browse the runs: mlflow ui --backend-store-uri {tracking.tracking_uri}")
    state = RunState.load(run_dir / CHECKPOINTS)
    if state is not None:
        done = publish_run(state.run_id, report, tracking.tracking_uri, run_dir)
        if done.report is not None:
            console.print(f"[bold]merchant report: {done.report}[/bold]")
        else:  # the run is tracked; a report can be made later
            console.print(f"[red]no merchant report: {done.report_error}[/red]")
        if done.registered is not None:
            reg = done.registered
            console.print(
                f"[bold]registered {reg.model_uri}[/bold] (version {reg.version}); serve it:\n"
                f"  MLFLOW_TRACKING_URI={tracking.tracking_uri} mlflow models serve "
                f"-m {reg.model_uri} --env-manager local -h 127.0.0.1 -p 5001"
            )
        else:
            console.print(f"[red]not registered: {done.register_error}[/red]")
    print(json.dumps(metrics))
    return float(captured)


if __name__ == "__main__":
    main()
