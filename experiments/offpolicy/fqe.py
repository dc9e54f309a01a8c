"""The value model of the doubly robust estimators: fitted-Q evaluation, cross-fitted.

The evaluated policies decide deterministically (:mod:`experiments.offpolicy.targets`),
so the doubly robust estimators only ever need ``V(x) = Q(x, pi(x))``, the signal's
expected sum from a decision to the journey's end when the merchant does what ``pi``
says at ``x`` and after: wherever the logged action differs from ``pi``'s the weight
``w_t`` is 0 and ``Q(x_t, a_t)`` drops out, and wherever it agrees ``Q(x_t, a_t) =
V(x_t)``. So the model is fitted on the rows where the logger did what ``pi`` would
have done, and needs no action input (a regression tree would be slow to tell actions
apart from the state, and would pull ``V`` towards the logger's own value).

**Fitted-Q evaluation with tree-backup targets.** A scikit-learn
``HistGradientBoostingRegressor`` of the target on the features (null as 0), where the
target of a row is its tree-backup return (Precup et al., 2000) under the current model,
backwards through each journey:

    G_t = y_t + (G_{t+1} if the logger did pi's action at t+1, else V(x_{t+1}))

(``G = y`` on a journey's last row). So the return runs on along the logged journey as
long as the logger agrees with ``pi``, and where it does not it is cut by the model's own
``V``: no importance weight enters the regression. The first fit uses ``V = 0``. A
journey that agrees with ``pi`` throughout needs one fit, and each disagreement one more:
:attr:`ValueModelSettings.iterations` bounds them. A later iteration's targets differ
from the previous ones only where a return is cut, so it does not start again: it
continues the boosting from the previous model: a further regressor of
:attr:`ValueModelSettings.refit_iter` trees fits what is left of the new targets, and
the model is the sum (squared-error boosting is additive, so this is the boosting
continued) — about 2.5 times fewer trees than refitting from scratch, and each row's
prediction updated by the new trees only.

**Cross-fitting.** The journeys are split at random into ``folds``; the model that
predicts a journey's rows was fitted on the other folds only. Then the doubly robust
estimate is unbiased when the propensities are exact, whatever the model's errors
(they only cost variance).

**Repeated splits** (:func:`fit_value_repeats`). Which journeys train which model moves
the doubly robust estimates: where the logger rarely did what the policy does, a row
carries a large weight and the model's prediction there is learned from few rows, so
the estimate on one split can differ from another by as much as the bootstrap's own
spread. As double/debiased machine learning does (Chernozhukov et al., 2018, §3.4), the
split is drawn ``repeats`` times: the estimate averages them, and its interval is
widened by their spread (:func:`experiments.offpolicy.bootstrap.widen`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sklearn.ensemble import HistGradientBoostingRegressor
from threadpoolctl import threadpool_limits

from experiments.offpolicy.data import Journeys

FloatArray = NDArray[np.float64]
SPLIT_SEED_STEP = 7_919  # between the seeds of repeated splits (a prime: no fold pattern)


@dataclass(frozen=True)
class ValueModelSettings:
    """How the value model is fitted.

    Args:
        iterations: fitted-Q iterations (tree-backup targets; see the module docstring).
        folds: cross-fitting folds over journeys (>= 2).
        max_fit_rows: rows a fit uses at most (whole journeys drawn at random).
        max_iter: boosting iterations of the first fitted-Q iteration's regressor.
        refit_iter: boosting iterations each later fitted-Q iteration adds to it.
        max_leaf_nodes: leaves per tree.
        learning_rate: boosting learning rate.
        min_journeys: below this many journeys no value model is fitted (the doubly
            robust estimators are then not computed).
        repeats: fold splits drawn (>= 1), each fitted in full; see the module docstring.
        threads: OpenMP threads the regressor may use (1 is fastest on a busy machine).
    """

    iterations: int = 5
    folds: int = 2
    max_fit_rows: int = 200_000
    max_iter: int = 60
    refit_iter: int = 15
    max_leaf_nodes: int = 31
    learning_rate: float = 0.15
    min_journeys: int = 100
    repeats: int = 3
    threads: int = 1

    def __post_init__(self) -> None:
        if (
            self.iterations < 1
            or self.folds < 2
            or self.max_fit_rows < 1
            or self.max_iter < 1
            or self.refit_iter < 1
            or self.repeats < 1
            or self.threads < 1
        ):
            raise ValueError(
                "value model: iterations >= 1, folds >= 2, max_fit_rows >= 1, max_iter >= 1, "
                "refit_iter >= 1, repeats >= 1 and threads >= 1 are needed, got "
                f"{self.iterations}, {self.folds}, {self.max_fit_rows}, {self.max_iter}, "
                f"{self.refit_iter}, {self.repeats}, {self.threads}"
            )


@dataclass(frozen=True)
class ValueEstimates:
    """Out-of-fold predictions per row: ``q_taken`` = Q(x_t, a_t) where the logged action
    is the policy's (where it is not, the estimators weigh it by 0; it is set to ``v``),
    ``v`` = V(x_t); and ``r2``, the out-of-fold R² of the model on the tree-backup
    returns of the rows that agree with the policy (how much of the return it explains:
    at or below 0 it is no better than their mean)."""

    q_taken: FloatArray
    v: FloatArray
    r2: float


class NotDeterministicError(ValueError):
    """The value model needs a policy that picks one action per decision."""


def tree_backup_returns(
    journeys: Journeys,
    rows: NDArray[np.int64],
    signal: FloatArray,
    v: FloatArray,
    agree: NDArray[np.bool_],
) -> FloatArray:
    """The tree-backup return of each row in ``rows`` (whole journeys, in journey order),
    given the model's ``v`` and whether the logged action is the policy's (``agree``),
    both indexed like ``rows``."""
    g = signal[rows].copy()
    pos = journeys.position[rows]
    is_last = (pos + 1) == journeys.length[journeys.journey[rows]]
    for p in range(int(pos.max()) - 1, -1, -1):
        here = np.flatnonzero((pos == p) & ~is_last)
        nxt = here + 1
        g[here] += np.where(agree[nxt], g[nxt], v[nxt])
    return g


def fit_values(
    journeys: Journeys,
    target: FloatArray,
    signal: FloatArray,
    settings: ValueModelSettings,
    seed: int,
) -> ValueEstimates:
    """Cross-fitted V of the deterministic policy ``target`` (its one-hot probabilities
    per row) for one ``signal`` (per row); see the module docstring.

    Raises:
        NotDeterministicError: ``target`` gives some row more than one action.
    """
    if not np.all((target == 0.0) | (target == 1.0)):
        raise NotDeterministicError(
            "the value model needs a deterministic policy (probabilities 0 or 1 per action)"
        )
    with threadpool_limits(settings.threads):
        return _fit_values(journeys, target, signal, settings, seed)


def fit_value_repeats(
    journeys: Journeys,
    target: FloatArray,
    signal: FloatArray,
    settings: ValueModelSettings,
    seed: int,
) -> list[ValueEstimates]:
    """:func:`fit_values` on ``settings.repeats`` fold splits, seeded ``seed``,
    ``seed + SPLIT_SEED_STEP``...; see the module docstring."""
    return [
        fit_values(journeys, target, signal, settings, seed + SPLIT_SEED_STEP * r)
        for r in range(settings.repeats)
    ]


def mean_values(fits: list[ValueEstimates]) -> ValueEstimates:
    """The predictions averaged over repeated splits (the doubly robust statistics are
    linear in them, so their estimate is the mean of the splits' estimates)."""
    return ValueEstimates(
        q_taken=np.mean([f.q_taken for f in fits], axis=0),
        v=np.mean([f.v for f in fits], axis=0),
        r2=float(np.mean([f.r2 for f in fits])),
    )


def _regressor(
    max_iter: int, settings: ValueModelSettings, seed: int
) -> HistGradientBoostingRegressor:
    return HistGradientBoostingRegressor(
        max_iter=max_iter,
        max_leaf_nodes=settings.max_leaf_nodes,
        learning_rate=settings.learning_rate,
        early_stopping=False,
        random_state=seed,
    )


def _predict(
    model: HistGradientBoostingRegressor | None, x: NDArray[np.floating[Any]]
) -> FloatArray:
    if model is None or not len(x):
        return np.zeros(len(x))
    return np.asarray(model.predict(x), dtype=np.float64)


def _fit_values(
    journeys: Journeys,
    target: FloatArray,
    signal: FloatArray,
    settings: ValueModelSettings,
    seed: int,
) -> ValueEstimates:
    rng = np.random.default_rng(seed)
    fold_of = rng.permutation(journeys.n_journeys) % settings.folds
    row_fold = fold_of[journeys.journey]
    x = np.nan_to_num(journeys.features, nan=0.0).astype(np.float32)
    agree_all = target[np.arange(journeys.n_rows), journeys.action] > 0.0
    iterations = 1 if journeys.single_decision else settings.iterations
    v_out = np.zeros(journeys.n_rows)
    resid, total = 0.0, 0.0
    for fold in range(settings.folds):
        train = fit_rows(journeys, fold_of != fold, settings.max_fit_rows, rng)
        held = np.flatnonzero(row_fold == fold)
        agree = agree_all[train]
        models: list[HistGradientBoostingRegressor] = []
        v_train = np.zeros(len(train))
        x_fit = x[train][agree]
        for i in range(iterations if agree.any() else 0):
            y = tree_backup_returns(journeys, train, signal, v_train, agree)
            trees = settings.max_iter if i == 0 else settings.refit_iter
            model = _regressor(trees, settings, seed + fold * 1000 + i)
            # from the second iteration on, the new trees fit what the model leaves of
            # the new targets (see the module docstring)
            model.fit(x_fit, y[agree] - v_train[agree])
            models.append(model)
            v_train = v_train + _predict(model, x[train])
        v_out[held] = sum((_predict(m, x[held]) for m in models), np.zeros(len(held)))
        ok = agree_all[held]
        y_held = tree_backup_returns(journeys, held, signal, v_out[held], ok)[ok]
        resid += float(((y_held - v_out[held][ok]) ** 2).sum())
        total += float(((y_held - y_held.mean()) ** 2).sum()) if len(y_held) else 0.0
    r2 = 1.0 - resid / total if total > 0 else 0.0
    return ValueEstimates(q_taken=v_out.copy(), v=v_out, r2=r2)


def fit_rows(
    journeys: Journeys, chosen: NDArray[np.bool_], max_rows: int, rng: np.random.Generator
) -> NDArray[np.int64]:
    """Rows of the ``chosen`` journeys, whole journeys drawn at random down to about
    ``max_rows`` rows; in journey order."""
    ids = np.flatnonzero(chosen)
    rows_per = journeys.length[ids]
    keep = chosen.copy()
    if rows_per.sum() > max_rows:
        n_keep = max(1, int(len(ids) * max_rows / rows_per.sum()))
        keep[:] = False
        keep[rng.choice(ids, n_keep, replace=False)] = True
    return np.flatnonzero(keep[journeys.journey])
