"""The value model of the doubly robust estimators: fitted-Q evaluation, cross-fitted.

``Q(x, a)`` estimates a signal's sum from a decision to the journey's end when the
merchant takes ``a`` at the observation ``x`` and then follows the evaluated policy
``pi``; ``V(x) = sum_a pi(a | x) Q(x, a)``.

**Fitted-Q evaluation with tree-backup targets.** A scikit-learn
``HistGradientBoostingRegressor`` is fitted on the logged rows, inputs the features (null
as 0) and the action taken (one-hot), target the tree-backup return (Precup et al.,
2000) of the current model: backwards through each journey,

    G_t = r_t + V(x_{t+1}) + c_{t+1} (G_{t+1} - Q(x_{t+1}, a_{t+1})),  c = pi(a | x),

(``G = r`` on a journey's last row). Where the logger did what ``pi`` would do the
return runs on along the logged journey, and where it did not it is cut by the model's
own ``V``: no importance weight enters the regression. The first fit uses ``Q = 0`` (the
rewards up to the first decision ``pi`` would have taken otherwise); each refit replaces
the model. A journey whose logged actions all agree with ``pi`` needs one fit; each
disagreement needs one more, so a few iterations (:attr:`ValueModelSettings.iterations`)
suffice where plain one-step fitted-Q would need the journey's length.

**Cross-fitting.** The journeys are split at random into ``folds``; the model that
predicts a journey's rows was fitted on the other folds only. Then the doubly robust
estimate is unbiased when the propensities are exact, whatever the model's errors
(they only cost variance).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from sklearn.ensemble import HistGradientBoostingRegressor
from threadpoolctl import threadpool_limits

from experiments.offpolicy.data import Journeys

FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class ValueModelSettings:
    """How the value model is fitted.

    Args:
        iterations: fitted-Q iterations (tree-backup targets; see the module docstring).
        folds: cross-fitting folds over journeys (>= 2).
        max_fit_rows: rows a fit uses at most (whole journeys drawn at random).
        max_iter: boosting iterations of each regressor.
        max_leaf_nodes: leaves per tree.
        learning_rate: boosting learning rate.
        min_journeys: below this many journeys no value model is fitted (the doubly
            robust estimators are then not computed).
        threads: OpenMP threads the regressor may use (1 is fastest on a busy machine).
    """

    iterations: int = 5
    folds: int = 2
    max_fit_rows: int = 200_000
    max_iter: int = 60
    max_leaf_nodes: int = 31
    learning_rate: float = 0.15
    min_journeys: int = 100
    threads: int = 1

    def __post_init__(self) -> None:
        if self.iterations < 1 or self.folds < 2 or self.max_fit_rows < 1 or self.threads < 1:
            raise ValueError(
                "value model: iterations >= 1, folds >= 2, max_fit_rows >= 1 and threads >= 1 "
                f"are needed, got {self.iterations}, {self.folds}, {self.max_fit_rows}, "
                f"{self.threads}"
            )


@dataclass(frozen=True)
class ValueEstimates:
    """Out-of-fold predictions per row: ``q_taken`` = Q(x_t, a_t), ``v`` = V(x_t); and
    ``r2``, the out-of-fold R² of the last fit's targets (how much of the return the model
    explains: at or below 0 it is no better than the mean)."""

    q_taken: FloatArray
    v: FloatArray
    r2: float


def _inputs(x: FloatArray, actions: NDArray[np.int64], k: int) -> NDArray[np.float32]:
    onehot = np.zeros((len(actions), k), dtype=np.float32)
    onehot[np.arange(len(actions)), actions] = 1.0
    return np.column_stack([x.astype(np.float32), onehot])


class _Model:
    """One fold's Q model, with predictions of Q(x, a_t) and V(x) on given rows."""

    def __init__(self, settings: ValueModelSettings, seed: int) -> None:
        self.settings = settings
        self.seed = seed
        self.regressor: HistGradientBoostingRegressor | None = None

    def fit(self, x: FloatArray, actions: NDArray[np.int64], k: int, y: FloatArray) -> None:
        s = self.settings
        self.regressor = HistGradientBoostingRegressor(
            max_iter=s.max_iter,
            max_leaf_nodes=s.max_leaf_nodes,
            learning_rate=s.learning_rate,
            early_stopping=False,
            random_state=self.seed,
        )
        self.regressor.fit(_inputs(x, actions, k), y)

    def q(self, x: FloatArray, actions: NDArray[np.int64], k: int) -> FloatArray:
        if self.regressor is None:
            return np.zeros(len(x))
        return np.asarray(self.regressor.predict(_inputs(x, actions, k)), dtype=np.float64)

    def v(self, x: FloatArray, target: FloatArray) -> FloatArray:
        """V(x) = sum_a pi(a|x) Q(x, a), predicting only the actions pi gives mass to."""
        k = target.shape[1]
        out = np.zeros(len(x))
        for a in np.flatnonzero(target.any(axis=0)):
            rows = np.flatnonzero(target[:, a] > 0.0)
            out[rows] += target[rows, a] * self.q(x[rows], np.full(len(rows), a), k)
        return out


