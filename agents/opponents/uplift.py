"""Uplift targeting learned from a randomised decision log: what a data scientist fits.

The log is a randomised test (:func:`agents.logs.simulate.simulate_logs`): a logging
policy (by default ``never``, the shop without offers) whose every decision is replaced,
with probability ``epsilon``, by an action drawn uniformly among the eligible ones, with
the exact propensity written beside it. From it, per decision point:

1. Profit-to-go ``G``: the margin booked from the decision to the end of the journey.
2. An outcome model ``Q(x, a)`` of ``G`` given the observation ``x`` and the action ``a``
   (scikit-learn's ``HistGradientBoostingRegressor`` on ``x`` and a one-hot of ``a``),
   cross-fitted: each row is predicted by the model of the folds its journey is not in.
3. A doubly robust score of every eligible action ``a``::

       Gamma(a) = Q(x, a) + [a = a_logged] (G - Q(x, a_logged)) / propensity

   and the uplift of ``a`` over waiting, ``Gamma(a) - Gamma(wait)`` (the DR-learner).
4. One regressor per concession of that uplift on ``x`` (rows where it was eligible).

The policy offers, at each decision, the eligible concession of highest predicted uplift
when it is above zero, else waits. It sees what the merchant sees (the observation,
consent-gated features zero without consent) and respects the masks. The effect it
learns is that of one decision followed by the logger's behaviour: classic uplift
targeting, decision by decision, with no plan across steps or visits.
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

from agents.baselines import NeverOffer
from agents.logs.schema import ACTION, JOURNEY, PROPENSITY, REWARD, LogSpec
from agents.logs.simulate import Exploration, simulate_logs
from agents.opponents.moments import HESITATION, check_moments, deciding, moment_columns
from agents.policy import Policy
from envs.observation import feature_schema
from envs.scenario import Scenario

Array = NDArray[np.float64]


@dataclass(frozen=True)
class UpliftSettings:
    """How the uplift policy is learned.

    Args:
        n_journeys: shoppers in the randomised log it learns from.
        epsilon: share of the logger's decisions drawn uniformly among eligible actions.
        seed: seed of the log's shoppers (keep it apart from evaluation seeds) and of the
            regressors.
        folds: cross-fitting folds over journeys for the outcome model (>= 2).
        max_rows: decision rows used at most (whole journeys drawn at random).
        max_iter: boosting iterations of each regressor.
        max_leaf_nodes: leaves per tree.
        learning_rate: boosting learning rate.
        min_leaf: minimum rows per leaf of the uplift regressors (the DR scores are noisy).
        moments: when it decides (and which decisions of the log it learns from):
            ``hesitation`` (exit intent shown or the shopper away, as observed: targeting
            at cart abandonment) or ``every_step``.
    """

    n_journeys: int = 50_000
    epsilon: float = 0.3
    seed: int = 1_000_003
    folds: int = 2
    max_rows: int = 400_000
    max_iter: int = 100
    max_leaf_nodes: int = 31
    learning_rate: float = 0.1
    min_leaf: int = 2000
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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class LogArrays:
    """A decision log as numpy arrays, one row per decision, journeys contiguous."""

    x: NDArray[np.float32]
    eligible: NDArray[np.bool_]
    action: NDArray[np.int64]
    propensity: Array
    reward: Array
    journey: NDArray[np.int64]

    @property
    def to_go(self) -> Array:
        """Margin booked from each decision to the end of its journey (EUR)."""
        out = np.zeros(len(self.reward))
        ends = np.flatnonzero(np.diff(self.journey, append=-1) != 0)
        starts = np.concatenate([[0], ends[:-1] + 1])
        for s, e in zip(starts, ends, strict=True):
            out[s : e + 1] = np.cumsum(self.reward[s : e + 1][::-1])[::-1]
        return out


def log_arrays(table: pa.Table, scenario: Scenario) -> LogArrays:
    """The rows of a simulated (or shop) log in the observation layout of ``scenario``:
    consent-gated features missing for shoppers without consent become 0, as the
    simulator shows them."""
    spec = LogSpec.from_metadata(table.schema.metadata)
    if spec is None:
        raise ValueError("the log carries no spec in its metadata: write it with write_log")
    names = [f.name for f in feature_schema(scenario)]
    missing = [n for n in names if n not in table.column_names]
    if missing:
        raise ValueError(f"the log lacks the features {missing} of scenario {scenario.name!r}")
    x = np.column_stack([pc.fill_null(table[n], 0.0).to_numpy().astype(np.float32) for n in names])
    eligible = np.column_stack([table[c].to_numpy() for c in spec.eligible_columns]).astype(bool)
    index = {a: i for i, a in enumerate(spec.actions)}
    action = np.array([index[a] for a in table[ACTION].to_pylist()], dtype=np.int64)
    codes = pc.dictionary_encode(table[JOURNEY]).combine_chunks().indices
    return LogArrays(
        x=x,
        eligible=eligible,
        action=action,
        propensity=table[PROPENSITY].to_numpy().astype(np.float64),
        reward=table[REWARD].to_numpy().astype(np.float64),
        journey=np.asarray(codes.to_numpy(), dtype=np.int64),
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


class UpliftPolicy:
    """Offers the eligible concession of highest predicted uplift over waiting, if any is
    above zero. Built by :func:`fit_uplift` / :func:`train_uplift`; ``models[a]`` predicts
    the uplift of action ``a`` (``None``: never eligible in the log, never offered)."""

    name = "uplift"

    def __init__(
        self,
        models: list[HistGradientBoostingRegressor | None],
        info: dict[str, Any],
        moments: NDArray[np.int64] | None = None,
    ) -> None:
        self.models = models
        self.info = info
        self.moments = moments

    def uplift(self, obs: NDArray[np.float32], mask: NDArray[np.bool_]) -> Array:
        """Predicted uplift over waiting per eligible action ``(n, n_actions)``; ``-inf``
        where ineligible, 0 for ``wait``."""
        n, k = mask.shape
        out = np.full((n, k), -np.inf)
        out[:, 0] = 0.0
        rows = np.flatnonzero(deciding(obs, mask, self.moments))
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
        scores = self.uplift(obs, mask)
        best = np.argmax(scores, axis=1)  # ties and non-positive uplift: wait (column 0)
        return np.where(mask[np.arange(len(best)), best], best, 0).astype(np.int64)


def dr_uplift_scores(
    log: LogArrays, settings: UpliftSettings, moments: NDArray[np.int64] | None = None
) -> tuple[NDArray[np.int64], Array, NDArray[np.bool_]]:
    """Rows used, the doubly robust uplift over waiting of every action ``(rows, k)`` and
    where it is defined (the action was eligible). See the module docstring."""
    rng = np.random.default_rng([settings.seed, 0x0F17])
    journeys = np.unique(log.journey)
    k = log.eligible.shape[1]
    rows = np.flatnonzero(deciding(log.x, log.eligible, moments))
    if len(rows) > settings.max_rows:
        per = max(1, len(rows) // len(journeys))
        keep = rng.choice(journeys, size=max(1, settings.max_rows // per), replace=False)
        rows = rows[np.isin(log.journey[rows], keep)]
    g = log.to_go[rows]
    x, a, p, elig = log.x[rows], log.action[rows], log.propensity[rows], log.eligible[rows]
    fold_of = rng.integers(0, settings.folds, size=int(log.journey.max()) + 1)
    fold = fold_of[log.journey[rows]]
    q = np.zeros((len(rows), k))
    with threadpool_limits(1):
        for f in range(settings.folds):
            train, test = fold != f, fold == f
            if not train.any() or not test.any():
                continue
            model = _regressor(settings, settings.seed + f)
            model.fit(_onehot(x[train], a[train], k), g[train])
            xt = x[test]
            for b in range(k):
                use = elig[test, b]
                if use.any():
                    idx = np.flatnonzero(test)[use]
                    q[idx, b] = model.predict(_onehot(xt[use], np.full(int(use.sum()), b), k))
    q_logged = q[np.arange(len(rows)), a]
    gamma = q.copy()
    gamma[np.arange(len(rows)), a] += (g - q_logged) / p
    uplift = gamma - gamma[:, :1]
    return rows, uplift, elig


def fit_uplift(
    scenario: Scenario, table: pa.Table, settings: UpliftSettings | None = None
) -> UpliftPolicy:
    """The uplift policy learned from the randomised log ``table`` (exact propensities)."""
    s = settings or UpliftSettings()
    log = log_arrays(table, scenario)
    choice = log.eligible[:, 1:].any(axis=1)
    if np.any(log.propensity <= 0.0) or np.any(log.propensity[choice] >= 1.0):
        raise ValueError(
            "uplift needs a randomised log: every decision with a choice must have been "
            "drawn with a known probability below 1 (log with exploration, e.g. epsilon 0.3)"
        )
    moments = moment_columns(scenario, s.moments)
    rows, uplift, elig = dr_uplift_scores(log, s, moments)
    x = log.x[rows]
    models: list[HistGradientBoostingRegressor | None] = [None]
    with threadpool_limits(1):
        for a in range(1, uplift.shape[1]):
            use = elig[:, a]
            if use.sum() < 2 * s.min_leaf:
                models.append(None)
                continue
            model = _regressor(s, s.seed + 100 + a, s.min_leaf)
            model.fit(x[use], uplift[use, a])
            models.append(model)
    info = {
        "kind": "uplift targeting (doubly robust DR-learner, gradient boosting)",
        "trained_on": "randomised decision log",
        "journeys": len(np.unique(log.journey)),
        "decisions": len(log.action),
        "decisions_used": len(rows),
        "settings": s.to_dict(),
    }
    return UpliftPolicy(models, info, moments)


def train_uplift(
    scenario: Scenario,
    settings: UpliftSettings | None = None,
    logger: Policy | None = None,
) -> UpliftPolicy:
    """Simulate the randomised log (``logger``, by default never offering, with
    ``settings.epsilon`` exploration) and fit the uplift policy on it."""
    s = settings or UpliftSettings()
    base = logger or NeverOffer()
    table = simulate_logs(scenario, base, s.n_journeys, s.seed, Exploration("epsilon", s.epsilon))
    policy = fit_uplift(scenario, table, s)
    policy.info["logger"] = f"{base.name} with epsilon {s.epsilon} uniform exploration"
    return policy
