"""The decision service over HTTP: decide, bad input, exploration, rewards, logs, SIGTERM.

A tiny untrained MaskablePPO of ``default`` is exported once; the service runs on
127.0.0.1 with two workers (each its own journal files), started and stopped here. The
events are simulator states (shoppers in a journey, with the merchant-side context), so
that guardrails forbid varied sets of actions. One of ``black_friday`` (a campaign
budget) is served too, for the offers its budget alone withheld.
"""

from __future__ import annotations

import http.client
import json
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from conftest import tiny_maskable
from scipy import stats

import envs
from agents.export import export_policy
from agents.logs.io import read_log
from agents.logs.validate import validate
from agents.serving.runtime import PolicyRuntime
from agents.serving.server import Service, served_service
from agents.serving.service.join import read_service_log, write_service_log
from agents.serving.simulator_events import simulator_events
from envs.ledger import LEDGER_TERMS

pytestmark = [pytest.mark.server, pytest.mark.usefixtures("one_torch_thread")]
EPSILON = 0.3


@pytest.fixture(scope="module")
def policy_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    scenario = envs.load_scenario("default")
    folder = tmp_path_factory.mktemp("policy") / "p"
    return export_policy(tiny_maskable(scenario), scenario, folder)


@pytest.fixture(scope="module")
def runtime(policy_dir: Path) -> PolicyRuntime:
    return PolicyRuntime.load(policy_dir)


@pytest.fixture(scope="module")
def events(runtime: PolicyRuntime) -> list[dict[str, float]]:
    found = simulator_events(envs.load_scenario("default"), runtime.feature_names, 300)
    return [found.event(i) for i in range(len(found.obs))]


