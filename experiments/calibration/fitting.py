"""The simulation-based fit: scipy's least squares on common random numbers.

:class:`ShopData` is what the shop gave: a session table, a decision log (with the
logger and exploration that wrote it), or both. :class:`Simulator` computes the same
targets on a candidate scenario: the session table of ``n_shoppers`` simulated journeys
(visits linked or not, as in the data) and the decision log of ``n_journeys`` simulated
with the shop's logger, always with the same seeds, so that two candidates meet the same
shoppers and the same draws and the objective is a smooth function of the parameters.

The residual of a target is ``(simulated - observed) / sqrt(se_obs^2 + se_sim^2)``, the
standard errors taken once at the start (binomial, per journey counts): a target known to
a tenth of a point weighs more than one known to five points. Targets marked not fitted,
or absent on either side, do not enter. :func:`least_squares_fit` runs
``scipy.optimize.least_squares`` (trust-region reflective, bounds from each parameter,
forward differences of a tenth of a parameter's scale) and returns the fit with its
Jacobian at the optimum, which :mod:`experiments.calibration.intervals` uses.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
from numpy.typing import NDArray
from scipy.optimize import least_squares

from agents.logs.simulate import Exploration
from agents.policy import Policy
from envs.scenario import Scenario
from experiments.calibration.log_simulation import simulate_log_targets
from experiments.calibration.log_targets import log_targets
from experiments.calibration.parameters import Parameter, apply
from experiments.calibration.sessions import (
    linked,
    price_bands,
    session_targets,
    simulate_sessions,
)
from experiments.calibration.targets import TargetTable, combine

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


@dataclass(frozen=True)
class Simulator:
    """The targets of a candidate scenario, on fixed seeds (common random numbers)."""

    data: ShopData
    n_shoppers: int = 40_000
    n_journeys: int = 20_000
    seed: int = 2024

    def targets(self, scenario: Scenario, seed: int | None = None) -> TargetTable:
        seed = self.seed if seed is None else seed
        parts = []
        if self.data.sessions is not None:
            table = simulate_sessions(
                scenario, self.n_shoppers, seed, link_visits=linked(self.data.sessions)
            )
            parts.append(session_targets(table, price_bands(scenario), with_months=False))
        if self.data.logs is not None:
            logs = self.data.logs
            parts.append(
                simulate_log_targets(
                    scenario, logs.logger, logs.exploration, self.n_journeys, seed + 1
                )
            )
        return combine(parts)


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
    """The weighted residuals of a set of parameters against the observed targets."""

    start: Scenario
    params: tuple[Parameter, ...]
    observed: Array
    names: tuple[str, ...]
    sigma: Array  # per target; NaN: the target does not enter
    simulator: Simulator

    @property
    def used(self) -> NDArray[np.bool_]:
        return np.isfinite(self.sigma) & np.isfinite(self.observed)

    def scenario(self, x: Sequence[float] | Array) -> Scenario:
        return apply(self.start, self.params, x)

    def simulated(self, x: Sequence[float] | Array) -> Array:
        values, _ = aligned(self.simulator.targets(self.scenario(x)), self.names)
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
    )


@dataclass(frozen=True)
class LeastSquares:
    """What the optimiser found: values, residuals and Jacobian at the optimum."""

    x: Array
    residuals: Array
    jacobian: Array  # d residuals / d x, (used targets, parameters)
    evaluations: int
    message: str


def least_squares_fit(
    obj: Objective, x0: Sequence[float], max_evaluations: int = 80
) -> LeastSquares:
    """Minimise the sum of squared residuals of ``obj`` from ``x0`` within the bounds."""
    params = obj.params
    low = np.array([p.low for p in params])
    high = np.array([p.high for p in params])
    scale = np.array([p.scale for p in params])
    start = np.clip(np.asarray(x0, dtype=np.float64), low, high)
    # forward differences of a tenth of each parameter's scale, towards the inside of the
    # bounds: large enough to see past the simulation's granularity (scipy's own relative
    # steps shrink to nothing at a parameter whose start value is 0)
    steps = 0.1 * scale
    seen: dict[bytes, Array] = {}
    count = [0]

    def fun(x: Array) -> Array:
        key = np.asarray(x, dtype=np.float64).tobytes()
        if key not in seen:
            seen.clear()
            count[0] += 1
            seen[key] = obj.residuals(x)
        return seen[key]

    def jac(x: Array) -> Array:
        f0 = fun(x)
        columns = []
        for i in range(len(x)):
            h = steps[i] if x[i] + steps[i] <= high[i] else -steps[i]
            moved = np.array(x, dtype=np.float64)
            moved[i] += h
            count[0] += 1
            columns.append((obj.residuals(moved) - f0) / h)
        return np.stack(columns, axis=1)

    result = least_squares(
        fun, start, jac=jac, bounds=(low, high), x_scale=scale, max_nfev=max_evaluations
    )
    return LeastSquares(
        x=np.asarray(result.x),
        residuals=np.asarray(result.fun),
        jacobian=jac(np.asarray(result.x)),
        evaluations=count[0],
        message=str(result.message),
    )
