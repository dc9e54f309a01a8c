"""The simulation-based fit: scipy's least squares on common random numbers.

:class:`ShopData` is what the shop gave: a session table, a decision log (with the
logger and exploration that wrote it), or both. :class:`Simulator` computes the same
targets on a candidate scenario: the session table of ``n_shoppers`` simulated journeys
(visits linked or not, as in the data) and the decision log of ``n_journeys`` simulated
with the shop's logger, always with the same seeds, so that two candidates meet the same
shoppers and the same draws.

The objective is then a smooth trend plus a rough part: a small change of a parameter
moves a few simulated shoppers across a decision's threshold, each with an outcome of its
own, so the residuals wander like a random walk at small steps; the finite differences
(a tenth of a parameter's scale) look past it, and the fit ends on regressions of the
residuals over a design a scale wide (:mod:`.smoothing`). **Segment shares are fitted by
reweighting**, not by moving shoppers. A share decides which segment each simulated
shopper is drawn into, so on common random numbers every change of a share re-draws some
shoppers (and, the segments being drawn in list order, shoppers of the segments between
too): the objective is rough at every scale, the optimiser stops on a chance dip of it
(where every finite difference rises: scipy's xtol, far from the minimum) and the
intervals from its Jacobian there are too narrow. When a share is fitted, a candidate is
simulated once at the start's shares and its journeys are reweighted by segment to the
candidate's shares (:meth:`Simulator.strata`, :func:`mixture`): the targets are a smooth
(rational) function of the shares, and the candidates that differ in their shares only
share one simulation. The state the shoppers share (the learned waiting of strategic
shoppers, the live-agent desk) stays that of the start's mix; at the shares a recovery
moves (10 points) no target differs from a direct simulation beyond its noise (150,000
journeys each).

The residual of a target is ``(simulated - observed) / sqrt(se_obs^2 + se_sim^2)``, the
standard errors taken once at the start (binomial, per journey counts): a target known to
a tenth of a point weighs more than one known to five points. Targets marked not fitted,
or absent on either side, do not enter. :func:`least_squares_fit` runs
``scipy.optimize.least_squares`` (trust-region reflective, bounds from each parameter,
forward differences of a tenth of a parameter's scale) and returns the fit with its
Jacobian at the optimum, which :mod:`experiments.calibration.intervals` uses.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
from numpy.typing import NDArray
from scipy.optimize import least_squares

from agents.exploration import Exploration
from agents.logs.schema import JOURNEY
from agents.policy import Policy
from envs.scenario import Scenario
from experiments.calibration.log_simulation import SEGMENT, simulate_offer_log
from experiments.calibration.log_targets import log_targets
from experiments.calibration.parallel import Evaluator
from experiments.calibration.parameters import Parameter, apply, box
from experiments.calibration.sessions import (
    linked,
    price_bands,
    session_targets,
    simulate_sessions,
)
from experiments.calibration.targets import TargetTable, combine, stack

Array = NDArray[np.float64]


@dataclass(frozen=True)
class LogData:
    """A decision log's table and how it was written (the logger is rebuilt by name)."""

    table: pa.Table  # in the decision-log format (agents.logs)
    logger: Policy
    exploration: Exploration


@dataclass(frozen=True)
class ShopData:
    """A shop's data: a session table (checked, :mod:`.sessions`) and/or a decision log."""

    sessions: pd.DataFrame | None = None
    logs: LogData | None = None

    def __post_init__(self) -> None:
        if self.sessions is None and self.logs is None:
            raise ValueError("a fit needs a session table, a decision log, or both")

    def targets(self, start: Scenario) -> TargetTable:
        """Every target of the data, per journey (sessions first, then logs)."""
        parts = []
        if self.sessions is not None:
            parts.append(session_targets(self.sessions, price_bands(start)))
        if self.logs is not None:
            parts.append(log_targets(self.logs.table, start))
        return combine(parts)


STRATA_KEPT = 64  # candidates whose strata the objective keeps (their totals only)


def shares(scenario: Scenario) -> Array:
    """The scenario's segment shares, normalised to sum to 1."""
    raw = np.array([s.share for s in scenario.segments], dtype=np.float64)
    return raw / raw.sum()


def neutral(scenario: Scenario) -> Scenario:
    """``scenario`` with every segment's share at 1: what its candidates that differ in
    their shares only have in common."""
    segments = tuple(dataclasses.replace(s, share=1.0) for s in scenario.segments)
    return scenario.replace(segments=segments)


