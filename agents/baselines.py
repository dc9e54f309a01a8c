"""Baseline merchants: never offer, always offer one concession, hand rules, concession curves.

Every baseline is a batched :class:`agents.policy.Policy`: it reads the observation
``(n, n_features)`` by feature name (columns from :func:`envs.observation.feature_schema`)
and never returns an action its mask forbids (it waits instead).

- :class:`NeverOffer` (``never``): always waits.
- :class:`FixedAction` (``fixed:<action>``): always one action, by its name, whenever the
  mask allows it, from the first step on (the arm of an A/B test, say); it needs no
  scenario, only the action names, so it can be evaluated on a log of actions that are
  no scenario's.
- :class:`AlwaysOffer` (``always_<concession>``): offers one catalogue entry at cart
  abandonment. On-site kinds (pop-ups, live agent) fire at exit intent (feature
  ``exit_intent``); e-mail kinds (retargeting) fire while the shopper is away (``away``).
  ``exit_intent`` needs tracking consent, so on-site offers never reach a shopper who
  refused it: that is the privacy trade-off, not a bug.
- :class:`RulePolicy`: a merchant's hand rules given as data (:class:`RuleSet`, read from
  YAML by :func:`load_rules`). A rule is a list of conditions on named features, all of
  which must hold, and the concession to offer. The first matching rule wins; its
  concession is offered only if the mask allows it, else the shopper waits (unless the
  rule set says ``skip_ineligible: true``: then an ineligible rule is passed over and
  the next matching rule may fire).
- :class:`TimeCurvePolicy` (``boulware``, ``linear``, ``conceder``): time-based
  concession curves from negotiation research. With ``tau`` the journey time fraction
  (feature ``journey_step``), the concession level is ``c(tau) = tau ** e``
  (:data:`CURVE_EXPONENTS`, as NegMAS's helpers: boulware 4, linear 1, conceder 0.25).
  When the shopper hesitates (exit intent or away) the eligible concessions are ordered by
  what they would cost the merchant on this cart (ties: catalogue order), and the one at
  position ``round(c * (m - 1))`` of the ``m`` eligible is offered: the cheapest early,
  dearer ones as the journey drags on (a boulware merchant holds out longest).
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

import concede_conf
from agents.policy import PolicySpecError
from envs.catalogue import ActionTable, compile_actions
from envs.observation import feature_schema
from envs.scenario import ConcessionKind, Scenario

Actions = NDArray[np.int64]
Obs = NDArray[np.float32]
Mask = NDArray[np.bool_]

CURVE_EXPONENTS: dict[str, float] = {"boulware": 4.0, "linear": 1.0, "conceder": 0.25}
RULES_DIR_ENV = "CONCEDE_RULES_DIR"


def feature_columns(scenario: Scenario) -> dict[str, int]:
    """Observation column of every feature of ``scenario``, by name."""
    return {f.name: i for i, f in enumerate(feature_schema(scenario))}


def concession_index(scenario: Scenario, ref: str) -> int:
    """Action index of a concession given by catalogue name, or by kind (first of that kind).

    Raises:
        ValueError: no catalogue entry has that name or kind; the message lists both.
    """
    names = scenario.action_names
    if ref in names[1:]:
        return names.index(ref)
    for i, c in enumerate(scenario.concessions, start=1):
        if c.kind.value == ref:
            return i
    raise ValueError(
        f"unknown concession {ref!r} in scenario {scenario.name!r}; catalogue: "
        f"{list(names[1:])}; or a kind present in it: "
        f"{sorted({c.kind.value for c in scenario.concessions})}"
    )


def concession_costs(table: ActionTable, price: NDArray[Any], fee: NDArray[Any]) -> NDArray[Any]:
    """What each action would cost the merchant if used on a cart, shape ``(n, n_actions)``.

    Price given up (percent or fixed discount, waived fee, retargeting discount) plus the
    cost paid at purchase or on sending plus the expected voucher liability; ``wait`` is 0.
    Computed from what the merchant sees: the cart's list price and shipping fee.
    """
    is_kind = table.is_kind
    per_price = np.where(
        is_kind(ConcessionKind.PERCENT_DISCOUNT) | is_kind(ConcessionKind.RETARGETING),
        table.magnitude,
        0.0,
    )
    fixed = np.where(is_kind(ConcessionKind.FIXED_DISCOUNT), table.magnitude, 0.0)
    per_fee = is_kind(ConcessionKind.FREE_SHIPPING).astype(np.float64)
    price, fee = np.asarray(price, np.float64)[:, None], np.asarray(fee, np.float64)[:, None]
    # np.minimum(0, price) is 0: the fixed term only counts for fixed discounts
    cost = table.purchase_cost + table.send_cost + table.voucher_liability + price * per_price
    cost += np.minimum(fixed, price) + fee * per_fee
    cost[:, 0] = 0.0
    return cost


class NeverOffer:
    """Never offers anything: the status quo every other policy is measured against."""

    name = "never"

    def act(self, obs: Obs, mask: Mask) -> Actions:
        return np.zeros(len(obs), dtype=np.int64)


class FixedAction:
    """Always ``action`` when the mask allows it, else the default action (index 0, ``wait``).

    Named ``fixed:<action>``; ``action_names`` are the actions it decides among (a
    scenario's, or a log's), checked against the log it is evaluated on."""

    def __init__(self, action_names: Sequence[str], action: str) -> None:
        if action not in action_names:
            raise PolicySpecError(
                f"fixed:{action}: no action {action!r} among the actions {list(action_names)}"
            )
        self.index = list(action_names).index(action)
        self.name = f"fixed:{action}"
        self.action_names = tuple(action_names)

    def act(self, obs: Obs, mask: Mask) -> Actions:
        return np.where(mask[:, self.index], self.index, 0).astype(np.int64)


class AlwaysOffer:
    """Offers one catalogue entry at cart abandonment, whenever its mask allows.

    On-site kinds fire at exit intent (only visible with consent), e-mail kinds while the
    shopper is away. Named ``always_<concession>``.
    """

    def __init__(self, scenario: Scenario, concession: str) -> None:
        self.action = concession_index(scenario, concession)
        entry = scenario.concessions[self.action - 1]
        self.name = f"always_{entry.name}"
        trigger = "away" if entry.channel == "email" else "exit_intent"
        self._trigger = feature_columns(scenario)[trigger]

    def act(self, obs: Obs, mask: Mask) -> Actions:
        fire = (obs[:, self._trigger] > 0.5) & mask[:, self.action]
        return fire.astype(np.int64) * self.action


class TimeCurvePolicy:
    """Concedes along a time curve ``c(tau) = tau ** exponent``; see the module docstring."""

    def __init__(self, scenario: Scenario, curve: str | float) -> None:
        if isinstance(curve, str):
            if curve not in CURVE_EXPONENTS:
                raise ValueError(f"unknown curve {curve!r}; known: {sorted(CURVE_EXPONENTS)}")
            self.name, self.exponent = curve, CURVE_EXPONENTS[curve]
        else:
            if not curve > 0:
                raise ValueError(f"a curve exponent must be > 0, got {curve!r}")
            self.name, self.exponent = f"curve_{curve:g}", float(curve)
        self._table = compile_actions(scenario)
        col = feature_columns(scenario)
        self._cols = {k: col[k] for k in ("exit_intent", "away", "journey_step")}
        self._cart, self._fee = col["cart_value"], col["shipping_fee"]

    def level(self, tau: NDArray[Any]) -> NDArray[np.float64]:
        """The concession level in [0, 1] at journey time fraction ``tau``."""
        return np.clip(tau.astype(np.float64), 0.0, 1.0) ** self.exponent

    def act(self, obs: Obs, mask: Mask) -> Actions:
        c = self._cols
        out = np.zeros(len(obs), dtype=np.int64)
        hesitates = (obs[:, c["exit_intent"]] > 0.5) | (obs[:, c["away"]] > 0.5)
        rows = np.flatnonzero(hesitates & mask[:, 1:].any(axis=1))
        if not len(rows):
            return out
        o, ok = obs[rows], mask[rows]
        ok[:, 0] = False
        cost = concession_costs(self._table, o[:, self._cart] * 100.0, o[:, self._fee] * 10.0)
        cost[~ok] = np.inf
        order = np.argsort(cost, axis=1, kind="stable")
        m = ok.sum(axis=1)
        pos = np.rint(self.level(o[:, c["journey_step"]]) * np.maximum(m - 1, 0)).astype(np.int64)
        pick = order[np.arange(len(rows)), pos]
        out[rows] = np.where(m > 0, pick, 0)
        return out


# ------------------------------------------------------------------ hand rules

OPERATORS: dict[str, Callable[[Any, Any], NDArray[np.bool_]]] = {
    ">=": np.greater_equal,
    "<=": np.less_equal,
    "==": np.equal,
    ">": np.greater,
    "<": np.less,
}
SCALES = ("horizon", "max_visits", "max_offers_per_shopper")
_CONDITION = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(>=|<=|==|>|<)\s*(\S.*?)\s*$")
_VALUE = re.compile(r"^\s*([-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*(?:/\s*(\S+))?\s*$")


def _parse_value(text: str) -> tuple[float, float | str]:
    """``"a"`` or ``"a/b"`` as (a, b), b a non-zero number (1 if absent) or one of SCALES."""
    m = _VALUE.match(text)
    if m is None:
        raise ValueError(f"value {text!r} is not a number or 'a/b' (e.g. '2/max_visits')")
    num, den = float(m.group(1)), m.group(2)
    if den is None:
        return num, 1.0
    if den in SCALES:
        return num, den
    try:
        divisor = float(den)
    except ValueError:
        raise ValueError(
            f"value {text!r}: divisor {den!r} is neither a number nor one of {list(SCALES)}"
        ) from None
    if divisor == 0.0 or not math.isfinite(divisor):
        raise ValueError(f"value {text!r}: the divisor must be a non-zero number")
    return num, divisor


class RuleError(PolicySpecError):
    """A rule set is malformed, or names a feature or concession the scenario lacks."""

    def __init__(self, where: str, problem: str) -> None:
        self.where = where
        super().__init__(f"{where}: {problem}" if where else problem)


@dataclass(frozen=True)
class Condition:
    """``feature op value`` on one named observation feature, in the feature's own units.

    ``value`` is a number, or a string ``"a/b"`` with ``b`` a number or one of
    :data:`SCALES` resolved on the scenario (``"2/max_visits"``, ``"8/horizon"``, ``"50/100"``),
    so that one rule reads the same on scenarios with other horizons or visit caps.
    """

    feature: str
    op: str
    value: float | str

    def threshold(self, scenario: Scenario) -> float:
        """The value as a number for ``scenario``."""
        if isinstance(self.value, int | float):
            return float(self.value)
        num, den = _parse_value(self.value)
        if isinstance(den, str):
            return num / float(getattr(scenario, den))
        return num / den

    def __str__(self) -> str:
        return f"{self.feature} {self.op} {self.value}"


@dataclass(frozen=True)
class Rule:
    """Offer ``offer`` when all of ``when`` hold; an empty ``when`` always matches.

    ``offer`` lists alternatives, each a catalogue name, a concession kind or ``wait``: the
    first one the scenario's catalogue has is used (``[free_shipping, free_gift]`` reads
    "free shipping, or a gift where the shop has no free shipping").
    """

    name: str
    offer: tuple[str, ...]
    when: tuple[Condition, ...] = ()


@dataclass(frozen=True)
class RuleSet:
    """An ordered list of rules; the first matching rule wins."""

    name: str
    rules: tuple[Rule, ...]
    description: str = ""
    skip_ineligible: bool = False

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "") -> RuleSet:
        """Build a rule set from plain data (a parsed YAML file); see :func:`load_rules`.

        Raises:
            RuleError: naming the entry (``rules[1].when[0]``) and what is wrong with it.
        """
        if not isinstance(data, Mapping):
            raise RuleError(where, f"a rule set must be a mapping, got {type(data).__name__}")
        allowed = {"name", "description", "rules", "skip_ineligible"}
        unknown = sorted(set(data) - allowed)
        if unknown:
            raise RuleError(where, f"unknown key(s) {unknown}; allowed: {sorted(allowed)}")
        name = data.get("name")
        if not isinstance(name, str) or not name:
            raise RuleError(_at(where, "name"), "is required: a non-empty string")
        rules = data.get("rules")
        if not isinstance(rules, list) or not rules:
            raise RuleError(_at(where, "rules"), "must be a non-empty list of rules")
        skip = data.get("skip_ineligible", False)
        if not isinstance(skip, bool):
            raise RuleError(_at(where, "skip_ineligible"), f"must be true or false, got {skip!r}")
        built = tuple(_rule(r, _at(where, f"rules[{i}]")) for i, r in enumerate(rules))
        return cls(name, built, str(data.get("description", "")), skip)


def _at(where: str, key: str) -> str:
    if not where:
        return key
    return f"{where}{key}" if key.startswith("[") else f"{where}.{key}"


def _rule(data: Any, where: str) -> Rule:
    if not isinstance(data, Mapping):
        raise RuleError(where, f"a rule must be a mapping with 'offer' and 'when', got {data!r}")
    unknown = sorted(set(data) - {"name", "offer", "when"})
    if unknown:
        raise RuleError(where, f"unknown key(s) {unknown}; allowed: ['name', 'offer', 'when']")
    offer = data.get("offer")
    offers = [offer] if isinstance(offer, str) else offer
    if not isinstance(offers, list) or not offers or not all(isinstance(o, str) for o in offers):
        raise RuleError(
            _at(where, "offer"),
            f"is required: a concession name, a kind or 'wait', or a list of them; got {offer!r}",
        )
    when = data.get("when", [])
    if not isinstance(when, list):
        raise RuleError(_at(where, "when"), "must be a list of conditions")
    conditions = tuple(_condition(c, _at(where, f"when[{i}]")) for i, c in enumerate(when))
    return Rule(str(data.get("name", where or offers[0])), tuple(offers), conditions)


def _condition(data: Any, where: str) -> Condition:
    """A condition from ``"feature >= value"``, ``[feature, op, value]`` or a mapping."""
    if isinstance(data, str):
        m = _CONDITION.match(data)
        if m is None:
            raise RuleError(
                where,
                f"cannot read {data!r}; write 'feature op value', op one of {list(OPERATORS)}",
            )
        feature, op, raw = m.groups()
        value: Any = raw
    elif isinstance(data, list | tuple) and len(data) == 3:
        feature, op, value = data
    elif isinstance(data, Mapping) and set(data) == {"feature", "op", "value"}:
        feature, op, value = data["feature"], data["op"], data["value"]
    else:
        raise RuleError(
            where,
            f"a condition is 'feature op value', [feature, op, value] or "
            f"{{feature, op, value}}, got {data!r}",
        )
    if not isinstance(feature, str):
        raise RuleError(where, f"feature must be a name, got {feature!r}")
    if op not in OPERATORS:
        raise RuleError(where, f"unknown operator {op!r}; use one of {list(OPERATORS)}")
    if isinstance(value, bool):
        value = float(value)
    if not isinstance(value, int | float | str):
        raise RuleError(where, f"value must be a number or 'a/b', got {value!r}")
    if isinstance(value, str):
        try:
            _parse_value(value)
        except ValueError as err:
            raise RuleError(where, str(err)) from None
    elif not math.isfinite(value):
        raise RuleError(where, f"value must be finite, got {value!r}")
    cond = Condition(feature, op, value if isinstance(value, str) else float(value))
    return cond


def rules_dir() -> Path:
    """The folder of shipped rule sets (``$CONCEDE_RULES_DIR`` overrides it)."""
    override = os.environ.get(RULES_DIR_ENV)
    if override:
        return Path(override)
    return concede_conf.folder("rules")


def available_rule_sets(folder: Path | None = None) -> list[str]:
    """Names of the shipped rule sets (the YAML files of :func:`rules_dir`), sorted."""
    return sorted(p.stem for p in (folder or rules_dir()).glob("*.yaml"))


def load_rules(name_or_path: str | os.PathLike[str], folder: Path | None = None) -> RuleSet:
    """A shipped rule set by name (``"merchant_rules"``) or a rule YAML file by path.

    The file format::

        name: merchant_rules
        description: what the merchant does today
        skip_ineligible: false        # optional
        rules:
          - name: second_return_discount
            offer: ten_percent_off    # a catalogue name, a kind (its first entry), or wait;
                                      # or a list of them: the first the catalogue has
            when:
              - returning_visitor == 1
              - visit_index >= 2/max_visits
    """
    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml"):
        path = (folder or rules_dir()) / f"{name_or_path}.yaml"
        if not path.is_file():
            raise RuleError(
                "",
                f"no rule set named {str(name_or_path)!r}; available: "
                f"{available_rule_sets(folder)}",
            )
    elif not path.is_file():
        raise RuleError("", f"no rule file at {str(path)!r}")
    import yaml  # PyYAML is a dependency of concede; only rule files need it

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise RuleError(path.name, f"is not valid YAML: {err}") from None
    return RuleSet.from_dict(data, path.name)


class RulePolicy:
    """A :class:`RuleSet` bound to a scenario: feature columns, thresholds and actions resolved.

    Raises:
        RuleError: a condition names an unknown feature (the message lists the features), a
            rule offers a concession the catalogue lacks (the message lists the catalogue),
            or a value cannot be read.
    """

    def __init__(self, scenario: Scenario, rules: RuleSet) -> None:
        self.name = rules.name
        self.rules = rules
        cols = feature_columns(scenario)
        self._compiled: list[tuple[int, list[tuple[int, Callable[..., Any], np.float32]]]] = []
        for i, rule in enumerate(rules.rules):
            where = f"{rules.name}: rules[{i}] ({rule.name})"
            action = _first_offer(scenario, rule.offer, where)
            tests = []
            for j, cond in enumerate(rule.when):
                if cond.feature not in cols:
                    raise RuleError(
                        f"{where}.when[{j}]",
                        f"unknown feature {cond.feature!r}; features: {list(cols)}",
                    )
                try:
                    value = cond.threshold(scenario)
                except ValueError as err:
                    raise RuleError(f"{where}.when[{j}]", str(err)) from None
                # observations are float32: compare in float32 so that 2/6 equals 2/6
                tests.append((cols[cond.feature], OPERATORS[cond.op], np.float32(value)))
            self._compiled.append((action, tests))

    def act(self, obs: Obs, mask: Mask) -> Actions:
        n = len(obs)
        out = np.zeros(n, dtype=np.int64)
        decided = np.zeros(n, dtype=bool)
        for action, tests in self._compiled:
            match = ~decided
            for col, op, value in tests:
                match &= op(obs[:, col], value)
            if self.rules.skip_ineligible:
                match &= mask[:, action]
            out[match & mask[:, action]] = action
            decided |= match
            if decided.all():
                break
        return out


def _first_offer(scenario: Scenario, offers: tuple[str, ...], where: str) -> int:
    """The action of the first of ``offers`` the catalogue has (``wait`` is 0)."""
    for ref in offers:
        if ref == "wait":
            return 0
        try:
            return concession_index(scenario, ref)
        except ValueError:
            continue
    what = f"concession {offers[0]!r}" if len(offers) == 1 else f"any of {list(offers)}"
    raise RuleError(
        where,
        f"scenario {scenario.name!r} has no {what}; catalogue: {list(scenario.action_names[1:])}"
        f", kinds: {sorted({c.kind.value for c in scenario.concessions})}, or 'wait'",
    )


def always_policies(scenario: Scenario) -> list[AlwaysOffer]:
    """One :class:`AlwaysOffer` per catalogue entry."""
    return [AlwaysOffer(scenario, c.name) for c in scenario.concessions]
