"""Shared fixtures of the simulator tests: shipped scenarios, a stress market, tiny markets.

- ``shipped_name`` is parametrised over :func:`envs.available_scenarios`, so that every
  scenario added to ``conf/scenario/`` is covered without touching the tests.
- ``stress_scenario`` is the default market pushed to its edges: a campaign budget,
  future-value terms, discounts larger than any cart, e-mails that always end consent
  of an annoyed shopper, low tolerance and low consent.
- ``tiny_market`` builds hand-computable markets: a ``sure`` shopper (valuation 5x the
  list price, no spread, hesitation -5, no hazard) who walks down the funnel one stage
  per step and buys at step 3; a ``stuck`` shopper (valuation 0.5x, hesitation +5, no
  hazard) who never advances nor leaves until the horizon.
"""

from __future__ import annotations

import copy
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from mlflow.tracking import MlflowClient
from sb3_contrib import MaskablePPO

import envs
from agents.vec_env import ShopperVecEnv
from envs.scenario import Scenario

_SEGMENT_BASE: dict[str, Any] = {
    "share": 1.0,
    "valuation_spread": 0.0,
    "hesitation_spread": 0.0,
    "abandon_hazard": 0.0,
    "return_probability": 0.0,
    "return_decay": 1.0,
    "price_sensitivity": 1.0,
    "shipping_sensitivity": 0.0,
    "speed_sensitivity": 0.0,
    "gift_sensitivity": 0.0,
    "voucher_sensitivity": 0.0,
    "help_value": 0.0,
    "tolerance": 100.0,
    "retarget_lift": 0.0,
}
SURE_SEGMENT: dict[str, Any] = {
    **_SEGMENT_BASE,
    "name": "sure",
    "valuation": 5.0,
    "hesitation": -5.0,
}
STUCK_SEGMENT: dict[str, Any] = {
    **_SEGMENT_BASE,
    "name": "stuck",
    "valuation": 0.5,
    "hesitation": 5.0,
}
THING: dict[str, Any] = {
    "name": "thing",
    "price": 100.0,
    "unit_cost": 60.0,
    "shipping_fee": 5.0,
    "shipping_cost": 6.0,
}
SEGMENTS = {"sure": SURE_SEGMENT, "stuck": STUCK_SEGMENT}


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "shipped_name" in metafunc.fixturenames:
        metafunc.parametrize("shipped_name", envs.available_scenarios())


def _stress() -> Scenario:
    data = envs.load_scenario("default").to_dict()
    data["name"] = "stress"
    data["campaign_budget_per_1000"] = 400.0
    data["max_offers_per_shopper"] = 8
    data["consent_rate"] = 0.4
    data["future_value"] = {"retained_customer": 5.0, "annoyed_customer": 3.0}
    data["funnel"]["opt_out_probability"] = 1.0
    for segment in data["segments"]:
        segment["tolerance"] = 6.0
        segment.pop("consent_rate", None)
    data["concessions"] = [
        *data["concessions"],
        {
            "name": "huge_fixed",
            "kind": "fixed_discount",
            "magnitude": 1000.0,
            "expiry_steps": 30,
            "once_per_shopper": False,
        },
        {"name": "ninety_off", "kind": "percent_discount", "magnitude": 0.9, "expiry_steps": 30},
    ]
    return Scenario.from_dict(data)


@pytest.fixture(scope="session")
def stress_scenario() -> Scenario:
    return _stress()


@pytest.fixture(scope="session")
def scenario_by_name() -> Callable[[str], Scenario]:
    """A shipped scenario by name, or ``"stress"``; each is built once per session."""
    cache: dict[str, Scenario] = {}

    def get(name: str) -> Scenario:
        if name not in cache:
            cache[name] = _stress() if name == "stress" else envs.load_scenario(name)
        return cache[name]

    return get


@pytest.fixture(scope="session")
def tiny_market() -> Callable[..., Scenario]:
    """``build(concessions=[...], segments=("sure",), products=[THING], **top_level)``.

    A segment is ``"sure"``, ``"stuck"`` or a mapping of overrides with ``"base"`` naming
    one of them; products default to one cart at 100 EUR (fee 5, cost 60, carrier 6).
    """

    def segment(spec: str | dict[str, Any]) -> dict[str, Any]:
        if isinstance(spec, str):
            return copy.deepcopy(SEGMENTS[spec])
        overrides = dict(spec)
        return {**copy.deepcopy(SEGMENTS[overrides.pop("base")]), **overrides}

    def build(
        concessions: list[dict[str, Any]] | None = None,
        segments: tuple[str | dict[str, Any], ...] = ("sure",),
        products: list[dict[str, Any]] | None = None,
        **top: Any,
    ) -> Scenario:
        data: dict[str, Any] = {
            "name": "tiny",
            "segments": [segment(s) for s in segments],
            "products": copy.deepcopy(products if products is not None else [THING]),
            "concessions": copy.deepcopy(concessions or []),
            "consent_rate": 1.0,
            "calibration": {"existing_customer_share": 0.0},
            **top,
        }
        return Scenario.from_dict(data)

    return build


@pytest.fixture
def default_dict() -> dict[str, Any]:
    """A fresh, mutable mapping of the default scenario."""
    return envs.load_scenario("default").to_dict()


@pytest.fixture(scope="session")
def store_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty MLflow SQLite store (schema, no ``concede`` experiment), made once per
    test process: copying it is much faster than letting MLflow create a store."""
    path = tmp_path_factory.getbasetemp() / "mlflow-template" / "mlflow.db"
    if not path.exists():
        building = Path(tempfile.mkdtemp(dir=tmp_path_factory.getbasetemp()))
        MlflowClient(f"sqlite:///{building / 'mlflow.db'}").search_experiments()
        path.parent.mkdir(exist_ok=True)
        (building / "mlflow.db").replace(path)
    return path


def tiny_maskable(scenario: Scenario | str, timesteps: int = 0) -> MaskablePPO:
    """A small MaskablePPO on 16 shoppers, trained for ``timesteps`` (none: untrained)."""
    env = ShopperVecEnv(scenario, 16, seed=0)
    model = MaskablePPO(
        "MlpPolicy",
        env,
        n_steps=64,
        batch_size=256,
        n_epochs=2,
        seed=0,
        policy_kwargs={"net_arch": [16]},
        device="cpu",
    )
    return model.learn(timesteps) if timesteps else model


@pytest.fixture(scope="module")
def one_torch_thread() -> Iterator[None]:
    """Torch on one thread for a test module: the networks and batches are tiny, and on 2
    shared cores torch's intra-op threads cost far more than they give."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def trained(one_torch_thread: None) -> MaskablePPO:
    """A tiny MaskablePPO trained for 2,048 timesteps on ``default``, once per module."""
    return tiny_maskable("default", 2048)
