"""Observed against simulated, target by target: on the journeys fitted and on those held out.

A :class:`Comparison` row holds a target's observed value with its 95% interval
(binomial, over the journeys counted), the value the fitted scenario simulates and the
one the starting scenario simulated, and each one's z-score
``(simulated - observed) / sqrt(se_obs^2 + se_sim^2)``. On journeys held out of the fit
(the shop's own, never seen by the optimiser) the share of targets within their 95%
interval (``|z| <= 1.96``) says whether the fit carries over, or only learnt the noise.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from experiments.calibration.targets import TargetTable

Z95 = 1.96


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
