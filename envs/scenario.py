"""The typed, validated scenario: who shops, what they buy, what the merchant may concede.

A :class:`Scenario` is plain data. Every number has a documented unit and an allowed
range; a value outside it raises :class:`ScenarioError` naming the field by its full
path (``scenario.segments[2].share``) and the allowed range, so that a typo in a YAML
file is caught before a single shopper is simulated.

Build one from a mapping (a parsed YAML file, a Hydra config turned into a dict) with
:meth:`Scenario.from_dict`; unknown keys and missing fields are errors too.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum, StrEnum
from typing import Any, TypeVar


class ScenarioError(ValueError):
    """A scenario value is missing, unknown, of the wrong type or out of its range."""

    def __init__(self, path: str, problem: str) -> None:
        self.path = path
        self.problem = problem
        super().__init__(f"{path}: {problem}" if path else problem)

    def under(self, prefix: str) -> ScenarioError:
        """The same error, its path prefixed by the enclosing field."""
        path = (
            f"{prefix}.{self.path}"
            if self.path and not self.path.startswith("[")
            else prefix + self.path
        )
        return ScenarioError(path, self.problem)


def _in_range(
    name: str,
    value: float,
    low: float,
    high: float = math.inf,
    *,
    low_open: bool = False,
    high_open: bool = False,
) -> None:
    too_low = value <= low if low_open else value < low
    too_high = value >= high if high_open else value > high
    if math.isnan(value) or too_low or too_high:
        left = "(" if low_open else "["
        right = ")" if high_open or math.isinf(high) else "]"
        upper = "inf" if math.isinf(high) else f"{high:g}"
        raise ScenarioError(name, f"must be in {left}{low:g}, {upper}{right}, got {value!r}")


class ConcessionKind(StrEnum):
    """What a concession gives the shopper. The kind fixes the channel it is sent on."""

    PERCENT_DISCOUNT = "percent_discount"
    FIXED_DISCOUNT = "fixed_discount"
    FREE_SHIPPING = "free_shipping"
    EXPRESS_DELIVERY = "express_delivery"
    FREE_GIFT = "free_gift"
    VOUCHER = "voucher"
    LIVE_AGENT = "live_agent"
    RETARGETING = "retargeting"

    @property
    def channel(self) -> str:
        """``onsite`` (pop-up while browsing), ``chat`` (live agent), ``email`` (after leaving)."""
        if self is ConcessionKind.LIVE_AGENT:
            return "chat"
        if self is ConcessionKind.RETARGETING:
            return "email"
        return "onsite"


@dataclass(frozen=True)
class Segment:
    """One kind of shopper in the population mixture; traits are drawn around these means.

    Valuation is the shopper's willingness to pay for the cart as a multiple of its
    list price (log-normal around ``valuation``). Hesitation, appeal and help are in
    logits of the per-step decision; sensitivities say how many euros of perceived
    value one euro of a concession is worth to this segment.
    """

    name: str
    share: float  # weight in the mixture, > 0 (normalised over segments)
    valuation: float  # median willingness to pay / list price, > 0
    valuation_spread: float  # log-normal sigma of the valuation, >= 0
    hesitation: float  # mean decision friction, logits
    hesitation_spread: float  # standard deviation of hesitation, >= 0
    abandon_hazard: float  # per-step probability of showing exit intent on a neutral deal
    return_probability: float  # chance of coming back after the first visit ends
    return_decay: float  # multiplier on that chance per further visit
    price_sensitivity: float  # perceived euros per euro of discount
    shipping_sensitivity: float  # perceived euros per euro of shipping fee (saved or paid)
    speed_sensitivity: float  # value of express delivery, as a fraction of the cart price
    gift_sensitivity: float  # perceived euros per euro of a gift's retail value
    voucher_sensitivity: float  # perceived euros per euro of voucher face (future, discounted)
    help_value: float  # logit effect of a live agent: > 0 novices, < 0 experts
    tolerance: float  # mean number of interruptions tolerated before a harassment exit
    retarget_lift: float  # added return probability after a retargeting e-mail
    consent_rate: float | None = None  # overrides the scenario's consent rate for this segment

    def __post_init__(self) -> None:
        if not self.name:
            raise ScenarioError("name", "must be a non-empty string")
        _in_range("share", self.share, 0.0, low_open=True)
        _in_range("valuation", self.valuation, 0.0, 10.0, low_open=True)
        _in_range("valuation_spread", self.valuation_spread, 0.0, 3.0)
        _in_range("hesitation", self.hesitation, -10.0, 10.0)
        _in_range("hesitation_spread", self.hesitation_spread, 0.0, 5.0)
        _in_range("abandon_hazard", self.abandon_hazard, 0.0, 1.0)
        _in_range("return_probability", self.return_probability, 0.0, 1.0)
        _in_range("return_decay", self.return_decay, 0.0, 1.0)
        for name in (
            "price_sensitivity",
            "shipping_sensitivity",
            "speed_sensitivity",
            "gift_sensitivity",
            "voucher_sensitivity",
        ):
            _in_range(name, getattr(self, name), 0.0, 10.0)
        _in_range("help_value", self.help_value, -5.0, 5.0)
        _in_range("tolerance", self.tolerance, 0.0, 100.0, low_open=True)
        _in_range("retarget_lift", self.retarget_lift, 0.0, 1.0)
        if self.consent_rate is not None:
            _in_range("consent_rate", self.consent_rate, 0.0, 1.0)


@dataclass(frozen=True)
class Product:
    """A cart the shopper may fill: list price, cost of goods, and the shipping economics."""

    name: str
    price: float  # list price of the cart, EUR, > 0
    unit_cost: float  # cost of goods, EUR, in [0, price)
    shipping_fee: float  # standard shipping charged to the shopper, EUR, >= 0
    shipping_cost: float  # standard shipping paid by the merchant to the carrier, EUR, >= 0
    weight: float = 1.0  # popularity in the catalogue, > 0

    def __post_init__(self) -> None:
        if not self.name:
            raise ScenarioError("name", "must be a non-empty string")
        _in_range("price", self.price, 0.0, 1e6, low_open=True)
        _in_range("unit_cost", self.unit_cost, 0.0, self.price, high_open=True)
        _in_range("shipping_fee", self.shipping_fee, 0.0, 1e4)
        _in_range("shipping_cost", self.shipping_cost, 0.0, 1e4)
        _in_range("weight", self.weight, 0.0, low_open=True)


@dataclass(frozen=True)
class Concession:
    """One entry of the merchant's concession catalogue, with its cost model and eligibility.

    ``magnitude`` depends on the kind: a fraction of the cart price for
    ``percent_discount`` and ``retargeting`` (0 is a plain reminder), euros off for
    ``fixed_discount``, the retail value of a ``free_gift``, the face value of a
    ``voucher``; it is unused (0) for the others. ``unit_cost`` is what one use costs
    the merchant beyond the price given up: the express upgrade, the gift's cost, one
    live-agent session, one e-mail. Eligibility: the cart is at least ``min_cart``; the
    entry was not offered before to this shopper if ``once_per_shopper``; the
    contribution margin left after it is at least ``margin_floor`` x price; the
    campaign budget can still pay for it.
    """

    name: str
    kind: ConcessionKind
    magnitude: float = 0.0
    unit_cost: float = 0.0
    expiry_steps: int = 12  # decision steps the offer stays valid
    min_cart: float = 0.0  # EUR
    once_per_shopper: bool = True
    margin_floor: float = -1.0  # fraction of price; -1 disables the floor
    redemption_probability: float = 1.0  # vouchers: share of vouchers later redeemed

    def __post_init__(self) -> None:
        if not self.name or not self.name.replace("_", "").isalnum():
            raise ScenarioError("name", f"must be letters, digits and '_', got {self.name!r}")
        kind = self.kind
        if kind in (ConcessionKind.PERCENT_DISCOUNT, ConcessionKind.RETARGETING):
            _in_range("magnitude", self.magnitude, 0.0, 0.9)
        elif kind in (
            ConcessionKind.FIXED_DISCOUNT,
            ConcessionKind.FREE_GIFT,
            ConcessionKind.VOUCHER,
        ):
            _in_range("magnitude", self.magnitude, 0.0, 1e5, low_open=True)
        elif self.magnitude != 0.0:
            raise ScenarioError(
                "magnitude", f"must be 0 for kind {kind.value}, got {self.magnitude!r}"
            )
        if kind is ConcessionKind.PERCENT_DISCOUNT and self.magnitude == 0.0:
            raise ScenarioError("magnitude", "a percent_discount must give more than 0")
        _in_range("unit_cost", self.unit_cost, 0.0, 1e5)
        _in_range("expiry_steps", self.expiry_steps, 1, 10_000)
        _in_range("min_cart", self.min_cart, 0.0)
        _in_range("margin_floor", self.margin_floor, -1.0, 1.0)
        _in_range("redemption_probability", self.redemption_probability, 0.0, 1.0)

    @property
    def channel(self) -> str:
        return self.kind.channel


@dataclass(frozen=True)
class LiveAgents:
    """The live-help desk: concurrent capacity and how long a session occupies an agent."""

    capacity_per_1000: float = 10.0  # agents available per 1,000 shoppers in the batch
    session_steps: int = 6  # decision steps one session occupies an agent

    def __post_init__(self) -> None:
        _in_range("capacity_per_1000", self.capacity_per_1000, 0.0, 1000.0)
        _in_range("session_steps", self.session_steps, 1, 1000)


@dataclass(frozen=True)
class Strategic:
    """Learning to wait: a population memory of how often hesitation was rewarded.

    After each finished journey the memory moves by ``memory_rate`` towards 1 if the
    shopper got a concession after leaving, showing exit intent or coming back, and
    bought with it, else towards 0. A new shopper waits for a deal with probability
    ``strength`` x memory; such a shopper's appeal drops by ``wait_penalty`` while no
    concession is on the table, and the shopper comes back more often.
    """

    strength: float = 0.0
    memory_rate: float = 0.01
    initial_memory: float = 0.0
    wait_penalty: float = 2.0  # logits
    return_boost: float = 0.3  # added return probability

    def __post_init__(self) -> None:
        _in_range("strength", self.strength, 0.0, 1.0)
        _in_range("memory_rate", self.memory_rate, 0.0, 1.0, low_open=True)
        _in_range("initial_memory", self.initial_memory, 0.0, 1.0)
        _in_range("wait_penalty", self.wait_penalty, 0.0, 10.0)
        _in_range("return_boost", self.return_boost, 0.0, 1.0)


@dataclass(frozen=True)
class Funnel:
    """How appeal turns into moves through the funnel (all in logits unless stated).

    ``appeal_scale`` is the surplus, as a fraction of the cart price, worth one logit.
    Each interruption lowers appeal by ``annoyance_weight``. A harassed shopper (one
    interrupted past their tolerance) leaves, and comes back with only
    ``harassment_return_factor`` of the usual probability.
    """

    appeal_scale: float = 0.15
    advance_bias: float = 0.0
    buy_bias: float = 0.0
    exit_commitment: float = 2.0
    annoyance_weight: float = 0.3
    harassment_return_factor: float = 0.3
    opt_out_probability: float = 0.2  # chance an e-mail to an annoyed shopper ends their consent

    def __post_init__(self) -> None:
        _in_range("appeal_scale", self.appeal_scale, 0.0, 10.0, low_open=True)
        _in_range("advance_bias", self.advance_bias, -10.0, 10.0)
        _in_range("buy_bias", self.buy_bias, -10.0, 10.0)
        _in_range("exit_commitment", self.exit_commitment, -10.0, 10.0)
        _in_range("annoyance_weight", self.annoyance_weight, 0.0, 10.0)
        _in_range("harassment_return_factor", self.harassment_return_factor, 0.0, 1.0)
        _in_range("opt_out_probability", self.opt_out_probability, 0.0, 1.0)


@dataclass(frozen=True)
class Calibration:
    """Parameters fitted to real session logs by ``concede calibrate``."""

    new_shopper_appeal: float = 0.0  # logit offset for first-time shoppers
    existing_customer_appeal: float = 0.0  # logit offset for shoppers who bought before
    existing_customer_share: float = 0.5  # share of journeys by existing customers

    def __post_init__(self) -> None:
        _in_range("new_shopper_appeal", self.new_shopper_appeal, -10.0, 10.0)
        _in_range("existing_customer_appeal", self.existing_customer_appeal, -10.0, 10.0)
        _in_range("existing_customer_share", self.existing_customer_share, 0.0, 1.0)


@dataclass(frozen=True)
class FutureValue:
    """Optional reward terms for what a journey does to the customer relationship (EUR)."""

    retained_customer: float = 0.0  # added on a purchase
    annoyed_customer: float = 0.0  # subtracted on a harassment exit

    def __post_init__(self) -> None:
        _in_range("retained_customer", self.retained_customer, 0.0, 1e5)
        _in_range("annoyed_customer", self.annoyed_customer, 0.0, 1e5)


@dataclass(frozen=True)
class Scenario:
    """A complete market: population, catalogue, concessions, caps and calibration."""

    name: str
    segments: tuple[Segment, ...]
    products: tuple[Product, ...]
    concessions: tuple[Concession, ...]
    description: str = ""
    horizon: int = 64  # decision steps per journey before truncation
    max_visits: int = 6  # visits per journey
    consent_rate: float = 0.7  # share of shoppers who accept behavioural tracking
    max_offers_per_shopper: int = 3  # contact-frequency cap over a journey
    campaign_budget_per_1000: float | None = None  # EUR of concessions per 1,000 shoppers
    live_agents: LiveAgents = field(default_factory=LiveAgents)
    strategic: Strategic = field(default_factory=Strategic)
    funnel: Funnel = field(default_factory=Funnel)
    calibration: Calibration = field(default_factory=Calibration)
    future_value: FutureValue = field(default_factory=FutureValue)

    def __post_init__(self) -> None:
        if not self.name:
            raise ScenarioError("name", "must be a non-empty string")
        for group in ("segments", "products"):
            if not getattr(self, group):
                raise ScenarioError(group, "must list at least one entry")
        for group in ("segments", "products", "concessions"):
            names = [item.name for item in getattr(self, group)]
            duplicated = sorted({n for n in names if names.count(n) > 1})
            if duplicated:
                raise ScenarioError(group, f"names must be unique, repeated: {duplicated}")
        _in_range("horizon", self.horizon, 2, 10_000)
        _in_range("max_visits", self.max_visits, 1, 100)
        _in_range("consent_rate", self.consent_rate, 0.0, 1.0)
        _in_range("max_offers_per_shopper", self.max_offers_per_shopper, 0, 100)
        if self.campaign_budget_per_1000 is not None:
            _in_range("campaign_budget_per_1000", self.campaign_budget_per_1000, 0.0)

    @property
    def action_names(self) -> tuple[str, ...]:
        """Action 0 is ``wait``; action k >= 1 offers ``concessions[k - 1]``."""
        return ("wait", *(c.name for c in self.concessions))

    @property
    def n_actions(self) -> int:
        return 1 + len(self.concessions)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready mapping that :meth:`from_dict` turns back into an equal scenario."""
        return _to_plain(self)

    def digest(self) -> str:
        """sha256 of the canonical JSON form: two scenarios with equal data share it."""
        text = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()

    def replace(self, **changes: Any) -> Scenario:
        """A copy with top-level fields replaced (validated again)."""
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Scenario:
        """Build and validate a scenario; errors name the field as ``scenario.<path>``."""
        try:
            return _build(cls, data, "")
        except ScenarioError as err:
            raise err.under("scenario") from None


