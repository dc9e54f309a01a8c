"""The scenario of a composed Hydra config."""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf

from envs.scenario import Scenario


def scenario_from_config(cfg: DictConfig) -> Scenario:
    """The scenario of the Hydra config group ``scenario`` (defaults resolved by Hydra)."""
    return Scenario.from_dict(OmegaConf.to_container(cfg, resolve=True))  # type: ignore[arg-type]
