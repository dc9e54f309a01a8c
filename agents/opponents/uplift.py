"""Uplift targeting learned from a randomised decision log: what a data scientist fits.

**The log** is a randomised coupon test (:func:`agents.logs.simulate.simulate_logs`): the
shop without offers (``never``) whose decision at each *moment* the policy will decide at
(cart abandonment: exit intent shown or the shopper away; or every step) is replaced,
with probability ``epsilon``, by an action drawn uniformly among the eligible ones
(:class:`RandomisedAtMoments`), the exact propensity written beside it. Elsewhere the
shop waits, as it does without the test.

**The fit**, as EconML's ``DRPolicyForest`` or CausalML's DR-learner would do it. The
journeys are split into a training part and a held-out part (``holdout``), then:

1. Profit-to-go ``G``: the margin booked from the decision to the end of the journey.
2. An outcome model ``Q(x, a)`` of ``G`` given the observation ``x`` and the action ``a``
   (scikit-learn's ``HistGradientBoostingRegressor`` on ``x`` and a one-hot of ``a``), on
   the decision moments of the training journeys, cross-fitted (each row is predicted by
   the model of the folds its journey is not in); the held-out rows by the mean of the
   fold models, none of which saw them.
3. A doubly robust score of every eligible action ``a``::

       Gamma(a) = Q(x, a) + [a = a_logged] (G - Q(x, a_logged)) / propensity

   and the uplift of ``a`` over waiting, ``Gamma(a) - Gamma(wait)`` (the DR-learner).
4. One regressor per concession of that uplift on ``x``, on the training rows where the
   concession was eligible and nothing had been offered yet.
5. **Policy selection on the held-out journeys.** Candidates: ``never``; each single
   concession offered at the first moment it is eligible; the uplift rule "offer the
   concession of highest predicted uplift once it exceeds ``threshold`` EUR", one per
   threshold of ``thresholds``, and the same rule among the *paying* concessions only
   (those of positive mean DR uplift on the training journeys: fewer noisy arms to
   pick the maximum of). Each is a one-offer policy that waits until it offers;
   its gain over ``never`` is estimated per held-out journey by
   ``W (Gamma_t(pi) - Gamma_t(wait))`` at the first decision ``t`` it offers, where
   ``W = prod 1[logged wait] / propensity`` over the journey's earlier decisions (the
   log followed the candidate up to ``t``; 0 once the logger offered something else).
   The candidate of highest held-out gain is the policy (``never`` when nothing beats
   it): on the data it learned from, it is never worse than ``never`` nor than any
   single offer. ``info["selection"]`` keeps every candidate's gain with its interval.

The policy sees what the merchant sees (the observation, consent-gated features zero
without consent), respects the masks and makes at most one offer per journey (classic
uplift targeting: one treatment per customer, read from the ``offered_*`` flags). The
effect it learns is that of one offer followed by the logger: there is no plan across
steps or visits.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numpy.typing import NDArray
from sklearn.ensemble import HistGradientBoostingRegressor
from threadpoolctl import threadpool_limits

from agents.exploration import EPSILON, Exploration, at_moments
from agents.logs.schema import ACTION, JOURNEY, PROPENSITY, REWARD, STEP, LogSpec
from agents.logs.simulate import simulate_logs
from agents.opponents import FROM_RANDOMISED_LOG
from agents.opponents.moments import HESITATION, check_moments, moment_columns
from envs.observation import feature_schema
from envs.scenario import Scenario

Array = NDArray[np.float64]
NEVER, SINGLE, RULE, PAYING = "never", "single", "uplift", "uplift_paying"
IMPOSSIBLE = -1.0e6  # a score whose softmax weight is exactly 0 beside a score of 0


@dataclass(frozen=True)
class UpliftSettings:
    """How the uplift policy is learned.

    Args:
        n_journeys: shoppers in the randomised log it learns from.
        epsilon: share of the decisions at the moments drawn uniformly among the
            eligible actions (the randomised test).
        seed: seed of the log's shoppers (keep it apart from evaluation seeds), of the
            split and of the regressors.
        folds: cross-fitting folds over journeys for the outcome model (>= 2).
        holdout: share of journeys held out for policy selection, in (0, 1).
        max_rows: decision rows used at most for the fit (whole journeys at random).
        max_iter: boosting iterations of each regressor.
        max_leaf_nodes: leaves per tree.
        learning_rate: boosting learning rate.
        min_leaf: minimum rows per leaf of the uplift regressors (the DR scores are noisy).
        thresholds: EUR of predicted uplift above which the uplift rule offers; one
            candidate per value.
        moments: when it decides (and where the log is randomised): ``hesitation`` (exit
            intent shown or the shopper away, as observed: targeting at cart abandonment)
            or ``every_step``.
    """

    n_journeys: int = 336_000
    epsilon: float = 0.5
    seed: int = 1_000_003
    folds: int = 2
    holdout: float = 0.3
    max_rows: int = 400_000
    max_iter: int = 100
    max_leaf_nodes: int = 31
    learning_rate: float = 0.1
    min_leaf: int = 1000
    thresholds: tuple[float, ...] = (0.0, 0.5, 1.0, 2.0, 4.0, 8.0)
    moments: str = HESITATION

    def __post_init__(self) -> None:
        if self.n_journeys < 10 or self.folds < 2 or self.max_rows < 100:
            raise ValueError(
                "uplift: n_journeys >= 10, folds >= 2 and max_rows >= 100 are needed, got "
                f"{self.n_journeys}, {self.folds}, {self.max_rows}"
            )
        check_moments(self.moments, "uplift")
        if not 0.0 < self.epsilon <= 1.0:
            raise ValueError(f"uplift: epsilon must be in (0, 1], got {self.epsilon}")
        if not 0.0 < self.holdout < 1.0:
            raise ValueError(f"uplift: holdout must be in (0, 1), got {self.holdout}")
        if not self.thresholds or any(not np.isfinite(t) for t in self.thresholds):
            raise ValueError(f"uplift: thresholds must be finite numbers, got {self.thresholds}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class RandomisedAtMoments:
    """The randomised test's logger: never offers, except that at each decision moment
    (``moments`` columns, None: every step) it draws, with probability ``epsilon``, an
    action uniformly among the eligible ones. A scored policy: softmax with temperature
    1 of its scores gives exactly these probabilities (wait with probability 1 between
    moments)."""

    def __init__(self, epsilon: float, moments: NDArray[np.int64] | None, label: str) -> None:
        self.epsilon = epsilon
        self.moments = moments
        self.name = f"never, randomised at {label}"

    def act(self, obs: NDArray[np.float32], mask: NDArray[np.bool_]) -> NDArray[np.int64]:
        return np.zeros(len(obs), dtype=np.int64)

    def scores(self, obs: NDArray[np.float32], mask: NDArray[np.bool_]) -> Array:
        wait = np.zeros(len(mask), dtype=np.int64)
        p = Exploration(EPSILON, self.epsilon).mix(wait, mask)  # epsilon-greedy around wait
        with np.errstate(divide="ignore"):
            test = np.where(p > 0, np.log(np.maximum(p, 1e-300)), IMPOSSIBLE)
        plain = np.full(p.shape, IMPOSSIBLE)
        plain[:, 0] = 0.0
        return np.where(at_moments(obs, mask, self.moments)[:, None], test, plain)


@dataclass(frozen=True)
class LogArrays:
    """A decision log as numpy arrays, one row per decision, journeys contiguous and in
    step order."""

    x: NDArray[np.float32]
    eligible: NDArray[np.bool_]
    action: NDArray[np.int64]
    propensity: Array
    reward: Array
    journey: NDArray[np.int64]

    @property
    def starts(self) -> NDArray[np.int64]:
        """Index of the first row of each row's journey."""
        first = np.concatenate([[True], np.diff(self.journey) != 0])
        return np.maximum.accumulate(np.where(first, np.arange(len(first)), 0))

    @property
    def to_go(self) -> Array:
        """Margin booked from each decision to the end of its journey (EUR)."""
        total = np.cumsum(self.reward)
        ends = np.flatnonzero(np.diff(self.journey, append=-1) != 0)
        last = np.repeat(ends, np.diff(np.concatenate([[-1], ends])))
        return total[last] - total + self.reward


