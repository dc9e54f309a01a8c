"""Policies on a fitted scenario, for the calibration benchmarks: an agent trained on a
scenario, and the table of each policy's true profit against its forecast."""

from __future__ import annotations

from typing import Any

from agents.policy import Policy
from envs.scenario import Scenario


def trained_agent(scenario: Scenario, steps: int, seed: int, name: str = "trained_agent") -> Policy:
    """MaskablePPO (the project's hyper-parameters) trained on ``scenario`` for ``steps``."""
    from agents.learned import LearnedPolicy
    from experiments.benchmarks.train import maskable_ppo

    model = maskable_ppo(scenario, seed)
    model.learn(total_timesteps=steps)
    return LearnedPolicy(model, name=name)


def print_policies(pol: dict[str, Any]) -> None:
    """Per policy: the true profit, the fitted one with its forecast interval, both checks;
    then the rankings."""
    k = next(iter(pol["forecast"].values()))["replicates"]["n"]
    print(
        f"  profit per 1,000 shoppers; forecast = the fitted scenario's with the fit's "
        f"uncertainty ({k} replicate scenarios) and the simulation's noise:"
    )
    for n in pol["ranking_true"]:
        t, f = pol["profit_per_1000"]["true"][n], pol["forecast"][n]
        print(
            f"  {n:<24} true €{t['estimate']:,.0f} [{t['low']:,.0f}, {t['high']:,.0f}]"
            f"  fitted €{f['estimate']:,.0f} forecast [{f['low']:,.0f}, {f['high']:,.0f}]"
            f" (noise only [{f['noise']['low']:,.0f}, {f['noise']['high']:,.0f}])"
            f"  truth {'inside' if pol['true_within_forecast'][n] else 'OUTSIDE'} the forecast;"
            f" fitted {'inside' if pol['fitted_within_true_interval'][n] else 'outside'}"
            " the true interval"
        )
    total = len(pol["true_within_forecast"])
    print(
        f"  truth inside the forecast: {pol['matched']} of {total} (inside the replicates' "
        f"spread alone: {pol['within_replicates']} of {total}); fitted inside the true "
        f"interval (noise only): {pol['within_true_interval']} of {total}"
    )
    print(
        f"  ranking true {', '.join(pol['ranking_true'])}; fitted "
        f"{', '.join(pol['ranking_fitted'])}; same: {pol['same_ranking']}"
    )
    pairs = pol["separated_true"]
    flipped = "".join(
        f"; out of order: {a} above {b} on the truth, not on the fit"
        for a, b in pol["separated_flipped"]
    )
    print(
        f"  pairs the true scenario tells apart: {len(pairs)}; all in the same order on the "
        f"fitted: {pol['separated_same_order']}{flipped}"
    )
