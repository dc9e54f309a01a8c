"""Evaluate policies on the same shoppers: the merchant's KPIs with 95% intervals.

``python -m experiments.evaluate`` runs every listed policy (``conf/evaluate.yaml``) on
the same ``n_shoppers`` shoppers and draws of a scenario (common random numbers), and
reports per policy, overall, per segment and per consent state, the KPIs of
:mod:`experiments.evaluation.kpis`: profit per 1,000 shoppers, conversion, revenue, concession spend
by kind, offer rate, give-away rate, interruptions, harassment exits, opt-outs, live-agent
use, regret vs the oracle and profit captured, with paired differences vs ``never`` and vs
the best baseline. It prints readable tables, writes the figures as JSON (``output``)
and prints the same JSON as its very last line (one compact line).

Examples::

    python -m experiments.evaluate
    python -m experiments.evaluate scenario=black_friday n_shoppers=100000
    python -m experiments.evaluate 'policies=[never,always_*,merchant_rules,oracle]'
    python -m experiments.evaluate 'policies=[never,rules:my_rules.yaml,oracle]' output=out.json

``never`` and ``oracle`` are the references of several KPIs: they are added to the list
when missing. Names that do not exist stop the run with the list of those that do
(exit status 2).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig
from rich.console import Console

from agents.baselines import RuleError
from agents.registry import UnknownPolicyError
from envs.scenario import ScenarioError
from experiments.config import CONFIG_PATH
from experiments.config.json_app import run_json_app
from experiments.config.scenarios import scenario_from_config
from experiments.config.trusted import TRUSTED_TARGETS
from experiments.evaluation.console import render
from experiments.evaluation.evaluation_file import write_evaluation
from experiments.evaluation.kpis import Bootstrap
from experiments.evaluation.paired import evaluate, public


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
        log=lambda msg: console.print(f"[dim]{msg}[/dim]"),
    )
    result = public(result)
    render(result, console)
    path = write_evaluation(Path(str(cfg.output)), result, indent=2)
    console.print(f"wrote {path}")
    return result


@hydra.main(config_path=CONFIG_PATH, config_name="evaluate", execution_whitelist=TRUSTED_TARGETS)
def main(cfg: DictConfig) -> None:
    run_json_app(run, cfg, (UnknownPolicyError, RuleError, ScenarioError))


if __name__ == "__main__":
    main()