def log_arrays(table: pa.Table, scenario: Scenario) -> LogArrays:
    """The rows of a simulated (or shop) log in the observation layout of ``scenario``,
    sorted by journey and step: consent-gated features missing for shoppers without
    consent become 0, as the simulator shows them."""
    spec = LogSpec.from_metadata(table.schema.metadata)
    if spec is None:
        raise ValueError("the log carries no spec in its metadata: write it with write_log")
    names = [f.name for f in feature_schema(scenario)]
    missing = [n for n in names if n not in table.column_names]
    if missing:
        raise ValueError(f"the log lacks the features {missing} of scenario {scenario.name!r}")
    codes = np.asarray(
        pc.dictionary_encode(table[JOURNEY]).combine_chunks().indices.to_numpy(), dtype=np.int64
    )
    order = np.lexsort((table[STEP].to_numpy(), codes))
    x = np.column_stack([pc.fill_null(table[n], 0.0).to_numpy().astype(np.float32) for n in names])
    eligible = np.column_stack([table[c].to_numpy() for c in spec.eligible_columns]).astype(bool)
    index = {a: i for i, a in enumerate(spec.actions)}
    action = np.array([index[a] for a in table[ACTION].to_pylist()], dtype=np.int64)
    return LogArrays(
        x=x[order],
        eligible=eligible[order],
        action=action[order],
        propensity=table[PROPENSITY].to_numpy().astype(np.float64)[order],
        reward=table[REWARD].to_numpy().astype(np.float64)[order],
        journey=codes[order],
    )