_T = TypeVar("_T")


def _to_plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _to_plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, tuple | list):
        return [_to_plain(v) for v in value]
    return value


def _build(cls: type[_T], data: Any, path: str) -> _T:
    if not isinstance(data, Mapping):
        raise ScenarioError(path, f"must be a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ScenarioError(path, f"unknown field(s) {unknown}; allowed: {sorted(fields)}")
    kwargs: dict[str, Any] = {}
    for name, spec in fields.items():
        here = f"{path}.{name}" if path else name
        if name not in data:
            required = (
                spec.default is dataclasses.MISSING and spec.default_factory is dataclasses.MISSING
            )
            if required:
                raise ScenarioError(here, "is required")
            continue
        kwargs[name] = _coerce(hints[name], data[name], here)
    try:
        return cls(**kwargs)
    except ScenarioError as err:
        raise err.under(path) if path else err from None


def _coerce(hint: Any, value: Any, path: str) -> Any:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(hint) if a is not type(None)]
        if value is None:
            if type(None) in typing.get_args(hint):
                return None
            raise ScenarioError(path, "must not be null")
        return _coerce(options[0], value, path)
    if origin is tuple:
        (item,) = {a for a in typing.get_args(hint) if a is not Ellipsis}
        if not isinstance(value, list | tuple):
            raise ScenarioError(path, f"must be a list, got {type(value).__name__}")
        return tuple(_coerce(item, v, f"{path}[{i}]") for i, v in enumerate(value))
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, path)  # type: ignore[arg-type]
    if isinstance(hint, type) and issubclass(hint, Enum):
        allowed = [m.value for m in hint]
        if value not in allowed:
            raise ScenarioError(path, f"must be one of {allowed}, got {value!r}")
        return hint(value)
    if hint is bool:
        if not isinstance(value, bool):
            raise ScenarioError(path, f"must be true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ScenarioError(path, f"must be a whole number, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ScenarioError(path, f"must be a number, got {value!r}")
        if not math.isfinite(value):
            raise ScenarioError(path, f"must be finite, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ScenarioError(path, f"must be a string, got {value!r}")
        return value
    raise TypeError(f"no coercion for {hint!r} at {path}")  # a bug in this module, not input
