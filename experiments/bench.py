"""Benchmarks: figures and ratios against references measured in the same run.

Usage::

    python -m experiments.bench env         # simulator throughput vs Gymnasium's CartPole
    python -m experiments.bench evaluate    # 100,000 shoppers x 5 baselines, and the oracle
    python -m experiments.bench train fps   # PPO on our VecEnv vs CartPole (convergence, sweep)
    python -m experiments.bench serve       # the exported policy in process and over HTTP
    python -m experiments.bench decide      # the decision service against stock MLflow serving
    python -m experiments.bench calibrate   # parameter recovery of the scenario fit
    python -m experiments.bench ope         # off-policy estimators against the simulator's truth
    python -m experiments.bench headroom R  # a run's agent vs the opponents and both bounds
    python -m experiments.bench <name> --help

Each benchmark prints a table and, as its very last line, one JSON object with the
figures and ratios. Absolute speeds drift on shared machines; the ratios to the
references measured side by side are what to compare across runs. The benchmarks
themselves live in :mod:`experiments.benchmarks`, one module each.
"""

from __future__ import annotations

import importlib
import sys

BENCHMARKS = {
    "env": "experiments.benchmarks.env",
    "evaluate": "experiments.benchmarks.evaluate",
    "train": "experiments.benchmarks.train",
    "serve": "experiments.benchmarks.serve",
    "decide": "experiments.benchmarks.decide",
    "calibrate": "experiments.benchmarks.calibrate",
    "ope": "experiments.benchmarks.ope",
    "headroom": "experiments.benchmarks.headroom",
}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    usage = f"usage: python -m experiments.bench {{{','.join(BENCHMARKS)}}} [options]"
    if args and args[0] in ("-h", "--help"):
        print(f"{usage}\n\n{__doc__}")
        return 0
    if not args or args[0] not in BENCHMARKS:
        given = f"unknown benchmark {args[0]!r}; " if args else ""
        print(f"{given}{usage}", file=sys.stderr)
        return 2
    module = importlib.import_module(BENCHMARKS[args[0]])
    return int(module.main(args[1:]) or 0)


if __name__ == "__main__":
    sys.exit(main())
