"""The merchant report: what a policy earns over the current rule, in euros, with intervals.

``concede report`` (``python -m experiments.report``) reads training runs from MLflow (an
experiment, a sweep, or given run ids) and their paired evaluations (``evaluation.json``, see
:mod:`experiments.evaluation.evaluation_file`), or evaluation files written by
``concede evaluate``, and writes one self-contained HTML file (plots
embedded, no scripts, opens offline) with a JSON of the same figures beside it.

The report opens with a verdict per scenario: *"maskable_ppo earns EUR Y more per 1,000
shoppers than your current rule [95% interval], gives away Z% less in concessions,
interrupts W% fewer shoppers"*. "Your current rule" is ``current_rule``, by default
``merchant_rules`` when it was evaluated, else the best baseline; the report says which
and why. Then, per scenario: policies x KPIs with intervals, a margin waterfall, when
offers are made and to whom, what privacy costs, the oracle's bound as headroom, and the
learning curves of trained agents; at the end every run asked for, failed ones included,
and a glossary.

Examples (Hydra overrides; every option in
:class:`~experiments.config.app_schemas.ReportConfig`)::

    concede report                                        # experiment "concede"
    concede report sweep=<parent run id or sweep folder>
    concede report 'run_ids=[3f2a...,9bc1...]'
    concede report 'evaluations=[outputs/evaluate/<run>/evaluation.json]'
    concede report current_rule=always_free_shipping out_dir=reports/
    concede report 'evaluations=[ev.json]' 'ope=[ope.json]'   # with "On your logs"

The default store is the embedded one of ``make run``: ``sqlite:///<cwd>/outputs/mlflow.db``.
Errors (no store, no such experiment, sweep or run, no evaluation to report) exit with
status 2 and say what is missing.

The report itself is the library :mod:`experiments.reporting`
(:func:`~experiments.reporting.write_report` for other jobs); this module only reads the
arguments, calls it and prints where the files are.
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from experiments.config import CONFIG_PATH
from experiments.config.app_schemas import ReportConfig, store_schemas
from experiments.config.trusted import TRUSTED_TARGETS
from experiments.config.typed_app import fail, options_of
from experiments.reporting import ReportError, write_report

store_schemas()


@hydra.main(config_path=CONFIG_PATH, config_name="report", execution_whitelist=TRUSTED_TARGETS)
def main(cfg: DictConfig) -> None:
    args = options_of(cfg, ReportConfig)
    try:
        path = write_report(
            args.run_ids,
            tracking_uri=args.tracking_uri,
            out_dir=args.out_dir,
            experiment=args.experiment_name,
            sweep=args.sweep,
            evaluations=args.evaluations,
            current_rule=args.current_rule,
            policy=args.policy,
            name=args.name,
            offpolicy=args.ope,
        )
    except ReportError as err:
        fail(str(err))
    print(f"report: {path}")
    print(f"figures: {path.with_suffix('.json')}")


if __name__ == "__main__":
    main()
