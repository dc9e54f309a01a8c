"""Parameter recovery: fit a scenario to data simulated from a known one, and compare.

The standard check of a simulation-based fit. A *true* scenario is the start with some
parameters changed (sensitivities x0.7 and x1.3, a segment's share moved...). Its data
is simulated on seeds the fit never uses: a session table of ``n_sessions`` journeys and
a decision log of ``n_logged`` journeys from a logger with randomised offers
(:func:`agents.logs.simulate.simulate_logs`). The fit starts from the start scenario and
moves ``fit``; :func:`recover` reports, per parameter, the true value, the fitted one and
its interval, and whether the interval holds the truth (for the parameters the data
identifies). Then what a merchant cares about: ``policies`` run on the same shoppers
(common random numbers) of the true and the fitted scenario, their profit per 1,000
shoppers with 95% intervals, whether each fitted figure lies in the true one's
interval, and whether the ranking is the same.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from agents.logs.simulate import Exploration, simulate_logs
from agents.policy import Policy
from agents.rollout import run_policy
from envs.scenario import Scenario
from experiments.calibration.fitting import LogData, ShopData
from experiments.calibration.parameters import apply, parameter, resolve
from experiments.calibration.pipeline import CalibrationResult, calibrate
from experiments.calibration.sessions import simulate_sessions

PER = 1000.0
DATA_SEED_OFFSET = 1_000_003  # the data's shoppers are never the fit's


def truth(start: Scenario, changes: Mapping[str, float]) -> Scenario:
    """``start`` with the parameters named in ``changes`` at their values."""
    params = [parameter(name, start) for name in changes]
    return apply(start, params, list(changes.values())).replace(name=f"{start.name}_true")


def true_in_fit(name: str, true: Scenario, start: Scenario, value: float) -> float:
    """The true value of a parameter as the fit can express it. Segment shares are
    normalised and the fit holds the first segment's at its start value (the reference),
    so the true share of another segment is its ratio to the true reference times the
    start's reference share."""
    if name.startswith("segments[") and name.endswith("].share"):
        key = name[len("segments[") : -len("].share")]
        shares = {s.name: s.share for s in true.segments}
        return shares[key] / true.segments[0].share * start.segments[0].share
    return value


def policy_profits(
    scenarios: Mapping[str, Scenario], policies: Sequence[Policy], n_shoppers: int, seed: int
) -> dict[str, dict[str, dict[str, float]]]:
    """Profit per 1,000 shoppers and its 95% interval, per scenario and policy."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for label, scenario in scenarios.items():
        out[label] = {}
        for policy in policies:
            profit = run_policy(scenario, policy, n_shoppers, seed).profit
            half = 1.96 * profit.std(ddof=1) / np.sqrt(len(profit)) * PER
            mean = float(profit.mean() * PER)
            out[label][policy.name] = {"estimate": mean, "low": mean - half, "high": mean + half}
    return out


def compare_policies(
    true: Scenario,
    fitted: Scenario,
    start: Scenario,
    policies: Sequence[Policy],
    n_shoppers: int,
    seed: int,
) -> dict[str, Any]:
    """Each policy's profit per 1,000 shoppers on the true, fitted and start scenarios (same
    shoppers), the rankings, and whether each fitted figure lies in the true interval."""
    profits = policy_profits(
        {"true": true, "fitted": fitted, "start": start}, policies, n_shoppers, seed
    )
    names = [p.name for p in policies]

    def ranking(label: str) -> list[str]:
        return sorted(names, key=lambda n: -profits[label][n]["estimate"])

    return {
        "profit_per_1000": profits,
        "ranking_true": ranking("true"),
        "ranking_fitted": ranking("fitted"),
        "ranking_start": ranking("start"),
        "same_ranking": ranking("true") == ranking("fitted"),
        "fitted_within_true_interval": {
            n: bool(
                profits["true"][n]["low"]
                <= profits["fitted"][n]["estimate"]
                <= profits["true"][n]["high"]
            )
            for n in names
        },
    }


def recover(
    start: Scenario,
    changes: Mapping[str, float],
    fit: str | Sequence[str],
    *,
    logger: Policy,
    exploration: Exploration,
    n_sessions: int = 20_000,
    n_logged: int = 20_000,
    n_shoppers: int = 20_000,
    n_journeys: int = 20_000,
    seed: int = 7,
    policies: Sequence[Policy] = (),
    n_eval: int = 20_000,
    replicates: int = 200,
    holdout: float = 0.2,
) -> tuple[dict[str, Any], CalibrationResult]:
    """Recover ``changes`` by fitting ``fit`` (see the module docstring)."""
    true = truth(start, changes)
    data_seed = seed + DATA_SEED_OFFSET
    data = ShopData(
        sessions=simulate_sessions(true, n_sessions, data_seed) if n_sessions else None,
        logs=LogData(
            simulate_logs(true, logger, n_logged, data_seed + 1, exploration),
            logger,
            exploration,
        )
        if n_logged
        else None,
    )
    params = resolve(fit, start)
    result = calibrate(
        start,
        data,
        params,
        name=f"{start.name}_recovered",
        n_shoppers=n_shoppers,
        n_journeys=n_journeys,
        seed=seed,
        holdout=holdout,
        replicates=replicates,
    )
    rows = {}
    true_values = []
    for p, interval in zip(params, result.params, strict=True):
        true_value = true_in_fit(p.name, true, start, changes.get(p.name, p.start(start)))
        true_values.append(true_value)
        rows[p.name] = {
            "true": true_value,
            "start": interval.start,
            "fitted": interval.value,
            "low": interval.low,
            "high": interval.high,
            "identified": interval.identified,
            "reason": interval.reason,
            "covered": bool(interval.low <= true_value <= interval.high),
        }
    fitted_values = [p.value for p in result.params]
    identified = [r for r in rows.values() if r["identified"]]
    report: dict[str, Any] = {
        "changes": dict(changes),
        "parameters": rows,
        "identified": sum(r["identified"] for r in rows.values()),
        "covered": sum(r["covered"] for r in identified),
        "fit_seconds": round(result.seconds, 1),
        "evaluations": result.evaluations,
        # the objective at the fit and at the truth: a fit that stopped short of the
        # minimum shows a chi-square well above the truth's
        "chi_square": {
            "fitted": round(result.chi_square(fitted_values), 2),
            "true": round(result.chi_square(true_values), 2),
        },
        "optimiser": result.optimiser,
        "held_out": result.summary()["held_out"],
    }
    if policies:
        report["policies"] = compare_policies(
            true, result.fitted, start, policies, n_eval, seed + 11
        )
    return report, result
