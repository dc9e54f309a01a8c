"""The main job: train an agent on a scenario, evaluate it, export it, report on it.

``python -m experiments.main`` (or ``make run``) trains MaskablePPO on ``default`` with
a progress bar, evaluates it on new paired shoppers against the baselines and the
oracle, tracks everything in the embedded MLflow store, prints the KPI tables and the
verdict, writes the merchant report, and exports and registers the policy
(``concede-<scenario>``, alias ``champion`` unless it is worse than the best baseline,
else ``challenger``). It takes the same Hydra overrides as ``experiments.train``::

    python -m experiments.main experiment=quick          # a first look in about a minute
    python -m experiments.main scenario=black_friday
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig
from rich.console import Console

from experiments.evaluate import render
from experiments.register import RegisterError, register
from experiments.report import ReportError, write_report
from experiments.tracking import Tracking
from experiments.train import EVALUATION_FILE, RunState, train
from experiments.trusted import TRUSTED_TARGETS

QUIET_LOGGERS = ("onnx_ir", "onnxscript", "torch.onnx")  # the exporter's pass-by-pass notes


@hydra.main(config_path="../conf", config_name="train", execution_whitelist=TRUSTED_TARGETS)
def main(cfg: DictConfig) -> float:
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    metrics = train(cfg, run_dir)
    console = Console()
    report = json.loads((run_dir / EVALUATION_FILE).read_text())
    render(report, console)
    console.print(f"\n[bold]{report['verdict']['sentence']}[/bold]")
    captured = metrics["profit_captured"]
    console.print(
        f"profit captured: {captured:.1%} of what the oracle earns over never-offer "
        "(the oracle sees hidden shopper state: 100% is out of reach by design)"
    )
    console.print(f"run folder: {run_dir}")
    tracking: Tracking = instantiate(cfg.tracking)
    console.print(f"browse the runs: mlflow ui --backend-store-uri {tracking.tracking_uri}")
    state = RunState.load(run_dir / "checkpoints")
    if state is not None:
        try:
            path = write_report(
                [state.run_id], tracking_uri=tracking.tracking_uri, out_dir=run_dir, name="report"
            )
            console.print(f"[bold]merchant report: {path}[/bold]")
        except ReportError as err:  # the run is tracked; a report can be made later
            console.print(f"[red]no merchant report: {err}[/red]")
        # a policy that is not worse than the merchant's best rule becomes the champion
        better = report["verdict"]["significance"] != "worse"
        try:
            done = register(
                state.run_id,
                tracking_uri=tracking.tracking_uri,
                alias="champion" if better else "challenger",
            )
            console.print(
                f"[bold]registered {done.model_uri}[/bold] (version {done.version}); serve it:\n"
                f"  MLFLOW_TRACKING_URI={tracking.tracking_uri} mlflow models serve "
                f"-m {done.model_uri} --env-manager local -h 127.0.0.1 -p 5001"
            )
        except RegisterError as err:
            console.print(f"[red]not registered: {err}[/red]")
    print(json.dumps(metrics))
    return float(captured)


if __name__ == "__main__":
    main()
