"""The deployed runtime: torch parity, the simulator's guardrails, integrity, validation.

A real MaskablePPO (2,048 timesteps on 16 shoppers of ``default``, net_arch [16]) is
trained and exported once for this module. Decisions are compared with SB3's
deterministic masked ``predict`` on simulator states (the masks are the simulator's own)
and on random observations; the runtime's guardrails are compared with the simulator's
action masks on rollouts of several scenarios.
"""

from __future__ import annotations

import contextlib
import json
import math
import shutil
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from conftest import tiny_maskable
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sb3_contrib import MaskablePPO
from stable_baselines3 import PPO

import envs
from agents.export import export_policy
from agents.serving.runtime import (
    MANIFEST_FILE,
    POLICY_FILE,
    Decision,
    PolicyInputError,
    PolicyLoadError,
    PolicyRuntime,
    manifest_digest,
)
from agents.serving.simulator_events import simulator_context
from agents.vec_env import ShopperVecEnv
from envs.core import ShopperCore
from envs.scenario import Scenario

ROOT = Path(__file__).resolve().parents[1]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def policy_dir(trained: MaskablePPO, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_policy(trained, envs.load_scenario("default"), tmp_path_factory.mktemp("p") / "p")


@pytest.fixture(scope="module")
def runtime(policy_dir: Path) -> PolicyRuntime:
    return PolicyRuntime.load(policy_dir)


@pytest.fixture(scope="module")
def agent_lover(tmp_path_factory: pytest.TempPathFactory) -> PolicyRuntime:
    """A policy whose network always scores the live agent first, then free shipping."""
    scenario = envs.load_scenario("default")
    model = tiny_maskable(scenario)
    names = scenario.action_names
    head: Any = model.policy.action_net
    with torch.no_grad():
        head.weight.zero_()
        head.bias.copy_(torch.arange(len(names), dtype=torch.float32) * 0.01)
        head.bias[names.index("live_agent")] = 100.0
        head.bias[names.index("free_shipping")] = 50.0
    folder = tmp_path_factory.mktemp("agent") / "p"
    return PolicyRuntime.load(export_policy(model, scenario, folder))


# ---------------------------------------------------------------- simulator states


def simulator_states(
    scenario: Scenario, n: int = 64, steps: int = 40, seed: int = 0
) -> Iterator[tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]]:
    """Rollouts of a random mask-following policy: per step, for the shoppers in a
    journey, the observations, the simulator's masks and the runtime's context."""
    core = ShopperCore(scenario, n)
    obs = core.reset(seed)
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        mask = core.action_masks()
        alive = core.alive.copy()
        context = simulator_context(core)
        yield obs[alive], mask[alive], {k: v[alive] for k, v in context.items()}
        choice = np.array([rng.choice(np.flatnonzero(m)) for m in mask])
        obs, *_ = core.step(choice)


def columns_of(runtime: PolicyRuntime, obs: np.ndarray, context: dict) -> dict[str, np.ndarray]:
    columns = {name: obs[:, i] for i, name in enumerate(runtime.feature_names)}
    columns.update(context)
    return columns


def test_decisions_equal_torch_on_1000_simulator_states(
    runtime: PolicyRuntime, trained: MaskablePPO
) -> None:
    seen = 0
    for obs, mask, context in simulator_states(envs.load_scenario("default")):
        decisions = runtime.decide_batch(columns_of(runtime, obs, context))
        expected, _ = trained.predict(obs, deterministic=True, action_masks=mask)
        np.testing.assert_array_equal(decisions.action_index, expected)
        seen += len(obs)
    assert seen >= 1000


