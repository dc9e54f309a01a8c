"""Compile the simulator's kernels ahead of use: ``python -m envs.compile``.

The dynamics (:mod:`envs.kernels`) are compiled by numba on their first call and kept in
numba's cache on disk (``envs/__pycache__``, or numba's user cache when the package folder
is read-only), so later processes load them in well under a second. This command makes
that first call: it steps a single shopper and a small batch of every kind the core
builds (autoreset, staggered arrivals, masks), which compiles every signature the
product uses, and prints how long it took. ``make`` runs it once after set-up and again
whenever ``envs/kernels.py`` changes, so that neither ``make run`` nor the tests pay it.
"""

from __future__ import annotations

import time

import numpy as np

from envs.core import ShopperCore
from envs.scenario_files import load_scenario


def compile_kernels() -> float:
    """Compile (or load from the cache) every kernel signature; returns the seconds taken."""
    start = time.perf_counter()
    scenario = load_scenario("default")
    for core in (
        ShopperCore(scenario, 1, autoreset=False),
        ShopperCore(scenario, 8, autoreset=True),
        ShopperCore(scenario, 8, autoreset=False, stagger=4),
    ):
        core.reset(0)
        for _ in range(scenario.horizon + core.stagger):
            mask = core.action_masks()
            core.budget_withheld()
            core.wants_agent()
            core.step(mask.argmax(axis=1) * (np.arange(core.n) % 2))
    return time.perf_counter() - start


def main() -> int:
    seconds = compile_kernels()
    print(f"simulator kernels ready in {seconds:.1f} s (numba's cache on disk)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
