"""Estimated logging probabilities, for logs that did not record them.

A multinomial logistic regression (scikit-learn) of the action taken on the features
(null as 0, plus one indicator per feature that is ever null, standardised), fitted on
the log's rows; its probabilities are then restricted to each row's eligible actions and
renormalised, and floored at :data:`FLOOR` (then renormalised again) so that one
confidently wrong prediction cannot give a decision an unbounded weight. An action
the logger never took gets no probability anywhere: a policy choosing it has no support.

Estimated propensities are an assumption (the features hold everything the logger
decided on), not a record: the evaluation says so loudly and widens its intervals by
refitting this model on bootstrap resamples of the journeys (:func:`refits`).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from numpy.typing import NDArray
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from experiments.offpolicy.data import Journeys

FLOOR = 1e-3
MAX_FIT_ROWS = 50_000

FloatArray = NDArray[np.float64]


def design(journeys: Journeys) -> FloatArray:
    """The regression inputs: features (null as 0), a null indicator per feature that has
    nulls, and a constant column (so a log without features still fits)."""
    x = journeys.features
    nulls = np.isnan(x)
    flagged = nulls[:, nulls.any(axis=0)].astype(np.float64)
    return np.column_stack([np.nan_to_num(x, nan=0.0), flagged, np.ones(len(x))])


def fit_propensities(
    journeys: Journeys,
    rng: np.random.Generator,
    journey_weights: NDArray[np.int64] | None = None,
    x: FloatArray | None = None,
) -> FloatArray:
    """The logger's estimated probability of every action at every row ``(n_rows,
    n_actions)``, each row summing to 1 over its eligible actions.

    Fitted on at most :data:`MAX_FIT_ROWS` rows drawn with ``rng`` (whole journeys are
    weighted by ``journey_weights``, e.g. bootstrap counts, if given); predicted on all.
    """
    x = design(journeys) if x is None else x
    y = journeys.action
    weight: FloatArray = (
        np.ones(journeys.n_rows)
        if journey_weights is None
        else journey_weights[journeys.journey].astype(np.float64)
    )
    rows = np.flatnonzero(weight > 0)
    if len(rows) > MAX_FIT_ROWS:
        rows = rng.choice(rows, MAX_FIT_ROWS, replace=False, p=weight[rows] / weight[rows].sum())
        fit_weight: FloatArray = np.ones(len(rows))
    else:
        fit_weight = weight[rows]
    taken = np.unique(y[rows])
    probs = np.zeros((journeys.n_rows, journeys.n_actions))
    if len(taken) == 1:
        probs[:, taken[0]] = 1.0
    else:
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=300, C=1.0))
        model.fit(x[rows], y[rows], logisticregression__sample_weight=fit_weight)
        probs[:, model.classes_] = model.predict_proba(x)
    probs *= journeys.mask
    probs[:, taken] = np.maximum(probs[:, taken], FLOOR) * journeys.mask[:, taken]
    total = probs.sum(axis=1, keepdims=True)
    empty = total[:, 0] <= 0.0
    if empty.any():  # no taken action eligible here: the default action, always eligible
        probs[empty, 0] = 1.0
        total[empty] = 1.0
    return probs / total


def refits(journeys: Journeys, n: int, rng: np.random.Generator) -> Iterator[FloatArray]:
    """``n`` refits of :func:`fit_propensities`, each on a bootstrap resample of the
    journeys (the variability of the fit, for the intervals), predicted on every row."""
    x = design(journeys)
    for _ in range(n):
        counts = np.bincount(
            rng.integers(0, journeys.n_journeys, journeys.n_journeys),
            minlength=journeys.n_journeys,
        )
        yield fit_propensities(journeys, rng, counts, x)