def test_decisions_equal_torch_on_2000_random_observations(
    runtime: PolicyRuntime, trained: MaskablePPO
) -> None:
    """Random observations in the feature box, with a context every guardrail passes."""
    rng = np.random.default_rng(1)
    manifest = runtime.manifest
    n = 2000
    columns: dict[str, np.ndarray] = {}
    for f in manifest["features"]:
        if f["kind"] == "binary":
            columns[f["name"]] = rng.integers(0, 2, n).astype(float)
        else:
            columns[f["name"]] = rng.uniform(f["low"], f["high"], n)
    for name in runtime.feature_names:
        if name.startswith("offered_"):
            columns[name] = np.zeros(n)
    consent = columns["consent"]
    for f in manifest["features"]:
        if f["gated"]:
            columns[f["name"]] = columns[f["name"]] * consent  # as the simulator reports them
    columns.update(
        offers_made=np.zeros(n),
        in_chat=np.zeros(n),
        agents_free=np.ones(n),
        carrier_cost=np.zeros(n),
    )
    decisions = runtime.decide_batch(columns)
    obs = np.stack([columns[f] for f in runtime.feature_names], axis=1).astype(np.float32)
    allowed = _allowed(runtime, columns)  # all guardrails pass: channel and rules only
    expected, _ = trained.predict(obs, deterministic=True, action_masks=allowed)
    np.testing.assert_array_equal(decisions.action_index, expected)
    with torch.no_grad():
        p = trained.policy
        logits = p.action_net(p.mlp_extractor.forward_actor(torch.from_numpy(obs))).numpy()
    np.testing.assert_allclose(decisions.scores, logits, atol=1e-5)


def _allowed(runtime: PolicyRuntime, columns: dict[str, np.ndarray]) -> np.ndarray:
    bits = runtime._rule_bits_batch(runtime._matrix(columns))
    return bits == 0


@pytest.mark.parametrize("name", ["default", "black_friday", "stress"])
def test_guardrails_equal_the_simulator_masks(
    name: str, scenario_by_name: Any, tmp_path: Path
) -> None:
    scenario = scenario_by_name(name)
    runtime = PolicyRuntime.load(export_policy(tiny_maskable(scenario), scenario, tmp_path / "p"))
    rows = 0
    for obs, mask, context in simulator_states(scenario, steps=60):
        allowed = _allowed(runtime, columns_of(runtime, obs, context))
        np.testing.assert_array_equal(allowed, mask)
        rows += len(obs)
    assert rows >= 2000


def test_one_event_is_decided_as_its_row_in_a_batch(runtime: PolicyRuntime) -> None:
    rng = np.random.default_rng(3)
    for obs, _, context in simulator_states(envs.load_scenario("default"), steps=10):
        n = len(obs)
        # restrictive contexts too: caps reached, chats, no agent, offers already made
        context["offers_made"] = rng.integers(0, 4, n).astype(float)
        context["in_chat"] = rng.integers(0, 2, n).astype(float)
        context["agents_free"] = rng.integers(0, 2, n).astype(float)
        columns = columns_of(runtime, obs, context)
        batch = runtime.decide_batch(columns)
        records = batch.records()
        for i in range(n):
            single = runtime.decide({k: float(v[i]) for k, v in columns.items()})
            assert single == batch[i]
            assert single.record() == records[i]


def test_threads_deciding_at_once_decide_as_one_thread(runtime: PolicyRuntime) -> None:
    """Each thread scores one event in its own buffers: threads never see each other's."""
    events = [
        {k: float(v[i]) for k, v in columns_of(runtime, obs, context).items()}
        for obs, _, context in simulator_states(envs.load_scenario("default"), steps=6)
        for i in range(len(obs))
    ]
    alone = [runtime.decide_scored(e) for e in events]
    results: dict[int, list[Any]] = {}

    def work(k: int) -> None:
        order = list(range(len(events)))[k::4] + list(range(len(events)))
        results[k] = [(i, runtime.decide_scored(events[i])) for i in order]

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # threads switch between any two steps of a decision
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(interval)
    assert len(results) == 4
    for got in results.values():
        assert all(answer == alone[i] for i, answer in got)


# ---------------------------------------------------------------- integrity