@pytest.fixture(scope="module")
def service(policy_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    work = tmp_path_factory.mktemp("service")
    options = ["--explore", str(EPSILON), "--flush-seconds", "0.2", "--seed", "1"]
    with served_service(policy_dir, work / "logs", 2, work / "server.log", options) as s:
        yield s


def post(
    port: int, path: str, body: Any, content_type: str = "application/json"
) -> tuple[int, Any]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        connection.request("POST", path, body=data, headers={"Content-Type": content_type})
        reply = connection.getresponse()
        raw = reply.read()
    finally:
        connection.close()
    try:
        return reply.status, json.loads(raw)
    except ValueError:
        return reply.status, raw


def get(port: int, path: str) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("GET", path)
        reply = connection.getresponse()
        return reply.status, reply.read()
    finally:
        connection.close()


def decide(port: int, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    status, answer = post(port, "/decide", {"events": events})
    assert status == 200, answer
    assert answer["logged"] is True
    return list(answer["decisions"])


def journey_rows(service: Service, journey: str, n: int = 1) -> list[dict[str, Any]]:
    """The joined log's rows of ``journey`` once the journals hold ``n`` of them (every
    journey closed: reward window 0)."""
    deadline = time.monotonic() + 30
    while True:
        try:
            log, _ = read_service_log(service.log_dir, reward_window=0.0)
            table = log.table
            rows = table.filter(pc.equal(table.column("journey"), journey)).to_pylist()
            if len(rows) >= n:
                return list(rows)
        except ValueError:
            pass
        assert time.monotonic() < deadline, f"{journey} was not written in 30 s"
        time.sleep(0.2)


# ---------------------------------------------------------------- decide


def test_decide_one_and_a_batch(service: Service, events: list[dict[str, float]]) -> None:
    status, one = post(service.port, "/decide", {"event": events[0]})
    assert status == 200
    (d,) = one["decisions"]
    assert set(d) == {
        "event_id", "action", "probability", "explored", "reason", "concession",
        "model_choice", "guardrail",
    }  # fmt: skip
    assert 0 < d["probability"] <= 1 and d["reason"]
    batch = decide(service.port, events[:50])
    assert len(batch) == 50
    assert len({b["event_id"] for b in batch} | {d["event_id"]}) == 51


def test_exploration_stays_within_the_guardrails_with_exact_probabilities(
    service: Service, runtime: PolicyRuntime, events: list[dict[str, float]]
) -> None:
    sample = events[:200]
    answered = decide(service.port, sample) + decide(service.port, sample)
    columns = {name: np.array([e[name] for e in sample]) for name in runtime.input_names}
    ours = runtime.decide_batch(columns)
    assert ours.allowed is not None
    names = runtime.action_names
    for i, d in enumerate(answered):
        row = i % len(sample)
        allowed = ours.allowed[row]
        a = names.index(d["action"])
        assert allowed[a], f"row {row}: {d['action']} is forbidden by the guardrails"
        decided = int(ours.action_index[row])
        expected = (1 - EPSILON) * (a == decided) + EPSILON / allowed.sum()
        assert d["probability"] == pytest.approx(expected, abs=1e-12)
        assert d["explored"] == (a != decided)
    # a fixed event drawn 2,000 times: frequencies match the probabilities (chi-square)
    row = next(i for i, ok in enumerate(ours.allowed) if ok.sum() >= 4)
    allowed_row = ours.allowed[row]
    draws = []
    for _ in range(4):
        draws += decide(service.port, [sample[row]] * 500)
    counts = Counter(names.index(d["action"]) for d in draws)
    assert all(allowed_row[a] for a in counts)
    p = allowed_row * EPSILON / allowed_row.sum()
    p[int(ours.action_index[row])] += 1 - EPSILON
    assert all(d["probability"] == pytest.approx(p[names.index(d["action"])]) for d in draws)
    cols = np.flatnonzero(allowed_row)
    observed = np.array([counts[int(a)] for a in cols])
    assert stats.chisquare(observed, p[cols] * len(draws)).pvalue > 1e-3


def test_a_shopper_without_consent_is_neither_used_nor_logged(
    service: Service, runtime: PolicyRuntime, events: list[dict[str, float]]
) -> None:
    gated = [f["name"] for f in runtime.manifest["features"] if f["gated"]]
    base = dict(events[0], consent=0.0, dwell_time=2.0, exit_intent=1.0, cart_edits=0.5)
    other = dict(base, dwell_time=0.0, exit_intent=0.0, cart_edits=0.0)
    journey = {"journey": "no-consent", "step": 0}
    first = decide(service.port, [{**base, **journey}])[0]
    second = decide(service.port, [other])[0]
    assert first["model_choice"] == second["model_choice"]  # the gated values are not used
    rows = journey_rows(service, "no-consent")
    assert len(rows) == 1
    assert all(rows[0][name] is None for name in gated)
    assert rows[0]["cart_value"] == base["cart_value"]


# ---------------------------------------------------------------- bad input

NUMERIC = "cart_value"


def _bad_values() -> list[tuple[str, Any]]:
    return [
        ("NaN", "NaN"),
        ("inf", "Infinity"),
        ("1e308", 1e308),
        ("-1e308", -1e308),
        ("null", None),
        ("true", True),
        ("string", "1.5"),
        ("empty string", ""),
        ("list", [1.0]),
        ("object", {"v": 1.0}),
    ]


@pytest.mark.parametrize(("label", "value"), _bad_values(), ids=[v[0] for v in _bad_values()])
def test_a_bad_value_is_refused_naming_field_and_row(
    service: Service, events: list[dict[str, float]], label: str, value: Any
) -> None:
    if label in ("NaN", "inf"):  # not JSON at all: refused by the parser
        raw = json.dumps({"events": [events[0], {**events[1], NUMERIC: 0.0}]})
        raw = raw.replace('"cart_value": 0.0', f'"cart_value": {value}')
        status, answer = post(service.port, "/decide", raw.encode())
        assert status == 400 and "JSON" in answer["error"]["message"]
        return
    status, answer = post(
        service.port, "/decide", {"events": [events[0], {**events[1], NUMERIC: value}]}
    )
    assert status == 400, answer
    assert answer["error"]["field"] == NUMERIC and answer["error"]["row"] == 1, answer


def _bodies(event: dict[str, float]) -> list[tuple[str, bytes, str, int, str | None]]:
    """(label, body, content type, status, field named)."""
    missing = {k: v for k, v in event.items() if k != "dwell_time"}
    js = "application/json"
    return [
        ("missing field", json.dumps({"event": missing}).encode(), js, 400, "dwell_time"),
        ("extra field", json.dumps({"event": {**event, "x": 1}}).encode(), js, 400, "x"),
        ("no rows", b'{"events": []}', js, 400, "events"),
        ("wrong key", json.dumps({"evnts": [event]}).encode(), js, 400, "evnts"),
        ("two keys", json.dumps({"event": event, "events": [event]}).encode(), js, 400, None),
        ("events not a list", b'{"events": {"a": 1}}', js, 400, "events"),
        ("event not an object", b'{"events": [1]}', js, 400, "events"),
        ("top level a list", b"[1, 2]", js, 400, None),
        ("not JSON", b"cart_value=1", js, 400, None),
        ("empty body", b"", js, 400, None),
        ("deep nesting", b"[" * 100_000 + b"]" * 100_000, js, 400, None),
        ("text/plain", json.dumps({"event": event}).encode(), "text/plain", 415, None),
        (
            "step without journey",
            json.dumps({"event": {**event, "step": 1}}).encode(),
            js,
            400,
            "step",
        ),
        (
            "journey not a string",
            json.dumps({"event": {**event, "journey": 5, "step": 0}}).encode(),
            js,
            400,
            "journey",
        ),
        ("10 MB body", b'{"events": [' + b"1," * 5_000_000 + b"1]}", js, 413, None),
    ]


def test_every_kind_of_bad_body_is_a_4xx(service: Service, events: list[dict[str, float]]) -> None:
    for label, body, kind, status, field in _bodies(events[0]):
        got, answer = post(service.port, "/decide", body, kind)
        assert got == status, (label, got, answer)
        assert answer["error"]["message"], label
        if field is not None:
            assert answer["error"]["field"] == field, (label, answer)
    # a 100,000-row batch: too many events, or too large a body, never a 5xx
    got, _ = post(service.port, "/decide", {"events": [events[0]] * 100_000})
    assert got == 413
    assert len(decide(service.port, events[:3])) == 3  # still answering


def test_bad_rewards_are_refused(service: Service) -> None:
    cases = [
        ({"reward": {"event_id": "x"}}, "reward"),
        ({"reward": {"event_id": "x", "reward": "1"}}, "reward"),
        ({"reward": {"event_id": "x", "reward": 1e300}}, "reward"),
        ({"reward": {"event_id": 3, "reward": 1.0}}, "event_id"),
        ({"reward": {"event_id": "x", "reward": 1.0, "margin": 2}}, "margin"),
        ({"reward": {"event_id": "x", "terms": {"revenue": 1.0}}}, "terms.cost_of_goods"),
        ({"reward": {"event_id": "x", "reward": 1.0, "journey_end": "bought"}}, "journey_end"),
        (
            {"rewards": [{"event_id": "x", "reward": 1.0}, {"event_id": "y", "reward": None}]},
            "reward",
        ),
    ]
    for body, field in cases:
        status, answer = post(service.port, "/reward", body)
        assert status == 400, (body, answer)
        assert answer["error"]["field"] == field, (body, answer)


# ---------------------------------------------------------------- rewards and logs


def test_rewards_join_their_decisions_in_a_valid_log(
    service: Service, events: list[dict[str, float]], tmp_path: Path
) -> None:
    journey = [dict(events[i], journey="j-reward", step=i) for i in range(3)]
    decided = decide(service.port, journey)
    single = decide(service.port, [events[5]])[0]
    terms = dict.fromkeys(LEDGER_TERMS, 0.0)
    terms.update(revenue=105.0, cost_of_goods=60.0, shipping=6.0, concession_cost=10.0)
    margin = 105.0 - 60.0 - 6.0 - 10.0
    rewards = [
        {"event_id": decided[2]["event_id"], "terms": terms, "journey_end": "purchase"},
        {"event_id": single["event_id"], "terms": dict.fromkeys(LEDGER_TERMS, 0.0)},
    ]
    status, answer = post(service.port, "/reward", {"rewards": rewards})
    assert status == 200 and answer == {"accepted": 2, "logged": True}
    rows = journey_rows(service, "j-reward", 3)
    deadline = time.monotonic() + 30
    while rows[2]["journey_end"] != "purchase":  # the rewards' file may come later
        assert time.monotonic() < deadline, "the reward was not joined in 30 s"
        time.sleep(0.2)
        rows = journey_rows(service, "j-reward", 3)
    assert [r["step"] for r in rows] == [0, 1, 2]
    assert [r["journey_end"] for r in rows] == [None, None, "purchase"]
    assert [r["reward"] for r in rows] == [0.0, 0.0, pytest.approx(margin)]
    assert rows[2]["term_revenue"] == 105.0
    assert [r["action"] for r in rows] == [d["action"] for d in decided]
    assert [r["propensity"] for r in rows] == [d["probability"] for d in decided]
    (alone,) = journey_rows(service, single["event_id"])
    assert alone["journey_end"] == "abandoned" and alone["reward"] == 0.0
    # the joined log, written as a folder, reads and validates with agents.logs
    out, _ = write_service_log(service.log_dir, tmp_path / "log", reward_window=0.0)
    read = read_log(out, require_propensity=True)
    assert read.spec.propensities == "exact" and read.spec.probabilities
    info = validate(read.table, read.spec)
    assert info.n_rows == read.table.num_rows and info.propensity_logged
    # default has no campaign budget: nothing withheld, no allowance
    assert not read.spec.withheld and read.spec.budget_per_1000 is None
    assert not any(c.startswith("withheld_") for c in read.table.column_names)


def test_a_budget_policy_logs_the_offers_its_budget_alone_withheld(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """black_friday: events with little budget left, one at a time and in a batch; the
    joined log's withheld_ columns are exactly the actions an unlimited budget would
    allow and this one does not, and the log carries the allowance."""
    scenario = envs.load_scenario("black_friday")
    work = tmp_path_factory.mktemp("budget")
    policy = export_policy(tiny_maskable(scenario), scenario, work / "p")
    runtime = PolicyRuntime.load(policy)
    n = 120
    found = simulator_events(scenario, runtime.feature_names, n, seed=3)
    columns = dict(found.columns, budget_left=np.random.default_rng(3).uniform(0.0, 30.0, n))
    allowed = runtime.decide_batch(columns).allowed
    unlimited = runtime.decide_batch(dict(columns, budget_left=np.full(n, 1e9))).allowed
    assert allowed is not None and unlimited is not None
    expected = unlimited & ~allowed
    assert 10 <= expected.any(axis=1).sum() < n  # some rows withheld something, not all
    events = [
        {**{k: float(v[i]) for k, v in columns.items()}, "journey": f"bf-{i:03d}", "step": 0}
        for i in range(n)
    ]
    options = ["--explore", str(EPSILON), "--flush-seconds", "0.2", "--seed", "2"]
    with served_service(policy, work / "logs", 1, work / "server.log", options) as s:
        decide(s.port, events[: n // 2])  # a batch
        for event in events[n // 2 :]:  # one at a time
            decide(s.port, [event])
        deadline = time.monotonic() + 30
        while True:
            try:
                log, _ = read_service_log(s.log_dir, reward_window=0.0)  # validated
                if log.table.num_rows == n:
                    break
            except ValueError:
                pass
            assert time.monotonic() < deadline, "the decisions were not written in 30 s"
            time.sleep(0.2)
    spec = log.spec
    assert spec.withheld and spec.budget_per_1000 == scenario.campaign_budget_per_1000
    assert spec.budget_per_1000 == runtime.manifest["guardrails"]["campaign_budget_per_1000"]
    rows = [int(j.split("-")[1]) for j in log.table.column("journey").to_pylist()]
    got = np.column_stack([log.table.column(c).to_numpy() for c in spec.withheld_columns])
    np.testing.assert_array_equal(got, expected[rows])
    eligible = np.column_stack([log.table.column(c).to_numpy() for c in spec.eligible_columns])
    np.testing.assert_array_equal(eligible, allowed[rows])
    # written as a folder, read back: the columns and the allowance stay
    out, _ = write_service_log(work / "logs", work / "log", reward_window=0.0)
    read = read_log(out, require_propensity=True)
    assert read.spec.withheld and read.spec.budget_per_1000 == spec.budget_per_1000
    assert set(spec.withheld_columns) <= set(read.table.column_names)


def test_metrics_and_health(service: Service, events: list[dict[str, float]]) -> None:
    decide(service.port, events[:5])
    status, body = get(service.port, "/metrics")
    assert status == 200
    text = body.decode()
    for name in (
        "concede_decisions_total",
        "concede_request_seconds_bucket",
        "concede_guardrail_overrides_total",
        "concede_exploration_share 0.3",
        "concede_log_queue_rows",
        "concede_log_dropped_rows_total",
    ):
        assert name in text, name
    status, body = get(service.port, "/health")
    health = json.loads(body)
    assert status == 200 and health["status"] == "ok" and health["log_dropped_rows"] == 0


# ---------------------------------------------------------------- SIGTERM


def test_sigterm_under_load_loses_no_acknowledged_decision(
    policy_dir: Path, events: list[dict[str, float]], tmp_path: Path
) -> None:
    options = ["--flush-seconds", "60", "--explore", "0.1"]
    acknowledged: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()
    with served_service(policy_dir, tmp_path / "logs", 2, tmp_path / "server.log", options) as s:

        def client(k: int) -> None:
            i = k
            while not stop.is_set():
                batch = [events[(i + j) % len(events)] for j in range(1 + i % 4)]
                i += 7
                try:
                    status, answer = post(s.port, "/decide", {"events": batch})
                except OSError:
                    continue
                if status == 200:
                    with lock:
                        acknowledged.extend(d["event_id"] for d in answer["decisions"])

        threads = [threading.Thread(target=client, args=(k,), daemon=True) for k in range(4)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 30
        while len(acknowledged) < 300 and time.monotonic() < deadline:
            time.sleep(0.05)
        s.process.send_signal(signal.SIGTERM)  # to the supervisor, as an orchestrator does
        assert s.process.wait(timeout=60) == 0
        stop.set()
        for t in threads:
            t.join(timeout=30)
    assert len(acknowledged) >= 300
    log, report = read_service_log(tmp_path / "logs", reward_window=0.0)
    files = sorted((tmp_path / "logs" / "decisions").glob("*.parquet"))
    ids = {e for f in files for e in pq.read_table(f).column("event_id").to_pylist()}
    missing = set(acknowledged) - ids
    assert not missing, f"{len(missing)} acknowledged decisions missing from the log"
    assert report.decisions == len(ids) and log.table.num_rows == report.rows
    assert not any(p.suffix == ".tmp" for p in (tmp_path / "logs" / "decisions").iterdir())


def test_a_writer_that_cannot_keep_up_drops_counts_and_says_so(
    runtime: PolicyRuntime, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from agents.serving.service.app import log_spec
    from agents.serving.service.journal import DECISIONS, DecisionBlock, JournalWriter
    from agents.serving.service.settings import ServiceSettings

    settings = ServiceSettings(policy=str(runtime.path), log_dir=str(tmp_path))
    dropped: list[int] = []
    writer = JournalWriter(
        tmp_path,
        "w",
        log_spec(runtime, settings),
        rows_per_file=10,
        flush_seconds=60,
        queue_rows=1,  # a queue of one row: a block of two never fits
        on_dropped=lambda stream, n: dropped.append(n),
    )
    k, nf = len(runtime.action_names), len(runtime.feature_names)
    allowed = [[True] + [False] * (k - 1)] * 2
    probs = [[1.0] + [0.0] * (k - 1)] * 2
    block = DecisionBlock(
        ["a", "b"], ["a", "b"], [0, 0], time.time(), [[0.5] * nf] * 2, allowed, probs,
        [0, 0], [False, False],
    )  # fmt: skip
    with caplog.at_level("WARNING", logger="concede.service"):
        assert writer.put(DECISIONS, block) is False
    writer.close()
    assert writer.dropped_rows == 2 and dropped == [2] and writer.written_rows == 0
    assert "cannot keep up" in caplog.text
