"""Train an agent on a scenario, evaluate it against baselines and the oracle, track it all.

``concede train`` trains the configured agent (``conf/train.yaml``:
MaskablePPO on ``default`` unless overridden) on the batched simulator, evaluates it
at intervals on fixed paired shoppers against the baselines and the oracle, checkpoints
it, and logs everything to MLflow: the resolved config, git sha, seed and command,
learning curves (profit captured, conversion, give-away rate against timesteps), the
final paired KPI table and the model. It returns the sweep objective, the profit
captured: (policy - never) / (oracle - never).

A run killed mid-way resumes from its last checkpoint into the same MLflow run when
started again with the same output folder (``hydra.run.dir=<that folder>``).

Examples::

    concede train                                   # about 10 minutes
    concede train experiment=quick                  # a first look
    concede train -m experiment=grid                # every scenario x agent x seed
    concede train -m hydra/launcher=ray seed=0,1,2  # on a Ray cluster
"""

from __future__ import annotations

import os

from experiments.config.cpu_kernels import CPU_KERNELS

# first, before torch or numpy loads: the same kernels, so the same figures, on any x86-64
# CPU (experiments/config/cpu_kernels.py says why and what it costs)
os.environ.update(CPU_KERNELS)

import json
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from experiments.config import CONFIG_PATH
from experiments.config.trusted import TRUSTED_TARGETS
from experiments.tracking.callback import sweep_name
from experiments.training.job import train


@hydra.main(config_path=CONFIG_PATH, config_name="train", execution_whitelist=TRUSTED_TARGETS)
def main(cfg: DictConfig) -> float:
    hydra_cfg = HydraConfig.get()
    multirun = hydra_cfg.mode is not None and hydra_cfg.mode.name == "MULTIRUN"
    sweep = sweep_name(str(hydra_cfg.sweep.dir)) if multirun else None
    metrics = train(cfg, Path(hydra_cfg.runtime.output_dir), sweep)
    print(json.dumps(metrics))
    return float(metrics["profit_captured"])


if __name__ == "__main__":
    main()
