"""The decision service in the simulator's loop: its log gives the simulator's OPE estimates.

A tiny untrained MaskablePPO of ``default`` is served (two workers, ε = 0.3, on
127.0.0.1, started and stopped here). The batched simulator (``ShopperCore``, 300
shoppers arriving over the day, seeded) asks the service at every step what to do for
the shoppers in a journey (their features and merchant-side context, as a deployment
would send them), plays the actions the service chose, and sends each decision's margin
(its ledger terms, and how the journey ended on its last step) to ``/reward``.

The test builds the simulator's own decision log of the very same decisions — the same
actions, the service's propensities, the simulator's eligibility masks (which must be the
actions the service allowed) — joins the service's journals into its log, and checks that
off-policy evaluation gives the same figures on both.
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from conftest import tiny_maskable

import envs
from agents.export import export_policy
from agents.logs import DecisionLog, LogSpec, from_table, read_log
from agents.logs.schema import (
    ABANDONED,
    ACTION,
    HORIZON,
    JOURNEY,
    JOURNEY_END,
    PROPENSITY,
    PURCHASE,
    REWARD,
    STEP,
)
from agents.registry import build_policy
from agents.serving.runtime import PolicyRuntime
from agents.serving.server import Service, served_service
from agents.serving.service.join import write_service_log
from agents.serving.simulator_events import simulator_context
from envs.core import PURCHASE as PURCHASE_EVENT
from envs.core import ShopperCore
from envs.ledger import LEDGER_TERMS
from envs.scenario import Scenario
from experiments.offpolicy.bootstrap import BootstrapSettings
from experiments.offpolicy.evaluation import OPESettings, evaluate_offpolicy
from experiments.offpolicy.fqe import ValueModelSettings

pytestmark = [pytest.mark.server, pytest.mark.usefixtures("one_torch_thread")]
EPSILON = 0.3
SHOPPERS = 300
SEED = 7
POLICIES = ("never", "merchant_rules")


@pytest.fixture(scope="module")
def scenario() -> Scenario:
    return envs.load_scenario("default")


@pytest.fixture(scope="module")
def policy_dir(scenario: Scenario, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("policy") / "p"
    return export_policy(tiny_maskable(scenario), scenario, folder)


def post(port: int, path: str, body: Any) -> Any:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        connection.request(
            "POST", path, body=json.dumps(body), headers={"Content-Type": "application/json"}
        )
        reply = connection.getresponse()
        raw = reply.read()
    finally:
        connection.close()
    assert reply.status == 200, raw[:500]
    return json.loads(raw)


def journey_key(i: int) -> str:
    """The journey key of simulator row ``i``: zero-padded, so that sorting the keys as
    strings (as the join does) sorts the shoppers by row."""
    return f"{SEED}-{i:04d}"


def run_through_service(
    service: Service, scenario: Scenario, runtime: PolicyRuntime
) -> tuple[pa.Table, dict[str, float]]:
    """Step the simulator with the service's decisions; return the simulator's own log of
    those decisions and counts of what the service answered."""
    core = ShopperCore(scenario, SHOPPERS, autoreset=False, stagger=scenario.horizon)
    obs = core.reset(SEED)
    features = runtime.feature_names
    keys = ("row", "step", "obs", "mask", "probs", "action", "taken", "reward", "terms", "end")
    rows: dict[str, list[Any]] = {k: [] for k in keys}
    counts: dict[str, float] = {"decisions": 0, "explored": 0, "expected": 0.0, "variance": 0.0}
    end_names = np.array([None, PURCHASE, ABANDONED, HORIZON], dtype=object)
    while core.running:
        mask = core.action_masks()
        alive = np.flatnonzero(core.alive)
        actions = np.zeros(core.n, dtype=np.int64)
        if not len(alive):
            core.step(actions)
            continue
        context = {k: v[alive] for k, v in simulator_context(core).items()}
        columns = {f: obs[alive, j].astype(np.float64) for j, f in enumerate(features)}
        columns.update(context)
        events = [
            {
                **{name: float(columns[name][i]) for name in runtime.input_names},
                "journey": journey_key(int(r)),
                "step": int(core.t[r]),
            }
            for i, r in enumerate(alive)
        ]
        answered = post(service.port, "/decide", {"events": events})
        assert answered["logged"] is True
        decisions = answered["decisions"]
        chosen = np.array([runtime.action_names.index(d["action"]) for d in decisions])
        taken = np.array([d["probability"] for d in decisions])
        # every action's probability, from the runtime's own decision and allowed actions
        ours = runtime.decide_batch(columns)
        assert ours.allowed is not None
        np.testing.assert_array_equal(
            ours.allowed, mask[alive], err_msg="the service allows other actions than the simulator"
        )
        probs = ours.allowed * (EPSILON / ours.allowed.sum(axis=1, keepdims=True))
        probs[np.arange(len(alive)), ours.action_index] += 1.0 - EPSILON
        np.testing.assert_allclose(probs[np.arange(len(alive)), chosen], taken, rtol=0, atol=1e-12)
        counts["decisions"] += len(alive)
        counts["explored"] += sum(d["explored"] for d in decisions)
        away = 1.0 - probs[np.arange(len(alive)), ours.action_index]  # P(explored)
        counts["expected"] += float(away.sum())
        counts["variance"] += float((away * (1.0 - away)).sum())
        t = core.t[alive].copy()
        actions[alive] = chosen
        obs_before = obs[alive]
        obs, reward, terminated, truncated = core.step(actions)
        purchase = core.event[alive] == PURCHASE_EVENT
        end = np.zeros(len(alive), dtype=np.int64)
        end[terminated[alive] & ~purchase] = 2
        end[purchase] = 1
        end[truncated[alive]] = 3
        terms = core.terms[:, alive].T.copy()
        post(
            service.port,
            "/reward",
            {
                "rewards": [
                    {
                        "event_id": d["event_id"],
                        "terms": dict(zip(LEDGER_TERMS, map(float, terms[i]), strict=True)),
                        "journey_end": end_names[end[i]],
                    }
                    for i, d in enumerate(decisions)
                ]
            },
        )
        for key, value in (
            ("row", alive),
            ("step", t),
            ("obs", obs_before),
            ("mask", mask[alive]),
            ("probs", probs),
            ("action", chosen),
            ("taken", taken),
            ("reward", reward[alive].copy()),
            ("terms", terms),
            ("end", end),
        ):
            rows[key].append(value)
    merged = {k: np.concatenate(v) for k, v in rows.items()}
    return simulator_log(scenario, merged), counts


def simulator_log(scenario: Scenario, rows: dict[str, np.ndarray]) -> pa.Table:
    """The simulator's decision log of ``rows`` in ``agents.logs``'s format (the
    propensity the service answered, every action's probability), rows sorted by journey
    and step."""
    order = np.lexsort((rows["step"], rows["row"]))
    r = {k: v[order] for k, v in rows.items()}
    spec = LogSpec.from_scenario(
        scenario,
        probabilities=True,
        logger="simulator",
        exploration={"kind": "epsilon", "value": EPSILON},
        propensities="exact",
    )
    consent = r["obs"][:, spec.features.index("consent")] > 0.5
    columns: dict[str, Any] = {
        JOURNEY: pa.array([journey_key(int(i)) for i in r["row"]], pa.string()),
        STEP: pa.array(r["step"], pa.int64()),
    }
    for j, name in enumerate(spec.features):
        gated = ~consent if name in spec.gated else None
        columns[name] = pa.array(r["obs"][:, j].astype(np.float64), pa.float64(), mask=gated)
    for j, name in enumerate(spec.eligible_columns):
        columns[name] = pa.array(r["mask"][:, j], pa.bool_())
    columns[ACTION] = pa.array([spec.actions[a] for a in r["action"]], pa.string())
    columns[PROPENSITY] = pa.array(r["taken"], pa.float64())
    for j, name in enumerate(spec.probability_columns):
        columns[name] = pa.array(r["probs"][:, j], pa.float64())
    columns[REWARD] = pa.array(r["reward"], pa.float64())
    for name, term in zip(spec.term_columns, spec.terms, strict=True):
        columns[name] = pa.array(r["terms"][:, LEDGER_TERMS.index(term)], pa.float64())
    names = np.array([None, PURCHASE, ABANDONED, HORIZON], dtype=object)
    columns[JOURNEY_END] = pa.array(names[r["end"]].tolist(), pa.string())
    schema = spec.arrow_schema()
    return pa.Table.from_arrays([columns[f.name] for f in schema], schema=schema)


@pytest.fixture(scope="module")
def both_logs(
    scenario: Scenario, policy_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[DecisionLog, DecisionLog, dict[str, float]]]:
    """(the simulator's log, the service's joined log, counts)."""
    work = tmp_path_factory.mktemp("service-ope")
    runtime = PolicyRuntime.load(policy_dir)
    options = ["--explore", str(EPSILON), "--flush-seconds", "0.2", "--seed", "3"]
    with served_service(policy_dir, work / "logs", 2, work / "server.log", options) as service:
        table, counts = run_through_service(service, scenario, runtime)
    # the service has stopped (SIGTERM): every acknowledged row is in its journals
    out, report = write_service_log(work / "logs", work / "log", reward_window=1e9)
    assert report.decisions == counts["decisions"] == report.rows
    assert report.open_journeys == 0 and report.orphan_rewards == 0
    assert report.rewards == counts["decisions"]
    yield from_table(table, require_propensity=True), read_log(out, require_propensity=True), counts


def test_the_service_log_holds_the_simulator_decisions(
    both_logs: tuple[DecisionLog, DecisionLog, dict[str, float]],
) -> None:
    simulated, served, counts = both_logs
    # explored: an allowed action other than the policy's, drawn with ε (1 - 1 / allowed)
    assert abs(counts["explored"] - counts["expected"]) < 4 * counts["variance"] ** 0.5
    a, b = simulated.table, served.table
    assert a.num_rows == b.num_rows == counts["decisions"]
    assert served.spec.features == simulated.spec.features
    assert served.spec.actions == simulated.spec.actions
    assert served.spec.scenario_digest == simulated.spec.scenario_digest
    for name in simulated.spec.columns:
        left, right = a.column(name).to_pylist(), b.column(name).to_pylist()
        if pa.types.is_floating(a.schema.field(name).type):
            np.testing.assert_allclose(
                np.array(left, dtype=float),
                np.array(right, dtype=float),
                rtol=1e-12,
                atol=1e-9,
                err_msg=name,
            )
        else:
            assert left == right, name


def test_the_service_log_gives_the_simulator_log_estimates(
    scenario: Scenario, both_logs: tuple[DecisionLog, DecisionLog, dict[str, float]]
) -> None:
    simulated, served, _ = both_logs
    policies = [build_policy(name, scenario) for name in POLICIES]
    settings = OPESettings(
        bootstrap=BootstrapSettings(n_resamples=199, seed=1),
        value_model=ValueModelSettings(iterations=2, max_iter=20, min_journeys=100),
        seed=2,
    )
    a = evaluate_offpolicy(simulated, policies, settings=settings).to_json()
    b = evaluate_offpolicy(served, policies, settings=settings).to_json()
    assert a["log"]["propensities"] == b["log"]["propensities"] == "logged"
    assert a["log"]["journeys"] == b["log"]["journeys"] == SHOPPERS
    for name in POLICIES:
        ours, theirs = a["results"][name], b["results"][name]
        assert ours["recommended"]["estimator"] == theirs["recommended"]["estimator"]
        assert set(ours["estimators"]) == set(theirs["estimators"]) >= {"pdis", "wpdis", "dr"}
        for estimator, outputs in ours["estimators"].items():
            for output, figures in outputs.items():
                for key in ("estimate", "low", "high"):
                    assert theirs["estimators"][estimator][output][key] == pytest.approx(
                        figures[key], rel=1e-9, abs=1e-9
                    ), (name, estimator, output, key)
        assert_close(ours["diagnostics"], theirs["diagnostics"], f"{name} diagnostics")
        assert ours["trust"] == theirs["trust"] and ours["warnings"] == theirs["warnings"]
    assert_close(a["logged"], b["logged"], "logged")


def assert_close(a: Any, b: Any, where: str) -> None:
    """JSON-like values equal, numbers to floating-point tolerance."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), where
        for key in a:
            assert_close(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, list | tuple):
        assert isinstance(b, list | tuple) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_close(x, y, f"{where}[{i}]")
    elif isinstance(a, float) and not isinstance(a, bool):
        assert b == pytest.approx(a, rel=1e-9, abs=1e-9, nan_ok=True), where
    else:
        assert a == b, where
