"""An off-policy evaluation's result: one typed tree that the console, the JSON and the
report all read.

:func:`experiments.offpolicy.evaluate_offpolicy` returns an :class:`OPEResult`;
``concede ope`` prints it (:mod:`.render`) and writes
:meth:`OPEResult.to_json`; the merchant report reads that file back with
:meth:`OPEResult.from_json`, which refuses a file that does not match with an
:class:`OPEResultError` naming the key and what is wrong.

The tree, each class holding the JSON object of the same keys:

- :class:`OPEResult`: ``log`` (:class:`LogSummary`), ``settings`` (:class:`RunSettings`),
  ``estimator_names`` (internal name to display name), ``logged`` (what the logger
  earned, an :class:`Estimate` per output), ``policies`` (names in order), ``results``
  (a :class:`PolicyEstimates` per policy), ``warnings``;
- :class:`PolicyEstimates`: ``estimators`` (``{estimator: {output: Estimate}}``, keyed by
  name: a new estimator is a new key, no new field), ``recommended``
  (:class:`Recommendation`), ``diagnostics`` (:class:`Diagnostics`), ``value_model_r2``
  per signal, ``trust`` (:class:`Trust`, the one declaration of the verdicts),
  ``warnings``, on a log with a campaign budget ``budget`` (:class:`BudgetSummary`),
  for outputs the policy fixes by construction, ``exact`` (output to why: e.g. the spend
  of a policy that never offers, 0 with a zero-width interval by every estimator) and,
  when a scenario whose shoppers share state was given, ``interference``
  (:class:`InterferenceSummary`: the measured :class:`Interference` and the figure
  corrected by it);
- :class:`Estimate`: ``estimate``, ``low``, ``high`` (any may be None: not finite, or no
  interval).

Outputs are ``profit_per_1000``, ``conversion``, ``spend_per_1000`` (:data:`OUTPUTS`). The
JSON is the one ``ope`` has always written: a file of an earlier version loads.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any, TypeVar

PROFIT_KEY, CONVERSION_KEY, SPEND_KEY = "profit_per_1000", "conversion", "spend_per_1000"
OUTPUTS = (PROFIT_KEY, CONVERSION_KEY, SPEND_KEY)
"""The outputs an estimate can have, in the order they are shown."""

T = TypeVar("T")


class Trust(StrEnum):
    """The verdict on a policy's figures (:func:`experiments.offpolicy.diagnostics.assess`)."""

    TRUSTED = "trusted"
    CAUTION = "caution"
    UNTRUSTED = "not trustworthy"


class OPEResultError(ValueError):
    """A JSON that is not an off-policy evaluation's result; the message names the key
    (``results['never'].trust``) and what is wrong with it."""


# ------------------------------------------------------------------ reading JSON
def _at(data: Any, key: str, where: str) -> Any:
    """``data[key]``, ``data`` an object; else an :class:`OPEResultError`."""
    if not isinstance(data, Mapping):
        raise OPEResultError(f"{where or 'the result'}: must be an object, got {_kind(data)}")
    if key not in data:
        raise OPEResultError(f"{where or 'the result'}: missing {key!r}")
    return data[key]


def _kind(x: Any) -> str:
    return "null" if x is None else f"{type(x).__name__} {x!r}"[:60]


