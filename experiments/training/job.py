"""A training run from a composed Hydra config: the one place where its config is read.

:func:`train` builds the scenario, settings, tracking and agent from the config (objects
with ``_target_``, restricted to :data:`experiments.config.trusted.TRUSTED_TARGETS`),
tags the run (scenario, digest, agent, seed, git sha, command, its sweep, and the CPU
kernels torch runs: :mod:`experiments.config.cpu_kernels`), and runs
:func:`experiments.training.run.run_training`.
"""

from __future__ import annotations

import logging
import shlex
import sys
from pathlib import Path
from typing import Any

import torch
from hydra.utils import instantiate
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig, OmegaConf

from experiments.config.cpu_kernels import CPU_KERNELS, CPU_KERNELS_TAG, cpu_kernels, pinned
from experiments.config.scenarios import scenario_from_config
from experiments.config.settings import TrainSettings
from experiments.config.trusted import TRUSTED_TARGETS
from experiments.tracking.callback import parent_run_id
from experiments.tracking.names import (
    AGENT_TAG,
    COMMAND_TAG,
    GIT_SHA_TAG,
    PARENT_RUN_TAG,
    SCENARIO_DIGEST_TAG,
    SCENARIO_TAG,
    SEED_TAG,
    SWEEP_TAG,
)
from experiments.tracking.store import Tracking
from experiments.training.run import git_sha, run_training

log = logging.getLogger(__name__)


def train(cfg: DictConfig, run_dir: Path, sweep: str | None = None) -> dict[str, float]:
    """Build the run's objects from the config and train; the edge where config is read.

    ``run_dir`` holds the run's checkpoints (a run started again on the same folder
    resumes); ``sweep`` names the multirun the run belongs to, if any.
    """
    scenario = scenario_from_config(cfg.scenario)
    trusted = TRUSTED_TARGETS
    settings: TrainSettings = instantiate(
        cfg.training, _convert_="all", _execution_whitelist_=trusted
    )
    tracking: Tracking = instantiate(cfg.tracking, _execution_whitelist_=trusted)
    make_agent = instantiate(cfg.agent.model, _convert_="all", _execution_whitelist_=trusted)
    torch.set_num_threads(settings.torch_threads)
    if not pinned():
        log.warning(
            "torch runs the %s CPU kernels, not the pinned ones (%s): this run's figures may "
            "differ on another CPU; run it through `concede run` or "
            "`experiments.train`, which pin them",
            cpu_kernels(),
            " ".join(f"{k}={v}" for k, v in CPU_KERNELS.items()),
        )
    agent_name = str(cfg.agent.name)
    tags = {
        SCENARIO_TAG: scenario.name,
        SCENARIO_DIGEST_TAG: scenario.digest(),
        AGENT_TAG: agent_name,
        SEED_TAG: str(cfg.seed),
        GIT_SHA_TAG: git_sha(),
        COMMAND_TAG: shlex.join([sys.executable, *sys.argv]),
        CPU_KERNELS_TAG: cpu_kernels(),
    }
    if sweep is not None:
        tags[SWEEP_TAG] = sweep
        parent = parent_run_id(MlflowClient(tracking.tracking_uri), tracking, sweep, wait_s=5.0)
        if parent:
            tags[PARENT_RUN_TAG] = parent
    flat = _flatten(OmegaConf.to_container(cfg, resolve=True))  # type: ignore[arg-type]
    return run_training(
        scenario=scenario,
        make_agent=make_agent,
        settings=settings,
        tracking=tracking,
        run_dir=run_dir,
        seed=int(cfg.seed),
        agent_name=agent_name,
        params={k: v for k, v in flat.items() if not k.startswith("scenario.")},
        tags=tags,
        config_yaml=OmegaConf.to_yaml(cfg, resolve=True),
    )


def _flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{name}."))
        else:
            flat[name] = str(value)[:500]
    return flat
