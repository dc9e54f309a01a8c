"""Export: a trained policy becomes one self-contained ONNX file and a complete manifest.

The model is a real MaskablePPO trained for 2,048 timesteps on 16 shoppers of the default
scenario (net_arch [16], about 3 s), built once for this module; other algorithms are
exported untrained (their weights are random, which is all the export needs).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from sb3_contrib import QRDQN, MaskablePPO, RecurrentPPO
from stable_baselines3 import DQN, PPO

import envs
from agents.export import (
    MANIFEST_FILE,
    POLICY_FILE,
    ExportError,
    Normalisation,
    export_policy,
)
from agents.serving.runtime import RULE_NAMES, SCHEMA_VERSION, PolicyRuntime, manifest_digest
from agents.vec_env import ShopperVecEnv
from envs.observation import feature_schema
from experiments.evaluation.evaluation_file import EvaluationFileError, kpis_from_report

SCENARIO = "default"


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def exported(trained: MaskablePPO, tmp_path_factory: pytest.TempPathFactory) -> Path:
    kpis = {"policy": "maskable_ppo", "metrics": {"profit_per_1000": {"estimate": 1.0}}}
    return export_policy(
        trained,
        envs.load_scenario(SCENARIO),
        tmp_path_factory.mktemp("export") / "policy",
        run_id="run-123",
        agent="maskable_ppo",
        kpis=kpis,
    )


def _manifest(folder: Path) -> dict:
    return json.loads((folder / MANIFEST_FILE).read_text())


def _random_obs(n: int, seed: int = 0) -> np.ndarray:
    schema = feature_schema(envs.load_scenario(SCENARIO))
    rng = np.random.default_rng(seed)
    low = np.array([f.low for f in schema])
    high = np.array([f.high for f in schema])
    return rng.uniform(low, high, size=(n, len(schema))).astype(np.float32)


def test_export_is_one_self_contained_onnx_file_with_a_dynamic_batch(exported: Path) -> None:
    assert sorted(p.name for p in exported.iterdir()) == [MANIFEST_FILE, POLICY_FILE]
    model = onnx.load(str(exported / POLICY_FILE), load_external_data=False)
    onnx.checker.check_model(model)
    assert all(init.data_location != onnx.TensorProto.EXTERNAL for init in model.graph.initializer)
    assert model.opset_import[0].version == 18
    (obs,) = model.graph.input
    batch, width = obs.type.tensor_type.shape.dim
    assert batch.dim_param and not batch.HasField("dim_value")  # symbolic: any batch size
    assert width.dim_value == len(feature_schema(envs.load_scenario(SCENARIO)))
    session = ort.InferenceSession(str(exported / POLICY_FILE))
    for n in (1, 7, 1024):
        (scores,) = session.run(None, {"obs": _random_obs(n)})
        assert scores.shape == (n, envs.load_scenario(SCENARIO).n_actions)


def test_manifest_records_schema_features_catalogue_guardrails_and_provenance(
    exported: Path,
) -> None:
    scenario = envs.load_scenario(SCENARIO)
    manifest = _manifest(exported)
    assert manifest["schema_version"] == SCHEMA_VERSION
    assert manifest["manifest_digest"] == manifest_digest(manifest)
    payload = (exported / POLICY_FILE).read_bytes()
    assert manifest["policy"]["sha256"] == hashlib.sha256(payload).hexdigest()
    assert manifest["policy"]["bytes"] == len(payload)
    assert manifest["policy"]["selection"] == "masked_argmax"
    assert manifest["policy"]["scores"] == "logits"
    assert manifest["scenario"] == {"name": scenario.name, "digest": scenario.digest()}
    assert manifest["training"] == {"run_id": "run-123", "agent": "maskable_ppo"}
    assert manifest["kpis"]["metrics"]["profit_per_1000"]["estimate"] == 1.0

    schema = feature_schema(scenario)
    features = manifest["features"]
    assert [f["name"] for f in features] == [f.name for f in schema]
    assert [(f["low"], f["high"], f["gated"]) for f in features] == [
        (f.low, f.high, f.gated) for f in schema
    ]
    gated = {f["name"] for f in features if f["gated"]}
    assert gated == {
        "returning_visitor",
        "visit_index",
        "exit_intent",
        "dwell_time",
        "steps_at_stage",
        "cart_edits",
        "substitute_views",
    }
    assert manifest["consent"]["gated_features"] == [f["name"] for f in features if f["gated"]]
    assert all(f["normalisation"] == {"offset": 0.0, "scale": 1.0} for f in features)
    binary = {f["name"] for f in features if f["kind"] == "binary"}
    assert {"away", "consent", "offered_free_shipping"} <= binary
    assert "cart_value" not in binary

    actions = manifest["actions"]
    assert [a["name"] for a in actions] == list(scenario.action_names)
    for entry, concession in zip(actions[1:], scenario.concessions, strict=True):
        assert entry["kind"] == concession.kind.value
        assert entry["channel"] == concession.channel
        assert entry["rules"] == {
            "min_cart": concession.min_cart,
            "once_per_shopper": concession.once_per_shopper,
            "margin_floor": concession.margin_floor,
        }
    free_gift = next(a for a in actions if a["name"] == "free_gift")
    assert free_gift["cost_model"]["extra_eur"] == 4.0  # the gift's unit cost
    guardrails = manifest["guardrails"]
    assert guardrails["max_offers_per_shopper"] == scenario.max_offers_per_shopper
    assert [r["name"] for r in guardrails["rules"]] == list(RULE_NAMES)
    assert {c["name"] for c in manifest["context"]} == {
        "offers_made",
        "in_chat",
        "agents_free",
        "carrier_cost",
    }  # no campaign budget in default, so no budget_left


def test_onnx_scores_reproduce_the_sb3_policy(trained: MaskablePPO, exported: Path) -> None:
    obs = _random_obs(1000, seed=1)
    session = ort.InferenceSession(str(exported / POLICY_FILE))
    (scores,) = session.run(None, {"obs": obs})
    with torch.no_grad():
        dist: Any = trained.policy.get_distribution(torch.from_numpy(obs))
        probs = dist.distribution.probs.numpy()
    got = np.exp(scores - scores.max(axis=1, keepdims=True))
    np.testing.assert_allclose(got / got.sum(axis=1, keepdims=True), probs, atol=1e-5)
    actions, _ = trained.predict(obs, deterministic=True)
    np.testing.assert_array_equal(scores.argmax(axis=1), actions)


@pytest.mark.parametrize(
    ("algorithm", "kwargs", "scores"),
    [
        (PPO, {"n_steps": 16, "batch_size": 16}, "logits"),
        (DQN, {"learning_starts": 0}, "q_values"),
        (QRDQN, {"learning_starts": 0}, "quantile_mean"),
    ],
)
def test_other_algorithms_export_their_action_scores(
    algorithm: type, kwargs: dict, scores: str, tmp_path: Path
) -> None:
    env = ShopperVecEnv(SCENARIO, 4, seed=0)
    model = algorithm(
        "MlpPolicy", env, seed=0, policy_kwargs={"net_arch": [8]}, device="cpu", **kwargs
    )
    folder = export_policy(model, envs.load_scenario(SCENARIO), tmp_path / "p")
    manifest = _manifest(folder)
    assert manifest["policy"]["scores"] == scores
    assert manifest["policy"]["selection"] == "argmax_else_wait"
    obs = _random_obs(300, seed=2)
    (got,) = ort.InferenceSession(str(folder / POLICY_FILE)).run(None, {"obs": obs})
    expected, _ = model.predict(obs, deterministic=True)
    np.testing.assert_array_equal(got.argmax(axis=1), expected)


def test_normalisation_is_recorded_and_applied_by_the_runtime(
    trained: MaskablePPO, tmp_path: Path
) -> None:
    scenario = envs.load_scenario(SCENARIO)
    n = len(feature_schema(scenario))
    offset = np.linspace(0.0, 0.5, n)
    scale = np.linspace(0.5, 2.0, n)
    folder = export_policy(
        trained, scenario, tmp_path / "p", normalisation=Normalisation(offset, scale, clip=5.0)
    )
    features = _manifest(folder)["features"]
    assert features[3]["normalisation"] == {"offset": offset[3], "scale": scale[3]}
    runtime = PolicyRuntime.load(folder)
    event = runtime.example_event()
    event.update(cart_value=1.4, margin_rate=0.43, shipping_fee=0.79, exit_intent=1.0)
    raw = np.array([[event[f] for f in runtime.feature_names]], dtype=np.float32)
    with torch.no_grad():
        x = torch.from_numpy(np.clip((raw - offset) / scale, -5, 5).astype(np.float32))
        logits = trained.policy.action_net(trained.policy.mlp_extractor.forward_actor(x))
    columns = {k: np.array([v]) for k, v in event.items()}
    np.testing.assert_allclose(runtime.decide_batch(columns).scores, logits.numpy(), atol=1e-5)


def test_export_refuses_what_it_cannot_reproduce(trained: MaskablePPO, tmp_path: Path) -> None:
    stress = envs.load_scenario(SCENARIO).to_dict()
    stress["concessions"].append({"name": "extra", "kind": "voucher", "magnitude": 5.0})
    other = envs.Scenario.from_dict(stress)
    with pytest.raises(ExportError, match="features"):
        export_policy(trained, other, tmp_path / "a")
    recurrent = RecurrentPPO(
        "MlpLstmPolicy", ShopperVecEnv(SCENARIO, 2, seed=0), n_steps=4, batch_size=4, device="cpu"
    )
    with pytest.raises(ExportError, match="stateless"):
        export_policy(recurrent, envs.load_scenario(SCENARIO), tmp_path / "b")
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "something").write_text("x")
    with pytest.raises(ExportError, match="not empty"):
        export_policy(trained, envs.load_scenario(SCENARIO), busy)
    n = len(feature_schema(envs.load_scenario(SCENARIO)))
    with pytest.raises(ExportError, match="scales"):
        export_policy(
            trained,
            envs.load_scenario(SCENARIO),
            tmp_path / "c",
            normalisation=Normalisation([0.0] * n, [0.0] * n),
        )


def test_kpis_from_an_evaluation_report() -> None:
    interval = {"estimate": 2.0, "low": 1.0, "high": 3.0}
    report = {
        "n_shoppers": 100,
        "seed": 7,
        "overall": {"maskable_ppo": {"profit_per_1000": interval, "conversion": interval}},
        "verdict": {
            "learner": "maskable_ppo",
            "best_baseline": "never",
            "significance": "better",
            "sentence": "s",
            "diff_per_1000": interval,
        },
    }
    kpis = kpis_from_report(report)
    assert kpis["metrics"] == {"profit_per_1000": interval, "conversion": interval}
    assert kpis["verdict"] == {"best_baseline": "never", "significance": "better", "sentence": "s"}
    with pytest.raises(EvaluationFileError, match="no policy"):
        kpis_from_report(report, "dqn")
