"""``concede``: one command for everything, with a subcommand per app.

Installed as the console script ``concede`` (``pyproject.toml``); ``python -m
experiments.cli`` is the same. Each subcommand is one app of ``experiments/`` and takes
its arguments: Hydra overrides (``key=value``, ``group=option``, lists as ``'[a,b]'``,
``-m`` to sweep), except ``serve``, which takes a server's ``--flags``. ``concede
<command> --help`` lists the command's options with their defaults and an example.
``python -m experiments.<app>`` runs the same apps with the same arguments.

Usage::

    concede run                                   # train, evaluate, report, register
    concede evaluate scenario=black_friday 'policies=[never,merchant_rules,outputs/policy]'
    concede calibrate data=[sessions.csv,decisions.parquet] fit=wide out=my_shop.yaml
    concede serve --policy outputs/policy --logs outputs/journal
    concede bench env
"""

from __future__ import annotations

import importlib
import sys
from typing import NamedTuple


class Command(NamedTuple):
    """A subcommand: the app module that runs it and what it does, in one line."""

    module: str
    summary: str


COMMANDS: dict[str, Command] = {
    "run": Command("experiments.main", "train, evaluate, report and register, in one go"),
    "train": Command("experiments.train", "train an agent on a scenario, tracked in MLflow"),
    "evaluate": Command(
        "experiments.evaluate", "compare policies on the same simulated shoppers, in euros"
    ),
    "report": Command("experiments.report", "the merchant report (HTML) of runs or evaluations"),
    "export": Command("experiments.export", "write a run's policy as a policy folder (ONNX)"),
    "register": Command("experiments.register", "register a run's policy in MLflow, with alias"),
    "simulate-logs": Command(
        "experiments.simulate_logs", "write a decision log from the simulator"
    ),
    "ope": Command("experiments.ope", "what policies would have earned on a decision log"),
    "calibrate": Command("experiments.calibrate", "fit a scenario to your shop's data"),
    "serve": Command("experiments.serve", "the decision service over HTTP (--flags)"),
    "bench": Command("experiments.bench", "the benchmarks, against references"),
}


def usage() -> str:
    """The list of commands, for ``concede --help`` and a wrong command."""
    width = max(map(len, COMMANDS))
    lines = [f"  {name:<{width}}  {command.summary}" for name, command in COMMANDS.items()]
    return (
        "usage: concede <command> [options]\n\ncommands:\n"
        + "\n".join(lines)
        + "\n\n`concede <command> --help` lists a command's options and an example."
    )


def main(argv: list[str] | None = None) -> int:
    """Run ``concede <command> [options]``; returns the exit status."""
    args = sys.argv[1:] if argv is None else list(argv)
    if not args or args[0] in ("-h", "--help"):
        print(usage())
        return 0 if args else 2
    name, rest = args[0], args[1:]
    if name not in COMMANDS:
        print(f"concede: unknown command {name!r}\n\n{usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[name].module)
    # Hydra reads sys.argv: the app sees its own arguments, as under
    # `python -m experiments.<app>`, and names itself `concede <command>`.
    argv_before = sys.argv
    sys.argv = [f"concede {name}", *rest]
    try:
        if name in ("serve", "bench"):  # argparse apps that return their status
            return int(module.main(rest) or 0)
        module.main()
    except SystemExit as done:  # `error: ...` (2), Hydra's refusal (1), --help (0)
        return done.code if isinstance(done.code, int) else 1
    finally:
        sys.argv = argv_before
    return 0


if __name__ == "__main__":
    sys.exit(main())