def _onehot(x: NDArray[np.float32], actions: NDArray[np.int64], k: int) -> NDArray[np.float32]:
    hot = np.zeros((len(actions), k), dtype=np.float32)
    hot[np.arange(len(actions)), actions] = 1.0
    return np.column_stack([x, hot])


def _regressor(s: UpliftSettings, seed: int, min_leaf: int = 20) -> HistGradientBoostingRegressor:
    return HistGradientBoostingRegressor(
        max_iter=s.max_iter,
        max_leaf_nodes=s.max_leaf_nodes,
        learning_rate=s.learning_rate,
        min_samples_leaf=min_leaf,
        early_stopping=False,
        random_state=seed,
    )


def _offered_columns(scenario: Scenario) -> NDArray[np.int64]:
    names = [f.name for f in feature_schema(scenario)]
    return np.array([i for i, n in enumerate(names) if n.startswith("offered_")], dtype=np.int64)


def _choose(
    kind: str, value: float, uplift: Array, mask: NDArray[np.bool_], open_: NDArray[np.bool_]
) -> NDArray[np.int64]:
    """The action of a candidate per row: ``never`` waits; ``single`` offers concession
    ``int(value)`` where eligible; ``uplift`` the concession of highest predicted uplift
    above ``value`` EUR. Only on open rows (a decision moment, nothing offered yet)."""
    n = len(mask)
    out = np.zeros(n, dtype=np.int64)
    if kind == SINGLE:
        a = int(value)
        out[open_ & mask[:, a]] = a
    elif kind in (RULE, PAYING):
        best = np.argmax(uplift, axis=1)
        top = uplift[np.arange(n), best]
        go = open_ & (best > 0) & (top > value) & mask[np.arange(n), best]
        out[go] = best[go]
    return out


