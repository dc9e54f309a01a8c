"""Off-policy figures known by construction come out exact, not estimated.

- ``never`` on a sequential log of the simulator and on a single-decision A/B log: its
  concession spend is 0 [0, 0] by every estimator, flagged exact (in the result, its JSON,
  the console and the report); a policy that sometimes offers is estimated as before;
- the verdict comes from the policy's probabilities on the log, not its name: a rule
  that could offer but never does on these shoppers is exact too, and a log where the
  default action itself booked spend makes nothing exact.
"""

from __future__ import annotations

import io
import json
from typing import Any

import numpy as np
import pandas as pd
import pytest
from rich.console import Console

import envs
from agents.baselines import FixedAction
from agents.exploration import Exploration
from agents.logs import from_dataframe, from_table
from agents.logs.simulate import simulate_logs
from agents.registry import build_policies
from experiments.offpolicy import OPESettings, evaluate_offpolicy
from experiments.offpolicy.bootstrap import BootstrapSettings
from experiments.offpolicy.fqe import ValueModelSettings
from experiments.offpolicy.render import render
from experiments.offpolicy.result import SPEND_KEY, Estimate, OPEResult
from experiments.reporting.offpolicy import offpolicy_figures, offpolicy_html

SETTINGS = OPESettings(
    bootstrap=BootstrapSettings(n_resamples=100, seed=0),
    value_model=ValueModelSettings(min_journeys=50, repeats=1, max_iter=20),
)
ZERO = Estimate(0.0, 0.0, 0.0)


class OffersAboveCart:
    """Offers the first concession when ``cart_value`` is above ``limit``: on shoppers
    whose carts never are, it never offers, though nothing in its name says so."""

    def __init__(self, limit: float, column: int) -> None:
        self.name = f"offer_above_{limit:g}"
        self.limit, self.column = limit, column

    def act(self, obs: np.ndarray, mask: np.ndarray) -> np.ndarray:
        return (obs[:, self.column] > self.limit).astype(np.int64)


@pytest.fixture(scope="module")
def sequential() -> OPEResult:
    scenario = envs.load_scenario("default")
    names = [f.name for f in envs.feature_schema(scenario)]
    logger, never, always = build_policies(
        ["merchant_rules", "never", "always_recovery_email"], scenario
    )
    table = simulate_logs(scenario, logger, 400, 3, Exploration("epsilon", 0.3))
    cart = names.index("cart_value")
    policies = [never, logger, always, OffersAboveCart(1e9, cart)]
    return evaluate_offpolicy(from_table(table), policies, settings=SETTINGS)


def _assert_exact(result: OPEResult, policy: str) -> None:
    r = result.results[policy]
    assert set(r.estimators) >= {"pdis", "wpdis", "dr", "wdr"} or set(r.estimators) >= {
        "ips",
        "snips",
        "dr",
    }
    for name, outputs in r.estimators.items():
        assert outputs[SPEND_KEY] == ZERO, (policy, name)
    assert r.recommended.outputs[SPEND_KEY] == ZERO
    assert "never offers" in r.exact[SPEND_KEY]


def _assert_estimated(result: OPEResult, policy: str) -> None:
    r = result.results[policy]
    assert SPEND_KEY not in r.exact
    spend = r.recommended.outputs[SPEND_KEY]
    assert spend.low is not None and spend.high is not None and spend.high > spend.low


def test_never_spends_exactly_nothing_on_a_sequential_log(sequential: OPEResult) -> None:
    _assert_exact(sequential, "never")
    _assert_exact(sequential, "offer_above_1e+09")  # by its probabilities, not its name
    for policy in ("merchant_rules", "always_recovery_email"):
        _assert_estimated(sequential, policy)
    assert sequential.results["never"].estimators["dr"]["profit_per_1000"].high is not None


def test_the_exact_spend_survives_json_and_is_shown(sequential: OPEResult) -> None:
    data = json.loads(json.dumps(sequential.to_json()))
    assert data["results"]["never"]["exact"] == dict(sequential.results["never"].exact)
    assert "exact" not in data["results"]["merchant_rules"]
    assert OPEResult.from_json(data) == sequential
    out = io.StringIO()
    render(sequential, Console(file=out, width=250, color_system=None))
    text = out.getvalue()
    assert "0 [0, 0] exact" in text
    assert "never: spend per 1000 is exact: the policy never offers" in text
    html = offpolicy_html(offpolicy_figures(sequential, []), None)
    assert "exact: the policy never offers" in html


def ab_log(n: int, seed: int, control_spend: float = 0.0) -> Any:
    """A single-decision coupon test with the ledger's spend terms: the coupon (drawn
    with probability 0.3) costs 5 EUR on an order; the control ``control_spend``."""
    rng = np.random.default_rng(seed)
    coupon = rng.random(n) < 0.3
    bought = rng.random(n) < 0.2 + 0.1 * coupon
    cost = np.where(bought, np.where(coupon, 5.0, control_spend), 0.0)
    frame = pd.DataFrame(
        {
            "journey": [f"c{i}" for i in range(n)],
            "step": 0,
            "loyal": (rng.random(n) < 0.5).astype(float),
            "eligible_control": True,
            "eligible_coupon": True,
            "action": np.where(coupon, "coupon", "control"),
            "propensity": np.where(coupon, 0.3, 0.7),
            "reward": np.where(bought, 20.0, 0.0) - cost,
            "term_concession_cost": cost,
            "term_voucher_liability": 0.0,
            "term_agent_cost": 0.0,
            "journey_end": np.where(bought, "purchase", "abandoned"),
        }
    )
    return from_dataframe(frame, logger="coupon A/B test")


def test_never_spends_exactly_nothing_on_a_single_decision_log() -> None:
    arms = ("control", "coupon")
    policies = [FixedAction(arms, "control"), FixedAction(arms, "coupon")]
    result = evaluate_offpolicy(ab_log(600, 1), policies, settings=SETTINGS)
    assert result.log.single_decision
    _assert_exact(result, "fixed:control")
    _assert_estimated(result, "fixed:coupon")


def test_nothing_is_exact_where_the_default_action_itself_spent() -> None:
    arms = ("control", "coupon")
    log = ab_log(600, 1, control_spend=1.0)
    result = evaluate_offpolicy(log, [FixedAction(arms, "control")], settings=SETTINGS)
    _assert_estimated(result, "fixed:control")
