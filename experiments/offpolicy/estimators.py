"""Off-policy estimators of a signal's sum per journey, written for the journey bootstrap.

Notation, per logged decision ``t`` of journey ``j``: ``y`` the signal booked at the step,
``rho = pi(a|x) / mu(a|x)`` the ratio of the evaluated policy's probability of the
logged action to the logger's (its propensity), ``w_t = rho_0 ... rho_t`` the
per-decision weight (``w_{-1} = 1``), ``q = Q(x_t, a_t)`` and ``v = V(x_t)`` the value
model's predictions (:mod:`experiments.offpolicy.fqe`). After a journey ends its
weight stays at its last value and its signal is 0 (an absorbing state every policy
shares), so all journeys have ``T`` positions.

- ``pdis``, per-decision importance sampling: ``mean_j sum_t w_jt y_jt``; unbiased;
- ``wpdis``, its self-normalised form: ``sum_t (sum_j w_jt y_jt) / (sum_j w_jt)``;
  biased, consistent, of lower variance;
- ``dr``, doubly robust (Jiang & Li, 2016):
  ``mean_j sum_t [w_jt (y_jt - q_jt) + w_j,t-1 v_jt]``; unbiased with exact propensities
  whatever the value model (which only changes its variance);
- ``wdr``, weighted doubly robust (Thomas & Brunskill, 2016): ``dr`` with each ``w_.t``
  divided by ``mean_j w_jt``.

On a single-decision log (``T = 1``) they are IPS, SNIPS, DR and self-normalised DR, and
are named so (:data:`SINGLE_NAMES`).

The **marginalised** estimators replace the history's product ``w_{t-1}`` by the ratio of
the two policies' state distributions at step ``t``, ``u_t = u(s_t)`` learned from the
log (:mod:`experiments.offpolicy.marginal`; ``u_0 = 1``), so the state-action ratio of a
decision is ``u_t rho_t`` (Xie, Ma & Wang, 2019; Kallus & Uehara, 2020):

- ``mis``, marginalised importance sampling: ``mean_j sum_t u_jt rho_jt y_jt``;
- ``wmis``, self-normalised per step: ``sum_t (sum_j u_jt rho_jt y_jt) / (sum_j u_jt
  rho_jt)``, a journey that has ended counting in the denominator with its final
  per-decision weight (as in ``wpdis``: the ended state's ratio is the mean of those);
- ``mdr``, double reinforcement learning's doubly robust form (Kallus & Uehara, 2020; as
  SCOPE-RL's ``DoubleReinforcementLearning``), ``m_t = u_t rho_t`` (``m_{-1} = 1``):
  ``mean_j sum_t [m_jt (y_jt - q_jt) + m_j,t-1 v_jt]``, that is ``v_0 + sum_t m_t (y_t +
  v_{t+1} - q_t)``: right if either the ratio model or the value model is;
- ``wmdr``: ``mdr`` with ``m_.t`` and ``m_.,t-1`` each normalised per step, as ``wdr``.

With ``u_t = w_{t-1}`` (the ratio that remembers the whole history) they are exactly
``pdis``, ``wpdis``, ``dr`` and ``wdr``; on a single-decision log (``u_0 = 1``) exactly
IPS, SNIPS, DR and SNDR, so they are not computed there.

Each estimator is a :class:`Statistic`: sums over journeys of per-journey arrays, so that
a bootstrap resample, given as how many times each journey is drawn, recomputes it with
one matrix product (:meth:`Statistic.value`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from experiments.offpolicy.data import Journeys

PDIS, WPDIS, DR, WDR = "pdis", "wpdis", "dr", "wdr"
MIS, WMIS, MDR, WMDR = "mis", "wmis", "mdr", "wmdr"
SEQUENTIAL = (PDIS, WPDIS, DR, WDR)
MARGINAL = (MIS, WMIS, MDR, WMDR)
SINGLE_NAMES = {PDIS: "ips", WPDIS: "snips", DR: "dr", WDR: "sndr"}

FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class Statistic:
    """An estimate written as ``sum(c * mean_terms) / sum(c)`` plus, per ratio part
    ``(N, D)`` of shape ``(n_journeys, T)``, ``sum_t (c @ N)_t / (c @ D)_t``; ``c`` are
    journey counts (all 1 for the estimate itself; a bootstrap draw otherwise)."""

    mean_terms: FloatArray | None = None
    ratio_parts: tuple[tuple[FloatArray, FloatArray], ...] = field(default=())

    def value(self, counts: FloatArray) -> FloatArray:
        """The statistic for each row of ``counts`` ``(B, n_journeys)``, shape ``(B,)``."""
        c = np.atleast_2d(counts)
        out = np.zeros(len(c))
        if self.mean_terms is not None:
            out += (c @ self.mean_terms) / c.sum(axis=1)
        for num, den in self.ratio_parts:
            top, bottom = c @ num, c @ den
            out += np.divide(top, bottom, out=np.zeros_like(top), where=bottom > 0).sum(axis=1)
        return out

    def estimate(self, n_journeys: int) -> float:
        return float(self.value(np.ones((1, n_journeys)))[0])


def ratios(journeys: Journeys, target: FloatArray, propensity: FloatArray) -> FloatArray:
    """``rho`` per row: the policy's probability of the logged action over the logger's."""
    pi = target[np.arange(journeys.n_rows), journeys.action]
    return pi / propensity


def cumulative_weights(journeys: Journeys, rho: FloatArray) -> FloatArray:
    """``w_t``, the product of ``rho`` over the journey up to and including each row."""
    w = rho.astype(np.float64).copy()
    order = np.argsort(journeys.position, kind="stable")
    counts = np.bincount(journeys.position, minlength=journeys.max_length)
    bounds = np.cumsum(counts)
    for p in range(1, journeys.max_length):
        rows = order[bounds[p - 1] : bounds[p]]
        w[rows] *= w[rows - 1]
    return w


def as_matrix(journeys: Journeys, values: FloatArray, pad_last: bool = False) -> FloatArray:
    """Row values as ``(n_journeys, T)`` by position; after a journey's end 0, or its last
    value with ``pad_last``."""
    out = np.zeros((journeys.n_journeys, journeys.max_length))
    out[journeys.journey, journeys.position] = values
    if pad_last:
        after = np.arange(journeys.max_length)[None, :] >= journeys.length[:, None]
        out = np.where(after, values[journeys.last_row][:, None], out)
    return out


def previous_weights(journeys: Journeys, w: FloatArray) -> FloatArray:
    """``w_{t-1}`` per row (1 on a journey's first row)."""
    prev = np.ones_like(w)
    later = journeys.position > 0
    prev[later] = w[np.flatnonzero(later) - 1]
    return prev


def pdis(journeys: Journeys, w: FloatArray, y: FloatArray) -> Statistic:
    return Statistic(mean_terms=journeys.per_journey(w * y))


def wpdis(journeys: Journeys, w: FloatArray, y: FloatArray) -> Statistic:
    return Statistic(
        ratio_parts=((as_matrix(journeys, w * y), as_matrix(journeys, w, pad_last=True)),)
    )


def dr(journeys: Journeys, w: FloatArray, y: FloatArray, q: FloatArray, v: FloatArray) -> Statistic:
    prev = previous_weights(journeys, w)
    return Statistic(mean_terms=journeys.per_journey(w * (y - q) + prev * v))


def wdr(
    journeys: Journeys, w: FloatArray, y: FloatArray, q: FloatArray, v: FloatArray
) -> Statistic:
    prev = previous_weights(journeys, w)
    w_m = as_matrix(journeys, w, pad_last=True)
    prev_m = np.ones_like(w_m)
    prev_m[:, 1:] = w_m[:, :-1]
    return Statistic(
        ratio_parts=(
            (as_matrix(journeys, w * (y - q)), w_m),
            (as_matrix(journeys, prev * v), prev_m),
        )
    )


def _padded(journeys: Journeys, values: FloatArray, w: FloatArray) -> FloatArray:
    """Row ``values`` as ``(n_journeys, T)``; after a journey's end its final per-decision
    weight ``w`` (the ended state's ratio, as ``wpdis`` counts it)."""
    out = as_matrix(journeys, values)
    after = np.arange(journeys.max_length)[None, :] >= journeys.length[:, None]
    return np.where(after, w[journeys.last_row][:, None], out)


def mis(journeys: Journeys, u: FloatArray, rho: FloatArray, y: FloatArray) -> Statistic:
    return Statistic(mean_terms=journeys.per_journey(u * rho * y))


def wmis(
    journeys: Journeys, u: FloatArray, rho: FloatArray, w: FloatArray, y: FloatArray
) -> Statistic:
    return Statistic(
        ratio_parts=((as_matrix(journeys, u * rho * y), _padded(journeys, u * rho, w)),)
    )


def mdr(
    journeys: Journeys, u: FloatArray, rho: FloatArray, y: FloatArray, q: FloatArray, v: FloatArray
) -> Statistic:
    m = u * rho
    return Statistic(
        mean_terms=journeys.per_journey(m * (y - q) + previous_weights(journeys, m) * v)
    )


def wmdr(
    journeys: Journeys,
    u: FloatArray,
    rho: FloatArray,
    w: FloatArray,
    y: FloatArray,
    q: FloatArray,
    v: FloatArray,
) -> Statistic:
    m = u * rho
    prev = previous_weights(journeys, m)
    m_m = _padded(journeys, m, w)
    prev_m = _padded(journeys, prev, w)
    return Statistic(
        ratio_parts=(
            (as_matrix(journeys, m * (y - q)), m_m),
            (as_matrix(journeys, prev * v), prev_m),
        )
    )