def _path(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _object(x: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(x, Mapping) or not all(isinstance(k, str) for k in x):
        raise OPEResultError(f"{where}: must be an object, got {_kind(x)}")
    return x


def _number(x: Any, where: str) -> float | None:
    """A JSON number (or null) as a float."""
    if x is None:
        return None
    if isinstance(x, bool) or not isinstance(x, int | float):
        raise OPEResultError(f"{where}: must be a number or null, got {_kind(x)}")
    return float(x)


def _float(x: Any, where: str) -> float:
    value = _number(x, where)
    if value is None:
        raise OPEResultError(f"{where}: must be a number, got null")
    return value


def _int(x: Any, where: str) -> int:
    if isinstance(x, bool) or not isinstance(x, int):
        raise OPEResultError(f"{where}: must be a whole number, got {_kind(x)}")
    return x


def _bool(x: Any, where: str) -> bool:
    if not isinstance(x, bool):
        raise OPEResultError(f"{where}: must be true or false, got {_kind(x)}")
    return x


def _str(x: Any, where: str) -> str:
    if not isinstance(x, str):
        raise OPEResultError(f"{where}: must be a string, got {_kind(x)}")
    return x


def _optional(read: Callable[[Any, str], T]) -> Callable[[Any, str], T | None]:
    return lambda x, where: None if x is None else read(x, where)


def _strings(x: Any, where: str) -> tuple[str, ...]:
    if not isinstance(x, list):
        raise OPEResultError(f"{where}: must be a list of strings, got {_kind(x)}")
    return tuple(_str(v, f"{where}[{i}]") for i, v in enumerate(x))


def _mapping(read: Callable[[Any, str], T]) -> Callable[[Any, str], dict[str, T]]:
    """A reader of an object whose every value ``read`` reads."""
    return lambda x, where: {k: read(v, f"{where}[{k!r}]") for k, v in _object(x, where).items()}


def _get(data: Mapping[str, Any], key: str, where: str, read: Callable[[Any, str], T]) -> T:
    """``read`` of ``data[key]``, its place named ``where.key`` in errors."""
    return read(_at(data, key, where), _path(where, key))


# ------------------------------------------------------------------ the tree
@dataclass(frozen=True)
class Estimate:
    """A figure and its interval (``low``, ``high``); any may be None (not finite, or no
    interval)."""

    estimate: float | None
    low: float | None
    high: float | None

    def to_json(self) -> dict[str, float | None]:
        return {"estimate": self.estimate, "low": self.low, "high": self.high}

    @classmethod
    def from_json(cls, data: Any, where: str = "") -> Estimate:
        _object(data, where)
        return cls(*(_get(data, k, where, _number) for k in ("estimate", "low", "high")))


_estimates = _mapping(Estimate.from_json)


@dataclass(frozen=True)
class Recommendation:
    """The recommended estimator (its display name), why it was chosen, and its
    :class:`Estimate` per output."""

    estimator: str
    why: str
    outputs: Mapping[str, Estimate]

    def to_json(self) -> dict[str, Any]:
        return {
            "estimator": self.estimator,
            "why": self.why,
            **{k: v.to_json() for k, v in self.outputs.items()},
        }

    @classmethod
    def from_json(cls, data: Any, where: str = "") -> Recommendation:
        _object(data, where)
        outputs = {k: v for k, v in data.items() if k not in ("estimator", "why")}
        return cls(
            _get(data, "estimator", where, _str),
            _str(data.get("why", ""), _path(where, "why")),
            _estimates(outputs, where),
        )


@dataclass(frozen=True)
class Diagnostics:
    """When not to trust a policy's figures (see :mod:`experiments.offpolicy.diagnostics`):
    the effective sample size ``ess`` and its share of the journeys, the largest journey
    weight's share, the share of journeys agreeing with the policy throughout, the shares
    of decisions and journeys without support, where the support was read from, and the
    effective journeys per decision of the per-decision and of the marginalised weights
    (None: a file from before they were written, or no ratio model)."""

    ess: float
    ess_share: float
    max_weight_share: float
    matched_journeys: float
    unsupported_decisions: float
    unsupported_journeys: float
    support_source: str
    step_ess: float | None = None
    marginal_ess: float | None = None

    def rounded(self) -> Diagnostics:
        """The figures to 6 decimals, as the JSON holds them."""
        return Diagnostics(**self.to_json())  # type: ignore[arg-type]

    def to_json(self) -> dict[str, float | str | None]:
        return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in self.__dict__.items()}

    @classmethod
    def from_json(cls, data: Any, where: str = "") -> Diagnostics:
        _object(data, where)
        optional = ("step_ess", "marginal_ess")
        numbers = [k for k in cls.__dataclass_fields__ if k not in ("support_source", *optional)]
        figures = {k: _get(data, k, where, _float) for k in numbers}
        extra = {k: _number(data.get(k), _path(where, k)) for k in optional}
        source = _get(data, "support_source", where, _str)
        return cls(
            support_source=source,
            step_ess=extra["step_ess"],
            marginal_ess=extra["marginal_ess"],
            **figures,
        )


@dataclass(frozen=True)
class BudgetSummary:
    """Under whose campaign budget a policy was evaluated (``evaluated_under``: own
    budget, logged eligibility, both spanned), the allowance and the policy's spend per
    1,000 journeys, the spend's verdict against it, the share of decisions where it picks
    what the budget withheld from the logger, and the profit under each side when both
    were evaluated (see :mod:`experiments.offpolicy.budget`)."""

    evaluated_under: str
    allowance_per_1000: float | None
    spend_per_1000: Estimate | None
    spend_verdict: str | None
    withheld_decisions: float
    own_budget_profit_per_1000: Estimate | None = None
    logged_eligibility_profit_per_1000: Estimate | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "evaluated_under": self.evaluated_under,
            "allowance_per_1000": self.allowance_per_1000,
            "spend_per_1000": None
            if self.spend_per_1000 is None
            else self.spend_per_1000.to_json(),
            "spend_verdict": self.spend_verdict,
            "withheld_decisions": self.withheld_decisions,
        }
        for key in ("own_budget_profit_per_1000", "logged_eligibility_profit_per_1000"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value.to_json()
        return out

    @classmethod
    def from_json(cls, data: Any, where: str = "") -> BudgetSummary:
        _object(data, where)
        estimate = _optional(Estimate.from_json)
        extra = {
            key: estimate(data[key], _path(where, key))
            for key in ("own_budget_profit_per_1000", "logged_eligibility_profit_per_1000")
            if key in data
        }
        return cls(
            evaluated_under=_get(data, "evaluated_under", where, _str),
            allowance_per_1000=_get(data, "allowance_per_1000", where, _number),
            spend_per_1000=_get(data, "spend_per_1000", where, estimate),
            spend_verdict=_get(data, "spend_verdict", where, _optional(_str)),
            withheld_decisions=_get(data, "withheld_decisions", where, _float),
            **extra,
        )


@dataclass(frozen=True)
class Interference:
    """What sharing state between shoppers does to a policy's figure on a log, measured in
    the simulator (:func:`experiments.offpolicy.interference.measure_interference`).

    On ``scenario``, per 1,000 journeys of the policy's shoppers: ``alone`` (the policy
    serving every shopper: its own shared state, what it would earn), ``among_logger``
    (the same shoppers served by the policy while the others, a share ``1 - share``, are
    served by ``logger`` with ``exploration``: the shared state a log of that logger
    holds), and ``correction`` = ``alone`` - ``among_logger``, paired shopper by shopper
    on ``replicates`` runs of ``n_shoppers`` from ``seed``, with ``confidence``
    intervals over the replicates. ``components``: each shared-state component of the
    scenario (``campaign_budget``, ``learning_shoppers``, ``live_agent_desk``) and its
    part of the correction, the correction minus the correction with that component
    switched off (empty: not attributed); ``without``: those corrections with it off."""

    scenario: str
    policy: str
    logger: str
    exploration: str
    share: float
    n_shoppers: int
    replicates: int
    seed: int
    confidence: float
    alone: Estimate
    among_logger: Estimate
    correction: Estimate
    components: Mapping[str, Estimate] = field(default_factory=dict)
    without: Mapping[str, Estimate] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = dict(self.__dict__)
        for key in ("alone", "among_logger", "correction"):
            out[key] = getattr(self, key).to_json()
        for key in ("components", "without"):
            out[key] = {k: v.to_json() for k, v in getattr(self, key).items()}
        return out

    @classmethod
    def from_json(cls, data: Any, where: str = "") -> Interference:
        _object(data, where)
        return cls(
            scenario=_get(data, "scenario", where, _str),
            policy=_get(data, "policy", where, _str),
            logger=_get(data, "logger", where, _str),
            exploration=_get(data, "exploration", where, _str),
            share=_get(data, "share", where, _float),
            n_shoppers=_get(data, "n_shoppers", where, _int),
            replicates=_get(data, "replicates", where, _int),
            seed=_get(data, "seed", where, _int),
            confidence=_get(data, "confidence", where, _float),
            alone=_get(data, "alone", where, Estimate.from_json),
            among_logger=_get(data, "among_logger", where, Estimate.from_json),
            correction=_get(data, "correction", where, Estimate.from_json),
            components=_get(data, "components", where, _estimates),
            without=_get(data, "without", where, _estimates),
        )


@dataclass(frozen=True)
class InterferenceSummary:
    """A policy's off-policy figure beside the figure corrected for shared state.

    ``plain``: the profit per 1,000 journeys the reweighting gives on ``basis`` (``logged
    eligibility``, ``own budget`` when the policy was evaluated under its own campaign
    budget, or ``both, spanned`` when the budget's verdict spanned both); it assumes
    shoppers do not affect one another. ``applied``: the correction added to its point
    (the measured one; on ``own budget`` the one measured with the budget switched off,
    the own-budget evaluation having answered for the budget), and ``corrected`` =
    ``plain`` + ``applied``, its interval the two half-widths in quadrature on each side
    (on ``both, spanned``: each evaluation corrected its own way, the interval holding
    both); it assumes the scenario's shared state is the shop's.
    ``cause``: in words, how large the correction is and which components carry it."""

    measured: Interference
    basis: str
    plain: Estimate
    applied: Estimate
    corrected: Estimate
    cause: str

    def to_json(self) -> dict[str, Any]:
        return {
            "measured": self.measured.to_json(),
            "basis": self.basis,
            "plain": self.plain.to_json(),
            "applied": self.applied.to_json(),
            "corrected": self.corrected.to_json(),
            "cause": self.cause,
        }

    @classmethod
    def from_json(cls, data: Any, where: str = "") -> InterferenceSummary:
        _object(data, where)
        return cls(
            measured=_get(data, "measured", where, Interference.from_json),
            basis=_get(data, "basis", where, _str),
            plain=_get(data, "plain", where, Estimate.from_json),
            applied=_get(data, "applied", where, Estimate.from_json),
            corrected=_get(data, "corrected", where, Estimate.from_json),
            cause=_get(data, "cause", where, _str),
        )


def _trust(x: Any, where: str) -> Trust:
    try:
        return Trust(x)
    except ValueError:
        words = ", ".join(repr(t.value) for t in Trust)
        raise OPEResultError(f"{where}: must be one of {words}, got {_kind(x)}") from None


@dataclass(frozen=True)
class PolicyEstimates:
    """One policy's result: every estimator's figures, the recommended one, the
    diagnostics, the value model's out-of-fold R² per signal, the verdict and the
    warnings in words, on a log with a campaign budget the budget's summary,
    ``exact``: the outputs known by construction rather than estimated (every estimator
    gives them with a zero-width interval), each with why, and ``interference``: the
    figure corrected for the shared state of the scenario given (None: none measured)."""

    estimators: Mapping[str, Mapping[str, Estimate]]
    recommended: Recommendation
    diagnostics: Diagnostics
    value_model_r2: Mapping[str, float]
    trust: Trust
    warnings: tuple[str, ...] = ()
    budget: BudgetSummary | None = None
    exact: Mapping[str, str] = field(default_factory=dict)
    interference: InterferenceSummary | None = None

    def without_output(self, key: str, signal: str) -> PolicyEstimates:
        """This result without the output ``key`` (of ``signal``): one the user did not
        ask for, computed to judge the budget."""
        rec = self.recommended
        return replace(
            self,
            estimators={
                e: {k: v for k, v in outputs.items() if k != key}
                for e, outputs in self.estimators.items()
            },
            recommended=replace(rec, outputs={k: v for k, v in rec.outputs.items() if k != key}),
            value_model_r2={k: v for k, v in self.value_model_r2.items() if k != signal},
            exact={k: v for k, v in self.exact.items() if k != key},
        )

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "estimators": {
                e: {k: v.to_json() for k, v in outputs.items()}
                for e, outputs in self.estimators.items()
            },
            "recommended": self.recommended.to_json(),
            "diagnostics": self.diagnostics.to_json(),
            "value_model_r2": dict(self.value_model_r2),
            "trust": self.trust.value,
            "warnings": list(self.warnings),
        }
        if self.budget is not None:
            out["budget"] = self.budget.to_json()
        if self.exact:
            out["exact"] = dict(self.exact)
        if self.interference is not None:
            out["interference"] = self.interference.to_json()
        return out

    @classmethod
    def from_json(cls, data: Any, where: str = "") -> PolicyEstimates:
        _object(data, where)
        budget = data.get("budget")
        return cls(
            estimators=_get(data, "estimators", where, _mapping(_estimates)),
            recommended=_get(data, "recommended", where, Recommendation.from_json),
            diagnostics=_get(data, "diagnostics", where, Diagnostics.from_json),
            value_model_r2=_get(data, "value_model_r2", where, _mapping(_float)),
            trust=_get(data, "trust", where, _trust),
            warnings=_get(data, "warnings", where, _strings),
            budget=None
            if budget is None
            else BudgetSummary.from_json(budget, _path(where, "budget")),
            exact=_mapping(_str)(data.get("exact", {}), _path(where, "exact")),
            interference=_optional(InterferenceSummary.from_json)(
                data.get("interference"), _path(where, "interference")
            ),
        )


