"""The decision service for sale days: ``python -m experiments.serve --policy <dir> --logs <dir>``.

Decide (with exploration over the allowed actions), take rewards, log both, expose
``/health`` and ``/metrics``. See ``python -m experiments.serve --help`` and the README
("A decision service for sale days"). Joining the journals into a decision log:
``python -m experiments.serve join --logs <dir> --out <log folder>``.
"""

from __future__ import annotations

import sys

from agents.serving.service.launch import main as serve_main
from agents.serving.service.tools import join_main

if __name__ == "__main__":
    args = sys.argv[1:]
    if args[:1] == ["join"]:
        sys.exit(join_main(args[1:]))
    sys.exit(serve_main(args))
