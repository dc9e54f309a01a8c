"""Parameter recovery: fit a scenario to data simulated from a known one, and compare.

The standard check of a simulation-based fit. A *true* scenario is the start with some
parameters changed (sensitivities x0.7 and x1.3, a segment's share moved...). Its data
is simulated on seeds the fit never uses: a session table of ``n_sessions`` journeys and
a decision log of ``n_logged`` journeys from a logger with randomised offers
(:func:`agents.logs.simulate.simulate_logs`). The fit starts from the start scenario and
moves ``fit``; :func:`recover` reports, per parameter, the true value, the fitted one and
its interval, and whether the interval holds the truth (for the parameters the data
identifies). Then what a merchant cares about: ``policies`` run on the same shoppers
(common random numbers) of the true scenario, the start and the fitted one, their profit
per 1,000 shoppers (:func:`compare_policies`):

- a fitted profit *matches* when the true scenario's profit lies inside the forecast
  interval of the fitted one (:mod:`.forecast`: the same shoppers on the fit's bootstrap
  replicate scenarios, the fit's uncertainty and the simulation's noise). This is the
  fair check: a point estimate of a fitted scenario is off the truth by what the data
  leaves uncertain, which no interval of simulation noise alone counts;
- beside it, whether the fitted point estimate lies inside the true profit's interval of
  simulation noise alone (the narrow check, kept so that nothing is hidden), and whether
  the true profit lies inside the 2.5-97.5 percentiles of the replicate scenarios' profits
  (the fit's spread alone: the true and the replicate scenarios meet the same shoppers, so
  this is the strict paired view, which the forecast's noise term makes lenient);
- the rankings, and whether every pair of policies the true scenario tells apart (the
  paired 95% interval of their per-shopper difference excludes 0) is ordered the same
  way on the fitted scenario.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from agents.exploration import Exploration
from agents.logs.simulate import simulate_logs
from agents.policy import Policy
from agents.rollout import run_policy
from envs.scenario import Scenario
from experiments.calibration import FORECAST_SCENARIOS
from experiments.calibration.forecast import forecast, mean_and_error, noise_interval
from experiments.calibration.objective import Array, LogData, ShopData
from experiments.calibration.parameters import apply, parameter, resolve
from experiments.calibration.pipeline import CalibrationResult, calibrate
from experiments.calibration.sessions import simulate_sessions
from experiments.evaluation.kpis import paired_interval

DATA_SEED_OFFSET = 1_000_003  # the data's shoppers are never the fit's
EVAL_SEED_OFFSET = 11  # nor the policies'


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
) -> tuple[dict[str, dict[str, dict[str, float]]], dict[str, dict[str, Array]]]:
    """Profit per 1,000 shoppers and its 95% interval of simulation noise, per scenario and
    policy; and the per-shopper profits they come from."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    raw: dict[str, dict[str, Array]] = {}
    for label, scenario in scenarios.items():
        out[label], raw[label] = {}, {}
        for policy in policies:
            profit = run_policy(scenario, policy, n_shoppers, seed).profit
            mean, error = mean_and_error(profit)
            low, high = noise_interval(mean, error)
            out[label][policy.name] = {"estimate": mean, "low": low, "high": high}
            raw[label][policy.name] = profit
    return out, raw


def separated_pairs(profits: Mapping[str, Array]) -> list[tuple[str, str]]:
    """The pairs ``(better, worse)`` of policies whose paired 95% interval of the
    per-shopper profit difference (same shoppers) excludes 0."""
    names = list(profits)
    pairs = []
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            diff = paired_interval(profits[a], profits[b])
            if diff.low > 0:
                pairs.append((a, b))
            elif diff.high < 0:
                pairs.append((b, a))
    return pairs


def compare_policies(
    true: Scenario,
    result: CalibrationResult,
    policies: Sequence[Policy],
    n_shoppers: int,
    seed: int,
    scenarios: int = FORECAST_SCENARIOS,
) -> dict[str, Any]:
    """Each policy's profit per 1,000 shoppers on the true scenario, the start and the fitted
    one with its forecast interval (all on the same shoppers), the rankings, and the checks
    of the module docstring."""
    profits, raw = policy_profits({"true": true, "start": result.start}, policies, n_shoppers, seed)
    forecasts = forecast(result, policies, n_shoppers, seed, scenarios)
    profits["fitted"] = {
        n: dict(zip(("estimate", "low", "high"), (f.estimate, *f.noise_interval), strict=True))
        for n, f in forecasts.items()
    }
    names = [p.name for p in policies]

    def ranking(label: str) -> list[str]:
        return sorted(names, key=lambda n: -profits[label][n]["estimate"])

    fitted = profits["fitted"]
    separated = separated_pairs(raw["true"])
    flipped = [[a, b] for a, b in separated if fitted[a]["estimate"] <= fitted[b]["estimate"]]
    matched = {
        n: bool(forecasts[n].low <= profits["true"][n]["estimate"] <= forecasts[n].high)
        for n in names
    }
    # the true and the replicate scenarios meet the same shoppers: against the truth the
    # replicates' spread alone is the paired view (the forecast adds the noise they share)
    spread = {
        n: bool(
            forecasts[n].fit_interval[0]
            <= profits["true"][n]["estimate"]
            <= forecasts[n].fit_interval[1]
        )
        for n in names
    }
    narrow = {
        n: bool(profits["true"][n]["low"] <= fitted[n]["estimate"] <= profits["true"][n]["high"])
        for n in names
    }
    return {
        "profit_per_1000": profits,
        "forecast": {n: f.to_json() for n, f in forecasts.items()},
        "true_within_forecast": matched,
        "matched": sum(matched.values()),
        "true_within_replicates": spread,
        "within_replicates": sum(spread.values()),
        "fitted_within_true_interval": narrow,
        "within_true_interval": sum(narrow.values()),
        "ranking_true": ranking("true"),
        "ranking_fitted": ranking("fitted"),
        "ranking_start": ranking("start"),
        "same_ranking": ranking("true") == ranking("fitted"),
        "separated_true": [list(p) for p in separated],
        "separated_flipped": flipped,
        "separated_same_order": not flipped,
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
    forecast_scenarios: int = FORECAST_SCENARIOS,
    workers: int = 1,
) -> tuple[dict[str, Any], CalibrationResult]:
    """Recover ``changes`` by fitting ``fit`` (see the module docstring); ``workers``
    processes simulate the fit's candidates."""
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
        workers=workers,
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
            true, result, policies, n_eval, seed + EVAL_SEED_OFFSET, forecast_scenarios
        )
    return report, result