@dataclass(frozen=True)
class LogSummary:
    """What was read: journeys and decisions, single-decision or not, the logger and its
    exploration, the scenario and its digest, how the propensities were obtained
    (``logged`` or ``estimated``), the action names and the files."""

    journeys: int
    decisions: int
    single_decision: bool
    logger: str | None
    exploration: Mapping[str, Any] | None
    scenario: str | None
    scenario_digest: str | None
    propensities: str
    actions: tuple[str, ...]
    files: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        out["exploration"] = None if self.exploration is None else dict(self.exploration)
        out["actions"], out["files"] = list(self.actions), list(self.files)
        return out

    @classmethod
    def from_json(cls, data: Any, where: str = "log") -> LogSummary:
        _object(data, where)
        return cls(
            journeys=_get(data, "journeys", where, _int),
            decisions=_get(data, "decisions", where, _int),
            single_decision=_get(data, "single_decision", where, _bool),
            logger=_get(data, "logger", where, _optional(_str)),
            exploration=_get(data, "exploration", where, _optional(_object)),
            scenario=_get(data, "scenario", where, _optional(_str)),
            scenario_digest=_get(data, "scenario_digest", where, _optional(_str)),
            propensities=_get(data, "propensities", where, _str),
            actions=_get(data, "actions", where, _strings),
            files=_get(data, "files", where, _strings),
        )