class UpliftPolicy:
    """The candidate chosen on held-out data: ``never``, one concession at the first
    moment it is eligible, or the concession of highest predicted uplift above a
    threshold; one offer per journey. Built by :func:`fit_uplift` / :func:`train_uplift`;
    ``models[a]`` predicts the uplift of action ``a`` (``None``: too rarely eligible in
    the log to learn it, never offered by the uplift rule)."""

    name = "uplift"

    def __init__(
        self,
        models: list[HistGradientBoostingRegressor | None],
        info: dict[str, Any],
        moments: NDArray[np.int64] | None = None,
        offered: NDArray[np.int64] | None = None,
        choice: tuple[str, float] = (RULE, 0.0),
    ) -> None:
        self.models = models
        self.info = info
        self.moments = moments
        self.offered = offered if offered is not None else np.zeros(0, dtype=np.int64)
        self.choice = choice
        self.paying = np.ones(len(models), dtype=bool)  # the actions of the ``uplift_paying`` rule

    def open(self, obs: NDArray[np.float32], mask: NDArray[np.bool_]) -> NDArray[np.bool_]:
        """Rows where it may offer: a decision moment, nothing offered this journey."""
        fresh = ~(obs[:, self.offered] > 0.5).any(axis=1) if len(self.offered) else True
        return at_moments(obs, mask, self.moments) & fresh

    def uplift(self, obs: NDArray[np.float32], mask: NDArray[np.bool_]) -> Array:
        """Predicted uplift over waiting per eligible action ``(n, n_actions)`` where it
        may offer; ``-inf`` where ineligible or closed, 0 for ``wait``."""
        n, k = mask.shape
        out = np.full((n, k), -np.inf)
        out[:, 0] = 0.0
        rows = np.flatnonzero(self.open(obs, mask))
        if not len(rows):
            return out
        x = np.asarray(obs[rows], dtype=np.float32)
        with threadpool_limits(1):
            for a in range(1, k):
                model = self.models[a]
                ok = np.flatnonzero(mask[rows, a])
                if model is None or not len(ok):
                    continue
                out[rows[ok], a] = model.predict(x[ok])
        return out

    def act(self, obs: NDArray[np.float32], mask: NDArray[np.bool_]) -> NDArray[np.int64]:
        kind, value = self.choice
        if kind == NEVER:
            return np.zeros(len(obs), dtype=np.int64)
        scores = self.uplift(obs, mask) if kind in (RULE, PAYING) else np.zeros(mask.shape)
        if kind == PAYING:
            scores[:, ~self.paying] = -np.inf
        return _choose(kind, value, scores, mask, self.open(obs, mask))


def _outcome_models(
    log: LogArrays, rows: NDArray[np.int64], fold: NDArray[np.int64], s: UpliftSettings
) -> tuple[list[HistGradientBoostingRegressor], Array]:
    """The fold models of profit-to-go on ``rows`` and their cross-fitted predictions of
    every eligible action ``(rows, k)``."""
    k = log.eligible.shape[1]
    g, x, a, elig = log.to_go[rows], log.x[rows], log.action[rows], log.eligible[rows]
    q = np.zeros((len(rows), k))
    models = []
    for f in range(s.folds):
        train, test = fold != f, fold == f
        model = _regressor(s, s.seed + f)
        model.fit(_onehot(x[train], a[train], k), g[train])
        models.append(model)
        q[test] = _predict_all(model, x[test], elig[test])
    return models, q


def _predict_all(
    model: HistGradientBoostingRegressor, x: NDArray[np.float32], elig: NDArray[np.bool_]
) -> Array:
    k = elig.shape[1]
    q = np.zeros((len(x), k))
    for b in range(k):
        use = elig[:, b]
        if use.any():
            q[use, b] = model.predict(_onehot(x[use], np.full(int(use.sum()), b), k))
    return q