def _copy(policy_dir: Path, tmp_path: Path) -> Path:
    target = tmp_path / "copy"
    shutil.copytree(policy_dir, target)
    return target


def _rewrite_manifest(folder: Path, change: Any, redigest: bool = True) -> None:
    manifest = json.loads((folder / MANIFEST_FILE).read_text())
    change(manifest)
    if redigest:
        manifest["manifest_digest"] = manifest_digest(manifest)
    (folder / MANIFEST_FILE).write_text(json.dumps(manifest))


def test_a_flipped_byte_in_the_network_is_refused(policy_dir: Path, tmp_path: Path) -> None:
    folder = _copy(policy_dir, tmp_path)
    data = bytearray((folder / POLICY_FILE).read_bytes())
    data[len(data) // 2] ^= 0x01
    (folder / POLICY_FILE).write_bytes(bytes(data))
    with pytest.raises(PolicyLoadError, match=r"sha256.*tampered"):
        PolicyRuntime.load(folder)


def test_truncated_files_are_refused(policy_dir: Path, tmp_path: Path) -> None:
    folder = _copy(policy_dir, tmp_path)
    data = (folder / POLICY_FILE).read_bytes()
    (folder / POLICY_FILE).write_bytes(data[: len(data) - 100])
    with pytest.raises(PolicyLoadError, match="truncated"):
        PolicyRuntime.load(folder)
    shutil.copyfile(policy_dir / POLICY_FILE, folder / POLICY_FILE)
    text = (folder / MANIFEST_FILE).read_text()
    (folder / MANIFEST_FILE).write_text(text[: len(text) // 2])
    with pytest.raises(PolicyLoadError, match="not valid JSON"):
        PolicyRuntime.load(folder)


def test_an_edited_manifest_is_refused(policy_dir: Path, tmp_path: Path) -> None:
    folder = _copy(policy_dir, tmp_path)

    def loosen(m: dict) -> None:
        m["guardrails"]["max_offers_per_shopper"] = 99

    _rewrite_manifest(folder, loosen, redigest=False)
    with pytest.raises(PolicyLoadError, match="modified after export"):
        PolicyRuntime.load(folder)


def test_wrong_schema_and_mismatched_files_are_refused(
    policy_dir: Path, tmp_path: Path, scenario_by_name: Any
) -> None:
    folder = _copy(policy_dir, tmp_path)

    def future(m: dict) -> None:
        m["schema_version"] = 2

    _rewrite_manifest(folder, future)
    with pytest.raises(PolicyLoadError, match="schema version 2"):
        PolicyRuntime.load(folder)

    # the network of another export (another catalogue) beside this manifest
    stress = scenario_by_name("stress")
    other = export_policy(tiny_maskable(stress), stress, tmp_path / "other")
    folder = _copy(policy_dir, tmp_path / "b")
    shutil.copyfile(other / POLICY_FILE, folder / POLICY_FILE)
    with pytest.raises(PolicyLoadError, match="another export"):
        PolicyRuntime.load(folder)

    # ... even with the hash and size updated: the shapes do not fit the manifest
    def adopt(m: dict) -> None:
        other_manifest = json.loads((other / MANIFEST_FILE).read_text())
        m["policy"]["sha256"] = other_manifest["policy"]["sha256"]
        m["policy"]["bytes"] = other_manifest["policy"]["bytes"]

    _rewrite_manifest(folder, adopt)
    with pytest.raises(PolicyLoadError, match="different exports"):
        PolicyRuntime.load(folder)

    with pytest.raises(PolicyLoadError, match="scenario 'default'"):
        PolicyRuntime.load(policy_dir, scenario_digest=stress.digest())
    with pytest.raises(PolicyLoadError, match="not a directory"):
        PolicyRuntime.load(tmp_path / "nowhere")
    (folder / MANIFEST_FILE).unlink()
    with pytest.raises(PolicyLoadError, match="missing"):
        PolicyRuntime.load(folder)


def test_the_runtime_imports_neither_torch_nor_sb3_nor_hydra_and_unpickles_nothing(
    policy_dir: Path,
) -> None:
    script = textwrap.dedent(
        f"""
        import pickle, sys
        def refuse(*args, **kwargs):
            raise AssertionError("pickle used")
        pickle.load = pickle.loads = refuse
        pickle.Unpickler = refuse
        from agents.serving.runtime import PolicyRuntime
        runtime = PolicyRuntime.load({str(policy_dir)!r})
        decision = runtime.decide(runtime.example_event())
        forbidden = ("torch", "stable_baselines3", "sb3_contrib", "hydra", "omegaconf",
                     "mlflow", "envs", "gymnasium", "experiments", "pandas", "agents.export")
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in forbidden
                        or m == "agents.export")
        print(decision.action, loaded)
        assert not loaded, loaded
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    assert done.returncode == 0, done.stderr + done.stdout


# ---------------------------------------------------------------- consent, caps


def test_consent_off_makes_gated_features_irrelevant(runtime: PolicyRuntime) -> None:
    rng = np.random.default_rng(5)
    gated = [f for f in runtime.manifest["features"] if f["gated"]]
    base = runtime.example_event()
    base.update(cart_value=1.4, margin_rate=0.43, shipping_fee=0.79, consent=0.0)
    reference = runtime.decide(base)
    changed_with_consent = False
    for _ in range(300):
        event = dict(base)
        for f in gated:
            value = rng.uniform(f["low"], f["high"])
            event[f["name"]] = float(round(value)) if f["kind"] == "binary" else value
        assert runtime.decide(event) == reference
        columns = {k: np.array([v]) for k, v in event.items()}
        assert runtime.decide_batch(columns)[0] == reference
        with_consent = runtime.decide_batch({**columns, "consent": np.array([1.0])})
        off = runtime.decide_batch(columns)
        changed_with_consent |= not np.array_equal(with_consent.scores, off.scores)
    assert changed_with_consent  # the gated features do matter when consent is given


def _agent_event(runtime: PolicyRuntime, **changes: float) -> dict[str, float]:
    event = runtime.example_event()
    event.update(cart_value=0.7, margin_rate=0.5, shipping_fee=0.49, carrier_cost=5.5)
    event.update(changes)
    return event


def test_guardrails_override_a_model_that_prefers_a_forbidden_action(
    agent_lover: PolicyRuntime,
) -> None:
    rt = agent_lover
    free = rt.decide(_agent_event(rt))
    assert (free.action, free.guardrail, free.model_choice) == ("live_agent", None, "live_agent")
    assert free.runner_up == "free_shipping"
    assert free.reason == "model's choice live_agent; runner-up free_shipping"

    cases = {
        "agent_capacity": _agent_event(rt, agents_free=0.0),
        "in_chat": _agent_event(rt, in_chat=1.0),
        "once_per_shopper": _agent_event(rt, offered_live_agent=1.0),
        "channel": _agent_event(rt, away=1.0),
    }
    for rule, event in cases.items():
        decision = rt.decide(event)
        assert decision.guardrail == rule, (rule, decision)
        assert decision.model_choice == "live_agent"
        assert decision.action != "live_agent"
        assert decision.reason.startswith(f"guardrail {rule} overrode the model's choice")
    assert rt.decide(cases["agent_capacity"]).action == "free_shipping"  # next best allowed

    capped = rt.decide(_agent_event(rt, offers_made=3.0))
    assert (capped.action, capped.guardrail, capped.runner_up) == ("wait", "contact_cap", None)
    assert capped.concession is None

    tighter = PolicyRuntime.load(_dir_of(rt), max_offers_per_shopper=1)
    assert tighter.decide(_agent_event(rt, offers_made=1.0)).guardrail == "contact_cap"
    assert rt.decide(_agent_event(rt, offers_made=1.0)).action == "live_agent"
    with pytest.raises(ValueError, match="loosen"):
        PolicyRuntime.load(_dir_of(rt), max_offers_per_shopper=4)

    off = PolicyRuntime.load(_dir_of(rt), disabled=["live_agent"])
    decision = off.decide(_agent_event(rt))
    assert (decision.action, decision.guardrail) == ("free_shipping", "disabled")
    with pytest.raises(ValueError, match="unknown concession"):
        PolicyRuntime.load(_dir_of(rt), disabled=["wait"])


def test_non_maskable_policies_wait_when_their_choice_is_forbidden(tmp_path: Path) -> None:
    """PPO, DQN...: the model's choice if allowed, else wait (as evaluation plays them)."""
    scenario = envs.load_scenario("default")
    model = PPO(
        "MlpPolicy",
        ShopperVecEnv(scenario, 4, seed=0),
        n_steps=16,
        batch_size=16,
        seed=0,
        policy_kwargs={"net_arch": [8]},
        device="cpu",
    )
    names = scenario.action_names
    head: Any = model.policy.action_net
    with torch.no_grad():
        head.weight.zero_()
        head.bias.zero_()
        head.bias[names.index("live_agent")] = 100.0
        head.bias[names.index("free_shipping")] = 50.0
    rt = PolicyRuntime.load(export_policy(model, scenario, tmp_path / "p"))
    assert rt.selection == "argmax_else_wait"
    decision = rt.decide(_agent_event(rt, agents_free=0.0))
    assert (decision.action, decision.guardrail, decision.runner_up) == (
        "wait",
        "agent_capacity",
        "free_shipping",
    )
    assert decision.reason.endswith("decided wait")
    assert rt.decide(_agent_event(rt)).action == "live_agent"
    rng = np.random.default_rng(9)
    events = [
        _agent_event(
            rt,
            agents_free=float(rng.integers(0, 2)),
            away=float(rng.integers(0, 2)),
            offers_made=float(rng.integers(0, 4)),
        )
        for _ in range(50)
    ]
    batch = rt.decide_batch({k: np.array([e[k] for e in events]) for k in rt.input_names})
    assert [rt.decide(e) for e in events] == [batch[i] for i in range(len(events))]


def _dir_of(runtime: PolicyRuntime) -> Path:
    assert runtime.path is not None
    return runtime.path


def test_money_guardrails(runtime: PolicyRuntime, scenario_by_name: Any, tmp_path: Path) -> None:
    # min_cart: twenty_percent_off needs a 50 EUR cart; a 35 EUR accessory does not qualify
    small = runtime.example_event()
    small.update(cart_value=0.35, margin_rate=1 - 18 / 35, shipping_fee=0.49, carrier_cost=4.5)
    bits = _allowed(runtime, {k: np.array([v]) for k, v in small.items()})[0]
    names = runtime.action_names
    assert not bits[names.index("twenty_percent_off")]
    assert bits[names.index("ten_percent_off")]
    # margin floor: with a carrier costing nearly the whole margin, discounts are refused
    thin = dict(small, carrier_cost=20.0)  # margin left 1.90 - 3.50 < 5% of 35
    bits = _allowed(runtime, {k: np.array([v]) for k, v in thin.items()})[0]
    assert not bits[names.index("ten_percent_off")]
    # budget: black_friday has a campaign budget; none left refuses every costly offer
    scenario = scenario_by_name("black_friday")
    rt = PolicyRuntime.load(export_policy(tiny_maskable(scenario), scenario, tmp_path / "bf"))
    event = rt.example_event()
    event.update(cart_value=1.4, margin_rate=0.43, shipping_fee=0.79, budget_left=0.0)
    allowed = _allowed(rt, {k: np.array([v]) for k, v in event.items()})[0]
    costly = [
        a
        for a in rt.manifest["actions"][1:]
        if a["cost_model"]["extra_eur"] > 0 or a["cost_model"]["percent_of_cart"] > 0
    ]
    assert costly and not any(allowed[a["index"]] for a in costly)
    assert "budget_left" in rt.input_names
    event["budget_left"] = -5.0  # overspent: still a valid input
    assert rt.decide(event).action in rt.action_names


def _bit_set(row: np.ndarray) -> int:
    return sum(1 << int(a) for a in np.flatnonzero(row))


@pytest.mark.parametrize("name", ["black_friday", "stress"])
def test_the_budget_alone_withholds_what_the_simulator_withholds(
    name: str, scenario_by_name: Any, tmp_path: Path
) -> None:
    """Withheld: forbidden by ``budget``, allowed by every other guardrail. On the
    simulator's states it is the simulator's ``budget_withheld`` (a live agent aside: each
    event says whether an agent is free for it, where the simulator serves its desk in
    row order among the shoppers an unlimited budget would let want one, so it withholds
    fewer); with any budget left, it is what a budget without limit would allow and this
    one does not; one event is withheld as its row in a batch."""
    scenario = scenario_by_name(name)
    rt = PolicyRuntime.load(export_policy(tiny_maskable(scenario), scenario, tmp_path / "p"))
    chat = np.array([a["channel"] == "chat" for a in rt.manifest["actions"]])
    core = ShopperCore(scenario, 64)
    obs = core.reset(0)
    rng = np.random.default_rng(0)
    withheld_rows = checked = 0
    for step in range(40):
        mask, withheld, alive = core.action_masks(), core.budget_withheld(), core.alive.copy()
        context = {k: v[alive] for k, v in simulator_context(core).items()}
        columns = columns_of(rt, obs[alive], context)
        batch = rt.decide_batch(columns)
        assert batch.withheld is not None and batch.allowed is not None
        np.testing.assert_array_equal(batch.withheld[:, ~chat], withheld[alive][:, ~chat])
        assert not (withheld[alive][:, chat] & ~batch.withheld[:, chat]).any()
        withheld_rows += int(batch.withheld.any(axis=1).sum())
        # other budgets left (overspent too) and restrictive contexts
        n = len(batch)
        columns = dict(columns, budget_left=rng.uniform(-5.0, 40.0, n))
        columns["offers_made"] = rng.integers(0, 4, n).astype(float)
        columns["agents_free"] = rng.integers(0, 2, n).astype(float)
        batch = rt.decide_batch(columns)
        unlimited = rt.decide_batch(dict(columns, budget_left=np.full(n, 1e12)))
        assert batch.withheld is not None and batch.allowed is not None
        assert unlimited.allowed is not None
        np.testing.assert_array_equal(batch.withheld, unlimited.allowed & ~batch.allowed)
        if step % 4 == 0:
            for i in range(n):
                event = {k: float(v[i]) for k, v in columns.items()}
                decision, allowed, bits, _, _ = rt.decide_scored(event)
                assert decision == batch[i]
                assert (allowed, bits) == (_bit_set(batch.allowed[i]), _bit_set(batch.withheld[i]))
                checked += int(bits != 0)
        obs, *_ = core.step(np.array([rng.choice(np.flatnonzero(m)) for m in mask]))
    assert withheld_rows >= 20 and checked >= 20


def test_without_a_budget_nothing_is_withheld(runtime: PolicyRuntime) -> None:
    for obs, _, context in simulator_states(envs.load_scenario("default"), steps=5):
        columns = columns_of(runtime, obs, context)
        batch = runtime.decide_batch(columns)
        assert batch.withheld is not None and not batch.withheld.any()
        assert runtime.decide_scored({k: float(v[0]) for k, v in columns.items()})[2] == 0


# ---------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("cart_value", math.nan, "NaN"),
        ("cart_value", math.inf, "infinity"),
        ("dwell_time", -math.inf, "-infinity"),
        ("cart_value", 5.0, r"\[0.35, 3.2\]"),
        ("margin_rate", None, "null"),
        ("exit_intent", True, "boolean"),
        ("carrier_cost", "3", "str"),
        ("consent", 0.5, "0 or 1"),
        ("offers_made", 1.5, "whole number"),
        ("agents_free", -1, ">= 0"),
        ("carrier_cost", math.inf, "infinity"),
    ],
)
def test_invalid_values_are_refused_by_name(
    runtime: PolicyRuntime, field: str, value: Any, message: str
) -> None:
    event = runtime.example_event()
    event[field] = value
    with pytest.raises(PolicyInputError, match=message) as caught:
        runtime.decide(event)
    assert caught.value.field == field and caught.value.row is None
    columns: dict[str, Any] = {k: [v, v] for k, v in runtime.example_event().items()}
    columns[field] = [runtime.example_event()[field], value]
    with pytest.raises(PolicyInputError, match=message) as caught:
        runtime.decide_batch(columns)
    assert (caught.value.field, caught.value.row) == (field, 1)


def test_missing_and_unknown_fields_are_named(runtime: PolicyRuntime) -> None:
    event = runtime.example_event()
    del event["away"]
    with pytest.raises(PolicyInputError, match=r"missing field\(s\) \['away'\]") as caught:
        runtime.decide(event)
    assert caught.value.field == "away"
    event = {**runtime.example_event(), "zip_code": 1.0}
    with pytest.raises(PolicyInputError, match=r"unknown field\(s\) \['zip_code'\]"):
        runtime.decide(event)
    with pytest.raises(PolicyInputError, match="zip_code"):
        runtime.decide_batch({k: [v] for k, v in event.items()})
    columns = {k: [v] for k, v in runtime.example_event().items()}
    columns["away"] = [0.0, 1.0]
    with pytest.raises(PolicyInputError, match="same length"):
        runtime.decide_batch(columns)
    with pytest.raises(PolicyInputError, match="booleans"):
        runtime.decide_batch({**columns, "away": np.array([True])})
    assert len(runtime.decide_batch({k: [] for k in runtime.input_names})) == 0


_WEIRD = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(),
    st.just(10**400),
    st.booleans(),
    st.none(),
    st.text(max_size=3),
    st.just(np.float32(0.5)),
    st.just(np.int64(1)),
    st.lists(st.floats(), max_size=2),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_fuzzed_events_only_ever_raise_the_documented_error(
    runtime: PolicyRuntime, data: st.DataObject
) -> None:
    event: dict[Any, Any] = runtime.example_event()
    for name in data.draw(st.lists(st.sampled_from(runtime.input_names), max_size=4)):
        event[name] = data.draw(_WEIRD)
    if data.draw(st.booleans()):
        event.pop(data.draw(st.sampled_from(runtime.input_names)), None)
    if data.draw(st.booleans()):
        event[data.draw(st.one_of(st.text(max_size=4), st.integers()))] = 0.0
    try:
        decision = runtime.decide(event)
    except PolicyInputError:
        pass
    else:
        assert isinstance(decision, Decision) and decision.action in runtime.action_names
    columns: dict[Any, Any] = {k: [v] for k, v in event.items()}
    with contextlib.suppress(PolicyInputError):
        runtime.decide_batch(columns)


@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_valid_events_are_always_decided(runtime: PolicyRuntime, data: st.DataObject) -> None:
    event: dict[str, Any] = {}
    for f in runtime.manifest["features"]:
        if f["kind"] == "binary":
            event[f["name"]] = data.draw(st.sampled_from([0, 1, 0.0, 1.0]))
        else:
            event[f["name"]] = data.draw(st.floats(f["low"], f["high"]))
    event["offers_made"] = data.draw(st.integers(0, 10))
    event["in_chat"] = data.draw(st.sampled_from([0, 1]))
    event["agents_free"] = data.draw(st.integers(0, 5))
    event["carrier_cost"] = data.draw(st.floats(0, 1e6))
    decision = runtime.decide(event)
    assert decision == runtime.decide_batch({k: [v] for k, v in event.items()})[0]
