"""A contextual bandit learned online in the batched simulator: linear Thompson sampling.

One linear model per action (``wait`` included) of the profit-to-go of a decision, the
margin booked from it to the end of the journey, on the observation and a constant
(what the merchant sees; consent-gated features are zero without consent). Bayesian
ridge per action: ``A_a = lambda I + sum x x^T``, ``b_a = sum x G``, posterior mean
``A_a^-1 b_a``.

Training runs cohorts of shoppers on the batched core (arrivals spread over the day,
population memory and campaign budget carried over, as in an evaluation). At every
decision with something other than ``wait`` eligible, each shopper's action is the
eligible one of highest sampled value: the posterior mean plus ``noise`` times the
posterior standard deviation of that shopper's prediction times a standard normal (a
per-decision Thompson draw). The decisions of a cohort update the posteriors when its
journeys have ended (their profit-to-go is known then): a bandit updated in batches.
All draws come from generators seeded by ``seed``; the shoppers of training are drawn
with seeds of their own, apart from any evaluation's.

Evaluated, the bandit acts greedily on its posterior means, masks respected.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from agents.exploration import at_moments
from agents.opponents import ONLINE_IN_SIMULATOR
from agents.opponents.moments import HESITATION, check_moments, moment_columns
from agents.rollout import cohort_seeds
from envs.core import ShopperCore
from envs.scenario import Scenario

Array = NDArray[np.float64]


@dataclass(frozen=True)
class BanditSettings:
    """How the bandit is trained.

    Args:
        n_journeys: shoppers it learns on, online.
        cohort_size: shoppers per batch between posterior updates.
        ridge: prior precision ``lambda``.
        noise: scale of the Thompson draws (EUR of profit-to-go per posterior sd).
        seed: seed of the training shoppers and of the draws.
        moments: when it decides: ``hesitation`` (exit intent shown or the shopper away,
            as seen in the observation: a bandit on cart abandonment, the usual framing)
            or ``every_step`` (every decision with something other than wait eligible).
    """

    n_journeys: int = 336_000
    cohort_size: int = 2_000
    ridge: float = 1.0
    noise: float = 20.0
    seed: int = 2_000_003
    moments: str = HESITATION

    def __post_init__(self) -> None:
        if self.n_journeys < 1 or self.cohort_size < 1:
            raise ValueError(
                "bandit: n_journeys and cohort_size must be >= 1, got "
                f"{self.n_journeys}, {self.cohort_size}"
            )
        check_moments(self.moments, "bandit")
        if not self.ridge > 0.0 or self.noise < 0.0:
            raise ValueError(
                f"bandit: ridge > 0 and noise >= 0 needed, got {self.ridge}, {self.noise}"
            )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _design(obs: NDArray[np.float32]) -> Array:
    return np.column_stack([np.asarray(obs, dtype=np.float64), np.ones(len(obs))])


class LinearThompsonBandit:
    """Per-action Bayesian linear models of profit-to-go; see the module docstring."""

    name = "bandit"

    def __init__(
        self,
        n_features: int,
        n_actions: int,
        ridge: float = 1.0,
        moments: NDArray[np.int64] | None = None,
    ) -> None:
        d = n_features + 1
        self.moments = moments  # observation columns of which one must be set to decide
        self.precision = np.repeat(np.eye(d)[None] * ridge, n_actions, axis=0)
        self.target = np.zeros((n_actions, d))
        self.mean = np.zeros((n_actions, d))
        self.covariance = np.repeat(np.eye(d)[None] / ridge, n_actions, axis=0)
        self.info: dict[str, Any] = {}

    def update(self, x: Array, actions: NDArray[np.int64], to_go: Array) -> None:
        """Add decisions (design rows ``x``, actions, profit-to-go) to the posteriors."""
        for a in np.unique(actions):
            rows = actions == a
            xa = x[rows]
            self.precision[a] += xa.T @ xa
            self.target[a] += xa.T @ to_go[rows]
            self.covariance[a] = np.linalg.inv(self.precision[a])
            self.mean[a] = self.covariance[a] @ self.target[a]

    def values(
        self,
        obs: NDArray[np.float32],
        mask: NDArray[np.bool_],
        rng: np.random.Generator | None = None,
        noise: float = 0.0,
    ) -> Array:
        """Value of every action per row ``(n, n_actions)``, ``-inf`` where ineligible:
        posterior means, plus a Thompson draw when ``rng`` is given."""
        x = _design(obs)
        mu = x @ self.mean.T
        if rng is not None and noise > 0.0:
            sd = np.sqrt(np.maximum(np.einsum("nd,ade,ne->na", x, self.covariance, x), 0.0))
            mu = mu + noise * sd * rng.standard_normal(mu.shape)
        return np.where(mask, mu, -np.inf)

    def deciding(self, obs: NDArray[np.float32], mask: NDArray[np.bool_]) -> NDArray[np.bool_]:
        """Rows at a decision moment with something other than ``wait`` eligible."""
        return at_moments(obs, mask, self.moments)

    def act(self, obs: NDArray[np.float32], mask: NDArray[np.bool_]) -> NDArray[np.int64]:
        choice = self.deciding(obs, mask)
        best = np.argmax(self.values(obs, mask), axis=1)
        return np.where(choice, best, 0).astype(np.int64)


def train_bandit(
    scenario: Scenario, settings: BanditSettings | None = None
) -> LinearThompsonBandit:
    """Learn the bandit online on ``settings.n_journeys`` shoppers; see the module doc."""
    s = settings or BanditSettings()
    rng = np.random.default_rng([s.seed, 0xBA])
    sizes = [min(s.cohort_size, s.n_journeys - i) for i in range(0, s.n_journeys, s.cohort_size)]
    cores: dict[int, ShopperCore] = {}
    fresh = ShopperCore(scenario, 1, autoreset=False)
    memory, budget = fresh.memory, fresh.budget
    moments = moment_columns(scenario, s.moments)
    bandit = LinearThompsonBandit(len(fresh.schema), fresh.n_actions, s.ridge, moments)
    decisions = 0
    for size, seed in zip(sizes, cohort_seeds(s.seed, len(sizes)), strict=True):
        core = cores.get(size) or cores.setdefault(
            size, ShopperCore(scenario, size, autoreset=False, stagger=scenario.horizon)
        )
        core.memory, core.budget = memory, budget
        obs = core.reset(seed, keep_memory=True)
        rewards = np.zeros((core.span, size))
        taken: list[tuple[int, NDArray[np.int64], Array, NDArray[np.int64]]] = []
        for step in range(core.span):
            if not core.running:
                break
            mask = core.action_masks()
            rows = np.flatnonzero(core.alive & bandit.deciding(obs, mask))
            actions = np.zeros(size, dtype=np.int64)
            if len(rows):
                v = bandit.values(obs[rows], mask[rows], rng, s.noise)
                actions[rows] = np.argmax(v, axis=1)
                taken.append((step, rows, _design(obs[rows]), actions[rows]))
            obs, reward, _, _ = core.step(actions)
            rewards[step] = reward
        memory, budget = core.memory, core.budget
        to_go = np.cumsum(rewards[::-1], axis=0)[::-1]
        if taken:
            x = np.concatenate([t[2] for t in taken])
            a = np.concatenate([t[3] for t in taken])
            g = np.concatenate([to_go[t[0], t[1]] for t in taken])
            bandit.update(x, a, g)
            decisions += len(a)
    bandit.info = {
        "kind": "contextual bandit (linear Thompson sampling, per-action Bayesian ridge)",
        "trained_on": ONLINE_IN_SIMULATOR,
        "journeys": s.n_journeys,
        "decisions": decisions,
        "settings": s.to_dict(),
    }
    return bandit
