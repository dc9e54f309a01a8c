"""The merchant report: what a policy earns over the current rule, in euros, with intervals.

``python -m experiments.report`` reads training runs from MLflow (an experiment, a sweep,
or given run ids) and their paired evaluations (``evaluation.json``, see
:mod:`experiments.evaluation.evaluation_file`), or evaluation files written by
``python -m experiments.evaluate``, and writes one self-contained HTML file (plots
embedded, no scripts, opens offline) with a JSON of the same figures beside it.

The report opens with a verdict per scenario: *"maskable_ppo earns EUR Y more per 1,000
shoppers than your current rule [95% interval], gives away Z% less in concessions,
interrupts W% fewer shoppers"*. "Your current rule" is ``--current-rule``, by default
``merchant_rules`` when it was evaluated, else the best baseline; the report says which
and why. Then, per scenario: policies x KPIs with intervals, a margin waterfall, when
offers are made and to whom, what privacy costs, the oracle's bound as headroom, and the
learning curves of trained agents; at the end every run asked for, failed ones included,
and a glossary.

Examples::

    python -m experiments.report                                  # experiment "concede"
    python -m experiments.report --sweep <parent run id or sweep folder>
    python -m experiments.report --run-id 3f2a... --run-id 9bc1...
    python -m experiments.report --evaluation outputs/evaluate/<run>/evaluation.json
    python -m experiments.report --current-rule always_free_shipping --out-dir reports/
    python -m experiments.report --evaluation ev.json --ope ope.json   # with "On your logs"

The default store is the embedded one of ``make run``: ``sqlite:///<cwd>/outputs/mlflow.db``.
Errors (no store, no such experiment, sweep or run, no evaluation to report) exit with
status 2 and say what is missing.

The report itself is the library :mod:`experiments.reporting`
(:func:`~experiments.reporting.write_report` for other jobs); this module only reads the
arguments, calls it and prints where the files are.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from experiments.reporting import ReportError, write_report
from experiments.reporting.verdict import DEFAULT_RULE


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m experiments.report",
        description="Write the merchant report (HTML + JSON) of training runs or evaluations.",
    )
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--experiment", help="MLflow experiment name (default: concede)")
    which.add_argument("--sweep", help="a sweep: its parent run id or its folder (concede.sweep)")
    which.add_argument(
        "--run-id", action="append", default=[], dest="run_ids", help="a run id (repeatable)"
    )
    parser.add_argument(
        "--evaluation",
        action="append",
        default=[],
        dest="evaluations",
        help="an evaluation.json of experiments.evaluate or of a run (repeatable)",
    )
    parser.add_argument(
        "--ope",
        action="append",
        default=[],
        dest="offpolicy",
        help="an off-policy evaluation on your logs (the JSON of experiments.ope): an 'On "
        "your logs' section beside the simulated figures (repeatable)",
    )
    parser.add_argument(
        "--tracking-uri", help="MLflow store (default: sqlite:///<cwd>/outputs/mlflow.db)"
    )
    parser.add_argument(
        "--current-rule",
        help=f"the policy you use today (default: {DEFAULT_RULE} if evaluated, else the best "
        "baseline)",
    )
    parser.add_argument(
        "--policy", help="the policy the verdict is about (default: the trained agent)"
    )
    parser.add_argument("--out-dir", default="outputs/reports", help="folder of the report")
    parser.add_argument("--name", help="file name without extension (default: timestamped)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        path = write_report(
            args.run_ids,
            tracking_uri=args.tracking_uri,
            out_dir=args.out_dir,
            experiment=args.experiment,
            sweep=args.sweep,
            evaluations=args.evaluations,
            current_rule=args.current_rule,
            policy=args.policy,
            name=args.name,
            offpolicy=args.offpolicy,
        )
    except ReportError as err:
        print(f"error: {err}", file=sys.stderr, flush=True)
        return 2
    print(f"report: {path}")
    print(f"figures: {path.with_suffix('.json')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