@dataclass(frozen=True)
class RunSettings:
    """How the evaluation ran: the intervals' confidence, bootstrap resamples and seed,
    the fits' seed, the value model's settings (None: none), the propensity refits and the
    ratio model's settings (None: none, or a file from before it existed)."""

    confidence: float
    n_resamples: int
    bootstrap_seed: int
    seed: int
    value_model: Mapping[str, Any] | None
    propensity_refits: int
    ratio_model: Mapping[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        out["value_model"] = None if self.value_model is None else dict(self.value_model)
        out["ratio_model"] = None if self.ratio_model is None else dict(self.ratio_model)
        return out

    @classmethod
    def from_json(cls, data: Any, where: str = "settings") -> RunSettings:
        _object(data, where)
        return cls(
            confidence=_get(data, "confidence", where, _float),
            n_resamples=_get(data, "n_resamples", where, _int),
            bootstrap_seed=_get(data, "bootstrap_seed", where, _int),
            seed=_get(data, "seed", where, _int),
            value_model=_get(data, "value_model", where, _optional(_object)),
            propensity_refits=_get(data, "propensity_refits", where, _int),
            ratio_model=_optional(_object)(data.get("ratio_model"), _path(where, "ratio_model")),
        )


@dataclass(frozen=True)
class OPEResult:
    """An off-policy evaluation of ``policies`` on a log; see the module docstring."""

    log: LogSummary
    settings: RunSettings
    estimator_names: Mapping[str, str]
    logged: Mapping[str, Estimate]
    policies: tuple[str, ...]
    results: Mapping[str, PolicyEstimates]
    warnings: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        missing = [p for p in self.policies if p not in self.results]
        if missing:
            raise OPEResultError(f"results: missing the policies {missing}")

    def to_json(self) -> dict[str, Any]:
        """The result as JSON-ready data: what ``ope`` writes and prints last."""
        return {
            "log": self.log.to_json(),
            "settings": self.settings.to_json(),
            "estimator_names": dict(self.estimator_names),
            "logged": {k: v.to_json() for k, v in self.logged.items()},
            "policies": list(self.policies),
            "results": {name: r.to_json() for name, r in self.results.items()},
            "warnings": list(self.warnings),
        }

    @classmethod
    def from_json(cls, data: Any) -> OPEResult:
        """The result in ``data`` (parsed JSON, as :meth:`to_json` gives it).

        Raises:
            OPEResultError: ``data`` is not such a result; the message names the key.
        """
        _object(data, "the result")
        return cls(
            log=LogSummary.from_json(_at(data, "log", "")),
            settings=RunSettings.from_json(_at(data, "settings", "")),
            estimator_names=_get(data, "estimator_names", "", _mapping(_str)),
            logged=_get(data, "logged", "", _estimates),
            policies=_get(data, "policies", "", _strings),
            results=_get(data, "results", "", _mapping(PolicyEstimates.from_json)),
            warnings=_get(data, "warnings", "", _strings),
        )

    def with_warnings_first(self, warnings: list[str]) -> OPEResult:
        """This result with ``warnings`` before its own."""
        return replace(self, warnings=(*warnings, *self.warnings))
