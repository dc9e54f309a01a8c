"""The deployed policy: load an exported policy directory and decide, with guardrails.

Depends on numpy, onnxruntime and the standard library only (no torch, no SB3, no
``envs``): a deployment installs those two packages and copies this one file, which is
also what the MLflow model logs beside its code (see ``agents/serving/mlflow_model.py``).

Loading (:meth:`PolicyRuntime.load`) refuses, with :class:`PolicyLoadError`, a directory
whose ``manifest.json`` is not valid JSON, is of another format or schema version, or was
edited after export (its ``manifest_digest``); whose ``policy.onnx`` is not the size or
sha256 the manifest records (truncated, tampered, or from another export); or whose
network does not have the manifest's inputs and outputs.

Deciding: :meth:`PolicyRuntime.decide` takes one event, a mapping with exactly the names
of :attr:`PolicyRuntime.input_names`: every feature of the manifest (in feature units, as
the simulator observes them) and the merchant-side context:

- ``offers_made``: offers already made to this shopper in this journey (a whole number);
- ``in_chat``: 1 while the shopper is in a session with a live agent, else 0;
- ``agents_free``: live agents free now (a whole number);
- ``carrier_cost``: EUR the merchant pays the carrier for this order (margin floor);
- ``budget_left``: EUR left in the campaign budget (only if the scenario has a budget).

:meth:`PolicyRuntime.decide_batch` takes the same names as columns (``name -> 1-D
array``, all of one length) and decides every row as :meth:`decide` would decide it
alone: rows are independent events (a batch does not share one live-agent desk between
its rows; give each row the agents free for it). The batch path is vectorised numpy.

Every input is validated first; :class:`PolicyInputError` names the field (and the row):
a missing or unknown field; a value that is not a number (``None``/null, booleans,
strings); NaN or ±inf; a value outside the feature's bounds (with a relative tolerance
of 1e-6, for values that went through float32); a binary field not 0 or 1; a count not a
whole number. Nothing else is raised for bad input.

Then, independently of the model:

1. consent: for a shopper with ``consent`` = 0 the consent-gated features are set to 0,
   so the decision cannot depend on them;
2. the network scores every action;
3. the guardrails forbid actions, in this order (the first that applies is the one
   reported): ``disabled`` (by this deployment), ``channel`` (pop-ups and chat only while
   the shopper is on the site, e-mails only after they left), ``email_consent``,
   ``contact_cap`` (``offers_made`` reached ``max_offers_per_shopper``), ``min_cart``,
   ``margin_floor`` (margin left after the concession's expected cost below
   ``margin_floor`` x cart), ``once_per_shopper`` (its ``offered_<name>`` feature is 1),
   ``in_chat`` and ``agent_capacity`` (live agents), ``budget`` (expected cost above
   ``budget_left``). ``wait`` is always allowed. These are the simulator's eligibility
   rules (``envs/eligibility.py``), re-implemented from the manifest;
4. the action: ``masked_argmax`` (maskable policies): the best-scoring allowed action;
   ``argmax_else_wait`` (the others): the best-scoring action if allowed, else ``wait``.

A :class:`Decision` carries the action, its concession's details, the model's own
preference, the runner-up (the best allowed action after the one decided), the guardrail
that overrode the model (if any) and a one-line reason.

The actions the campaign budget alone withheld (allowed by every other guardrail,
forbidden by ``budget``: what a decision log records as ``withheld_<action>``) come with
:meth:`PolicyRuntime.decide_scored` (a bit set) and :attr:`Decisions.withheld` (a mask);
none without a campaign budget.
"""

from __future__ import annotations

import bisect
import functools
import hashlib
import itertools
import json
import math
import operator
import os
import struct
import sys
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, NamedTuple, NoReturn

import numpy as np
import onnxruntime as ort
from numpy.typing import NDArray

FORMAT = "concede-policy"
SCHEMA_VERSION = 1
POLICY_FILE = "policy.onnx"
MANIFEST_FILE = "manifest.json"
SELECTIONS = ("masked_argmax", "argmax_else_wait")
RULES: tuple[tuple[str, str], ...] = (
    ("disabled", "the deployment disabled this action"),
    ("channel", "pop-ups and chat only while the shopper is on the site, e-mails only after"),
    ("email_consent", "an e-mail needs the shopper's tracking consent"),
    ("contact_cap", "the shopper already had the maximum number of offers"),
    ("min_cart", "the cart is below the action's minimum"),
    ("margin_floor", "the margin left after the concession would be below its floor"),
    ("once_per_shopper", "already offered to this shopper in this journey"),
    ("in_chat", "the shopper is already talking to a live agent"),
    ("agent_capacity", "no live agent is free"),
    ("budget", "its expected cost exceeds what is left of the campaign budget"),
)
RULE_NAMES = tuple(name for name, _ in RULES)
CONTEXT_FIELDS = ("offers_made", "in_chat", "agents_free", "carrier_cost", "budget_left")
# tolerance, relative, for bounds and money compared after a float32 round trip
TOLERANCE = 1e-6
_REQUIRED_FEATURES = ("cart_value", "shipping_fee", "margin_rate", "away", "consent")
_BINARY, _COUNT, _CONTINUOUS = 1, 2, 0
_NUMBER_TYPES = frozenset({float, int})
_ZERO_ONE = frozenset({0, 1})
# the one-event path looks the allowed actions of a bit set up in a table up to this many
# actions (2**k entries), and lists them on the fly beyond
_INDEX_TABLE_ACTIONS = 14
(
    _R_DISABLED,
    _R_CHANNEL,
    _R_CONSENT,
    _R_CAP,
    _R_MIN_CART,
    _R_FLOOR,
    _R_ONCE,
    _R_CHAT,
    _R_CAPACITY,
    _R_BUDGET,
) = range(len(RULES))
# the rule bits of an action the campaign budget alone forbids
_BUDGET_ONLY = np.uint16(1 << _R_BUDGET)


class PolicyLoadError(RuntimeError):
    """A policy directory is missing, corrupted, tampered with or inconsistent."""


class PolicyInputError(ValueError):
    """An event is invalid. ``field`` names the input (None for the event as a whole),
    ``row`` the row of a batch (None for one event)."""

    def __init__(self, field: str | None, problem: str, row: int | None = None) -> None:
        self.field = field
        self.row = row
        self.problem = problem
        where = field if row is None or field is None else f"{field}[row {row}]"
        super().__init__(f"{where}: {problem}" if where else problem)


