"""Write a decision log from the simulator: any policy plus exploration, exact propensities.

``concede simulate-logs`` (``conf/simulate_logs.yaml``) runs the logger on
``n_shoppers`` shoppers of the scenario, as the paired evaluation runs it, exploring a
share of its decisions among the eligible actions (:mod:`agents.logs.simulate`), and
writes the log (Parquet by default, CSV for ``out=...csv``, a folder of rotated files
with ``rows_per_file``). It prints what the log holds and, as its last line, JSON.

Examples::

    concede simulate-logs
    concede simulate-logs scenario=black_friday logger=always_recovery_email \\
        exploration=0.2 n_shoppers=100000 seed=3 out=logs/bf.parquet
    concede simulate-logs logger=outputs/policy exploration_kind=softmax \\
        exploration=0.5
    concede simulate-logs exploration=0.3 'exploration_moments=[exit_intent,away]'

``exploration_moments`` (a list of binary observed features, e.g. ``[exit_intent, away]``)
explores only at the decision moments where one of them is 1, as a shop randomises only
where it would hesitate; elsewhere the logger's own decision has probability 1. The log's
metadata records the moments (``calibrate`` reads them back).

The logger is one policy string (not the oracle nor the informed bound: no shop sees
what they see).

Policies are policy strings, the same in every app (:data:`agents.registry.POLICY_STRINGS`):
names, ``rules:<file.yaml>``, ``fixed:<action>``, a policy directory, ``run:<id>``,
``models:/<name>@<alias>``; a trained policy that does not fit the scenario is refused,
naming the mismatch.

Bad input (an unknown policy, a policy that does not fit the scenario, a bad
exploration or moment, a scenario error) stops with the message and exit status 2.
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
from omegaconf import DictConfig, ListConfig
from rich.console import Console

from agents.logs import write_log
from agents.logs.simulate import Exploration, simulate_logs
from agents.logs.summary import summarise
from agents.registry import PolicySpecError, build_policies
from envs.scenario import ScenarioError
from experiments.config import CONFIG_PATH
from experiments.config.json_app import run_json_app
from experiments.config.scenarios import scenario_from_config
from experiments.config.trusted import TRUSTED_TARGETS
from experiments.tracking.names import store_uri

INPUT_ERRORS = (PolicySpecError, ScenarioError, ValueError)


def run(cfg: DictConfig, console: Console) -> dict[str, Any]:
    """The app without Hydra's wrapper: simulate, write, summarise."""
    scenario = scenario_from_config(cfg.scenario)
    loggers = build_policies(
        [str(cfg.logger)],
        scenario,
        tracking_uri=store_uri(cfg.tracking_uri),
        privileged=False,
    )
    if len(loggers) != 1:
        raise PolicySpecError(f"logger={cfg.logger} gives {len(loggers)} policies: give one")
    (logger,) = loggers
    exploration = Exploration(
        str(cfg.exploration_kind), float(cfg.exploration), moments(cfg.get("exploration_moments"))
    )
    table = simulate_logs(
        scenario,
        logger,
        int(cfg.n_shoppers),
        int(cfg.seed),
        exploration,
        cohort_size=int(cfg.cohort_size),
    )
    rows = cfg.rows_per_file
    out = Path(str(cfg.out))
    if rows is not None:
        out = out.with_suffix("")
    path = write_log(table, out, rows_per_file=None if rows is None else int(rows))
    summary = summarise(table)
    console.print(
        f"{scenario.name}: {summary['journeys']:,} journeys, {summary['decisions']:,} decisions "
        f"logged by {logger.name} with {exploration.describe()}; "
        f"{summary['explored']:.1%} of decisions drawn with probability below 1, "
        f"offers in {summary['offers']:.1%}; conversion {summary['conversion']:.1%}, "
        f"profit {summary['profit_per_1000']:,.0f} EUR per 1,000 journeys"
    )
    console.print(f"wrote {path}")
    return {
        "out": str(path),
        "scenario": scenario.name,
        "scenario_digest": scenario.digest(),
        "logger": logger.name,
        "exploration": exploration.to_dict(),
        "seed": int(cfg.seed),
        **summary,
    }


def moments(value: Any) -> tuple[str, ...] | None:
    """``exploration_moments`` as feature names: null (explore everywhere), one name or a
    list of names."""
    if value is None:
        return None
    if isinstance(value, str):
        return (value,)
    if isinstance(value, ListConfig | list | tuple) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise ValueError(
        f"exploration_moments must be null or a list of features such as [exit_intent,away], "
        f"got {value!r}"
    )


@hydra.main(
    config_path=CONFIG_PATH, config_name="simulate_logs", execution_whitelist=TRUSTED_TARGETS
)
def main(cfg: DictConfig) -> None:
    run_json_app(run, cfg, INPUT_ERRORS)


if __name__ == "__main__":
    main()
