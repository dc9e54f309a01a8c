"""Evaluate policies off-policy on a decision log: what they would have earned on it.

``concede ope logs=<file or folder> 'policies=[...]'`` (``conf/ope.yaml``)
reads the log (Parquet or CSV, a folder of rotated files; the format of
:mod:`agents.logs`), and per policy estimates profit per 1,000 journeys, conversion and
concession spend per 1,000 journeys with 95% intervals by several estimators, names the
recommended one and says, in words, when not to trust a figure
(:mod:`experiments.offpolicy`). It prints tables, writes the result as JSON (``output``)
and prints the same JSON as its very last line.

Examples::

    concede ope logs=outputs/logs/<run>/decisions.parquet
    concede ope logs=logs/ 'policies=[never,always_*,rules:my_rules.yaml]'
    concede ope logs=shop.csv scenario=default 'policies=[outputs/policy,run:<id>]'
    concede ope logs=logs/ 'policies=[never,models:/concede-default@champion]'
    concede ope logs=ab_test.parquet 'policies=[fixed:control,fixed:coupon]'

Policies are policy strings, the same in every app (:data:`agents.registry.POLICY_STRINGS`):
names, ``rules:<file.yaml>``, ``fixed:<action>``, a policy directory, ``run:<id>``,
``models:/<name>@<alias>``; a trained policy that does not fit the scenario is refused,
naming the mismatch.

Given the shop's scenario (``scenario=<name>``) whose shoppers share state (a campaign
budget, shoppers learning to wait, a live-agent desk), each policy is also simulated on it
alone and among the logger's shoppers, and its figure shown beside one corrected by the
difference (``interference:``; :mod:`experiments.offpolicy.interference`). A log that
does not name its logger needs ``interference.logger=`` and ``interference.exploration=``
(else a warning; with ``interference.enabled=true``, exit status 2).

Here ``fixed:<action>`` chooses among the log's actions. A log without metadata (a CSV,
a shop's table) needs ``scenario=<name>`` for its features and actions and for named
policies. Bad input (no such log, a log breaking the format, an unknown policy, a policy
that does not fit the scenario or the log) stops with the message and exit status 2.
"""

from __future__ import annotations

import os

from experiments.config.cpu_kernels import CPU_KERNELS

# first, before torch or numpy loads: the same kernels, so the same figures, on any x86-64
# CPU (experiments/config/cpu_kernels.py says why and what it costs)
os.environ.update(CPU_KERNELS)

import json
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig
from rich.console import Console

from experiments.config import CONFIG_PATH
from experiments.config.json_app import run_json_app
from experiments.config.scenarios import scenario_from_config
from experiments.config.trusted import TRUSTED_TARGETS
from experiments.offpolicy.bootstrap import BootstrapSettings
from experiments.offpolicy.evaluation import OPESettings
from experiments.offpolicy.fqe import ValueModelSettings
from experiments.offpolicy.interference import InterferenceSettings
from experiments.offpolicy.marginal import RatioModelSettings
from experiments.offpolicy.render import render
from experiments.offpolicy.run import INPUT_ERRORS as LIBRARY_ERRORS
from experiments.offpolicy.run import evaluate_logs
from experiments.tracking.names import store_uri

INPUT_ERRORS: tuple[type[Exception], ...] = (*LIBRARY_ERRORS, ValueError)


def settings_from_config(cfg: DictConfig) -> OPESettings:
    """The evaluation settings of a composed ``conf/ope.yaml``."""
    vm = cfg.value_model
    value_model = (
        ValueModelSettings(
            iterations=int(vm.iterations),
            folds=int(vm.folds),
            max_iter=int(vm.max_iter),
            refit_iter=int(vm.get("refit_iter", 15)),
            max_fit_rows=int(vm.max_fit_rows),
            repeats=int(vm.repeats),
        )
        if bool(vm.enabled)
        else None
    )
    rm = cfg.get("ratio_model")
    ratio_model = (
        RatioModelSettings(
            repeats=int(rm.get("repeats", 3)),
            min_samples_leaf=int(rm.get("min_samples_leaf", 50)),
            max_leaf_nodes=int(rm.get("max_leaf_nodes", 31)),
        )
        if rm is None or bool(rm.get("enabled", True))
        else None
    )
    return OPESettings(
        bootstrap=BootstrapSettings(
            n_resamples=int(cfg.bootstrap.n_resamples),
            seed=int(cfg.bootstrap.seed),
            confidence=float(cfg.confidence),
        ),
        value_model=value_model,
        ratio_model=ratio_model,
        signals=tuple(str(s) for s in cfg.signals),
        propensity_refits=int(cfg.propensity_refits),
        seed=int(cfg.seed),
    )


def interference_from_config(cfg: DictConfig) -> InterferenceSettings | None:
    """The interference settings of a composed ``conf/ope.yaml`` (None: skipped).

    Raises:
        ValueError: ``enabled`` not ``auto``, true or false; a value out of range.
    """
    block = cfg.get("interference")
    if block is None:
        return None
    enabled = block.get("enabled", "auto")
    if enabled not in ("auto", True, False):
        raise ValueError(f"interference.enabled must be auto, true or false, got {enabled!r}")
    if enabled is False:
        return None
    logger, exploration = block.get("logger"), block.get("exploration")
    return InterferenceSettings(
        share=float(block.get("share", 0.1)),
        n_shoppers=int(block.get("n_shoppers", 20_000)),
        replicates=int(block.get("replicates", 8)),
        seed=int(block.get("seed", 0)),
        confidence=float(cfg.confidence),
        attribute=bool(block.get("attribute", True)),
        logger=None if logger is None else str(logger),
        exploration=None if exploration is None else str(exploration),
        required=enabled is True,
    )


def run(cfg: DictConfig, console: Console) -> dict[str, Any]:
    """The app without Hydra's wrapper: evaluate, print, write the JSON file
    (:meth:`experiments.offpolicy.result.OPEResult.to_json`, which the report reads back);
    the same JSON is returned, for the last line."""
    scenario = scenario_from_config(cfg.scenario) if cfg.get("scenario") else None
    result = evaluate_logs(
        str(cfg.logs),
        [str(p) for p in cfg.policies],
        scenario=scenario,
        settings=settings_from_config(cfg),
        tracking_uri=store_uri(cfg.tracking_uri),
        interference=interference_from_config(cfg),
        progress=lambda msg: console.print(f"[dim]{msg}[/dim]"),
    )
    render(result, console)
    data = result.to_json()
    path = Path(str(cfg.output))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    console.print(f"wrote {path}")
    return data


@hydra.main(config_path=CONFIG_PATH, config_name="ope", execution_whitelist=TRUSTED_TARGETS)
def main(cfg: DictConfig) -> None:
    run_json_app(run, cfg, INPUT_ERRORS)


if __name__ == "__main__":
    main()
