"""The decision-log format: one row per decision, its columns, types and metadata.

One home for every column name of the format (schema version :data:`LOG_SCHEMA_VERSION`).
A log is a table with one row per decision the merchant took for a shopper in a journey
(every step the merchant acts, ``wait`` included):

| column | type | meaning |
| --- | --- | --- |
| ``journey`` | string | pseudonymous journey key (never a raw shopper id) |
| ``step`` | int64 | decision step in the journey; strictly increasing within a journey |
| ``timestamp`` | timestamp (UTC), optional | when the decision was taken |
| ``<feature>`` | float64, null allowed | each observed feature by its manifest name; a
  consent-gated feature of a shopper without tracking consent is null (not stored) |
| ``eligible_<action>`` | bool | one per action: the action was allowed at this decision |
| ``withheld_<action>`` | bool, optional | one per action (all of them or none): the
  action met every rule but the campaign budget's, which the spending so far had used up |
| ``action`` | string | the action taken, by name |
| ``propensity`` | float64 | probability the logging policy gave the action taken, in (0, 1] |
| ``p_<action>`` | float64, optional | the logging policy's probability of every action
  (all of them or none) |
| ``reward`` | float64 | margin booked at this step, EUR (the sum of the signed terms) |
| ``term_<term>`` | float64, optional | the ledger terms booked at this step, EUR, costs
  positive (``envs.ledger.LEDGER_TERMS``) |
| ``journey_end`` | string, null | on a journey's last row: ``purchase``, ``abandoned`` or
  ``horizon``; null on every other row |

The **single-decision case** (an A/B test of a coupon: one decision per customer, the
outcome as its reward) is the same format with one row per journey.

The table's key-value metadata (Parquet) holds :data:`METADATA_KEY`, a JSON object: the
schema version, the feature, action and term names in order, and what is known of the
source: scenario name and digest, logging policy, exploration, how the propensities were
obtained, the campaign budget's allowance. Schema version 2 added the ``withheld_``
columns and the allowance; a version 1 log is read as one without them. A
:class:`LogSpec` is that object in Python; it is built from a scenario
(:meth:`LogSpec.from_scenario`), from an exported policy's manifest
(:meth:`LogSpec.from_manifest`) or from plain lists of names, and gives the pyarrow schema.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import pyarrow as pa

from envs.ledger import LEDGER_TERMS
from envs.observation import feature_schema
from envs.scenario import Scenario

LOG_SCHEMA_VERSION = "2"
#: schema versions this reader reads (a version 1 log has no withheld_ columns)
READABLE_VERSIONS: tuple[str, ...] = ("1", LOG_SCHEMA_VERSION)
METADATA_KEY = b"concede.decision_log"

JOURNEY = "journey"
STEP = "step"
TIMESTAMP = "timestamp"
ACTION = "action"
PROPENSITY = "propensity"
REWARD = "reward"
JOURNEY_END = "journey_end"
ELIGIBLE_PREFIX = "eligible_"
WITHHELD_PREFIX = "withheld_"
PROBABILITY_PREFIX = "p_"
TERM_PREFIX = "term_"
PREFIXES: tuple[str, ...] = (ELIGIBLE_PREFIX, WITHHELD_PREFIX, PROBABILITY_PREFIX, TERM_PREFIX)

PURCHASE = "purchase"
ABANDONED = "abandoned"
HORIZON = "horizon"
END_EVENTS: tuple[str, ...] = (PURCHASE, ABANDONED, HORIZON)

#: what a log's ``propensities`` field may say about its ``propensity`` column
PROPENSITY_SOURCES = ("exact", "logged", "none")

#: the columns every log has, whatever its features and actions
FIXED_COLUMNS: tuple[str, ...] = (JOURNEY, STEP, TIMESTAMP, ACTION, PROPENSITY, REWARD, JOURNEY_END)


class LogSchemaError(ValueError):
    """A log's metadata or names cannot describe a valid log (the message says why)."""


