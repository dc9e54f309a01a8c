"""Evaluate policies on the same shoppers: the merchant's KPIs with 95% intervals.

``concede evaluate`` runs every listed policy (``conf/evaluate.yaml``) on
the same ``n_shoppers`` shoppers and draws of a scenario (common random numbers), and
reports per policy, overall, per segment and per consent state, the KPIs of
:mod:`experiments.evaluation.kpis`: profit per 1,000 shoppers, conversion, revenue, concession spend
by kind, offer rate, give-away rate, interruptions, harassment exits, opt-outs, live-agent
use, regret vs the oracle and profit captured, with paired differences vs ``never`` and vs
the best baseline. It prints readable tables, writes the figures as JSON (``output``)
and prints the same JSON as its very last line (one compact line).

Examples::

    concede evaluate
    concede evaluate scenario=black_friday n_shoppers=100000
    concede evaluate 'policies=[never,always_*,merchant_rules,oracle]'
    concede evaluate 'policies=[never,rules:my_rules.yaml,oracle]' output=out.json
    concede evaluate scenario=black_friday \\
        'policies=[never,merchant_rules,outputs/policy]'
    concede evaluate scenario=my_shop \\
        'policies=[never,models:/concede-default@champion]'

Policies are policy strings, the same in every app (:data:`agents.registry.POLICY_STRINGS`):
names, ``rules:<file.yaml>``, ``fixed:<action>``, a policy directory, ``run:<id>``,
``models:/<name>@<alias>``; a trained policy that does not fit the scenario is refused,
naming the mismatch.

``never`` and ``oracle`` are the references of several KPIs: they are added to the list
when missing. A trained policy is compared with the best baseline, not a candidate for
it. A policy that cannot be given (a name that does not exist, with the list of those
that do; a trained policy that does not fit the scenario; no such run) stops the run
with the message (exit status 2).
"""

from __future__ import annotations

import os

from experiments.config.cpu_kernels import CPU_KERNELS

# first, before torch or numpy loads: the same kernels, so the same figures, on any x86-64
# CPU (experiments/config/cpu_kernels.py says why and what it costs)
os.environ.update(CPU_KERNELS)

from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig
from rich.console import Console

from agents.policy import PolicySpecError
from envs.scenario import ScenarioError
from experiments.config import CONFIG_PATH
from experiments.config.json_app import run_json_app
from experiments.config.scenarios import scenario_from_config
from experiments.config.trusted import TRUSTED_TARGETS
from experiments.evaluation.console import render
from experiments.evaluation.evaluation_file import write_evaluation
from experiments.evaluation.kpis import Bootstrap
from experiments.evaluation.paired import evaluate, public
from experiments.tracking.names import store_uri

INPUT_ERRORS: tuple[type[Exception], ...] = (PolicySpecError, ScenarioError)


def run(cfg: DictConfig, console: Console) -> dict[str, Any]:
    """The app without Hydra's wrapper: evaluate, print, write the JSON file."""
    scenario = scenario_from_config(cfg.scenario)
    result = evaluate(
        scenario,
        list(cfg.policies),
        int(cfg.n_shoppers),
        int(cfg.seed),
        int(cfg.cohort_size),
        confidence=float(cfg.confidence),
        bootstrap=Bootstrap(
            int(cfg.bootstrap.n_resamples), str(cfg.bootstrap.method), int(cfg.bootstrap.seed)
        ),
        oracle_workers=int(cfg.oracle_workers),
        tracking_uri=store_uri(cfg.get("tracking_uri")),
        log=lambda msg: console.print(f"[dim]{msg}[/dim]"),
    )
    result = public(result)
    render(result, console)
    path = write_evaluation(Path(str(cfg.output)), result, indent=2)
    console.print(f"wrote {path}")
    return result


@hydra.main(config_path=CONFIG_PATH, config_name="evaluate", execution_whitelist=TRUSTED_TARGETS)
def main(cfg: DictConfig) -> None:
    run_json_app(run, cfg, INPUT_ERRORS)


if __name__ == "__main__":
    main()
