"""Exploration over the allowed actions, with exact probabilities: its one home.

The simulator's logger (:mod:`agents.logs.simulate`), the decision service
(:mod:`agents.serving.service`) and the fit's simulated logs
(:mod:`experiments.calibration.log_simulation`) all explore with :class:`Exploration`
and draw with :func:`draw_actions` (or :func:`draw_from` on uniforms of their own):

- ``epsilon`` (a share ε in [0, 1]): the policy's decision with probability 1 - ε, else an
  action drawn uniformly among the allowed ones; the probability of action ``a`` is
  ``(1 - ε) [a = decision] + ε / (number of allowed actions)``;
- ``softmax`` (a temperature τ > 0, for a policy that scores actions):
  ``softmax(scores / τ)`` over the allowed actions (:func:`masked_softmax`).

**At decision moments only** (``moments``, e.g. ``("exit_intent", "away")``): a shop
may randomise only where it would hesitate to decide, when one of the named binary
observed features is 1 (:func:`at_moments`, the opponents' decision moments too);
elsewhere the logger's own decision has probability 1. Every probability stays exact.
Written ``epsilon:0.3@exit_intent+away`` (:meth:`Exploration.to_text`).

A forbidden action has probability 0 and is never drawn. The probability of the action
taken is what a decision log stores as its ``propensity``. Importing this module imports
only numpy (the decision service's launcher reads :data:`KINDS`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

if TYPE_CHECKING:
    from agents.policy import Policy

EPSILON = "epsilon"
SOFTMAX = "softmax"
KINDS = (EPSILON, SOFTMAX)


def moment_columns(names: Sequence[str], moments: Sequence[str]) -> NDArray[np.int64]:
    """The columns of the features ``moments`` among the observation's ``names``.

    Raises:
        ValueError: a moment that is not one of ``names``, named.
    """
    index = {name: j for j, name in enumerate(names)}
    for moment in moments:
        if moment not in index:
            raise ValueError(
                f"no observed feature {moment!r} to explore at: a decision moment is a binary "
                f"feature being 1, such as exit_intent or away; the features are {list(names)}"
            )
    return np.array([index[m] for m in moments], dtype=np.int64)


def at_moments(
    obs: NDArray[np.floating], mask: NDArray[np.bool_], columns: NDArray[np.int64] | None
) -> NDArray[np.bool_]:
    """Rows at a decision moment (one of the features ``columns`` is 1; None: every
    row) with something other than the first action (``wait``) allowed."""
    choice = np.asarray(mask[:, 1:].any(axis=1))
    if columns is not None:
        choice = choice & (obs[:, columns] > 0.5).any(axis=1)
    return choice


def _one_hot(decided: NDArray[np.int64], k: int) -> NDArray[np.float64]:
    p = np.zeros((len(decided), k))
    p[np.arange(len(decided)), decided] = 1.0
    return p


def masked_softmax(
    scores: NDArray[np.floating], mask: NDArray[np.bool_], temperature: float
) -> NDArray[np.float64]:
    """Probabilities ``softmax(scores / temperature)`` over the eligible actions of each
    row (0 for the others); rows sum to 1. ``temperature`` must be > 0."""
    if not temperature > 0.0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    z = np.where(mask, np.asarray(scores, dtype=np.float64) / temperature, -np.inf)
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return np.asarray(e / e.sum(axis=1, keepdims=True), dtype=np.float64)


def draw_from(p: NDArray[np.float64], u: NDArray[np.float64]) -> NDArray[np.int64]:
    """One action per row of the probabilities ``p`` ``(n, k)`` by inverse CDF, from the
    uniforms ``u`` ``(n,)`` in (0, 1]; an action of probability 0 is never drawn."""
    cdf = np.cumsum(p, axis=1)
    v = u * cdf[:, -1]  # in (0, total]: never before the first mass
    return np.minimum((cdf < v[:, None]).sum(axis=1), p.shape[1] - 1).astype(np.int64)


def draw_actions(p: NDArray[np.float64], rng: np.random.Generator) -> NDArray[np.int64]:
    """One action per row drawn from the probabilities ``p`` ``(n, k)`` with one uniform
    of ``rng`` per row (:func:`draw_from`); an action of probability 0 is never drawn."""
    return draw_from(p, 1.0 - rng.random(len(p)))


@dataclass(frozen=True)
class Exploration:
    """How a logger departs from its policy: ``kind`` ``epsilon`` (``value`` the share
    of decisions drawn uniformly among the allowed actions, in [0, 1]) or ``softmax``
    (``value`` the temperature, > 0, for a policy that scores actions); ``moments``: the
    binary observed features (``exit_intent``, ``away``...) one of which must be 1 for a
    decision to be explored, the logger's own decision having probability 1 elsewhere
    (None: every decision is explored).

    Raises:
        ValueError: an unknown kind, a share outside [0, 1], a temperature not > 0, an
            empty, repeated or unwritable moment.
    """

    kind: str = EPSILON
    value: float = 0.0
    moments: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.moments is not None:
            moments = tuple(self.moments)
            object.__setattr__(self, "moments", moments)
            bad = [m for m in moments if not isinstance(m, str) or not m or set(m) & set("@+:, ")]
            if not moments or bad or len(set(moments)) < len(moments):
                raise ValueError(
                    f"exploration moments must be distinct feature names, such as "
                    f"[exit_intent, away], or null to explore everywhere; got {list(moments)}"
                )
        if self.kind == EPSILON:
            if not 0.0 <= self.value <= 1.0:
                raise ValueError(
                    f"an epsilon exploration share must be in [0, 1], got {self.value}"
                )
        elif self.kind == SOFTMAX:
            if not self.value > 0.0:
                raise ValueError(f"a softmax temperature must be > 0, got {self.value}")
        else:
            raise ValueError(
                f"exploration kind must be {EPSILON!r} or {SOFTMAX!r}, got {self.kind!r}"
            )

    def to_dict(self) -> dict[str, Any]:
        """``{"kind", "value"}``, and ``"moments"`` when it explores at moments only."""
        out: dict[str, Any] = {"kind": self.kind, "value": self.value}
        if self.moments is not None:
            out["moments"] = list(self.moments)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Exploration:
        """The exploration of a :meth:`to_dict` mapping (a log's metadata)."""
        moments = data.get("moments")
        return cls(
            str(data["kind"]),
            float(data["value"]),
            None if moments is None else tuple(str(m) for m in moments),
        )

    def to_text(self) -> str:
        """``epsilon:0.3``, or ``epsilon:0.3@exit_intent+away`` at moments only."""
        at = "" if self.moments is None else "@" + "+".join(self.moments)
        return f"{self.kind}:{self.value:g}{at}"

    @classmethod
    def from_text(cls, text: str) -> Exploration:
        """The exploration written ``epsilon:0.3`` or ``epsilon:0.3@exit_intent+away``."""
        spec, sep, at = text.partition("@")
        kind, _, value = spec.partition(":")
        moments = tuple(m.strip() for m in at.split("+")) if sep else None
        return cls(kind.strip(), float(value), moments)

    def describe(self) -> str:
        """In words: ``epsilon 0.3``, ``epsilon 0.3 at exit_intent or away``."""
        at = "" if self.moments is None else " at " + " or ".join(self.moments)
        return f"{self.kind} {self.value:g}{at}"

    def columns(self, names: Sequence[str]) -> NDArray[np.int64] | None:
        """The observation columns of the moments among the feature ``names`` (None:
        explored everywhere); raises ValueError naming a moment not among them."""
        return None if self.moments is None else moment_columns(names, self.moments)

    @property
    def share(self) -> float:
        """The share of decisions explored uniformly: ``value`` for ``epsilon``, else 0."""
        return self.value if self.kind == EPSILON else 0.0

    def mix(
        self,
        decided: NDArray[np.int64],
        allowed: NDArray[np.bool_],
        scores: NDArray[np.floating] | None = None,
        at: NDArray[np.bool_] | None = None,
    ) -> NDArray[np.float64]:
        """Every action's probability per row, ``(n, k)``, given the policy's decision
        ``decided`` (an allowed action) and, for ``softmax``, its ``scores``: 0 where not
        ``allowed``, rows summing to 1. ``at``: the rows explored (:func:`at_moments`;
        None: all), the others the decision with probability 1."""
        if self.kind == SOFTMAX:
            if scores is None:
                raise ValueError("softmax exploration needs the policy's scores")
            p = masked_softmax(scores, allowed, self.value)
        else:
            p = allowed * (self.value / allowed.sum(axis=1, keepdims=True))
            p[np.arange(len(decided)), decided] += 1.0 - self.value
        if at is not None:
            p = np.where(at[:, None], p, _one_hot(decided, p.shape[1]))
        return np.asarray(p, dtype=np.float64)

    def probabilities(
        self,
        policy: Policy,
        obs: NDArray[np.float32],
        mask: NDArray[np.bool_],
        names: Sequence[str] | None = None,
    ) -> NDArray[np.float64]:
        """The logger's probability of every action per row, ``(n, n_actions)``, for a
        simulator :class:`agents.policy.Policy`: 0 for an ineligible action, rows summing
        to 1. An ineligible action the policy returns is played as ``wait``, as the
        simulator plays it. ``names``: the observation's feature names, which exploring
        at moments needs.

        Raises:
            ValueError: softmax exploration of a policy that does not score actions;
                moments without ``names``, or not among them.
        """
        from agents.scoring import ScoredPolicy  # the simulator's policies: not the service's

        at = None
        if self.moments is not None:
            if names is None:
                raise ValueError("exploring at moments needs the observation's feature names")
            at = at_moments(obs, mask, self.columns(names))
        scores = None
        if self.kind == SOFTMAX:
            if not isinstance(policy, ScoredPolicy):
                raise ValueError(
                    f"softmax exploration needs a policy that scores actions; {policy.name!r} "
                    "only chooses one: use epsilon exploration"
                )
            scores = policy.scores(obs, mask)
            if at is None:
                return masked_softmax(scores, mask, self.value)
        chosen = np.asarray(policy.act(obs, mask), dtype=np.int64)
        chosen = np.where(mask[np.arange(len(obs)), chosen], chosen, 0)
        return self.mix(chosen, mask, scores, at)

    def choose_one(
        self,
        decided: int,
        allowed: Sequence[bool],
        scores: Sequence[float] | NDArray[np.floating],
        rng: np.random.Generator,
        at: bool = True,
    ) -> tuple[list[float], int]:
        """One event's action probabilities (a list) and the action drawn, for the
        service's one-event path: ``epsilon`` in plain Python (one uniform ``u``: below
        ε, the allowed action at ``u / ε`` of the way through them), ``softmax`` as
        :meth:`mix` and :func:`draw_actions`; not ``at`` a moment, the decision with
        probability 1 (nothing drawn). The probabilities equal :meth:`mix`'s."""
        if not at:
            probs = [0.0] * len(allowed)
            probs[decided] = 1.0
            return probs, decided
        if self.kind == EPSILON:
            eps = self.value
            share = eps / sum(allowed)
            probs = [share if ok else 0.0 for ok in allowed]
            probs[decided] += 1.0 - eps
            u = rng.random()
            if u < eps:  # uniform among the allowed: u / eps is uniform in [0, 1)
                options = [a for a, ok in enumerate(allowed) if ok]
                return probs, options[min(int(u / eps * len(options)), len(options) - 1)]
            return probs, decided
        p = self.mix(np.array([decided]), np.array([allowed]), np.array([scores]))
        return p[0].tolist(), int(draw_actions(p, rng)[0])