def _dr_uplift(log: LogArrays, rows: NDArray[np.int64], q: Array) -> Array:
    """``Gamma(a) - Gamma(wait)`` per row and action (see the module docstring)."""
    a, g, p = log.action[rows], log.to_go[rows], log.propensity[rows]
    i = np.arange(len(rows))
    gamma = q.copy()
    gamma[i, a] += (g - q[i, a]) / p
    return gamma - gamma[:, :1]


@dataclass(frozen=True)
class HeldOut:
    """What the selection needs of the held-out journeys: their decision moments (rows of
    the log), the DR uplift there, the weight of the log having waited until each row,
    the journey of each row and the number of journeys."""

    rows: NDArray[np.int64]
    uplift: Array
    weight: Array
    journey: NDArray[np.int64]
    n_journeys: int


def _exclusive_sum(values: Array, start: NDArray[np.int64]) -> Array:
    """Per row, the sum of ``values`` over the earlier rows of its journey."""
    total = np.cumsum(values)
    return total - values - (total[start] - values[start])


def held_out(
    log: LogArrays, journeys: NDArray[np.int64], rows: NDArray[np.int64], q: Array
) -> HeldOut:
    """The held-out journeys ``journeys`` with the DR uplift at their moment ``rows``
    (``q``: outcome predictions there, from models that did not see them)."""
    waited = log.action == 0
    log_w = np.where(waited, -np.log(log.propensity), 0.0)
    start = log.starts
    offered_before = _exclusive_sum((~waited).astype(np.float64), start) > 0.5
    weight = np.where(offered_before, 0.0, np.exp(_exclusive_sum(log_w, start)))
    return HeldOut(rows, _dr_uplift(log, rows, q), weight[rows], log.journey[rows], len(journeys))


def candidate_gain(
    ho: HeldOut, actions: NDArray[np.int64], confidence_z: float = 1.96
) -> dict[str, float]:
    """Held-out gain over ``never`` (EUR per shopper, with its interval) of a one-offer
    candidate whose action at each held-out moment row is ``actions`` (0: wait)."""
    offer = np.flatnonzero(actions != 0)
    per_journey = np.zeros(ho.n_journeys)  # journeys without an offer gain 0
    if len(offer):
        first = offer[np.concatenate([[True], np.diff(ho.journey[offer]) != 0])]
        per_journey[: len(first)] = ho.weight[first] * ho.uplift[first, actions[first]]
    mean = float(per_journey.mean())
    se = float(per_journey.std(ddof=1) / np.sqrt(ho.n_journeys)) if ho.n_journeys > 1 else 0.0
    return {"gain": mean, "low": mean - confidence_z * se, "high": mean + confidence_z * se}