def tree_backup_returns(
    journeys: Journeys,
    rows: NDArray[np.int64],
    signal: FloatArray,
    q_taken: FloatArray,
    v: FloatArray,
    c: FloatArray,
) -> FloatArray:
    """The tree-backup return of each row in ``rows`` (whole journeys, in journey order),
    given the model's ``q_taken``, ``v`` and the policy's probability ``c`` of the logged
    action, all indexed like ``rows``."""
    g = signal[rows].copy()
    pos = journeys.position[rows]
    is_last = (pos + 1) == journeys.length[journeys.journey[rows]]
    for p in range(int(pos.max()) - 1, -1, -1):
        here = np.flatnonzero((pos == p) & ~is_last)
        nxt = here + 1
        g[here] += v[nxt] + c[nxt] * (g[nxt] - q_taken[nxt])
    return g


def fit_values(
    journeys: Journeys,
    target: FloatArray,
    signal: FloatArray,
    settings: ValueModelSettings,
    seed: int,
) -> ValueEstimates:
    """Cross-fitted Q and V of ``target`` (the policy's probabilities per row) for one
    ``signal`` (per row); see the module docstring."""
    with threadpool_limits(settings.threads):
        return _fit_values(journeys, target, signal, settings, seed)


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
    x = np.nan_to_num(journeys.features, nan=0.0)
    k, a = journeys.n_actions, journeys.action
    c_all = target[np.arange(journeys.n_rows), a]
    iterations = 1 if journeys.single_decision else settings.iterations
    q_out, v_out = np.zeros(journeys.n_rows), np.zeros(journeys.n_rows)
    resid, total = 0.0, 0.0
    for fold in range(settings.folds):
        train = _fit_rows(journeys, fold_of != fold, settings.max_fit_rows, rng)
        held = np.flatnonzero(row_fold == fold)
        model = _Model(settings, seed + fold)
        q_t, v_t = np.zeros(len(train)), np.zeros(len(train))
        for _ in range(iterations):
            y = tree_backup_returns(journeys, train, signal, q_t, v_t, c_all[train])
            model.fit(x[train], a[train], k, y)
            q_t = model.q(x[train], a[train], k)
            v_t = model.v(x[train], target[train])
        q_out[held] = model.q(x[held], a[held], k)
        v_out[held] = model.v(x[held], target[held])
        y_held = tree_backup_returns(journeys, held, signal, q_out[held], v_out[held], c_all[held])
        resid += float(((y_held - q_out[held]) ** 2).sum())
        total += float(((y_held - y_held.mean()) ** 2).sum())
    r2 = 1.0 - resid / total if total > 0 else 0.0
    return ValueEstimates(q_taken=q_out, v=v_out, r2=r2)


def _fit_rows(
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
