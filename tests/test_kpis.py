"""KPIs: equal hand-computed values on a tiny market; paired intervals are narrower; stats."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy import stats

import envs
from agents.registry import build_policy
from agents.rollout import run_policy
from envs.scenario import Scenario
from experiments.evaluation.kpis import (
    Bootstrap,
    Interval,
    mean_interval,
    paired_interval,
    ratio_intervals,
    share_interval,
    to_json,
    unpaired_interval,
)
from experiments.evaluation.paired import evaluate, public

# One cart: price 100, fee 5, cost of goods 60, carrier 6 (conftest's THING). "sure"
# shoppers buy at step 3 whatever happens; "stuck" ones, made very price sensitive, never
# buy without a deal and always buy with 30% off (20 logits of appeal).
THIRTY_OFF = {
    "name": "thirty_off",
    "kind": "percent_discount",
    "magnitude": 0.3,
    "expiry_steps": 64,
}
FULL = 100.0 + 5.0 - 60.0 - 6.0  # 39 EUR: an order at list price
DEAL = FULL - 30.0  # 9 EUR: an order with 30% off


@pytest.fixture(scope="module")
def tiny_result(tiny_market: Callable[..., Scenario], tmp_path_factory: Any) -> dict[str, Any]:
    scenario = tiny_market(
        concessions=[THIRTY_OFF],
        segments=("sure", {"base": "stuck", "price_sensitivity": 10.0}),
    )
    rules = Path(tmp_path_factory.mktemp("rules")) / "all_thirty.yaml"
    rules.write_text("name: all_thirty\nrules:\n  - offer: thirty_off\n")
    return evaluate(
        scenario,
        ["never", f"rules:{rules}", "oracle"],
        n_shoppers=400,
        seed=4,
        cohort_size=200,
        bootstrap=Bootstrap(n_resamples=300, seed=1),
    )


def _est(i: dict[str, float | None]) -> float:
    assert i["estimate"] is not None
    return i["estimate"]


def _is_exact(i: dict[str, float | None], value: float) -> bool:
    return i["low"] == pytest.approx(value) and i["high"] == pytest.approx(value)


def test_tiny_market_kpis_equal_hand_computed_values(tiny_result: dict[str, Any]) -> None:
    r = tiny_result
    n = r["n_shoppers"]
    sure = r["by_segment"]["sure"]["never"]["shoppers"]
    stuck = r["by_segment"]["stuck"]["never"]["shoppers"]
    assert sure + stuck == n and sure > 100 and stuck > 100
    never, deal, oracle = (r["overall"][k] for k in ("never", "all_thirty", "oracle"))
    per = 1000.0 / n

    assert _est(never["profit_per_1000"]) == pytest.approx(FULL * sure * per)
    assert _est(never["conversion"]) == pytest.approx(sure / n)
    for kpi in ("spend_per_1000", "offer_rate", "giveaway_rate", "giveaway_spend_per_1000"):
        assert _est(never[kpi]) == 0.0 and _is_exact(never[kpi], 0.0)

    # everyone gets 30% off at the first step and buys with it
    assert _est(deal["profit_per_1000"]) == pytest.approx(DEAL * 1000)
    assert _is_exact(deal["profit_per_1000"], DEAL * 1000)
    assert _est(deal["conversion"]) == 1.0
    assert _est(deal["revenue_per_1000"]) == pytest.approx(105.0 * 1000)
    assert _est(deal["spend_per_1000"]) == pytest.approx(30.0 * 1000)
    assert _est(deal["spend_by_kind_per_1000"]["percent_discount"]) == pytest.approx(30_000)
    assert _est(deal["offer_rate"]) == 1.0
    assert _est(deal["interruptions_per_shopper"]) == 1.0
    assert _est(deal["harassment_exits"]) == 0.0
    # the sure half would have bought anyway: given away
    assert _est(deal["giveaway_rate"]) == pytest.approx(sure / n)
    assert _est(deal["giveaway_spend_per_1000"]) == pytest.approx(30.0 * sure * per)
    assert _est(deal["diff_vs_never_per_1000"]) == pytest.approx((DEAL * n - FULL * sure) * per)

    # the oracle gives the deal to the stuck half only
    assert _est(oracle["profit_per_1000"]) == pytest.approx((FULL * sure + DEAL * stuck) * per)
    assert _est(oracle["offer_rate"]) == pytest.approx(stuck / n)
    assert _est(oracle["giveaway_rate"]) == 0.0
    assert _est(deal["regret_per_1000"]) == pytest.approx(30.0 * sure * per)
    captured = (DEAL * n - FULL * sure) / (DEAL * stuck)
    assert _est(deal["profit_captured"]) == pytest.approx(captured)
    low, high = deal["profit_captured"]["low"], deal["profit_captured"]["high"]
    assert low <= captured <= high
    assert _is_exact(oracle["profit_captured"], 1.0) and _is_exact(never["profit_captured"], 0.0)
    assert r["best_baseline"] == "never"
    assert _est(deal["diff_vs_best_per_1000"]) == _est(deal["diff_vs_never_per_1000"])

    sure_group = r["by_segment"]["sure"]
    assert _is_exact(sure_group["never"]["profit_per_1000"], FULL * 1000)
    assert _is_exact(sure_group["all_thirty"]["profit_per_1000"], DEAL * 1000)
    assert _est(sure_group["all_thirty"]["giveaway_rate"]) == 1.0
    assert list(r["by_consent"]) == ["consent"]  # consent_rate 1
    json.dumps(public(r), allow_nan=False)


def test_paired_intervals_are_narrower_than_unpaired_on_the_same_shoppers() -> None:
    scenario = envs.load_scenario("default")
    never = run_policy(scenario, build_policy("never", scenario), 3000, 2, 1500)
    for name in ("always_free_shipping", "merchant_rules", "conceder"):
        other = run_policy(scenario, build_policy(name, scenario), 3000, 2, 1500)
        paired = paired_interval(other.profit, never.profit)
        unpaired = unpaired_interval(other.profit, never.profit)
        assert paired.estimate == pytest.approx(unpaired.estimate)
        assert 0 < paired.width < unpaired.width / 2, (name, paired, unpaired)


def test_mean_interval_is_the_student_t_interval() -> None:
    x = np.array([1.0, 2.0, 3.0, 4.0, 10.0])
    i = mean_interval(x, 0.9)
    half = stats.t.ppf(0.95, df=4) * x.std(ddof=1) / math.sqrt(5)
    assert i.estimate == 4.0
    assert (i.low, i.high) == pytest.approx((4.0 - half, 4.0 + half))
    assert mean_interval(np.full(7, 3.0)) == Interval(3.0, 3.0, 3.0)
    assert math.isnan(mean_interval(np.array([1.0])).low)
    rare = share_interval(np.array([1] + [0] * 99))
    assert rare.low == 0.0 and rare.high > 0.01


def test_unpaired_is_welch() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.normal(1, 1, 50), rng.normal(0, 3, 80)
    i = unpaired_interval(a, b)
    ci = stats.ttest_ind(a, b, equal_var=False).confidence_interval()
    assert (i.low, i.high) == pytest.approx((ci.low, ci.high))


def test_ratio_intervals_are_seeded_and_cover_the_estimate() -> None:
    rng = np.random.default_rng(3)
    rows = np.stack([rng.normal(2, 1, 500), rng.normal(4, 1, 500), rng.random(500) < 0.3])
    pairs = [(0, 1), (2, 1)]
    first = ratio_intervals(rows, pairs, boot=Bootstrap(400, seed=5))
    again = ratio_intervals(rows, pairs, boot=Bootstrap(400, seed=5))
    assert first == again
    for i, (a, b) in zip(first, pairs, strict=True):
        assert i.estimate == pytest.approx(rows[a].mean() / rows[b].mean())
        assert i.low < i.estimate < i.high
    zero = ratio_intervals(np.stack([np.ones(10), np.zeros(10)]), [(0, 1)])
    assert math.isinf(zero[0].estimate) or math.isnan(zero[0].estimate)
    with pytest.raises(ValueError, match="method"):
        Bootstrap(method="bca")


def test_to_json_turns_nan_into_null() -> None:
    data = {"a": Interval(1.0, math.nan, 2.0), "b": [np.float64(math.inf), np.int64(3)]}
    assert to_json(data) == {"a": {"estimate": 1.0, "low": None, "high": 2.0}, "b": [None, 3]}
