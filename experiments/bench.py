"""Benchmarks: figures and ratios against references measured in the same run.

Usage (``concede bench`` or ``python -m experiments.bench``)::

    concede bench env         # simulator throughput vs Gymnasium's CartPole
    concede bench evaluate    # 100,000 shoppers x 5 baselines, and the oracle
    concede bench train fps   # PPO on our VecEnv vs CartPole (convergence, sweep)
    concede bench serve       # the exported policy in process and over HTTP
    concede bench decide      # the decision service against stock MLflow serving
    concede bench calibrate   # parameter recovery of the scenario fit (zoo=10: unseen shops)
    concede bench ope         # off-policy estimators against the simulator's truth
    concede bench headroom R  # a run's agent vs the opponents and both bounds
    concede bench <name> --help

Options are given as every concede command takes them, ``key=value`` (``quick=true``,
``zoo=10``, ``'scenarios=[default,luxury]'``); each benchmark's ``--help`` lists them
under their ``--flag`` spelling, which is accepted too.

Each benchmark prints a table and, as its very last line, one JSON object with the
figures and ratios. Absolute speeds drift on shared machines; the ratios to the
references measured side by side are what to compare across runs. The benchmarks
themselves live in :mod:`experiments.benchmarks`, one module each.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

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

EXAMPLES = {
    "env": "concede bench env quick=true",
    "evaluate": "concede bench evaluate quick=true",
    "train": "concede bench train fps timesteps=20000",
    "serve": "concede bench serve quick=true",
    "decide": "concede bench decide quick=true",
    "calibrate": "concede bench calibrate zoo=10 zoo_seed=0 workers=2",
    "ope": "concede bench ope 'scenarios=[default]' draws=5",
    "headroom": "concede bench headroom outputs/runs/<run folder>",
}


def as_flags(args: Sequence[str]) -> list[str]:
    """The benchmarks' argparse arguments of ``key=value`` options: ``n_envs=16`` is
    ``--n-envs 16``, ``quick=true`` is ``--quick`` (``false`` leaves it out), ``'x=[a,b]'``
    is ``--x a b``; positional arguments and ``--flags`` pass unchanged."""
    flags: list[str] = []
    for arg in args:
        key, eq, value = arg.partition("=")
        if arg.startswith("-") or not eq or not key.replace("_", "").replace("-", "").isalnum():
            flags.append(arg)
            continue
        flag = "--" + key.replace("_", "-")
        if value.lower() == "true":
            flags.append(flag)
        elif value.lower() == "false":
            continue
        elif value.startswith("[") and value.endswith("]"):
            flags += [flag, *(v.strip() for v in value[1:-1].split(",") if v.strip())]
        else:
            flags += [flag, value]
    return flags


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    usage = f"usage: concede bench {{{','.join(BENCHMARKS)}}} [options]"
    if args and args[0] in ("-h", "--help"):
        print(f"{usage}\n\n{__doc__}")
        return 0
    if not args or args[0] not in BENCHMARKS:
        given = f"unknown benchmark {args[0]!r}; " if args else ""
        print(f"{given}{usage}", file=sys.stderr)
        return 2
    module = importlib.import_module(BENCHMARKS[args[0]])
    try:
        return int(module.main(as_flags(args[1:])) or 0)
    except SystemExit as done:  # argparse: --help (0) or bad options (2)
        if done.code == 0:
            print(f"\nexample: {EXAMPLES[args[0]]}")
        return done.code if isinstance(done.code, int) else 2


if __name__ == "__main__":
    sys.exit(main())
