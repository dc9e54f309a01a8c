"""Targets as ratios of per-journey counts: one structure for data and simulation alike.

Every target of a fit is a share: a numerator over a denominator summed over journeys
(purchases over visits, offers taken up over offers made...). :class:`TargetTable` keeps
those counts **per journey**, ``num`` and ``den`` of shape ``(journeys, targets)``, so
that the same object gives the targets, their binomial standard errors, the targets of
a subset of journeys (held-out comparison) and bootstrap replicates over journeys
(resampling whole journeys, with Poisson weights), without recounting anything.

A target marked ``fitted = False`` is computed and reported but not fitted: the
simulator has no parameter for it (conversion by month: the simulator has no season).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

Array = NDArray[np.float64]


@dataclass(frozen=True)
class TargetTable:
    """Per-journey counts of every target: ``value = num.sum(0) / den.sum(0)``.

    Args:
        names: target names, e.g. ``conversion_per_visit[new]``.
        labels: one line per target for the report.
        fitted: whether each target enters the fit.
        num, den: counts per journey, shape ``(journeys, targets)``.
        keys: the journey keys, in the rows' order.
    """

    names: tuple[str, ...]
    labels: tuple[str, ...]
    fitted: NDArray[np.bool_]
    num: Array
    den: Array
    keys: NDArray[np.str_]

    def __post_init__(self) -> None:
        t = len(self.names)
        if self.num.shape != self.den.shape or self.num.shape[1:] != (t,):
            raise ValueError(f"num and den must be (journeys, {t}), got {self.num.shape}")
        if len(self.labels) != t or len(self.fitted) != t or len(self.keys) != len(self.num):
            raise ValueError("names, labels, fitted and keys must match the counts")

    @property
    def n_journeys(self) -> int:
        return len(self.num)

    def totals(self, weights: Array | None = None) -> tuple[Array, Array]:
        """Summed numerators and denominators (journeys weighted by ``weights``)."""
        if weights is None:
            return self.num.sum(axis=0), self.den.sum(axis=0)
        return weights @ self.num, weights @ self.den

    def values(self, weights: Array | None = None) -> Array:
        """Each target's share; NaN where the denominator is 0."""
        num, den = self.totals(weights)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)

    def standard_errors(self) -> Array:
        """Binomial standard errors ``sqrt(p (1 - p) / n)`` (NaN without a denominator)."""
        p = self.values()
        _, den = self.totals()
        with np.errstate(invalid="ignore", divide="ignore"):
            se = np.sqrt(np.clip(p * (1.0 - p), 0.0, None) / den)
        # a share of 0 or 1 still has the uncertainty of one more journey either way
        floor = np.where(den > 0, 1.0 / np.maximum(den, 1.0), np.nan)
        return np.maximum(se, 0.5 * floor)

    def subset(self, rows: NDArray[np.bool_]) -> TargetTable:
        """The same targets counted on the journeys ``rows`` only."""
        return TargetTable(
            self.names, self.labels, self.fitted, self.num[rows], self.den[rows], self.keys[rows]
        )

    def bootstrap(self, rng: np.random.Generator, replicates: int) -> Array:
        """Target values on ``replicates`` resamples of the journeys, ``(replicates, targets)``
        (Poisson(1) weights per journey: the bootstrap over journeys of a large table)."""
        weights = rng.poisson(1.0, size=(replicates, self.n_journeys)).astype(np.float64)
        num, den = weights @ self.num, weights @ self.den
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)

    def collapsed(self) -> TargetTable:
        """The same targets as one row of totals (values kept, journeys forgotten)."""
        num, den = self.totals()
        return TargetTable(
            self.names, self.labels, self.fitted, num[None, :], den[None, :], np.array(["all"])
        )

    def select(self, names: Sequence[str]) -> TargetTable:
        """Only the targets ``names``, in that order (missing ones raise KeyError)."""
        idx = [self.names.index(n) for n in names]
        return TargetTable(
            tuple(self.names[i] for i in idx),
            tuple(self.labels[i] for i in idx),
            self.fitted[idx],
            self.num[:, idx],
            self.den[:, idx],
            self.keys,
        )


def combine(tables: Sequence[TargetTable]) -> TargetTable:
    """Targets of several tables side by side (their journeys are different samples: the
    rows are stacked, each table's counts zero on the others' journeys)."""
    if len(tables) == 1:
        return tables[0]
    total = sum(t.n_journeys for t in tables)
    width = sum(len(t.names) for t in tables)
    num, den = np.zeros((total, width)), np.zeros((total, width))
    row = col = 0
    for t in tables:
        num[row : row + t.n_journeys, col : col + len(t.names)] = t.num
        den[row : row + t.n_journeys, col : col + len(t.names)] = t.den
        row, col = row + t.n_journeys, col + len(t.names)
    return TargetTable(
        tuple(n for t in tables for n in t.names),
        tuple(lab for t in tables for lab in t.labels),
        np.concatenate([t.fitted for t in tables]),
        num,
        den,
        np.concatenate([t.keys for t in tables]),
    )


def stack(tables: Sequence[TargetTable], weights: Sequence[float]) -> TargetTable:
    """The journeys of several tables as one, each table's counts multiplied by its weight:
    samples of the strata of one population (its segments, each simulated alone) put back
    together in the population's proportions. A target some table lacks counts zero there;
    the names are those of every table, in order of first appearance."""
    at: dict[str, int] = {}
    labels: list[str] = []
    fitted: list[bool] = []
    for t in tables:
        for name, label, fit in zip(t.names, t.labels, t.fitted, strict=True):
            if name not in at:
                at[name] = len(at)
                labels.append(label)
                fitted.append(bool(fit))
    rows = sum(t.n_journeys for t in tables)
    num, den = np.zeros((rows, len(at))), np.zeros((rows, len(at)))
    row = 0
    for t, w in zip(tables, weights, strict=True):
        cols = [at[n] for n in t.names]
        num[row : row + t.n_journeys, cols] = t.num * w
        den[row : row + t.n_journeys, cols] = t.den * w
        row += t.n_journeys
    return TargetTable(
        tuple(at),
        tuple(labels),
        np.array(fitted, dtype=bool),
        num,
        den,
        np.concatenate([t.keys for t in tables]),
    )


def holdout_mask(keys: NDArray[np.str_], share: float, seed: int) -> NDArray[np.bool_]:
    """Journeys held out of the fit: about a ``share`` of them, by a seeded hash of each key
    (a journey is in or out whatever other journeys the table holds)."""
    if not 0.0 <= share < 1.0:
        raise ValueError(f"the held-out share must be in [0, 1), got {share}")
    if share == 0.0 or len(keys) == 0:
        return np.zeros(len(keys), dtype=bool)
    digests = (hashlib.blake2b(f"{seed}:{k}".encode(), digest_size=8).digest() for k in keys)
    draws = np.fromiter((int.from_bytes(d, "big") / 2.0**64 for d in digests), np.float64)
    return np.asarray(draws < share, dtype=bool)
