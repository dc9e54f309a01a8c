"""Exploration at decision moments only: exact propensities, in the simulator and the service.

- an :class:`Exploration` with ``moments`` validates them, writes them (``to_dict``,
  ``epsilon:0.3@exit_intent+away``) and reads them back, as ``calibrate`` does;
- ``simulate_logs``: at a row where no moment feature is 1 the propensity is 1 and the
  action the logger's own; at a moment every probability is the epsilon formula; the
  log's metadata records the moments; a moment that is no feature is refused, named;
- the decision service: the same probabilities as the simulator's exploration for the
  same events, one by one and in a batch; a moment feature a shopper without consent
  sends does not count (the policy sees 0); ``--explore-at`` is validated.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import tiny_maskable

import envs
from agents.exploration import Exploration, at_moments
from agents.export import export_policy
from agents.logs import from_table
from agents.logs.simulate import simulate_logs
from agents.registry import build_policies
from agents.serving.runtime import PolicyRuntime
from agents.serving.service.app import DecisionService, log_spec
from agents.serving.service.launch import main as serve_main
from agents.serving.service.settings import ServiceSettings
from agents.serving.simulator_events import simulator_events
from experiments.calibration.inputs import InputError, parse_exploration
from experiments.offpolicy.data import from_log
from experiments.offpolicy.targets import target_probabilities

EPSILON = 0.3
MOMENTS = ("exit_intent", "away")


# ---------------------------------------------------------------- the setting


def test_moments_are_validated_written_and_read_back() -> None:
    plain = Exploration("epsilon", EPSILON)
    assert plain.to_dict() == {"kind": "epsilon", "value": EPSILON}  # as before
    assert plain.to_text() == "epsilon:0.3" and plain.describe() == "epsilon 0.3"
    at = Exploration("epsilon", EPSILON, list(MOMENTS))  # type: ignore[arg-type]
    assert at.moments == MOMENTS
    assert at.to_dict() == {"kind": "epsilon", "value": EPSILON, "moments": list(MOMENTS)}
    assert at.to_text() == "epsilon:0.3@exit_intent+away"
    assert at.describe() == "epsilon 0.3 at exit_intent or away"
    assert Exploration.from_text(at.to_text()) == at == Exploration.from_dict(at.to_dict())
    assert parse_exploration("epsilon:0.3@exit_intent+away") == at
    assert parse_exploration(at.to_dict()) == at
    assert parse_exploration("softmax:0.5") == Exploration("softmax", 0.5)
    for bad in ((), ("away", "away"), ("",), ("exit intent",)):
        with pytest.raises(ValueError, match="moments"):
            Exploration("epsilon", EPSILON, bad)
    with pytest.raises(InputError, match=r"epsilon:0\.3@exit_intent"):
        parse_exploration("epsilon:0.3@")
    with pytest.raises(ValueError, match="'exit_intnt'"):
        Exploration("epsilon", 0.1, ("exit_intnt",)).columns(["away", "exit_intent"])


# ---------------------------------------------------------------- the simulator


@pytest.fixture(scope="module")
def logged() -> tuple[Any, Any, Any]:
    scenario = envs.load_scenario("default")
    (logger,) = build_policies(["merchant_rules"], scenario)
    explore = Exploration("epsilon", EPSILON, MOMENTS)
    table = simulate_logs(scenario, logger, 400, 5, explore)
    return scenario, logger, table


def test_the_simulator_explores_at_moments_only_with_exact_propensities(
    logged: tuple[Any, Any, Any],
) -> None:
    scenario, logger, table = logged
    log = from_table(table)
    assert log.spec.exploration == {"kind": "epsilon", "value": EPSILON, "moments": list(MOMENTS)}
    journeys = from_log(log)
    names = [f.name for f in envs.feature_schema(scenario)]
    decided = target_probabilities(logger, journeys, names)  # the logger's own, one-hot
    obs = journeys.observations(names)
    moment = (obs[:, [names.index(m) for m in MOMENTS]] > 0.5).any(axis=1)
    choice = journeys.mask[:, 1:].any(axis=1)
    probs = journeys.logged_probs
    assert probs is not None
    rows = np.arange(journeys.n_rows)
    # elsewhere: the logger's decision, probability 1
    calm = ~(moment & choice)
    assert calm.any() and (moment & choice).any()
    np.testing.assert_array_equal(probs[calm], decided[calm])
    assert np.all(journeys.propensity[calm] == 1.0)
    assert np.all(journeys.action[calm] == decided[calm].argmax(axis=1))
    # at a moment: (1 - eps) [a = decision] + eps / eligible
    at = moment & choice
    formula = journeys.mask[at] * (EPSILON / journeys.mask[at].sum(axis=1, keepdims=True))
    formula = formula + (1.0 - EPSILON) * decided[at]
    np.testing.assert_allclose(probs[at], formula, rtol=0, atol=1e-12)
    np.testing.assert_allclose(journeys.propensity, probs[rows, journeys.action], atol=1e-12)
    assert (journeys.propensity[at] < 1.0).any()


def test_the_simulator_refuses_a_moment_that_is_no_feature() -> None:
    scenario = envs.load_scenario("default")
    (logger,) = build_policies(["merchant_rules"], scenario)
    with pytest.raises(ValueError, match="'exit_intnt'"):
        simulate_logs(scenario, logger, 10, 0, Exploration("epsilon", 0.1, ("exit_intnt",)))


def test_without_moments_the_log_is_the_one_it_always_was() -> None:
    scenario = envs.load_scenario("default")
    (logger,) = build_policies(["merchant_rules"], scenario)
    a = simulate_logs(scenario, logger, 200, 2, Exploration("epsilon", EPSILON))
    b = simulate_logs(scenario, logger, 200, 2, Exploration("epsilon", EPSILON, None))
    assert a.equals(b) and from_table(a).spec.exploration == {"kind": "epsilon", "value": 0.3}


# ---------------------------------------------------------------- the service


@pytest.fixture(scope="module")
def policy_dir(tmp_path_factory: pytest.TempPathFactory, one_torch_thread: None) -> Path:
    scenario = envs.load_scenario("default")
    folder = tmp_path_factory.mktemp("policy") / "p"
    return export_policy(tiny_maskable(scenario), scenario, folder)


@pytest.fixture(scope="module")
def service(
    policy_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DecisionService]:
    """One worker in process (its metrics are the process's: one per module)."""
    settings = ServiceSettings(
        policy=str(policy_dir),
        log_dir=str(tmp_path_factory.mktemp("journal")),
        exploration="epsilon",
        exploration_value=EPSILON,
        explore_at=MOMENTS,
        seed=3,
    )
    running = DecisionService(settings)
    yield running
    running.close()


def test_the_service_gives_the_simulators_probabilities(service: DecisionService) -> None:
    runtime = service.runtime
    names = runtime.feature_names
    found = simulator_events(envs.load_scenario("default"), names, 400, seed=1)
    events = [found.event(i) for i in range(len(found.obs))]
    d = runtime.decide_batch(found.columns)
    assert d.allowed is not None
    explore = Exploration("epsilon", EPSILON, MOMENTS)
    at = at_moments(found.obs, d.allowed, explore.columns(names))
    expected = explore.mix(d.action_index, d.allowed, at=at)
    assert at.any() and (~at).any()
    one = [service.decide({"event": e})["decisions"][0] for e in events]
    batch = service.decide({"events": events})["decisions"]
    for answers in (one, batch):
        chosen = np.array([runtime.action_names.index(a["action"]) for a in answers])
        got = np.array([a["probability"] for a in answers])
        np.testing.assert_allclose(got, expected[np.arange(len(events)), chosen], atol=1e-12)
        assert np.all(got[~at] == 1.0) and np.all(chosen[~at] == d.action_index[~at])
        assert not any(a["explored"] for a, m in zip(answers, at, strict=True) if not m)
    assert service.spec.exploration == explore.to_dict()
    assert "at exit_intent or away" in service.exploring


def test_a_moment_without_consent_does_not_count(service: DecisionService) -> None:
    runtime = service.runtime
    found = simulator_events(envs.load_scenario("default"), runtime.feature_names, 400, seed=2)
    d = runtime.decide_batch(found.columns)
    names = list(runtime.feature_names)
    obs = found.obs
    rows = np.flatnonzero(
        (obs[:, names.index("consent")] == 0) & (obs[:, names.index("away")] == 0)
    )
    assert d.allowed is not None
    rows = rows[d.allowed[rows, 1:].any(axis=1)][:20]  # where exploring would show
    assert len(rows)
    for i in rows.tolist():
        event = {**found.event(i), "exit_intent": 1.0}  # sent, but the policy sees 0
        (answer,) = service.decide({"event": event})["decisions"]
        assert answer["probability"] == 1.0
        assert answer["action"] == runtime.action_names[int(d.action_index[i])]


def test_explore_at_is_validated(policy_dir: Path, tmp_path: Path, capsys: Any) -> None:
    settings = ServiceSettings(
        policy=str(policy_dir),
        log_dir=str(tmp_path),
        explore_at=["away"],  # type: ignore[arg-type]
    )
    assert ServiceSettings.from_json(settings.to_json()) == settings
    assert settings.explorer().moments == ("away",)
    assert log_spec(PolicyRuntime.load(policy_dir), settings).exploration == {
        "kind": "epsilon",
        "value": 0.05,
        "moments": ["away"],
    }
    with pytest.raises(ValueError, match="moments"):
        ServiceSettings(policy=str(policy_dir), log_dir=str(tmp_path), explore_at=("away", "away"))
    argv = ["--policy", str(policy_dir), "--logs", str(tmp_path), "--explore-at", "exit_intnt"]
    assert serve_main(argv) == 2
    assert "'exit_intnt'" in capsys.readouterr().err