def manifest_digest(manifest: Mapping[str, Any]) -> str:
    """sha256 of the canonical JSON of ``manifest`` without its ``manifest_digest`` key."""
    body = {k: v for k, v in manifest.items() if k != "manifest_digest"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class Decision(NamedTuple):
    """What to do for one event.

    ``action`` is the action's name (``wait`` or a concession of the catalogue);
    ``concession`` its details (kind, channel, magnitude, unit_cost, expiry_steps), None
    for ``wait``; ``model_choice`` the action the network scored highest, all rules
    aside; ``runner_up`` the best allowed action after ``action`` (None if none);
    ``guardrail`` the rule that forbade ``model_choice`` (None if the model was followed);
    ``reason`` one line saying which.
    """

    action: str
    action_index: int
    concession: Mapping[str, Any] | None
    reason: str
    model_choice: str
    runner_up: str | None
    guardrail: str | None

    def to_dict(self) -> dict[str, Any]:
        """The decision as a JSON-ready dict (``concession`` a dict, or None for wait)."""
        return {
            "action": self.action,
            "action_index": self.action_index,
            "concession": None if self.concession is None else dict(self.concession),
            "reason": self.reason,
            "model_choice": self.model_choice,
            "runner_up": self.runner_up,
            "guardrail": self.guardrail,
        }

    def record(self) -> dict[str, Any]:
        """The decision as one flat record with the :data:`OUTPUT_COLUMNS` keys, as
        :meth:`Decisions.records` gives for a row of a batch."""
        details = self.concession or _NO_CONCESSION
        return {
            "action": self.action,
            "action_index": self.action_index,
            "kind": details["kind"],
            "channel": details["channel"],
            "magnitude": details["magnitude"],
            "unit_cost": details["unit_cost"],
            "expiry_steps": details["expiry_steps"],
            "model_choice": self.model_choice,
            "runner_up": self.runner_up,
            "guardrail": self.guardrail,
            "reason": self.reason,
        }


#: a :class:`Decision` of its seven fields in order, made in C without the keyword handling
#: of ``Decision(...)`` (the one-event path makes one per call)
_decision: Callable[[tuple[Any, ...]], Decision] = functools.partial(tuple.__new__, Decision)


_NO_CONCESSION: Mapping[str, Any] = MappingProxyType(
    {"kind": "wait", "channel": "none", "magnitude": 0.0, "unit_cost": 0.0, "expiry_steps": 0}
)

OUTPUT_COLUMNS = (
    "action",
    "action_index",
    "kind",
    "channel",
    "magnitude",
    "unit_cost",
    "expiry_steps",
    "model_choice",
    "runner_up",
    "guardrail",
    "reason",
)


@dataclass(frozen=True)
class Decisions:
    """Decisions for a batch, as columns of length ``n`` (row ``i`` is ``self[i]``).

    ``runner_up`` and ``guardrail`` hold None where there is none; ``scores`` are the
    network's raw scores, shape ``(n, n_actions)``; ``allowed`` says which actions the
    guardrails allow per row, shape ``(n, n_actions)`` (``wait`` always); ``withheld``
    which ones the campaign budget alone forbids (every other guardrail allows them),
    same shape (all false without a budget).
    """

    action_index: NDArray[np.int64]
    action: NDArray[np.object_]
    kind: NDArray[np.object_]
    channel: NDArray[np.object_]
    magnitude: NDArray[np.float64]
    unit_cost: NDArray[np.float64]
    expiry_steps: NDArray[np.int64]
    model_choice: NDArray[np.object_]
    runner_up: NDArray[np.object_]
    guardrail: NDArray[np.object_]
    reason: NDArray[np.object_]
    scores: NDArray[np.float32]
    _details: tuple[Mapping[str, Any] | None, ...]
    allowed: NDArray[np.bool_] | None = None
    withheld: NDArray[np.bool_] | None = None

    def __len__(self) -> int:
        return len(self.action_index)

    def __getitem__(self, i: int) -> Decision:
        a = int(self.action_index[i])
        return Decision(
            action=str(self.action[i]),
            action_index=a,
            concession=self._details[a],
            reason=str(self.reason[i]),
            model_choice=str(self.model_choice[i]),
            runner_up=self.runner_up[i],
            guardrail=self.guardrail[i],
        )

    def columns(self) -> dict[str, NDArray[Any]]:
        """The decisions as named columns, in :data:`OUTPUT_COLUMNS` order."""
        return {name: getattr(self, name) for name in OUTPUT_COLUMNS}

    def records(self) -> list[dict[str, Any]]:
        """One JSON-ready dict per row, with the :data:`OUTPUT_COLUMNS` keys."""
        lists = [getattr(self, name).tolist() for name in OUTPUT_COLUMNS]
        return [dict(zip(OUTPUT_COLUMNS, row, strict=True)) for row in zip(*lists, strict=True)]


# ---------------------------------------------------------------- manifest reading


def _need(mapping: Any, key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if not isinstance(mapping, dict) or key not in mapping:
        raise PolicyLoadError(f"manifest.json: {where}.{key} is missing; export the policy again")
    value = mapping[key]
    if not isinstance(value, kind) or (isinstance(value, bool) and bool not in _as_tuple(kind)):
        raise PolicyLoadError(f"manifest.json: {where}.{key} has the wrong type ({value!r})")
    return value


def _as_tuple(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


def _read_manifest(folder: Path) -> dict[str, Any]:
    path = folder / MANIFEST_FILE
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise PolicyLoadError(
            f"{path} is missing: a policy directory holds {MANIFEST_FILE} and {POLICY_FILE} "
            "as written by agents.export.export_policy"
        ) from None

    def no_constants(name: str) -> None:
        raise ValueError(f"{name} is not valid JSON")

    try:
        manifest = json.loads(raw.decode("utf-8"), parse_constant=no_constants)
    except (UnicodeDecodeError, ValueError) as err:
        raise PolicyLoadError(
            f"{path} is not valid JSON ({err}): truncated or corrupted; export the policy again"
        ) from None
    if not isinstance(manifest, dict):
        raise PolicyLoadError(f"{path} must hold a JSON object")
    if manifest.get("format") != FORMAT:
        raise PolicyLoadError(
            f"{path} is not a {FORMAT} manifest (format {manifest.get('format')!r})"
        )
    version = manifest.get("schema_version")
    if version != SCHEMA_VERSION:
        raise PolicyLoadError(
            f"{path} has schema version {version!r}; this runtime reads version "
            f"{SCHEMA_VERSION}: export the policy again with this repository's exporter, or "
            "deploy the runtime that matches it"
        )
    recorded = manifest.get("manifest_digest")
    if recorded != manifest_digest(manifest):
        raise PolicyLoadError(
            f"{path} was modified after export (its manifest_digest does not match its "
            "content): do not edit a manifest; export the policy again"
        )
    return manifest


def _read_policy(folder: Path, manifest: dict[str, Any]) -> bytes:
    policy = _need(manifest, "policy", dict, "manifest")
    name = _need(policy, "file", str, "policy")
    if name != POLICY_FILE:
        raise PolicyLoadError(f"manifest.json: policy.file must be {POLICY_FILE!r}, got {name!r}")
    path = folder / POLICY_FILE
    try:
        payload = path.read_bytes()
    except FileNotFoundError:
        raise PolicyLoadError(f"{path} is missing; copy the whole policy directory") from None
    expected = _need(policy, "bytes", int, "policy")
    if len(payload) != expected:
        raise PolicyLoadError(
            f"{path} is {len(payload)} bytes, the manifest says {expected}: truncated, or "
            "replaced by another export's file; copy the policy directory again"
        )
    digest = hashlib.sha256(payload).hexdigest()
    if digest != _need(policy, "sha256", str, "policy"):
        raise PolicyLoadError(
            f"{path} does not match the manifest's sha256 ({digest[:12]}... vs "
            f"{policy['sha256'][:12]}...): tampered with, corrupted, or from another export"
        )
    return payload


def _session(payload: bytes) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    try:
        return ort.InferenceSession(payload, options, providers=["CPUExecutionProvider"])
    except Exception as err:  # onnxruntime raises its own exception types
        raise PolicyLoadError(f"{POLICY_FILE} is not a loadable ONNX model: {err}") from None


# ---------------------------------------------------------------- the runtime


class PolicyRuntime:
    """An exported policy with its guardrails, ready to decide. Thread-safe once built.

    Build it with :meth:`load`. Attributes: ``path`` (the directory), ``manifest``
    (read-only), ``input_names`` (features then context, the exact keys of an event),
    ``feature_names``, ``context_names``, ``action_names``, ``selection``,
    ``max_offers_per_shopper``, ``disabled``.
    """

    def __init__(
        self,
        manifest: dict[str, Any],
        session: ort.InferenceSession,
        *,
        max_offers_per_shopper: int | None = None,
        disabled: Iterable[str] = (),
    ) -> None:
        self.manifest: Mapping[str, Any] = MappingProxyType(manifest)
        self.path: Path | None = None
        self._session = session
        self._parse_features(manifest)
        self._parse_context(manifest)
        self._parse_actions(manifest)
        self._parse_guardrails(manifest, max_offers_per_shopper, disabled)
        self._check_network(manifest, session)
        self._build_tables()

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str],
        *,
        scenario_digest: str | None = None,
        max_offers_per_shopper: int | None = None,
        disabled: Iterable[str] = (),
    ) -> PolicyRuntime:
        """Load and verify a policy directory written by ``agents.export.export_policy``.

        Args:
            path: the directory holding ``manifest.json`` and ``policy.onnx``.
            scenario_digest: if given, the policy must have been trained on the scenario
                with this digest (``Scenario.digest()``).
            max_offers_per_shopper: a tighter contact cap than the manifest's.
            disabled: concession names this deployment never offers.

        Raises :class:`PolicyLoadError` if anything does not verify.
        """
        folder = Path(path)
        if not folder.is_dir():
            raise PolicyLoadError(
                f"{folder} is not a directory: give the policy directory written by "
                "agents.export.export_policy (manifest.json and policy.onnx)"
            )
        manifest = _read_manifest(folder)
        payload = _read_policy(folder, manifest)
        if scenario_digest is not None:
            scenario = _need(manifest, "scenario", dict, "manifest")
            if scenario.get("digest") != scenario_digest:
                raise PolicyLoadError(
                    f"{folder} was trained on scenario {scenario.get('name')!r} with digest "
                    f"{str(scenario.get('digest'))[:12]}..., not the expected "
                    f"{scenario_digest[:12]}...: deploy the policy of this scenario"
                )
        runtime = cls(
            manifest,
            _session(payload),
            max_offers_per_shopper=max_offers_per_shopper,
            disabled=disabled,
        )
        runtime.path = folder
        return runtime

    # ------------------------------------------------------------ set-up
    def _parse_features(self, manifest: dict[str, Any]) -> None:
        features = _need(manifest, "features", list, "manifest")
        if not features:
            raise PolicyLoadError("manifest.json: features is empty")
        names, low, high, kinds, gated, offset, scale = [], [], [], [], [], [], []
        for i, f in enumerate(features):
            where = f"features[{i}]"
            names.append(_need(f, "name", str, where))
            low.append(float(_need(f, "low", (int, float), where)))
            high.append(float(_need(f, "high", (int, float), where)))
            kind = _need(f, "kind", str, where)
            if kind not in ("binary", "continuous"):
                raise PolicyLoadError(f"manifest.json: {where}.kind {kind!r} is unknown")
            kinds.append(_BINARY if kind == "binary" else _CONTINUOUS)
            gated.append(bool(_need(f, "gated", bool, where)))
            norm = _need(f, "normalisation", dict, where)
            offset.append(float(_need(norm, "offset", (int, float), f"{where}.normalisation")))
            scale.append(float(_need(norm, "scale", (int, float), f"{where}.normalisation")))
        for needed in _REQUIRED_FEATURES:
            if needed not in names:
                raise PolicyLoadError(f"manifest.json: feature {needed!r} is missing")
        if len(set(names)) != len(names) or any(s <= 0 for s in scale):
            raise PolicyLoadError("manifest.json: feature names repeat or a scale is not > 0")
        self.feature_names: tuple[str, ...] = tuple(names)
        self._nf = len(names)
        self._f_low, self._f_high, self._f_kind = low, high, kinds
        self._gated = np.flatnonzero(gated)
        self._gated_list = self._gated.tolist()
        self._offset = np.asarray(offset, dtype=np.float32)
        self._scale = np.asarray(scale, dtype=np.float32)
        obs = _need(manifest, "observation", dict, "manifest")
        clip = obs.get("clip")
        self._clip = None if clip is None else float(clip)
        self._identity = bool(np.all(self._offset == 0) and np.all(self._scale == 1))
        self._identity = self._identity and self._clip is None
        col = {n: i for i, n in enumerate(names)}
        self._i_cart, self._i_fee = col["cart_value"], col["shipping_fee"]
        self._i_margin, self._i_away, self._i_consent = (
            col["margin_rate"],
            col["away"],
            col["consent"],
        )
        if kinds[self._i_away] != _BINARY or kinds[self._i_consent] != _BINARY:
            raise PolicyLoadError("manifest.json: away and consent must be binary features")
        money = _need(manifest, "money", dict, "manifest")
        self._cart_unit = float(_need(money, "cart_value_eur_per_unit", (int, float), "money"))
        self._fee_unit = float(_need(money, "shipping_fee_eur_per_unit", (int, float), "money"))

    def _parse_context(self, manifest: dict[str, Any]) -> None:
        context = _need(manifest, "context", list, "manifest")
        names, low, high, kinds = [], [], [], []
        for i, c in enumerate(context):
            where = f"context[{i}]"
            name = _need(c, "name", str, where)
            if name not in CONTEXT_FIELDS:
                raise PolicyLoadError(
                    f"manifest.json: context field {name!r} is unknown to this runtime "
                    f"(it knows {list(CONTEXT_FIELDS)}): deploy the runtime that matches"
                )
            kind = _need(c, "kind", str, where)
            kinds.append({"binary": _BINARY, "count": _COUNT}.get(kind, _CONTINUOUS))
            names.append(name)
            bottom = c.get("low")
            low.append(-math.inf if bottom is None else float(bottom))
            top = c.get("high")
            high.append(math.inf if top is None else float(top))
        required = set(CONTEXT_FIELDS) - {"budget_left"}
        if not required <= set(names):
            raise PolicyLoadError(f"manifest.json: context must list {sorted(required)}")
        if set(names) & set(self.feature_names):
            raise PolicyLoadError("manifest.json: a context field has a feature's name")
        self.context_names: tuple[str, ...] = tuple(names)
        self.input_names: tuple[str, ...] = self.feature_names + self.context_names
        self._input_set = frozenset(self.input_names)
        self._n_inputs = len(self.input_names)
        c0 = self._nf
        ci = {n: c0 + i for i, n in enumerate(names)}
        self._i_offers, self._i_in_chat = ci["offers_made"], ci["in_chat"]
        self._i_free, self._i_carrier = ci["agents_free"], ci["carrier_cost"]
        self._i_budget = ci.get("budget_left")
        low_all = self._f_low + low
        high_all = self._f_high + high
        self._kinds = self._f_kind + kinds
        self._low_shown, self._high_shown = low_all, high_all
        # bounds with a relative tolerance for values that went through float32
        self._low = [
            lo - TOLERANCE * max(1.0, abs(lo)) if math.isfinite(lo) else -sys.float_info.max
            for lo in low_all
        ]
        self._high = [
            hi + TOLERANCE * max(1.0, abs(hi)) if math.isfinite(hi) else sys.float_info.max
            for hi in high_all
        ]
        self._low_arr = np.asarray(self._low)
        self._high_arr = np.asarray(self._high)
        self._binary_cols = np.flatnonzero(np.asarray(self._kinds) == _BINARY)
        self._count_cols = np.flatnonzero(np.asarray(self._kinds) == _COUNT)
        self._binary_list = [i for i, kind in enumerate(self._kinds) if kind == _BINARY]
        self._count_list = [i for i, kind in enumerate(self._kinds) if kind == _COUNT]
        self._get_inputs = _getter(self.input_names)
        self._get_binary = _getter(self._binary_list)
        self._get_count = _getter(self._count_list)
        # one event: a binary field whose bounds hold 0 and 1 is checked by being 0 or 1;
        # the bounds of the others are compared
        bounded = [
            i
            for i, kind in enumerate(self._kinds)
            if not (kind == _BINARY and self._low[i] <= 0.0 and self._high[i] >= 1.0)
        ]
        self._get_bounded = _getter(bounded)
        self._low_bounded = [self._low[i] for i in bounded]
        self._high_bounded = [self._high[i] for i in bounded]

    def _parse_actions(self, manifest: dict[str, Any]) -> None:
        actions = _need(manifest, "actions", list, "manifest")
        wait = actions[0] if actions and isinstance(actions[0], dict) else {}
        expected_wait = {"name": "wait", "kind": "wait", "channel": "none"}
        if any(wait.get(key) != value for key, value in expected_wait.items()):
            raise PolicyLoadError("manifest.json: actions must start with 'wait' (kind wait)")
        names: list[str] = []
        details: list[Mapping[str, Any] | None] = []
        arrays: dict[str, list[Any]] = {
            k: []
            for k in (
                "onsite",
                "email",
                "agent",
                "once",
                "min_cart",
                "floor",
                "pct",
                "fixed",
                "ship",
                "extra",
                "kind",
                "channel",
                "magnitude",
                "unit_cost",
                "expiry",
                "offered_col",
            )
        }
        col = {n: i for i, n in enumerate(self.feature_names)}
        for a, entry in enumerate(actions):
            where = f"actions[{a}]"
            if _need(entry, "index", int, where) != a:
                raise PolicyLoadError(f"manifest.json: {where}.index must be {a}")
            name = _need(entry, "name", str, where)
            kind = _need(entry, "kind", str, where)
            channel = _need(entry, "channel", str, where)
            rules = _need(entry, "rules", dict, where)
            cost = _need(entry, "cost_model", dict, where)
            names.append(name)
            arrays["onsite"].append(channel in ("onsite", "chat"))
            arrays["email"].append(channel == "email")
            arrays["agent"].append(channel == "chat")
            arrays["once"].append(bool(_need(rules, "once_per_shopper", bool, f"{where}.rules")))
            arrays["min_cart"].append(float(_need(rules, "min_cart", (int, float), where)))
            arrays["floor"].append(float(_need(rules, "margin_floor", (int, float), where)))
            for key, field in (
                ("pct", "percent_of_cart"),
                ("fixed", "fixed_eur"),
                ("ship", "shipping_fee_share"),
                ("extra", "extra_eur"),
            ):
                arrays[key].append(float(_need(cost, field, (int, float), f"{where}.cost_model")))
            magnitude = float(_need(entry, "magnitude", (int, float), where))
            unit_cost = float(_need(entry, "unit_cost", (int, float), where))
            expiry = int(_need(entry, "expiry_steps", int, where))
            arrays["kind"].append(kind)
            arrays["channel"].append(channel)
            arrays["magnitude"].append(magnitude)
            arrays["unit_cost"].append(unit_cost)
            arrays["expiry"].append(expiry)
            if a == 0:
                arrays["offered_col"].append(-1)
                details.append(None)
                continue
            offered = f"offered_{name}"
            if offered not in col:
                raise PolicyLoadError(f"manifest.json: feature {offered!r} is missing")
            arrays["offered_col"].append(col[offered])
            details.append(
                MappingProxyType(
                    {
                        "kind": kind,
                        "channel": channel,
                        "magnitude": magnitude,
                        "unit_cost": unit_cost,
                        "expiry_steps": expiry,
                    }
                )
            )
        if len(set(names)) != len(names):
            raise PolicyLoadError("manifest.json: action names repeat")
        self.action_names: tuple[str, ...] = tuple(names)
        self._k = len(names)
        self._details: tuple[Mapping[str, Any] | None, ...] = tuple(details)
        self._act = {
            k: np.asarray(v, dtype=object if k in ("kind", "channel") else None)
            for k, v in arrays.items()
        }
        policy = _need(manifest, "policy", dict, "manifest")
        selection = _need(policy, "selection", str, "policy")
        if selection not in SELECTIONS:
            raise PolicyLoadError(f"manifest.json: policy.selection {selection!r} is unknown")
        self.selection = selection

    def _parse_guardrails(
        self, manifest: dict[str, Any], max_offers: int | None, disabled: Iterable[str]
    ) -> None:
        guardrails = _need(manifest, "guardrails", dict, "manifest")
        cap = int(_need(guardrails, "max_offers_per_shopper", int, "guardrails"))
        if max_offers is not None:
            if isinstance(max_offers, bool) or not isinstance(max_offers, int) or max_offers < 0:
                raise ValueError(f"max_offers_per_shopper must be an int >= 0, got {max_offers!r}")
            if max_offers > cap:
                raise ValueError(
                    f"max_offers_per_shopper={max_offers} would loosen the policy's cap of "
                    f"{cap}: a deployment may only tighten it"
                )
            cap = max_offers
        self.max_offers_per_shopper = cap
        off = frozenset(disabled)
        unknown = sorted(off - set(self.action_names[1:]))
        if unknown:
            raise ValueError(
                f"disabled: unknown concession(s) {unknown}; the catalogue has "
                f"{list(self.action_names[1:])} ('wait' cannot be disabled)"
            )
        self.disabled = off
        has_budget = guardrails.get("campaign_budget_per_1000") is not None
        if has_budget != (self._i_budget is not None):
            raise PolicyLoadError(
                "manifest.json: budget_left must be a context field exactly when the "
                "campaign budget is set"
            )

    def _check_network(self, manifest: dict[str, Any], session: ort.InferenceSession) -> None:
        policy = manifest["policy"]
        inputs, outputs = session.get_inputs(), session.get_outputs()
        if len(inputs) != 1 or inputs[0].name != policy.get("input"):
            raise PolicyLoadError(
                f"{POLICY_FILE} takes inputs {[i.name for i in inputs]}, the manifest says "
                f"{policy.get('input')!r}: the files are from different exports"
            )
        out = [o.name for o in outputs]
        if policy.get("output") not in out:
            raise PolicyLoadError(f"{POLICY_FILE} has outputs {out}, not {policy.get('output')!r}")
        width = inputs[0].shape[-1] if inputs[0].shape else None
        if width != self._nf:
            raise PolicyLoadError(
                f"{POLICY_FILE} takes {width} features, the manifest lists {self._nf}: the "
                "files are from different exports"
            )
        out_shape = next(o.shape for o in outputs if o.name == policy["output"])
        if not out_shape or out_shape[-1] != self._k:
            raise PolicyLoadError(
                f"{POLICY_FILE} scores {out_shape[-1] if out_shape else '?'} actions, the "
                f"manifest lists {self._k}: the files are from different exports"
            )
        self._input_name = str(policy["input"])
        self._output_names = [str(policy["output"])]

    def _build_tables(self) -> None:
        """Per-action arrays for the batch path, bit sets for the one-event path, reasons."""
        act, k = self._act, self._k
        self._disabled_mask = np.array([n in self.disabled for n in self.action_names])
        self._offer_mask = np.arange(k) > 0
        self._has_floor = act["floor"] > -1.0
        self._offered_cols = np.where(act["offered_col"] >= 0, act["offered_col"], 0)

        def bits(mask: Iterable[bool]) -> int:
            return sum(1 << a for a, on in enumerate(mask) if on)

        self._bits_all = (1 << k) - 1
        self._bits_disabled = bits(self._disabled_mask)
        self._bits_onsite = bits(act["onsite"])
        self._bits_email = bits(act["email"])
        self._bits_agent = bits(act["agent"])
        self._bits_offers = bits(self._offer_mask)
        self._once_list = [
            (a, int(act["offered_col"][a])) for a in range(1, k) if bool(act["once"][a])
        ]
        self._min_cart_list = [
            (a, float(act["min_cart"][a])) for a in range(1, k) if act["min_cart"][a] > 0
        ]
        self._cost_list = [
            (a, float(act["pct"][a]), float(act["fixed"][a]), float(act["ship"][a]))
            for a in range(k)
        ]
        self._extra_list = act["extra"].tolist()
        self._floor_list = [(a, float(act["floor"][a])) for a in range(1, k) if self._has_floor[a]]
        # the one-event path's tables: min_cart by bisection of the sorted minimums (the
        # actions whose minimum is above a price are a suffix), once_per_shopper by the
        # offered_ flags, the money rules' terms per action, the allowed actions of a bit set
        by_minimum = sorted(self._min_cart_list, key=operator.itemgetter(1))
        self._mc_minimums = [least for _, least in by_minimum]
        suffix = [0] * (len(by_minimum) + 1)
        for i in reversed(range(len(by_minimum))):
            suffix[i] = suffix[i + 1] | 1 << by_minimum[i][0]
        self._mc_suffix = suffix
        self._once_bits = [1 << a for a, _ in self._once_list]
        self._get_once = _getter([column for _, column in self._once_list])
        self._floor_terms = [
            (1 << a, *self._cost_list[a][1:], self._extra_list[a], floor)
            for a, floor in self._floor_list
        ]
        self._budget_terms = [
            (1 << a, pct, fixed, ship, self._extra_list[a])
            for a, pct, fixed, ship in self._cost_list[1:]
        ]
        # the allowed actions of a bit set: a table of all 2**k, or listed when asked
        self._indices: Any = _IndexList(k)
        if k <= _INDEX_TABLE_ACTIONS:
            self._indices = [tuple(a for a in range(k) if bits >> a & 1) for bits in range(1 << k)]
        names = self.action_names
        self._names_arr = np.asarray(names, dtype=object)
        self._names_none = np.asarray([*names, None], dtype=object)
        self._runner_up_names = (*names, None)
        self._rules_none = np.asarray([None, *RULE_NAMES], dtype=object)
        # reason[code, i, j]: code 0 -> model followed, i decided, j runner-up (k: none);
        # code r + 1 -> rule r forbade the model's choice i; j decided
        table = np.empty((len(RULES) + 1, k, k + 1), dtype=object)
        for i in range(k):
            for j in range(k + 1):
                other = f"runner-up {names[j]}" if j < k else "no other action allowed"
                table[0, i, j] = f"model's choice {names[i]}; {other}"
                for r, (rule, text) in enumerate(RULES, start=1):
                    decided = names[j] if j < k else "wait"
                    table[r, i, j] = (
                        f"guardrail {rule} overrode the model's choice {names[i]} ({text}); "
                        f"decided {decided}"
                    )
        self._reasons = table
        self._batch_tables()
        self._run = self._fast_run()
        self._local = threading.local()
        self._bound = self._bound_run()
        self._reasons_list = table.tolist()
        self._kind_arr = act["kind"]
        self._channel_arr = act["channel"]
        self._magnitude_arr = act["magnitude"].astype(np.float64)
        self._unit_cost_arr = act["unit_cost"].astype(np.float64)
        self._expiry_arr = act["expiry"].astype(np.int64)

    def _batch_tables(self) -> None:
        act, k = self._act, self._k
        # rule bits of the row-only rules, for each of the 32 row states:
        # away | no consent << 1 | contact cap reached << 2 | in chat << 3 | no agent << 4
        table = np.zeros((32, k), dtype=np.uint16)
        for state in range(32):
            away, no_consent, capped, chat, no_agent = ((state >> b) & 1 for b in range(5))
            row = table[state]
            row |= self._disabled_mask * np.uint16(1 << _R_DISABLED)
            row |= np.where(away, act["onsite"], act["email"]) * np.uint16(1 << _R_CHANNEL)
            row |= (act["email"] & bool(no_consent)) * np.uint16(1 << _R_CONSENT)
            row |= (self._offer_mask & bool(capped)) * np.uint16(1 << _R_CAP)
            row |= (act["agent"] & bool(chat)) * np.uint16(1 << _R_CHAT)
            row |= (act["agent"] & bool(no_agent)) * np.uint16(1 << _R_CAPACITY)
            row[0] = 0
        self._state_bits = table
        self._mc_cols = np.flatnonzero(act["min_cart"] > 0)
        self._mc_min = act["min_cart"][self._mc_cols]
        self._once_actions = np.flatnonzero(act["once"])
        self._once_features = act["offered_col"][self._once_actions]
        self._floor_cols = np.flatnonzero(self._has_floor)
        # first rule (1-based, 0 if none) of each rule-bit word: its lowest set bit
        words = np.arange(1 << len(RULES))
        first = np.zeros(len(words), dtype=np.intp)
        for r in reversed(range(len(RULES))):
            first[(words >> r) & 1 == 1] = r + 1
        self._first_rule = first
        g = self._gated
        contiguous = len(g) and np.array_equal(g, np.arange(g[0], g[0] + len(g)))
        self._gated_cols: Any = slice(int(g[0]), int(g[-1]) + 1) if contiguous else g

    # ------------------------------------------------------------ one event
    def decide(self, event: Mapping[str, Any]) -> Decision:
        """Decide one event: a mapping with exactly the names of :attr:`input_names`.

        Raises :class:`PolicyInputError` (naming the field) for invalid input.
        """
        scores, allowed, fails, _ = self._one(event)
        return self._choose(scores, allowed, fails)

    def decide_scored(
        self, event: Mapping[str, Any]
    ) -> tuple[Decision, int, int, list[float], list[float]]:
        """:meth:`decide`, with what a caller that explores around the decision, or logs
        it, needs: the allowed actions (a bit set: bit ``a`` set if action ``a`` is
        allowed; ``wait`` always), the actions the campaign budget alone withheld (a bit
        set: forbidden by ``budget``, allowed by every other guardrail; 0 without a
        budget), the network's scores and the event's values in :attr:`input_names`
        order (as given: consent-gated features not zeroed)."""
        scores, allowed, fails, vals = self._one(event)
        budget = fails[_R_BUDGET]
        if budget:  # the budget's bits that no other rule has
            budget &= ~functools.reduce(operator.or_, itertools.islice(fails, _R_BUDGET))
        return self._choose(scores, allowed, fails), allowed, budget, scores, list(vals)

    def _one(self, event: Mapping[str, Any]) -> tuple[list[float], int, list[int], Sequence[Any]]:
        if type(event) is not dict and not isinstance(event, Mapping):
            raise PolicyInputError(
                None, f"an event must be a mapping of field -> number, got {type(event).__name__}"
            )
        try:
            vals: Sequence[Any] = self._get_inputs(event)
        except (KeyError, TypeError):
            self._raise_fields(event.keys())
        if len(event) != self._n_inputs:
            self._raise_fields(event.keys())
        if not _NUMBER_TYPES.issuperset(map(type, vals)):
            vals = [self._scalar(name, v) for name, v in zip(self.input_names, vals, strict=True)]
        le = operator.le
        bounded = self._get_bounded(vals)
        if not (
            all(map(le, self._low_bounded, bounded)) and all(map(le, bounded, self._high_bounded))
        ):
            self._raise_first_event(vals)
        if self._binary_list and not _ZERO_ONE.issuperset(self._get_binary(vals)):
            self._raise_first_event(vals)
        if self._count_list:
            counts = self._get_count(vals)
            if not all(map(operator.eq, counts, map(math.floor, counts))):
                self._raise_first_event(vals)
        features = vals[: self._nf]
        if not features[self._i_consent]:
            features = list(features)
            for g in self._gated_list:
                features[g] = 0.0
        scores = self._scores_one(features)
        fails = self._rule_bits(vals)
        allowed = self._bits_all & ~(functools.reduce(operator.or_, fails)) | 1
        return scores, allowed, fails, vals

    def _scores_one(self, features: Sequence[float]) -> list[float]:
        """The network's scores of one event's features: written into this thread's input
        buffer, bound once to the session (no arrays made per call), when this
        onnxruntime binds buffers and gives the same scores so; else through ``run``."""
        if self._bound is None:
            obs = np.array([features], dtype=np.float32)
            if not self._identity:
                obs = self._normalise(obs)
            out: list[float] = self._run(self._output_names, {self._input_name: obs})[0][0].tolist()
            return out
        try:
            fill, run, x, y = self._local.bound
        except AttributeError:
            fill, run, x, y = self._local.bound = self._bound()
        try:
            fill(*features)  # float32, as numpy casts
        except OverflowError:  # beyond float32's range (bounds allowed it): inf, as numpy
            x[0] = features
        if not self._identity:
            self._normalise_into(x)
        run()
        scores: list[float] = y[0].tolist()
        return scores

    def _raise_first_event(self, vals: Sequence[Any]) -> NoReturn:
        """Raise for the first invalid value of an event (in input order)."""
        for i, kind in enumerate(self._kinds):
            v = _as_float(vals[i])
            if not self._low[i] <= v <= self._high[i]:
                raise self._value_error(i, v, None)
            if (kind == _BINARY and v != 0 and v != 1) or (kind == _COUNT and v != math.floor(v)):
                raise self._value_error(i, v, None)
        raise AssertionError("no invalid value found")  # pragma: no cover

    def _scalar(self, name: str, v: Any) -> float:
        if isinstance(v, bool | np.bool_):
            raise PolicyInputError(name, f"must be a number, got the boolean {v!r}")
        if isinstance(v, int | float | np.integer | np.floating):
            return _as_float(v)
        if v is None:
            raise PolicyInputError(name, "must be a number, got null (None)")
        raise PolicyInputError(name, f"must be a number, got {type(v).__name__} {v!r:.40}")

    def _rule_bits(self, vals: Sequence[Any]) -> list[int]:
        """Per rule (in :data:`RULES` order), the bit set of the actions it forbids."""
        away = vals[self._i_away]
        consent = vals[self._i_consent]
        price = vals[self._i_cart] * self._cart_unit
        fee = vals[self._i_fee] * self._fee_unit
        channel = self._bits_onsite if away else self._bits_email
        email_consent = 0 if consent else self._bits_email
        cap = self._bits_offers if vals[self._i_offers] >= self.max_offers_per_shopper else 0
        # the actions whose minimum cart is above the price
        lowered = price * (1.0 + TOLERANCE)
        min_cart = self._mc_suffix[bisect.bisect_right(self._mc_minimums, lowered)]
        floor_bits = 0
        if self._floor_terms:
            left = price + fee - price * (1.0 - vals[self._i_margin]) - vals[self._i_carrier]
            slack = TOLERANCE * price
            for bit, pct, fixed, ship, extra, floor in self._floor_terms:
                spent = pct * price + min(fixed, price) + ship * fee + extra
                if left - spent + slack < floor * price:
                    floor_bits |= bit
        # distinct bits: their sum is their union
        once = sum(itertools.compress(self._once_bits, self._get_once(vals)))
        chat = self._bits_agent if vals[self._i_in_chat] else 0
        capacity = self._bits_agent if vals[self._i_free] < 1 else 0
        budget_bits = 0
        if self._i_budget is not None:
            budget = vals[self._i_budget]
            for bit, pct, fixed, ship, extra in self._budget_terms:
                spent = pct * price + min(fixed, price) + ship * fee + extra
                if spent * (1.0 - TOLERANCE) > budget:
                    budget_bits |= bit
        return [
            self._bits_disabled,
            channel,
            email_consent,
            cap,
            min_cart,
            floor_bits,
            once,
            chat,
            capacity,
            budget_bits,
        ]

    def _choose(self, scores: list[float], allowed: int, fails: list[int]) -> Decision:
        k = self._k
        # the best-scoring action, and the best and second best allowed ones; ties go to
        # the lowest index (as argmax takes the first maximum). wait is always allowed.
        score = scores.__getitem__
        top = scores.index(max(scores))
        indices = self._indices
        best = top if allowed >> top & 1 else max(indices[allowed], key=score)
        others = indices[allowed & ~(1 << best)]
        second = max(others, key=score) if others else k  # k: none
        if best == top or self.selection == "masked_argmax":
            chosen = best
        else:  # argmax_else_wait, the model's choice forbidden: wait; runner-up best other
            chosen = 0
            if best != 0:
                second = best
        names = self.action_names
        if chosen == top:
            return _decision(
                (
                    names[chosen],
                    chosen,
                    self._details[chosen],
                    self._reasons_list[0][chosen][second],
                    names[top],
                    self._runner_up_names[second],
                    None,
                )
            )
        code = next(r for r, f in enumerate(fails) if f >> top & 1) + 1
        return _decision(
            (
                names[chosen],
                chosen,
                self._details[chosen],
                self._reasons_list[code][top][chosen],
                names[top],
                self._runner_up_names[second],
                RULE_NAMES[code - 1],
            )
        )

    # ------------------------------------------------------------ a batch
    def decide_batch(self, columns: Mapping[str, Any]) -> Decisions:
        """Decide every row of ``columns`` (``name -> 1-D array``, names of :attr:`input_names`).

        Row ``i`` is decided as :meth:`decide` would decide it alone. Raises
        :class:`PolicyInputError` naming the first invalid field and its row.
        """
        x = self._matrix(columns)
        n, nf = len(x), self._nf
        obs = np.ascontiguousarray(x[:, :nf], dtype=np.float32)
        obs[:, self._gated_cols] *= obs[:, self._i_consent, None]
        if not self._identity:
            obs = self._normalise(obs)
        if n:
            scores = self._session.run(self._output_names, {self._input_name: obs})[0]
        else:
            scores = np.zeros((0, self._k), dtype=np.float32)
        bits = self._rule_bits_batch(x)
        allowed = bits == 0
        rows = np.arange(n)
        top = scores.argmax(axis=1)
        masked = np.where(allowed, scores, -np.inf)
        best = masked.argmax(axis=1)
        masked[rows, best] = -np.inf
        second = masked.argmax(axis=1)
        second = np.where(np.isneginf(masked[rows, second]), self._k, second)
        if self.selection == "argmax_else_wait":
            top_ok = allowed[rows, top]
            chosen = np.where(top_ok, top, 0)
            second = np.where(top_ok | (best == 0), second, best)
        else:
            chosen = best
        overridden = chosen != top
        code = np.where(overridden, self._first_rule[bits[rows, top]], 0)
        first = np.where(overridden, top, chosen)
        last = np.where(overridden, chosen, second)
        return Decisions(
            action_index=chosen.astype(np.int64),
            action=self._names_arr[chosen],
            kind=self._kind_arr[chosen],
            channel=self._channel_arr[chosen],
            magnitude=self._magnitude_arr[chosen],
            unit_cost=self._unit_cost_arr[chosen],
            expiry_steps=self._expiry_arr[chosen],
            model_choice=self._names_arr[top],
            runner_up=self._names_none[second],
            guardrail=self._rules_none[code],
            reason=self._reasons[code, first, last],
            scores=scores,
            _details=self._details,
            allowed=allowed,
            withheld=bits == _BUDGET_ONLY,
        )

    def _rule_bits_batch(self, x: NDArray[np.float64]) -> NDArray[np.uint16]:
        """Per row and action, the rules that forbid it: bit ``r`` set if rule ``r`` (in
        :data:`RULES` order) applies; shape ``(n, n_actions)``, 0 where allowed.

        The rules that depend on the row only (channel, consent, contact cap, live agents)
        come from a table indexed by the row's state; the money rules are computed only
        for the actions that have them."""
        act = self._act
        state = (x[:, self._i_away] > 0.5).astype(np.intp)
        state += 2 * (x[:, self._i_consent] < 0.5)
        state += 4 * (x[:, self._i_offers] >= self.max_offers_per_shopper)
        state += 8 * (x[:, self._i_in_chat] > 0.5)
        state += 16 * (x[:, self._i_free] < 1)
        bits = self._state_bits[state]
        price = x[:, self._i_cart, None] * self._cart_unit
        if len(self._mc_cols):
            low_cart = price * (1.0 + TOLERANCE) < self._mc_min
            bits[:, self._mc_cols] |= low_cart * np.uint16(1 << _R_MIN_CART)
        if len(self._once_actions):
            offered = x[:, self._once_features] > 0.5
            bits[:, self._once_actions] |= offered * np.uint16(1 << _R_ONCE)
        if len(self._floor_cols) or self._i_budget is not None:
            fee = x[:, self._i_fee, None] * self._fee_unit
            cols = self._floor_cols
            if len(cols):
                cost = self._cost(price, fee, cols)
                cogs = price * (1.0 - x[:, self._i_margin, None])
                left = price + fee - cogs - x[:, self._i_carrier, None]
                below = left - cost + TOLERANCE * price < act["floor"][cols] * price
                bits[:, cols] |= below * np.uint16(1 << _R_FLOOR)
            if self._i_budget is not None:
                cost = self._cost(price, fee, slice(1, None))
                over = cost * (1.0 - TOLERANCE) > x[:, self._i_budget, None]
                bits[:, 1:] |= over * np.uint16(1 << _R_BUDGET)
        return bits

    def _cost(self, price: NDArray[np.float64], fee: NDArray[np.float64], cols: Any) -> Any:
        """Expected cost (EUR) of the actions ``cols`` per row, ``(n, len(cols))``."""
        act = self._act
        cost = act["pct"][cols] * price + np.minimum(act["fixed"][cols], price)
        cost += act["ship"][cols] * fee
        cost += act["extra"][cols]
        return cost

    def _bound_run(self) -> Callable[[], tuple[Any, Any, Any, Any]] | None:
        """A maker of one thread's ``(fill, run, input buffer, output buffer)``: the
        session bound to a ``(1, n_features)`` and a ``(1, n_actions)`` float32 buffer,
        ``fill(*features)`` writing the input buffer, ``run()`` scoring it into the output
        buffer. None if this onnxruntime cannot bind buffers so, or scores other than
        ``run`` on a probe."""
        session, k, nf = self._session, self._k, self._nf
        pack_into = struct.Struct(f"={nf}f").pack_into

        def make() -> tuple[Any, Any, Any, Any]:
            x = np.zeros((1, nf), dtype=np.float32)
            y = np.zeros((1, k), dtype=np.float32)
            binding = session.io_binding()
            binding.bind_input(self._input_name, "cpu", 0, np.float32, [1, nf], x.ctypes.data)
            binding.bind_output(self._output_names[0], "cpu", 0, np.float32, [1, k], y.ctypes.data)
            inner = getattr(getattr(session, "_sess", None), "run_with_iobinding", None)
            inner_binding = getattr(binding, "_iobinding", None)
            if inner is not None and inner_binding is not None:
                run = functools.partial(inner, inner_binding, None)
            else:
                run = functools.partial(session.run_with_iobinding, binding)
            fill = functools.partial(pack_into, x.data.cast("B"), 0)
            return fill, run, x, y  # the binding, which points at x and y, lives in run

        try:
            probe = np.random.default_rng(0).uniform(-1.0, 1.0, (4, nf)).astype(np.float32)
            fill, run, _, y = make()
            for row in probe:
                fill(*row.tolist())
                run()
                expected = session.run(self._output_names, {self._input_name: row[None]})[0]
                if not np.array_equal(y, expected):
                    return None
        except Exception:  # any incompatibility: keep the public call
            return None
        return make

    def _normalise_into(self, x: NDArray[np.float32]) -> None:
        """:meth:`_normalise` in place."""
        np.subtract(x, self._offset, out=x)
        np.divide(x, self._scale, out=x)
        if self._clip is not None:
            np.clip(x, -self._clip, self._clip, out=x)

    def _fast_run(self) -> Any:
        """The session's run without its per-call Python checks of the input names (they
        were checked at load), if this onnxruntime has it and it gives the same scores;
        else the public ``InferenceSession.run``."""
        public = self._session.run
        inner = getattr(getattr(self._session, "_sess", None), "run", None)
        if inner is None:
            return public
        probe = {self._input_name: np.zeros((1, self._nf), dtype=np.float32)}
        try:
            same = np.array_equal(
                inner(self._output_names, probe, None)[0], public(self._output_names, probe)[0]
            )
        except Exception:  # any incompatibility: keep the public call
            return public
        return functools.partial(_run_inner, inner) if same else public

    def _normalise(self, obs: NDArray[np.float32]) -> NDArray[np.float32]:
        out = (obs - self._offset) / self._scale
        if self._clip is not None:
            out = np.clip(out, -self._clip, self._clip)
        return out.astype(np.float32, copy=False)

    # ------------------------------------------------------------ validation
    def _matrix(self, columns: Mapping[str, Any]) -> NDArray[np.float64]:
        """The columns as one validated float64 matrix ``(n, n_inputs)``."""
        if not isinstance(columns, Mapping):
            raise PolicyInputError(
                None,
                f"a batch must be a mapping of field -> 1-D array, got {type(columns).__name__}",
            )
        if len(columns) != self._n_inputs or not self._input_set.issuperset(columns.keys()):
            self._raise_fields(columns.keys())
        x: NDArray[np.float64] | None = None
        for j, name in enumerate(self.input_names):
            if name not in columns:
                self._raise_fields(columns.keys())
            arr = self._column(name, columns[name])
            if x is None:
                x = np.empty((len(arr), self._n_inputs), order="F")
            elif len(arr) != len(x):
                raise PolicyInputError(
                    name,
                    f"has {len(arr)} rows, {self.input_names[0]} has {len(x)}: "
                    "every column must have the same length",
                )
            x[:, j] = arr
        assert x is not None
        if not len(x):
            return x
        # NaN propagates through min and max, and fails both comparisons
        if not ((x.min(axis=0) >= self._low_arr).all() and (x.max(axis=0) <= self._high_arr).all()):
            bad = ~((x >= self._low_arr) & (x <= self._high_arr))
            self._raise_first(x, bad, np.arange(self._n_inputs))
        xb = x[:, self._binary_cols]
        if (xb * (1.0 - xb)).any():  # 0 exactly for 0 and 1, and only for them
            self._raise_first(x, (xb != 0.0) & (xb != 1.0), self._binary_cols)
        xc = x[:, self._count_cols]
        if (xc != np.floor(xc)).any():
            self._raise_first(x, xc != np.floor(xc), self._count_cols)
        return x

    def _raise_first(self, x: NDArray[np.float64], bad: NDArray[np.bool_], cols: Any) -> NoReturn:
        """Raise for the first column (in input order) with a bad row, at its first bad row."""
        j = int(bad.any(axis=0).argmax())
        i = int(bad[:, j].argmax())
        column = int(cols[j])
        raise self._value_error(column, float(x[i, column]), i)

    def _column(self, name: str, values: Any) -> NDArray[Any]:
        # a list may mix booleans with numbers, which np.asarray would turn into 1.0:
        # Python sequences are checked element by element (the object path below)
        plain = isinstance(values, list | tuple)
        try:
            if isinstance(values, np.ndarray):
                arr = values
            else:
                arr = np.asarray(values, dtype=object if plain else None)
        except (ValueError, TypeError) as err:
            raise PolicyInputError(name, f"must be a 1-D array of numbers ({err})") from None
        if arr.ndim != 1:
            raise PolicyInputError(
                name, f"must be a 1-D array of numbers, got an array of shape {arr.shape}"
            )
        kind = arr.dtype.kind
        if kind in "fiu":
            return arr
        if kind == "b":
            raise PolicyInputError(name, "must hold numbers, got booleans", 0 if len(arr) else None)
        if kind == "O":
            for i, v in enumerate(arr.tolist()):
                if type(v) is not float and type(v) is not int:
                    try:
                        self._scalar(name, v)
                    except PolicyInputError as err:
                        raise PolicyInputError(name, err.problem, i) from None
            return np.fromiter((_as_float(v) for v in arr.tolist()), np.float64, len(arr))
        raise PolicyInputError(name, f"must hold numbers, got an array of {arr.dtype}")

    def _value_error(self, i: int, v: float, row: int | None) -> PolicyInputError:
        name = self.input_names[i]
        lo, hi, kind = self._low_shown[i], self._high_shown[i], self._kinds[i]
        if kind == _BINARY:
            wanted = "must be 0 or 1"
        elif kind == _COUNT:
            wanted = f"must be a whole number >= {lo:g}"
        elif math.isinf(hi) and math.isinf(lo):
            wanted = "must be a finite number"
        elif math.isinf(hi):
            wanted = f"must be a finite number >= {lo:g}"
        else:
            wanted = f"must be a finite number in [{lo:g}, {hi:g}]"
        if math.isnan(v):
            got = "NaN (or null)"
        elif math.isinf(v):
            got = "infinity" if v > 0 else "-infinity"
        else:
            got = repr(v)
        return PolicyInputError(name, f"{wanted}, got {got}", row)

    def _raise_fields(self, keys: Iterable[Any]) -> NoReturn:
        given = list(keys)
        unknown = sorted(str(k) for k in given if k not in self._input_set)
        missing = [n for n in self.input_names if n not in set(given)]
        parts = []
        if missing:
            parts.append(f"missing field(s) {missing}")
        if unknown:
            parts.append(f"unknown field(s) {unknown}")
        field = (missing or unknown)[0] if missing or unknown else None
        raise PolicyInputError(
            field,
            "; ".join(parts) + ": an event has exactly the manifest's features and context "
            "fields (PolicyRuntime.input_names)",
        )

    # ------------------------------------------------------------ helpers
    def example_event(self) -> dict[str, float]:
        """A valid event: every feature at its lower bound, consent 1, no offer made yet."""
        event = dict(zip(self.feature_names, self._f_low, strict=True))
        event["consent"] = 1.0
        event.update({name: 0.0 for name in self.context_names})
        event["agents_free"] = 1.0
        if self._i_budget is not None:
            event["budget_left"] = 1000.0
        return event


def _as_float(value: Any) -> float:
    """``float(value)``, and ±inf for an integer too large for a float."""
    try:
        return float(value)
    except OverflowError:
        return math.inf if value > 0 else -math.inf


class _IndexList:
    """The actions of a bit set, in index order, listed when asked (``_IndexList(k)[bits]``):
    the one-event path's stand-in for its table when there are too many actions."""

    def __init__(self, k: int) -> None:
        self.k = k

    def __getitem__(self, bits: int) -> tuple[int, ...]:
        return tuple(a for a in range(self.k) if bits >> a & 1)


def _run_inner(inner: Any, output_names: list[str], feed: dict[str, Any]) -> Any:
    return inner(output_names, feed, None)


def _getter(keys: Iterable[Any]) -> Any:
    """``operator.itemgetter`` that always returns a tuple (one key included)."""
    keys = list(keys)
    if not keys:
        return lambda _: ()
    if len(keys) == 1:
        only = operator.itemgetter(keys[0])
        return lambda items: (only(items),)
    return operator.itemgetter(*keys)
