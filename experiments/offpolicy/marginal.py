"""The marginalised estimators' ratio model: how much likelier the evaluated policy is to
reach each logged state than the logger, learned from the log, cross-fitted.

In a journey of ``T`` decisions the per-decision weight ``w_t = rho_0 ... rho_t``
multiplies one ratio per decision, so its variance grows with the horizon (the *curse of
horizon*). The marginalised estimators (Xie, Ma & Wang, 2019; Kallus & Uehara, 2020;
SCOPE-RL's ``*_marginal`` estimators) replace the history's product by the ratio of the
two policies' state distributions at step ``t``, ``d^pi_t(s) / d^mu_t(s)``. In a
finite-horizon, episodic log that ratio is a conditional mean of the weight so far:

    w^_t(s) = E_mu[ w_{t-1} | s_t = s ]      (w^_0 = 1: both policies start alike)

so it is learned by **regressing the cumulative weight of the decisions before ``t`` on
the features seen at ``t``** (and ``t`` itself): a scikit-learn
``HistGradientBoostingRegressor`` (squared error, so its prediction estimates that mean),
fitted on the rows of decisions 1, 2, ... . Histories that lead to the same state then
share one weight instead of each carrying its own product: where the features summarise
what matters of the past, the weights are far less spread out; where they record the
whole history (which offers were shown) the ratio is as spread as the product, and
nothing is gained.

**Cross-fitting and clipping.** The journeys are split at random into ``folds``; a row's
ratio is predicted by the model fitted on the other folds, so a journey's own large
weight does not set its own ratio. Predictions are clipped to ``[0, largest weight in
the model's training rows]`` (a ratio is never negative, and a regression of a
heavy-tailed target can overshoot). They are not normalised: the self-normalised
estimators (``wmis``, ``wmdr``) normalise per step.

**Repeated splits.** As for the value model (:mod:`experiments.offpolicy.fqe`), the split
is drawn ``repeats`` times: the estimators average the ratios over the splits, and their
intervals are widened by the spread of the estimates between splits. The ratio model is
not refitted per bootstrap resample (a thousand fits per policy); so the intervals of the
marginalised importance-sampling estimators (``mis``, ``wmis``), whose error is first
order in the ratio model's, may be too narrow; the doubly robust ones (``mdr``, ``wmdr``)
are first-order insensitive to its error when the value model is right.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from sklearn.ensemble import HistGradientBoostingRegressor
from threadpoolctl import threadpool_limits

from experiments.offpolicy.data import Journeys
from experiments.offpolicy.estimators import previous_weights
from experiments.offpolicy.fqe import SPLIT_SEED_STEP, fit_rows

FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class RatioModelSettings:
    """How the state-ratio model is fitted.

    Args:
        folds: cross-fitting folds over journeys (>= 2).
        max_fit_rows: rows a fit uses at most (whole journeys drawn at random).
        max_iter: boosting iterations of the regressor.
        max_leaf_nodes: leaves per tree.
        min_samples_leaf: rows per leaf at least (a ratio is a mean over many histories).
        learning_rate: boosting learning rate.
        min_journeys: below this many journeys no ratio model is fitted (the marginalised
            estimators are then not computed).
        repeats: fold splits drawn (>= 1), each fitted in full; see the module docstring.
    """

    folds: int = 2
    max_fit_rows: int = 200_000
    max_iter: int = 60
    max_leaf_nodes: int = 31
    min_samples_leaf: int = 50
    learning_rate: float = 0.1
    min_journeys: int = 100
    repeats: int = 3

    def __post_init__(self) -> None:
        if self.folds < 2 or self.max_fit_rows < 1 or self.repeats < 1 or self.max_iter < 1:
            raise ValueError(
                "ratio model: folds >= 2, max_fit_rows >= 1, max_iter >= 1 and repeats >= 1 "
                f"are needed, got {self.folds}, {self.max_fit_rows}, {self.max_iter}, "
                f"{self.repeats}"
            )


def fit_state_ratios(
    journeys: Journeys, w: FloatArray, settings: RatioModelSettings, seed: int, threads: int = 1
) -> FloatArray:
    """``w^_t(s_t)`` per row, cross-fitted, from the per-decision weights ``w`` (per row,
    :func:`experiments.offpolicy.estimators.cumulative_weights`); 1 on first rows."""
    with threadpool_limits(threads):
        return _fit(journeys, w, settings, seed)


def fit_ratio_repeats(
    journeys: Journeys, w: FloatArray, settings: RatioModelSettings, seed: int, threads: int = 1
) -> list[FloatArray]:
    """:func:`fit_state_ratios` on ``settings.repeats`` fold splits, seeded ``seed``,
    ``seed + SPLIT_SEED_STEP``... (the value model's seeds: split ``r`` of both models
    is the same split of the journeys)."""
    return [
        fit_state_ratios(journeys, w, settings, seed + SPLIT_SEED_STEP * r, threads)
        for r in range(settings.repeats)
    ]


def _fit(journeys: Journeys, w: FloatArray, settings: RatioModelSettings, seed: int) -> FloatArray:
    rng = np.random.default_rng(seed)
    fold_of = rng.permutation(journeys.n_journeys) % settings.folds
    prev = previous_weights(journeys, w)
    out = np.ones(journeys.n_rows)
    later = journeys.position > 0
    if not later.any():
        return out
    x = np.column_stack(
        [np.nan_to_num(journeys.features, nan=0.0), journeys.position.astype(np.float64)]
    ).astype(np.float32)
    row_fold = fold_of[journeys.journey]
    for fold in range(settings.folds):
        held = np.flatnonzero((row_fold == fold) & later)
        train = fit_rows(journeys, fold_of != fold, settings.max_fit_rows, rng)
        train = train[later[train]]
        if not len(held):
            continue
        target = prev[train]
        if not len(train) or np.ptp(target) == 0.0:  # one value: the mean is exact
            out[held] = target[0] if len(train) else 1.0
            continue
        model = HistGradientBoostingRegressor(
            max_iter=settings.max_iter,
            max_leaf_nodes=settings.max_leaf_nodes,
            min_samples_leaf=settings.min_samples_leaf,
            learning_rate=settings.learning_rate,
            early_stopping=False,
            random_state=seed + fold,
        )
        model.fit(x[train], target)
        out[held] = np.clip(model.predict(x[held]), 0.0, float(target.max()))
    return out
