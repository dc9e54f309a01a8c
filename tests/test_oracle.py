"""The oracle: beats every baseline on every scenario, earns what it verified, is deterministic."""

from __future__ import annotations

import numpy as np
import pytest

import envs
from agents.oracle import Oracle, candidate_plans
from agents.policy import PrivilegedPolicy
from agents.registry import available_policies, build_policies
from agents.rollout import run_policy
from envs.core import ShopperCore

N_SHOPPERS = 3000
COHORT = 1500  # two cohorts: memory and budget carry over


def test_oracle_beats_every_baseline_on_every_scenario(shipped_name: str) -> None:
    scenario = envs.load_scenario(shipped_name)
    # the learned opponents and the informed bound have tests of their own (and a cost)
    names = [
        n
        for n in available_policies(scenario)
        if "<" not in n and n not in ("uplift", "bandit", "informed")
    ]
    policies = build_policies(names, scenario)
    profit = {
        p.name: float(run_policy(scenario, p, N_SHOPPERS, 11, COHORT).profit.mean())
        for p in policies
    }
    oracle = profit.pop("oracle")
    worst_gap = min(oracle - v for v in profit.values())
    assert worst_gap > 0, (shipped_name, oracle, profit)


def test_oracle_run_earns_exactly_what_it_verified() -> None:
    scenario = envs.load_scenario("black_friday")  # budget, a small agent desk, memory
    oracle = build_policies(["merchant_rules", "conceder", "oracle"], scenario)[-1]
    assert isinstance(oracle, Oracle)
    out = run_policy(scenario, oracle, N_SHOPPERS, 5, COHORT)
    cohorts = out.profit.reshape(-1, COHORT).sum(axis=1)
    np.testing.assert_allclose(cohorts, oracle.verified, rtol=1e-9)
    never = run_policy(scenario, build_policies(["never"], scenario)[0], N_SHOPPERS, 5, COHORT)
    # cohort by cohort from the same start, never below never
    assert (cohorts >= never.profit.reshape(-1, COHORT).sum(axis=1) - 1e-6).all()


def test_oracle_is_privileged_and_checks_its_binding() -> None:
    scenario = envs.load_scenario("default")
    oracle = Oracle(scenario)
    assert isinstance(oracle, PrivilegedPolicy)
    core = ShopperCore(scenario, 10, autoreset=False)
    obs = core.reset(0)
    with pytest.raises(RuntimeError, match="bound"):
        oracle.act(obs, core.action_masks())
    other = ShopperCore(envs.load_scenario("luxury"), 10, autoreset=False)
    other.reset(0)
    with pytest.raises(ValueError, match="luxury"):
        oracle.bind(other, 0)
    with pytest.raises(ValueError, match="repairs"):
        Oracle(scenario, repairs=-1)


def test_candidate_plans_cover_every_catalogue_entry() -> None:
    scenario = envs.load_scenario("default")
    plans = candidate_plans(scenario)
    assert plans[0].is_never
    names = {p.name for p in plans}
    for c in scenario.concessions:
        if c.channel == "email":
            assert f"{c.name}@away" in names
        else:
            assert {f"{c.name}@start", f"{c.name}@exit_intent"} <= names


def test_oracle_follows_the_masks_and_workers_change_nothing() -> None:
    scenario = envs.load_scenario("black_friday")  # budget and agent desk in play
    runs = []
    for workers in (1, 2):
        oracle = Oracle(scenario, workers=workers)
        try:
            out = run_policy(scenario, oracle, 600, 3, 300)
        finally:
            oracle.close()
        runs.append(out)
    np.testing.assert_array_equal(runs[0].profit, runs[1].profit)
    np.testing.assert_array_equal(runs[0].actions, runs[1].actions)
    core = ShopperCore(scenario, 300, autoreset=False)
    oracle = Oracle(scenario)
    obs = core.reset(9)
    oracle.bind(core, 9)
    for _ in range(scenario.horizon):
        mask = core.action_masks()
        actions = oracle.act(obs, mask)
        assert mask[np.arange(core.n), actions].all()
        obs, *_ = core.step(actions)