def with_shares(scenario: Scenario, p: Array) -> Scenario:
    """``scenario`` with its segments' shares at ``p``."""
    segments = tuple(
        dataclasses.replace(s, share=float(v)) for s, v in zip(scenario.segments, p, strict=True)
    )
    return scenario.replace(segments=segments)


def mixture(strata: Sequence[TargetTable], weights: Array) -> TargetTable:
    """The table of a population whose segments are in proportions ``weights``, from the
    strata of a simulation (:meth:`Simulator.strata`)."""
    return stack(strata, [float(w) for w in weights])


def _by_segment(table: TargetTable, journey: Any, segment: Any, p: Array) -> list[TargetTable]:
    """``table``'s journeys split by the segment of their shopper (``journey`` and
    ``segment`` columns of the simulated rows), each part weighted by ``1 / p[k]``."""
    first = pd.DataFrame({"journey": journey, "segment": segment}).drop_duplicates("journey")
    at = pd.Index(first["journey"]).get_indexer(pd.Index(table.keys))
    if (at < 0).any():
        raise ValueError("a journey of the table has no simulated rows to give its segment")
    seg = first["segment"].to_numpy(dtype=np.int64)[at]
    return [stack([table.subset(seg == k)], [1.0 / p[k]]) for k in range(len(p))]


@dataclass(frozen=True)
class Simulator:
    """The targets of a candidate scenario, on fixed seeds (common random numbers)."""

    data: ShopData
    n_shoppers: int = 40_000
    n_journeys: int = 20_000
    seed: int = 2024

    def targets(self, scenario: Scenario, seed: int | None = None) -> TargetTable:
        """The targets of ``n_shoppers`` simulated sessions and ``n_journeys`` logged ones."""
        return combine([t for t, _ in self._parts(scenario, seed, split=False)])

    def strata(self, scenario: Scenario, seed: int | None = None) -> list[TargetTable]:
        """The simulated journeys of :meth:`targets` split by the segment of their shopper,
        segment ``k``'s counts divided by its share ``p_k`` in ``scenario``. A mixture of
        the strata (:func:`mixture`) in proportions ``q`` is then the population with
        segment shares ``q``, on the same shoppers reweighted: with ``q = p``, the
        simulation itself."""
        split = [strata for _, strata in self._parts(scenario, seed, split=True)]
        return [combine(list(parts)) for parts in zip(*split, strict=True)]

    def _parts(
        self, scenario: Scenario, seed: int | None, split: bool
    ) -> list[tuple[TargetTable, list[TargetTable]]]:
        """The session and log tables of ``scenario``, each with its strata if ``split``."""
        seed = self.seed if seed is None else seed
        p = shares(scenario)
        parts = []
        if self.data.sessions is not None:
            table = simulate_sessions(
                scenario,
                self.n_shoppers,
                seed,
                link_visits=linked(self.data.sessions),
                segments=True,
            )
            t = session_targets(table, price_bands(scenario), with_months=False)
            by = _by_segment(t, table["journey"], table["segment"], p) if split else []
            parts.append((t, by))
        if self.data.logs is not None:
            logs = self.data.logs
            log = simulate_offer_log(
                scenario, logs.logger, logs.exploration, self.n_journeys, seed + 1
            )
            t = log_targets(log, scenario)
            rows = log.column(JOURNEY).to_numpy(), log.column(SEGMENT).to_numpy()
            parts.append((t, _by_segment(t, *rows, p) if split else []))
        return parts


def aligned(sim: TargetTable, names: Sequence[str]) -> tuple[Array, Array]:
    """Values and standard errors of ``sim`` in the order of ``names`` (NaN when absent)."""
    at = {n: i for i, n in enumerate(sim.names)}
    values, se = sim.values(), sim.standard_errors()
    idx = [at.get(n, -1) for n in names]
    pick = np.array([i if i >= 0 else 0 for i in idx])
    absent = np.array([i < 0 for i in idx], dtype=bool)
    return np.where(absent, np.nan, values[pick]), np.where(absent, np.nan, se[pick])


