"""The objective's residuals at many candidates at once, on worker processes.

A fit spends its time simulating candidates, and most candidates come in batches whose
members do not depend on each other: the columns of a finite-difference Jacobian, the
points of a regression design (:mod:`.smoothing`), the two sides of each profiled
direction (:mod:`.intervals`), a global stage's design (:mod:`.convergence`).
:class:`Evaluator` runs a batch over ``workers`` processes (forked, so that they inherit
the objective and the compiled simulator), one candidate per task, and returns the
residuals in the batch's order. Every candidate is simulated on the same seeds in any
process, so the figures do not depend on ``workers``: ``workers=1`` runs in this process.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import numpy as np
from numpy.typing import NDArray

Array = NDArray[np.float64]
Residuals = Callable[[Array], Array]

_WORKER_RESIDUALS: Residuals | None = None  # the objective a worker process evaluates


def _install(residuals: Residuals) -> None:
    global _WORKER_RESIDUALS
    _WORKER_RESIDUALS = residuals


def _evaluate(x: Array) -> Array:
    assert _WORKER_RESIDUALS is not None, "the worker was started without an objective"
    return _WORKER_RESIDUALS(x)


def default_workers(limit: int = 8) -> int:
    """The cores this process may run on, at most ``limit``."""
    return max(1, min(limit, len(os.sched_getaffinity(0))))


class Evaluator:
    """``residuals`` at one candidate (in this process) or at a batch (over the workers).

    Counts every candidate it simulates (:attr:`evaluations`). Use it as a context
    manager, or call :meth:`close`, to stop the workers."""

    def __init__(self, residuals: Residuals, workers: int = 1) -> None:
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        self.residuals = residuals
        self.workers = workers
        self.evaluations = 0
        self._pool: ProcessPoolExecutor | None = None

    def __call__(self, x: Sequence[float] | Array) -> Array:
        self.evaluations += 1
        return self.residuals(np.asarray(x, dtype=np.float64))

    def many(self, points: Sequence[Array] | Array) -> list[Array]:
        """The residuals at each of ``points``, in order."""
        xs = [np.asarray(x, dtype=np.float64) for x in points]
        self.evaluations += len(xs)
        if self.workers == 1 or len(xs) < 2:
            return [self.residuals(x) for x in xs]
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                max_workers=self.workers,
                mp_context=multiprocessing.get_context("fork"),
                initializer=_install,
                initargs=(self.residuals,),
            )
        return list(self._pool.map(_evaluate, xs))

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None

    def __enter__(self) -> Evaluator:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
