"""Export a trained policy to a self-contained directory a deployment can load without torch.

:func:`export_policy` writes two files into a new directory:

- ``policy.onnx``: the policy network, observation (``obs``, float32, shape
  ``(batch, n_features)``, dynamic batch) to one score per action (``scores``, float32,
  ``(batch, n_actions)``): the actor's logits for actor-critic algorithms (PPO, A2C,
  MaskablePPO), the Q-values for DQN, the mean of the quantiles for QR-DQN. One file, its
  weights inside (no ``.onnx.data``), opset 18.
- ``manifest.json``: what the network means and the rules around it, read by
  :mod:`agents.serving.runtime`: the schema version; the features in column order (bounds,
  binary or continuous, consent-gated or not, normalisation) and the list of the
  consent-gated ones; the merchant-side context a decision needs; the action catalogue
  with its cost model and eligibility rules; the guardrails and caps; how an action is
  selected from the scores (``masked_argmax`` for maskable algorithms, else
  ``argmax_else_wait``, as :class:`agents.learned.LearnedPolicy` plays them in
  evaluation); the scenario's name and digest; the training run; the KPIs at export; the
  sha256 and size of ``policy.onnx``; and the manifest's own digest.

The export is checked before it is written: onnxruntime must reproduce the torch scores
on a probe batch. Nothing on the deployment side uses pickle: the network is ONNX, the
manifest JSON. (Loading the SB3 ``.zip`` here, on the training side, is SB3's own affair.)
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from sb3_contrib import QRDQN, MaskablePPO, RecurrentPPO
from sb3_contrib.common.maskable.policies import MaskableActorCriticPolicy
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.dqn.policies import DQNPolicy

from agents.serving.runtime import (
    FORMAT,
    MANIFEST_FILE,
    POLICY_FILE,
    RULES,
    SCHEMA_VERSION,
    manifest_digest,
)
from envs.catalogue import KINDS, compile_actions
from envs.observation import feature_schema
from envs.scenario import ConcessionKind, Scenario

INPUT_NAME = "obs"
OUTPUT_NAME = "scores"
OPSET = 18

# features that only ever take the values 0 and 1 (the offered_<name> flags too)
BINARY_FEATURES = frozenset({"away", "consent", "offer_active", "returning_visitor", "exit_intent"})
# units of the features the guardrails read: feature value x unit = EUR
MONEY_UNITS = {"cart_value": 100.0, "shipping_fee": 10.0}


class ExportError(RuntimeError):
    """The model cannot be exported, or the export does not reproduce it."""


@dataclass(frozen=True)
class Normalisation:
    """Observation normalisation the network expects: ``clip((x - offset) / scale, ±clip)``.

    concede trains on raw features (``VecNormalize(norm_obs=False)``), so exports use the
    identity (:meth:`identity`); a model trained on normalised observations passes its
    running mean as ``offset`` and ``sqrt(var + eps)`` as ``scale``.
    """

    offset: Sequence[float] | NDArray[np.floating[Any]]
    scale: Sequence[float] | NDArray[np.floating[Any]]
    clip: float | None = None

    @staticmethod
    def identity(n: int) -> Normalisation:
        return Normalisation([0.0] * n, [1.0] * n, None)


class _Scores(torch.nn.Module):
    """Observation -> one score per action, for the algorithms concede trains."""

    def __init__(self, model: BaseAlgorithm) -> None:
        super().__init__()
        policy = model.policy
        self.policy = policy
        if isinstance(model, QRDQN):
            self.kind = "quantile_mean"
        elif isinstance(policy, DQNPolicy):
            self.kind = "q_values"
        elif isinstance(policy, ActorCriticPolicy | MaskableActorCriticPolicy):
            self.kind = "logits"
        else:
            raise ExportError(f"cannot export a {type(policy).__name__}: no action scores")

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        p: Any = self.policy
        if self.kind == "logits":
            features = p.pi_features_extractor(obs)
            return p.action_net(p.mlp_extractor.forward_actor(features))
        if self.kind == "q_values":
            return p.q_net(obs)
        return p.quantile_net(obs).mean(dim=1)


def export_policy(
    model: BaseAlgorithm,
    scenario: Scenario,
    out_dir: str | os.PathLike[str],
    *,
    run_id: str | None = None,
    agent: str | None = None,
    kpis: Mapping[str, Any] | None = None,
    normalisation: Normalisation | None = None,
) -> Path:
    """Write ``policy.onnx`` and ``manifest.json`` for ``model`` into ``out_dir``.

    Args:
        model: a trained SB3 / sb3-contrib algorithm (not recurrent) whose observation is
            ``envs.observation.feature_schema(scenario)``.
        scenario: the scenario it was trained on (its catalogue and caps are the rules).
        out_dir: a new or empty directory.
        run_id: the MLflow training run, recorded in the manifest.
        agent: the agent's config name (``maskable_ppo``...), recorded in the manifest.
        kpis: the KPIs at export (the policy's headline figures and verdict), recorded in
            the manifest.
        normalisation: what the network expects of its input; identity by default.

    Returns the directory. Raises :class:`ExportError` if the model does not fit the
    scenario, or onnxruntime does not reproduce its scores.
    """
    if isinstance(model, RecurrentPPO):
        raise ExportError(
            "recurrent policies keep an LSTM state between events; the exported runtime is "
            "stateless: export a feed-forward agent (maskable_ppo, ppo, a2c, dqn, qrdqn)"
        )
    schema = feature_schema(scenario)
    n_features, n_actions = len(schema), scenario.n_actions
    obs_shape = tuple(model.observation_space.shape or ())
    if obs_shape != (n_features,):
        raise ExportError(
            f"the model observes shape {obs_shape}, scenario {scenario.name!r} has "
            f"{n_features} features: export it with the scenario it was trained on"
        )
    if getattr(model.action_space, "n", None) != n_actions:
        raise ExportError(
            f"the model has {getattr(model.action_space, 'n', '?')} actions, scenario "
            f"{scenario.name!r} has {n_actions}"
        )
    norm = normalisation or Normalisation.identity(n_features)
    if len(norm.offset) != n_features or len(norm.scale) != n_features:
        raise ExportError(f"normalisation must have {n_features} offsets and scales")
    if not all(s > 0 for s in norm.scale):
        raise ExportError("normalisation scales must be > 0")

    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        raise ExportError(f"{out} is not empty: export into a new directory")
    out.mkdir(parents=True, exist_ok=True)

    scores = _Scores(model).eval()
    model.policy.set_training_mode(False)
    onnx_path = out / POLICY_FILE
    _write_onnx(scores, n_features, onnx_path)
    extra = sorted(p.name for p in out.iterdir() if p.name != POLICY_FILE)
    if extra:
        raise ExportError(f"the ONNX export wrote extra files {extra}: weights must be inline")
    _check_reproduces(scores, onnx_path, scenario, norm)

    payload = onnx_path.read_bytes()
    manifest = build_manifest(
        scenario,
        model=model,
        scores_kind=scores.kind,
        sha256=hashlib.sha256(payload).hexdigest(),
        size=len(payload),
        run_id=run_id,
        agent=agent,
        kpis=kpis,
        normalisation=norm,
    )
    write_manifest(manifest, out / MANIFEST_FILE)
    return out


def _write_onnx(module: torch.nn.Module, n_features: int, path: Path) -> None:
    """The dynamo exporter (needs onnxscript), weights inline, a dummy batch of 2."""
    dummy = torch.zeros((2, n_features), dtype=torch.float32)
    # "torchvision is not installed" notices: the policy uses no torchvision operator
    registration = logging.getLogger("torch.onnx._internal.exporter._registration")
    level = registration.level
    registration.setLevel(logging.ERROR)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            _export(module, dummy, path)
        finally:
            registration.setLevel(level)


def _export(module: torch.nn.Module, dummy: torch.Tensor, path: Path) -> None:
    torch.onnx.export(
        module,
        (dummy,),
        str(path),
        input_names=[INPUT_NAME],
        output_names=[OUTPUT_NAME],
        dynamic_shapes={INPUT_NAME: {0: torch.export.Dim("batch")}},
        opset_version=OPSET,
        external_data=False,
        dynamo=True,
        verbose=False,
    )


def _check_reproduces(
    module: torch.nn.Module, path: Path, scenario: Scenario, norm: Normalisation
) -> None:
    """onnxruntime must give the torch scores on a probe batch inside the feature box."""
    import onnxruntime as ort

    schema = feature_schema(scenario)
    rng = np.random.default_rng(0)
    low = np.array([f.low for f in schema])
    high = np.array([f.high for f in schema])
    raw = rng.uniform(low, high, size=(256, len(schema)))
    x = ((raw - np.asarray(norm.offset)) / np.asarray(norm.scale)).astype(np.float32)
    if norm.clip is not None:
        x = np.clip(x, -norm.clip, norm.clip)
    with torch.no_grad():
        expected = module(torch.from_numpy(x)).numpy()
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run([OUTPUT_NAME], {INPUT_NAME: x})[0]
    tolerance = 1e-4 * max(1.0, float(np.abs(expected).max()))
    worst = float(np.abs(got - expected).max())
    if got.shape != expected.shape or worst > tolerance:
        raise ExportError(
            f"onnxruntime does not reproduce the torch scores (max difference {worst:.3g}, "
            f"tolerance {tolerance:.3g}); the export is not written"
        )


def _feature_entries(scenario: Scenario, norm: Normalisation) -> list[dict[str, Any]]:
    entries = []
    for i, f in enumerate(feature_schema(scenario)):
        binary = f.name in BINARY_FEATURES or f.name.startswith("offered_")
        entries.append(
            {
                "name": f.name,
                "index": i,
                "low": float(f.low),
                "high": float(f.high),
                "kind": "binary" if binary else "continuous",
                "gated": bool(f.gated),
                "description": f.description,
                "normalisation": {"offset": float(norm.offset[i]), "scale": float(norm.scale[i])},
            }
        )
    return entries


def _context_entries(scenario: Scenario) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = [
        {
            "name": "offers_made",
            "kind": "count",
            "low": 0.0,
            "high": None,
            "description": "offers already made to this shopper in this journey "
            "(the contact cap counts them)",
        },
        {
            "name": "in_chat",
            "kind": "binary",
            "low": 0.0,
            "high": 1.0,
            "description": "1 while the shopper is in a session with a live agent",
        },
        {
            "name": "agents_free",
            "kind": "count",
            "low": 0.0,
            "high": None,
            "description": "live agents free now",
        },
        {
            "name": "carrier_cost",
            "kind": "continuous",
            "low": 0.0,
            "high": None,
            "description": "EUR the merchant pays the carrier for this order (margin floor)",
        },
    ]
    if scenario.campaign_budget_per_1000 is not None:
        entries.append(
            {
                "name": "budget_left",
                "kind": "continuous",
                "low": None,
                "high": None,
                "description": "EUR left in the campaign budget (negative once overspent)",
            }
        )
    return entries


def _action_entries(scenario: Scenario) -> list[dict[str, Any]]:
    table = compile_actions(scenario)
    entries: list[dict[str, Any]] = [
        {
            "index": 0,
            "name": "wait",
            "kind": "wait",
            "channel": "none",
            "magnitude": 0.0,
            "unit_cost": 0.0,
            "expiry_steps": 0,
            "rules": {"min_cart": 0.0, "once_per_shopper": False, "margin_floor": -1.0},
            "cost_model": {
                "percent_of_cart": 0.0,
                "fixed_eur": 0.0,
                "shipping_fee_share": 0.0,
                "extra_eur": 0.0,
            },
        }
    ]
    for a, c in enumerate(scenario.concessions, start=1):
        kind = KINDS[table.kind[a]]
        percent = kind in (ConcessionKind.PERCENT_DISCOUNT, ConcessionKind.RETARGETING)
        extra = table.purchase_cost[a] + table.voucher_liability[a] + table.send_cost[a]
        entries.append(
            {
                "index": a,
                "name": c.name,
                "kind": kind.value,
                "channel": kind.channel,
                "magnitude": float(c.magnitude),
                "unit_cost": float(c.unit_cost),
                "expiry_steps": int(c.expiry_steps),
                "redemption_probability": float(c.redemption_probability),
                "rules": {
                    "min_cart": float(c.min_cart),
                    "once_per_shopper": bool(c.once_per_shopper),
                    "margin_floor": float(c.margin_floor),
                },
                # expected cost (EUR) = percent_of_cart x cart + min(fixed_eur, cart)
                #                       + shipping_fee_share x fee + extra_eur
                "cost_model": {
                    "percent_of_cart": float(c.magnitude) if percent else 0.0,
                    "fixed_eur": float(c.magnitude)
                    if kind is ConcessionKind.FIXED_DISCOUNT
                    else 0.0,
                    "shipping_fee_share": 1.0 if kind is ConcessionKind.FREE_SHIPPING else 0.0,
                    "extra_eur": float(extra),
                },
            }
        )
    return entries


def build_manifest(
    scenario: Scenario,
    *,
    model: BaseAlgorithm,
    scores_kind: str,
    sha256: str,
    size: int,
    run_id: str | None = None,
    agent: str | None = None,
    kpis: Mapping[str, Any] | None = None,
    normalisation: Normalisation | None = None,
) -> dict[str, Any]:
    """The manifest as a JSON-ready mapping (without its digest; see :func:`write_manifest`)."""
    norm = normalisation or Normalisation.identity(len(feature_schema(scenario)))
    algorithm = f"{type(model).__module__}.{type(model).__qualname__}"
    return {
        "format": FORMAT,
        "schema_version": SCHEMA_VERSION,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "policy": {
            "file": POLICY_FILE,
            "sha256": sha256,
            "bytes": size,
            "input": INPUT_NAME,
            "output": OUTPUT_NAME,
            "dtype": "float32",
            "opset": OPSET,
            "scores": scores_kind,
            "selection": "masked_argmax" if isinstance(model, MaskablePPO) else "argmax_else_wait",
            "algorithm": algorithm,
            "num_timesteps": int(model.num_timesteps),
        },
        "scenario": {"name": scenario.name, "digest": scenario.digest()},
        "training": {"run_id": run_id, "agent": agent},
        "kpis": dict(kpis) if kpis is not None else None,
        "observation": {
            "normalisation": "affine",
            "clip": norm.clip,
            "note": "model input = clip((feature - offset) / scale); concede trains on raw "
            "features, so offset 0 and scale 1 unless stated",
        },
        "features": _feature_entries(scenario, norm),
        "consent": {
            "feature": "consent",
            "gated_features": [f.name for f in feature_schema(scenario) if f.gated],
            "rule": "with consent = 0 the runtime sets these features to 0 before the network "
            "sees them, and never sends an e-mail",
        },
        "context": _context_entries(scenario),
        "money": {f"{name}_eur_per_unit": unit for name, unit in MONEY_UNITS.items()},
        "actions": _action_entries(scenario),
        "guardrails": {
            "max_offers_per_shopper": scenario.max_offers_per_shopper,
            "campaign_budget_per_1000": scenario.campaign_budget_per_1000,
            "live_agents": {
                "capacity_per_1000": scenario.live_agents.capacity_per_1000,
                "session_steps": scenario.live_agents.session_steps,
            },
            "rules": [{"name": n, "description": d} for n, d in RULES],
        },
    }


def write_manifest(manifest: Mapping[str, Any], path: Path) -> None:
    """Write ``manifest`` with its digest, atomically (a temporary file renamed)."""
    full = {**manifest, "manifest_digest": manifest_digest(manifest)}
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".manifest-", suffix=".json")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(full, handle, indent=2, allow_nan=False)
        handle.write("\n")
    os.replace(tmp, path)