def fit_uplift(
    scenario: Scenario, table: pa.Table, settings: UpliftSettings | None = None
) -> UpliftPolicy:
    """The uplift policy learned from the randomised log ``table`` (exact propensities)."""
    s = settings or UpliftSettings()
    log = log_arrays(table, scenario)
    moments = moment_columns(scenario, s.moments)
    offered = _offered_columns(scenario)
    rows = np.flatnonzero(at_moments(log.x, log.eligible, moments))
    if np.any(log.propensity <= 0.0) or np.any(log.propensity[rows] >= 1.0):
        raise ValueError(
            "uplift needs a randomised log: every decision with a choice must have been "
            "drawn with a known probability below 1 (log with exploration, e.g. epsilon 0.3)"
        )
    rng = np.random.default_rng([s.seed, 0x0F17])
    journeys = np.unique(log.journey)
    part = rng.random(int(log.journey.max()) + 1)
    test_j = journeys[part[journeys] < s.holdout]
    is_test = part[log.journey[rows]] < s.holdout
    train_rows, test_rows = rows[~is_test], rows[is_test]
    if len(train_rows) > s.max_rows:  # whole journeys at random
        keep = rng.random(len(part)) < s.max_rows / len(train_rows)
        train_rows = train_rows[keep[log.journey[train_rows]]]
    fold = rng.integers(0, s.folds, size=len(part))[log.journey[train_rows]]
    with threadpool_limits(1):
        fold_models, q_train = _outcome_models(log, train_rows, fold, s)
        q_test = np.mean(
            [_predict_all(m, log.x[test_rows], log.eligible[test_rows]) for m in fold_models],
            axis=0,
        )
        uplift = _dr_uplift(log, train_rows, q_train)
        x = log.x[train_rows]
        fresh = ~(x[:, offered] > 0.5).any(axis=1)
        models: list[HistGradientBoostingRegressor | None] = [None]
        paying = np.zeros(uplift.shape[1], dtype=bool)
        for a in range(1, uplift.shape[1]):
            use = log.eligible[train_rows, a] & fresh
            paying[a] = bool(use.any()) and float(uplift[use, a].mean()) > 0.0
            if use.sum() < 2 * s.min_leaf:
                models.append(None)
                continue
            model = _regressor(s, s.seed + 100 + a, s.min_leaf)
            model.fit(x[use], uplift[use, a])
            models.append(model)
    policy = UpliftPolicy(models, {}, moments, offered)
    policy.paying = paying
    ho = held_out(log, test_j, test_rows, q_test)
    x_test, m_test = log.x[test_rows], log.eligible[test_rows]
    open_ = policy.open(x_test, m_test)
    predicted = policy.uplift(x_test, m_test)
    names = ["wait", *(c.name for c in scenario.concessions)]
    candidates: list[tuple[str, float, str]] = [(NEVER, 0.0, NEVER)]
    candidates += [(SINGLE, float(a), f"always {names[a]}") for a in range(1, len(names))]
    candidates += [(RULE, t, f"uplift above {t:g} EUR") for t in s.thresholds]
    if paying.any() and not paying[1:].all():
        candidates += [
            (PAYING, t, f"uplift above {t:g} EUR among the paying offers") for t in s.thresholds
        ]
    selection = {}
    for kind, value, label in candidates:
        if kind == NEVER:
            selection[label] = {"gain": 0.0, "low": 0.0, "high": 0.0}
            continue
        scores = np.where(paying, predicted, -np.inf) if kind == PAYING else predicted
        acts = _choose(kind, value, scores, m_test, open_)
        selection[label] = candidate_gain(ho, acts)
    best = max(range(len(candidates)), key=lambda i: selection[candidates[i][2]]["gain"])
    policy.choice = candidates[best][:2]
    policy.info = {
        "kind": "uplift targeting (doubly robust DR-learner, gradient boosting, policy "
        "selected on held-out journeys)",
        "trained_on": FROM_RANDOMISED_LOG,
        "journeys": len(journeys),
        "journeys_held_out": len(test_j),
        "decisions": len(log.action),
        "decisions_used": len(train_rows),
        "chosen": candidates[best][2],
        "paying_offers": [names[a] for a in np.flatnonzero(paying)],
        "selection_eur_per_shopper": selection,
        "settings": s.to_dict(),
    }
    return policy


def randomised_log(scenario: Scenario, settings: UpliftSettings | None = None) -> pa.Table:
    """The randomised test the uplift policy learns from (see the module docstring)."""
    s = settings or UpliftSettings()
    logger = RandomisedAtMoments(s.epsilon, moment_columns(scenario, s.moments), s.moments)
    return simulate_logs(scenario, logger, s.n_journeys, s.seed, Exploration("softmax", 1.0))


def train_uplift(scenario: Scenario, settings: UpliftSettings | None = None) -> UpliftPolicy:
    """Simulate the randomised test and fit the uplift policy on it."""
    s = settings or UpliftSettings()
    policy = fit_uplift(scenario, randomised_log(scenario, s), s)
    policy.info["logger"] = (
        f"never, with {s.epsilon:g} of the decisions at {s.moments} drawn uniformly among "
        "the eligible actions"
    )
    return policy
