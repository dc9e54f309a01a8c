"""Observed against simulated, target by target: on the journeys fitted and on those held out.

A :class:`Comparison` row holds a target's observed value with its 95% interval
(binomial, over the journeys counted), the value the fitted scenario simulates and the
one the starting scenario simulated, and each one's z-score
``(simulated - observed) / sqrt(se_obs^2 + se_sim^2)``. On journeys held out of the fit
(the shop's own, never seen by the optimiser) the share of targets within their 95%
interval (``|z| <= 1.96``) says whether the fit carries over, or only learnt the noise.

That share is a noisy count: the targets are not independent (a held-out sample whose
shoppers happen to buy more moves every conversion and take-up together), so a scenario
that *is* the shop misses 5% of them only on average, and 15% on some samples.
:func:`own_agreement` measures what the fitted scenario itself reaches: it simulates
:data:`OWN_DRAWS` samples of journeys from the scenario, as many of each kind as were held
out, and compares each with the same simulated targets the held-out journeys were
compared with. A fit whose held-out share is no lower than what its own samples reach 19
times in 20 (and whose root mean square z is no higher) agrees with the shop as closely
as the scenario agrees with itself.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from envs.scenario import Scenario
from experiments.calibration.objective import LOGS, SESSIONS, Simulator
from experiments.calibration.targets import TargetTable, combine

Z95 = 1.96
OWN_DRAWS = 40  # samples simulated from the fitted scenario by own_agreement
OWN_SEED_OFFSET = 1_001  # their shoppers: none of the fit's, the check's or the data's


@dataclass(frozen=True)
class Comparison:
    name: str
    label: str
    fitted: bool  # the target entered the fit
    observed: float
    low: float
    high: float
    n: float  # the denominator observed
    simulated: float
    simulated_start: float
    z: float
    z_start: float

    def to_dict(self) -> dict[str, Any]:
        return {
            k: (None if isinstance(v, float) and not np.isfinite(v) else v)
            for k, v in asdict(self).items()
        }


def _on(names: tuple[str, ...], table: TargetTable) -> tuple[np.ndarray, np.ndarray]:
    at = {n: i for i, n in enumerate(table.names)}
    values, se = table.values(), table.standard_errors()
    v = np.array([values[at[n]] if n in at else np.nan for n in names])
    s = np.array([se[at[n]] if n in at else np.nan for n in names])
    return v, s


def compare(observed: TargetTable, fitted: TargetTable, start: TargetTable) -> list[Comparison]:
    """One row per observed target (see the module docstring)."""
    obs, obs_se = observed.values(), observed.standard_errors()
    _, den = observed.totals()
    fit, fit_se = _on(observed.names, fitted)
    first, first_se = _on(observed.names, start)
    with np.errstate(invalid="ignore", divide="ignore"):
        z = (fit - obs) / np.sqrt(obs_se**2 + fit_se**2)
        z0 = (first - obs) / np.sqrt(obs_se**2 + first_se**2)
    return [
        Comparison(
            name=observed.names[i],
            label=observed.labels[i],
            fitted=bool(observed.fitted[i]),
            observed=float(obs[i]),
            low=float(max(0.0, obs[i] - Z95 * obs_se[i])),
            high=float(min(1.0, obs[i] + Z95 * obs_se[i])),
            n=float(den[i]),
            simulated=float(fit[i]),
            simulated_start=float(first[i]),
            z=float(z[i]),
            z_start=float(z0[i]),
        )
        for i in range(len(observed.names))
    ]


def summary(rows: list[Comparison]) -> dict[str, Any]:
    """Share of fitted targets within their 95% interval, fitted and at the start, and the
    root mean square of their z-scores."""
    z = np.array([r.z for r in rows if r.fitted and np.isfinite(r.z)])
    z0 = np.array([r.z_start for r in rows if r.fitted and np.isfinite(r.z_start)])
    return {
        "targets": len(z),
        "within_95": float(np.mean(np.abs(z) <= Z95)) if len(z) else None,
        "within_95_start": float(np.mean(np.abs(z0) <= Z95)) if len(z0) else None,
        "rms_z": float(np.sqrt(np.mean(z**2))) if len(z) else None,
        "rms_z_start": float(np.sqrt(np.mean(z0**2))) if len(z0) else None,
    }


def own_agreement(
    simulator: Simulator,
    scenario: Scenario,
    simulated: TargetTable,
    held_out: Mapping[str, int],
    draws: int = OWN_DRAWS,
) -> dict[str, Any]:
    """What ``scenario`` reaches against journeys simulated from itself (see the module
    docstring): ``held_out`` journeys of each kind of data (:meth:`.objective.ShopData.parts`)
    per sample, each compared with ``simulated`` (the scenario's targets the held-out
    journeys were compared with). Returns the samples' share within 95% at its 5th
    percentile and median, and their root mean square z at its median and 95th
    percentile. Draws from seeds of its own (``simulator.seed + OWN_SEED_OFFSET``)."""
    if draws < 2:
        raise ValueError(f"own_agreement needs at least 2 draws, got {draws}")
    sized = dataclasses.replace(
        simulator,
        n_shoppers=max(1, int(held_out.get(SESSIONS, 1))),
        n_journeys=max(1, int(held_out.get(LOGS, 1))),
    )
    rng = np.random.default_rng(simulator.seed + OWN_SEED_OFFSET)
    within, rms = [], []
    for k in range(draws):
        parts = sized.parts(scenario, seed=simulator.seed + OWN_SEED_OFFSET + 2 * k)
        sample = []
        for kind, table in parts.items():
            # a table of visits not linked into journeys has more rows than shoppers
            n = min(int(held_out.get(kind, 0)), table.n_journeys)
            rows = np.zeros(table.n_journeys, dtype=bool)
            rows[rng.choice(table.n_journeys, size=n, replace=False)] = True
            sample.append(table.subset(rows))
        figures = summary(compare(combine(sample), simulated, simulated))
        if figures["within_95"] is not None:
            within.append(figures["within_95"])
            rms.append(figures["rms_z"])
    if not within:
        return {"draws": draws, "within_95": None, "rms_z": None}
    return {
        "draws": draws,
        # (5th percentile, median): the share a sample of the scenario's own reaches
        "within_95": [float(np.percentile(within, 5)), float(np.median(within))],
        # (median, 95th percentile) of their root mean square z
        "rms_z": [float(np.median(rms)), float(np.percentile(rms, 95))],
    }