def eligible_column(action: str) -> str:
    """The column saying whether ``action`` was allowed."""
    return f"{ELIGIBLE_PREFIX}{action}"


def withheld_column(action: str) -> str:
    """The column saying whether the campaign budget alone withheld ``action``."""
    return f"{WITHHELD_PREFIX}{action}"


def probability_column(action: str) -> str:
    """The column of the logging policy's probability of ``action``."""
    return f"{PROBABILITY_PREFIX}{action}"


def term_column(term: str) -> str:
    """The column of a ledger term booked at the step."""
    return f"{TERM_PREFIX}{term}"


@dataclass(frozen=True)
class LogSpec:
    """What a decision log holds: its names in order, and what is known of its source.

    Args:
        features: observed features, in the order a policy reads them (manifest names).
        actions: action names; the first is the default one (``wait``, or an A/B test's
            control arm), which every decision may take.
        terms: ledger terms logged as ``term_<name>`` columns (a subset of
            ``envs.ledger.LEDGER_TERMS``, in its order; none for a shop without them).
        probabilities: the ``p_<action>`` columns are logged (all of them).
        withheld: the ``withheld_<action>`` columns are logged (all of them): which
            actions the campaign budget alone withheld at each decision.
        timestamp: the ``timestamp`` column is logged.
        gated: the consent-gated features (null for a shopper without consent).
        scenario: the simulated scenario the log comes from, if any.
        scenario_digest: that scenario's ``Scenario.digest()``.
        logger: the logging policy's name.
        exploration: how the logger explored (``{"kind": ..., "value": ...}``), if known.
        propensities: ``exact`` (the logger's own probabilities, as the simulator and the
            decision service write them), ``logged`` (given by the shop, taken as they
            are) or ``none`` (the log has no propensities: off-policy evaluation must
            estimate them).
        budget_per_1000: the campaign budget's allowance, EUR of concessions per 1,000
            journeys, if the shop had one: off-policy evaluation compares an evaluated
            policy's own spending with it.
    """

    features: tuple[str, ...]
    actions: tuple[str, ...]
    terms: tuple[str, ...] = LEDGER_TERMS
    probabilities: bool = False
    timestamp: bool = False
    gated: tuple[str, ...] = ()
    scenario: str | None = None
    scenario_digest: str | None = None
    logger: str | None = None
    exploration: Mapping[str, Any] | None = field(default=None, compare=False)
    propensities: str = "logged"
    withheld: bool = False
    budget_per_1000: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "features", tuple(self.features))
        object.__setattr__(self, "actions", tuple(self.actions))
        object.__setattr__(self, "terms", tuple(self.terms))
        object.__setattr__(self, "gated", tuple(self.gated))
        if len(self.actions) < 2:
            raise LogSchemaError(
                f"a log needs at least two actions (the default first), got {list(self.actions)}"
            )
        for kind, names in (("feature", self.features), ("action", self.actions)):
            repeated = sorted({n for n in names if list(names).count(n) > 1})
            if repeated:
                raise LogSchemaError(f"{kind} names repeat: {repeated}")
            bad = [n for n in names if not isinstance(n, str) or not n]
            if bad:
                raise LogSchemaError(f"{kind} names must be non-empty strings, got {bad}")
        clash = sorted(set(self.features) & set(FIXED_COLUMNS))
        prefixed = [f for f in self.features if f.startswith(PREFIXES)]
        if clash or prefixed:
            raise LogSchemaError(
                f"feature names {clash + prefixed} clash with the log's own columns "
                f"({list(FIXED_COLUMNS)} and the prefixes {list(PREFIXES)}): rename them"
            )
        unknown = [t for t in self.terms if t not in LEDGER_TERMS]
        if unknown:
            raise LogSchemaError(f"unknown ledger terms {unknown}; known: {list(LEDGER_TERMS)}")
        object.__setattr__(self, "terms", tuple(t for t in LEDGER_TERMS if t in self.terms))
        not_features = sorted(set(self.gated) - set(self.features))
        if not_features:
            raise LogSchemaError(f"gated features {not_features} are not features of the log")
        if self.propensities not in PROPENSITY_SOURCES:
            raise LogSchemaError(
                f"propensities must be one of {PROPENSITY_SOURCES}, got {self.propensities!r}"
            )
        allowance = self.budget_per_1000
        if allowance is not None and (
            isinstance(allowance, bool)
            or not isinstance(allowance, int | float)
            or not 0.0 <= allowance < float("inf")
        ):
            raise LogSchemaError(
                f"budget_per_1000 must be a number of EUR >= 0 (or null: no budget), "
                f"got {allowance!r}"
            )

    # ------------------------------------------------------------ builders
    @classmethod
    def from_scenario(cls, scenario: Scenario, **source: Any) -> LogSpec:
        """The spec of a log of ``scenario``'s simulator: its features and actions, every
        ledger term; ``source`` sets the other fields (``logger``, ``probabilities``...)."""
        schema = feature_schema(scenario)
        return cls(
            features=tuple(f.name for f in schema),
            actions=scenario.action_names,
            gated=tuple(f.name for f in schema if f.gated),
            scenario=scenario.name,
            scenario_digest=scenario.digest(),
            **{"budget_per_1000": scenario.campaign_budget_per_1000, **source},
        )

    @classmethod
    def from_manifest(cls, manifest: Mapping[str, Any], **source: Any) -> LogSpec:
        """The spec of a log of a deployed policy, from its exported ``manifest.json``
        (the features, actions, scenario name and digest, and campaign budget it declares)."""
        try:
            features = [f["name"] for f in manifest["features"]]
            gated = [f["name"] for f in manifest["features"] if f.get("gated")]
            actions = [a["name"] for a in manifest["actions"]]
            scenario = manifest.get("scenario") or {}
            budget = (manifest.get("guardrails") or {}).get("campaign_budget_per_1000")
        except (KeyError, TypeError) as err:
            raise LogSchemaError(f"not a policy manifest: {err!r} is missing") from None
        return cls(
            features=tuple(features),
            actions=tuple(actions),
            gated=tuple(gated),
            scenario=scenario.get("name"),
            scenario_digest=scenario.get("digest"),
            **{"budget_per_1000": budget, **source},
        )

    def with_source(self, **source: Any) -> LogSpec:
        """A copy with other source fields (``logger``, ``propensities``...)."""
        return replace(self, **source)

    # ------------------------------------------------------------ columns
    @property
    def eligible_columns(self) -> tuple[str, ...]:
        return tuple(eligible_column(a) for a in self.actions)

    @property
    def withheld_columns(self) -> tuple[str, ...]:
        return tuple(withheld_column(a) for a in self.actions)

    @property
    def probability_columns(self) -> tuple[str, ...]:
        return tuple(probability_column(a) for a in self.actions)

    @property
    def term_columns(self) -> tuple[str, ...]:
        return tuple(term_column(t) for t in self.terms)

    @property
    def columns(self) -> tuple[str, ...]:
        """Every column of a log of this spec, in the order the writers use."""
        return tuple(field.name for field in self.arrow_schema())

    def arrow_schema(self) -> pa.Schema:
        """The pyarrow schema of a log of this spec, with its metadata."""
        fields: list[pa.Field] = [
            pa.field(JOURNEY, pa.string(), nullable=False),
            pa.field(STEP, pa.int64(), nullable=False),
        ]
        if self.timestamp:
            fields.append(pa.field(TIMESTAMP, pa.timestamp("us", tz="UTC")))
        fields += [pa.field(name, pa.float64()) for name in self.features]
        fields += [pa.field(name, pa.bool_(), nullable=False) for name in self.eligible_columns]
        if self.withheld:
            fields += [pa.field(name, pa.bool_(), nullable=False) for name in self.withheld_columns]
        fields += [
            pa.field(ACTION, pa.string(), nullable=False),
            pa.field(PROPENSITY, pa.float64()),
        ]
        if self.probabilities:
            fields += [pa.field(name, pa.float64()) for name in self.probability_columns]
        fields.append(pa.field(REWARD, pa.float64(), nullable=False))
        fields += [pa.field(name, pa.float64(), nullable=False) for name in self.term_columns]
        fields.append(pa.field(JOURNEY_END, pa.string()))
        return pa.schema(fields, metadata=self.metadata())

    # ------------------------------------------------------------ metadata
    def to_dict(self) -> dict[str, Any]:
        """The JSON object stored under :data:`METADATA_KEY`."""
        data = asdict(self)
        data["exploration"] = dict(self.exploration) if self.exploration is not None else None
        for key in ("features", "actions", "terms", "gated"):
            data[key] = list(data[key])
        return {"schema_version": LOG_SCHEMA_VERSION, **data}

    def metadata(self) -> dict[bytes, bytes]:
        """The table's key-value metadata."""
        return {METADATA_KEY: json.dumps(self.to_dict(), sort_keys=True).encode()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LogSpec:
        """The spec stored in a log's metadata.

        Raises:
            LogSchemaError: another schema version, or a field missing or of a wrong type.
        """
        version = data.get("schema_version")
        if str(version) not in READABLE_VERSIONS:
            raise LogSchemaError(
                f"metadata: the log has schema version {version!r}, this reader knows "
                f"{list(READABLE_VERSIONS)}: convert it or use the matching concede"
            )
        known = {f for f in cls.__dataclass_fields__}
        fields = {k: v for k, v in data.items() if k in known}
        for key in ("features", "actions"):
            if not isinstance(fields.get(key), list):
                raise LogSchemaError(f"metadata: {key} must be a list of names")
        try:
            return cls(**fields)
        except TypeError as err:
            raise LogSchemaError(f"metadata: {err}") from None

    @classmethod
    def from_metadata(cls, metadata: Mapping[bytes, bytes] | None) -> LogSpec | None:
        """The spec in a table's key-value metadata; None if it has none."""
        if not metadata or METADATA_KEY not in metadata:
            return None
        try:
            data = json.loads(metadata[METADATA_KEY])
        except ValueError as err:
            raise LogSchemaError(f"metadata: {METADATA_KEY.decode()} is not JSON ({err})") from None
        if not isinstance(data, dict):
            raise LogSchemaError(f"metadata: {METADATA_KEY.decode()} must be a JSON object")
        return cls.from_dict(data)

    @classmethod
    def infer(
        cls, columns: Sequence[str], *, scenario: Scenario | None = None, **source: Any
    ) -> LogSpec:
        """The spec of a table that has no metadata (a CSV, a shop's own table), from its
        column names: actions from the ``eligible_`` columns, terms from ``term_``,
        ``withheld_`` columns if any, features from the other columns. With a
        ``scenario``, its feature and action order and gated features are used, and the
        names must be its own (the validator then reports a column the scenario does not
        know)."""
        cols = list(columns)
        actions = [c[len(ELIGIBLE_PREFIX) :] for c in cols if c.startswith(ELIGIBLE_PREFIX)]
        terms = [c[len(TERM_PREFIX) :] for c in cols if c.startswith(TERM_PREFIX)]
        has_p = any(c.startswith(PROBABILITY_PREFIX) for c in cols)
        withheld = any(c.startswith(WITHHELD_PREFIX) for c in cols)
        if scenario is not None:
            spec = cls.from_scenario(scenario, terms=[t for t in terms if t in LEDGER_TERMS])
            return replace(
                spec,
                probabilities=has_p,
                timestamp=TIMESTAMP in cols,
                withheld=withheld,
                **source,
            )
        features = [c for c in cols if c not in FIXED_COLUMNS and not c.startswith(PREFIXES)]
        return cls(
            features=tuple(features),
            actions=tuple(actions),
            terms=tuple(t for t in terms if t in LEDGER_TERMS),
            probabilities=has_p,
            timestamp=TIMESTAMP in cols,
            withheld=withheld,
            **source,
        )