@dataclass(frozen=True)
class Objective:
    """The weighted residuals of a set of parameters against the observed targets.

    With a ``reference`` (some segment's share is fitted) a candidate's targets are those
    of the candidate with its segments at the reference shares, the simulated journeys
    reweighted to the candidate's shares (:meth:`Simulator.strata`): a smooth function of
    the shares, simulated once for all the candidates that differ in their shares only."""

    start: Scenario
    params: tuple[Parameter, ...]
    observed: Array
    names: tuple[str, ...]
    sigma: Array  # per target; NaN: the target does not enter
    simulator: Simulator
    reference: Array | None = None  # segment shares the strata are simulated at
    kept: dict[Scenario, list[TargetTable]] = field(default_factory=dict, compare=False, repr=False)

    @property
    def used(self) -> NDArray[np.bool_]:
        return np.isfinite(self.sigma) & np.isfinite(self.observed)

    def scenario(self, x: Sequence[float] | Array) -> Scenario:
        return apply(self.start, self.params, x)

    def table(self, x: Sequence[float] | Array) -> TargetTable:
        """The simulated targets of the candidate ``x``, per simulated journey."""
        scenario = self.scenario(x)
        if self.reference is None:
            return self.simulator.targets(scenario)
        at_reference = with_shares(scenario, self.reference)
        return mixture(self.simulator.strata(at_reference), shares(scenario))

    def simulated(self, x: Sequence[float] | Array) -> Array:
        scenario = self.scenario(x)
        if self.reference is None:
            table = self.simulator.targets(scenario)
        else:
            key = neutral(scenario)
            if key not in self.kept:
                if len(self.kept) >= STRATA_KEPT:
                    self.kept.pop(next(iter(self.kept)))
                strata = self.simulator.strata(with_shares(key, self.reference))
                self.kept[key] = [t.collapsed() for t in strata]
            table = mixture(self.kept[key], shares(scenario))
        values, _ = aligned(table, self.names)
        return values

    def residuals(self, x: Sequence[float] | Array) -> Array:
        sim = self.simulated(x)[self.used]
        r = (sim - self.observed[self.used]) / self.sigma[self.used]
        # a target the candidate cannot produce (no shopper in it) counts as far off
        return np.where(np.isfinite(r), r, 10.0)


def objective(
    start: Scenario,
    params: Sequence[Parameter],
    observed: TargetTable,
    simulator: Simulator,
) -> Objective:
    """The objective of fitting ``params`` of ``start`` to the ``observed`` targets."""
    sim_values, sim_se = aligned(simulator.targets(start), observed.names)
    sigma = np.sqrt(observed.standard_errors() ** 2 + sim_se**2)
    usable = observed.fitted & np.isfinite(sim_values) & np.isfinite(sigma) & (sigma > 0)
    return Objective(
        start=start,
        params=tuple(params),
        observed=observed.values(),
        names=observed.names,
        sigma=np.where(usable, sigma, np.nan),
        simulator=simulator,
        reference=shares(start) if any(p.segment_share for p in params) else None,
    )


@dataclass(frozen=True)
class LeastSquares:
    """What the optimiser found: values, residuals and Jacobian at the optimum."""

    x: Array
    residuals: Array
    jacobian: Array  # d residuals / d x, (used targets, parameters)
    evaluations: int
    message: str
    status: int = 0  # scipy's: 1 gtol, 2 ftol, 3 xtol, 4 ftol and xtol, 0 max_nfev


def least_squares_fit(
    obj: Objective,
    x0: Sequence[float],
    max_evaluations: int = 80,
    evaluator: Evaluator | None = None,
) -> LeastSquares:
    """Minimise the sum of squared residuals of ``obj`` from ``x0`` within the bounds (the
    Jacobian's columns simulated as one batch of ``evaluator``, in this process without)."""
    params = obj.params
    low, high, scale = box(params)
    start = np.clip(np.asarray(x0, dtype=np.float64), low, high)
    # forward differences of a tenth of each parameter's scale, towards the inside of the
    # bounds: large enough to see past the simulation's granularity (scipy's own relative
    # steps shrink to nothing at a parameter whose start value is 0)
    steps = 0.1 * scale
    seen: dict[bytes, Array] = {}
    evaluate = evaluator or Evaluator(obj.residuals)
    first = evaluate.evaluations

    def fun(x: Array) -> Array:
        key = np.asarray(x, dtype=np.float64).tobytes()
        if key not in seen:
            seen.clear()
            seen[key] = evaluate(x)
        return seen[key]

    def jac(x: Array) -> Array:
        f0 = fun(x)
        h = np.where(x + steps <= high, steps, -steps)
        moved = [np.array(x, dtype=np.float64) for _ in range(len(x))]
        for i, point in enumerate(moved):
            point[i] += h[i]
        columns = [(r - f0) / h[i] for i, r in enumerate(evaluate.many(moved))]
        return np.stack(columns, axis=1)

    result = least_squares(
        fun, start, jac=jac, bounds=(low, high), x_scale=scale, max_nfev=max_evaluations
    )
    return LeastSquares(
        x=np.asarray(result.x),
        residuals=np.asarray(result.fun),
        jacobian=np.asarray(result.jac),  # scipy's last Jacobian, taken at result.x
        evaluations=evaluate.evaluations - first,
        message=str(result.message),
        status=int(result.status),
    )
