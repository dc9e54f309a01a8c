"""The parameters a fit may move: names onto :class:`envs.scenario.Scenario` fields.

A parameter name says which field of the scenario it sets, by the scenario's own paths:

- ``consent_rate`` (a top-level number);
- ``calibration.new_shopper_appeal``, ``funnel.buy_bias``, ``strategic.strength``...
  (a field of a block);
- ``segments[bargain_hunter].price_sensitivity`` (one segment's field) and
  ``products[home].weight`` (one product's);
- ``segments[*].price_sensitivity``: a **factor** on that field of every segment (1 at
  the start), which keeps the segments' differences and moves them together; from
  1 / :data:`FACTOR_RANGE` up to the factor that takes the smallest segment's value to the
  field's upper bound (at most :data:`FACTOR_RANGE`), so that a shop whose shoppers care
  ten times more about a gift than the start's can be reached;
- ``segments[*].help_value``: a **shift** added to that field of every segment (0 at the
  start), for the fields in logits that may be 0 or change sign (:data:`SHIFTED`).

A preset names a set of parameters (:data:`PRESETS`):

- ``appeal``: the appeal of new shoppers and of existing customers, and existing
  customers' share; pinned by conversion per visit by visitor type;
- ``sensitivities``: a factor on each concession sensitivity; pinned by take-up and
  first-offer conversion per concession kind (offer log);
- ``shares``: each segment's share but the first; pinned by the same contrasts by cart
  band, stage and exit intent, which the segments' mix shapes;
- ``behaviour``: factors on valuation spread, abandonment hazard and tolerance, a shift
  of help value; pinned by conversion per cart band and stage, exit intent and cart
  abandonment, and by harassment exits and the live agent's take-up (offer log);
- ``returns``: factors on return probability and its decay per visit; pinned by the
  return rate of journeys whose first visit did not buy (visits linked);
- ``levels``: each segment's hesitation but the first's, in logits: where each segment's
  appeal sits, relative to the first's, which the ``appeal`` offsets carry; pinned by
  conversion per cart band, stage and exit intent, and take-up per concession kind, which
  weigh the segments by their sensitivities;
- ``wide``: all six, what differs between shops (:data:`WIDE`);
- ``funnel``: advance and buy biases, hazard and return factors; ``cart_mix``: each
  product's weight but the first (the share of visits per cart band).

A segment's valuation and hesitation enter the shopper's decision through the same logit
as the appeal offsets (a shop whose shoppers value its products more shows a higher
appeal): the *common* level is the ``appeal`` preset's, and fitting every segment's level
as well would leave a flat ridge, so ``levels`` moves each segment's hesitation but the
first's (the first is the reference, as for the shares), and no preset moves valuation
levels (the same logit again). The shoppers' heterogeneity within a segment is
``behaviour``'s valuation-spread factor (the valuation's spread is the larger part of
it). Each parameter has bounds and a scale (the step of a plausible
change), from :data:`FIELD_BOUNDS`. Setting a value rebuilds the scenario with
``dataclasses.replace``, so the scenario's own validation runs on every trial. An
unknown name raises :class:`ParameterError` listing what exists.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from envs.scenario import Scenario

Array = NDArray[np.float64]

ALL = "*"
FACTOR_RANGE = 10.0  # a factor moves every segment's value at most this many times up or down
FACTOR_SCALE = 0.3
SHIFT_BOUNDS = (-3.0, 3.0, 0.5)
#: segment fields in logits that a ``segments[*]`` parameter shifts instead of scaling
SHIFTED = ("hesitation", "help_value")

#: (low, high, scale) of a field's fitted value
FIELD_BOUNDS: dict[str, tuple[float, float, float]] = {
    "consent_rate": (0.0, 1.0, 0.1),
    "share": (0.01, 5.0, 0.1),
    "valuation": (0.3, 3.0, 0.1),
    "valuation_spread": (0.0, 1.0, 0.05),
    "hesitation": (-5.0, 5.0, 0.5),
    "hesitation_spread": (0.0, 3.0, 0.2),
    "abandon_hazard": (0.005, 0.5, 0.03),
    "return_probability": (0.0, 0.99, 0.1),
    "return_decay": (0.0, 1.0, 0.1),
    "price_sensitivity": (0.0, 5.0, 0.3),
    "shipping_sensitivity": (0.0, 5.0, 0.3),
    "speed_sensitivity": (0.0, 1.0, 0.03),
    "gift_sensitivity": (0.0, 5.0, 0.3),
    "voucher_sensitivity": (0.0, 5.0, 0.3),
    "help_value": (-5.0, 5.0, 0.5),
    "tolerance": (0.2, 20.0, 1.0),
    "retarget_lift": (0.0, 1.0, 0.05),
    "weight": (0.01, 100.0, 0.5),
    "new_shopper_appeal": (-6.0, 6.0, 1.0),
    "existing_customer_appeal": (-6.0, 6.0, 1.0),
    "existing_customer_share": (0.0, 0.99, 0.2),
    "appeal_scale": (0.02, 1.0, 0.05),
    "advance_bias": (-6.0, 6.0, 0.5),
    "buy_bias": (-6.0, 6.0, 0.5),
    "exit_commitment": (-6.0, 6.0, 0.5),
    "annoyance_weight": (0.0, 3.0, 0.1),
    "harassment_return_factor": (0.0, 1.0, 0.1),
    "strength": (0.0, 1.0, 0.1),
    "wait_penalty": (0.0, 10.0, 0.5),
    "return_boost": (0.0, 1.0, 0.1),
}
BLOCKS = ("calibration", "funnel", "strategic")
SENSITIVITIES = (
    "price_sensitivity",
    "shipping_sensitivity",
    "speed_sensitivity",
    "gift_sensitivity",
    "voucher_sensitivity",
)
_ITEM = re.compile(r"^(segments|products)\[([^\]]+)\]\.(\w+)$")


class ParameterError(ValueError):
    """A parameter or preset name that does not exist for the scenario."""


@dataclass(frozen=True)
class Parameter:
    """One fitted number: its name, bounds, scale, and how it reads and sets a scenario."""

    name: str
    low: float
    high: float
    scale: float
    factor: bool
    get: Callable[[Scenario], float] = dataclasses.field(compare=False, repr=False)
    put: Callable[[Scenario, float], Scenario] = dataclasses.field(compare=False, repr=False)
    shift: bool = False

    @property
    def relative(self) -> bool:
        """A factor or a shift: relative to the starting scenario's own values."""
        return self.factor or self.shift

    @property
    def segment_share(self) -> bool:
        """One segment's share: a weight of the mixture of segments (normalised over them)."""
        name = self.name
        return not self.factor and name.startswith("segments[") and name.endswith("].share")

    def start(self, scenario: Scenario) -> float:
        """The value in ``scenario`` (1 for a factor, 0 for a shift: the start is the
        reference)."""
        if self.relative:
            return 1.0 if self.factor else 0.0
        return self.get(scenario)

    def set(self, scenario: Scenario, value: float) -> Scenario:
        """``scenario`` with this parameter at ``value`` (a factor multiplies, a shift adds to
        ``scenario``'s own values, so pass the starting scenario)."""
        return self.put(scenario, float(min(max(value, self.low), self.high)))


def _bounds(field: str, where: str) -> tuple[float, float, float]:
    if field not in FIELD_BOUNDS:
        raise ParameterError(
            f"{where}: {field!r} is not a field a fit can move; fields: {sorted(FIELD_BOUNDS)}"
        )
    return FIELD_BOUNDS[field]


def _factor_top(scenario: Scenario, field: str, high: float) -> float:
    """The largest factor on ``field``: the one that takes the smallest positive segment
    value to the field's upper bound (so every segment can reach the whole range a shop
    may show), at most :data:`FACTOR_RANGE`."""
    positive = [v for v in (float(getattr(g, field)) for g in scenario.segments) if v > 0.0]
    return min(FACTOR_RANGE, high / min(positive)) if positive else FACTOR_RANGE


def parameter(name: str, scenario: Scenario) -> Parameter:
    """The parameter called ``name`` for ``scenario`` (see the module docstring)."""
    item = _ITEM.match(name)
    if item:
        group, key, field = item.groups()
        items = getattr(scenario, group)
        names = [i.name for i in items]
        if field not in {f.name for f in dataclasses.fields(items[0])} or field == "name":
            raise ParameterError(f"{name}: {group} have no field {field!r}")
        low, high, scale = _bounds(field, name)
        if key == ALL:
            if group != "segments":
                raise ParameterError(f"{name}: a factor over all items exists for segments only")

            shifted = field in SHIFTED

            def put_all(s: Scenario, v: float, field: str = field) -> Scenario:
                def moved(old: float) -> float:
                    return min(high, max(low, old + v)) if shifted else min(high, old * v)

                values: list[dict[str, Any]] = [
                    {field: moved(getattr(i, field))} for i in s.segments
                ]
                changed = tuple(
                    dataclasses.replace(i, **v) for i, v in zip(s.segments, values, strict=True)
                )
                return dataclasses.replace(s, segments=changed)

            if shifted:
                return Parameter(name, *SHIFT_BOUNDS, False, lambda s: 0.0, put_all, shift=True)
            top = _factor_top(scenario, field, high)
            return Parameter(
                name, 1.0 / FACTOR_RANGE, top, FACTOR_SCALE, True, lambda s: 1.0, put_all
            )
        if key not in names:
            raise ParameterError(f"{name}: no {group[:-1]} {key!r}; {group}: {names} (or '*')")
        index = names.index(key)

        def get_item(s: Scenario) -> float:
            return float(getattr(getattr(s, group)[index], field))

        def put_item(s: Scenario, v: float) -> Scenario:
            items = list(getattr(s, group))
            items[index] = dataclasses.replace(items[index], **{field: v})
            changes: dict[str, Any] = {group: tuple(items)}
            return dataclasses.replace(s, **changes)

        return Parameter(name, low, high, scale, False, get_item, put_item)
    block, dot, field = name.partition(".")
    if dot:
        if block not in BLOCKS:
            raise ParameterError(
                f"{name}: unknown block {block!r}; parameters are {list(BLOCKS)} fields, "
                "segments[<name>|*].<field>, products[<name>].<field>, consent_rate, or a "
                f"preset {sorted(PRESETS)}"
            )
        if field not in {f.name for f in dataclasses.fields(getattr(scenario, block))}:
            raise ParameterError(f"{name}: {block} has no field {field!r}")
        low, high, scale = _bounds(field, name)

        def get_block(s: Scenario) -> float:
            return float(getattr(getattr(s, block), field))

        def put_block(s: Scenario, v: float) -> Scenario:
            return dataclasses.replace(
                s, **{block: dataclasses.replace(getattr(s, block), **{field: v})}
            )

        return Parameter(name, low, high, scale, False, get_block, put_block)
    if name == "consent_rate":
        low, high, scale = FIELD_BOUNDS[name]
        return Parameter(
            name,
            low,
            high,
            scale,
            False,
            lambda s: s.consent_rate,
            lambda s, v: dataclasses.replace(s, consent_rate=v),
        )
    raise ParameterError(
        f"unknown parameter or preset {name!r}; presets: {sorted(PRESETS)}; parameters look "
        "like calibration.new_shopper_appeal, segments[loyal].share, "
        "segments[*].price_sensitivity, products[home].weight, consent_rate"
    )


PRESETS: dict[str, Callable[[Scenario], list[str]]] = {
    "appeal": lambda s: [
        "calibration.new_shopper_appeal",
        "calibration.existing_customer_appeal",
        "calibration.existing_customer_share",
    ],
    "sensitivities": lambda s: [f"segments[*].{f}" for f in SENSITIVITIES],
    # shares are normalised: the first segment's is the reference, the others move
    "shares": lambda s: [f"segments[{g.name}].share" for g in s.segments[1:]],
    "funnel": lambda s: [
        "funnel.advance_bias",
        "funnel.buy_bias",
        "segments[*].abandon_hazard",
        "segments[*].return_probability",
    ],
    "cart_mix": lambda s: [f"products[{p.name}].weight" for p in s.products[1:]],
    "behaviour": lambda s: [
        "segments[*].valuation_spread",
        "segments[*].abandon_hazard",
        "segments[*].tolerance",
        "segments[*].help_value",
    ],
    "returns": lambda s: ["segments[*].return_probability", "segments[*].return_decay"],
    # the first segment's level is the appeal offsets': the others move relative to it
    "levels": lambda s: [f"segments[{g.name}].hesitation" for g in s.segments[1:]],
}
#: the presets ``wide`` joins: what differs between shops (see the module docstring)
WIDE: tuple[str, ...] = ("appeal", "levels", "behaviour", "returns", "sensitivities", "shares")
PRESETS["wide"] = lambda s: [name for preset in WIDE for name in PRESETS[preset](s)]


def resolve(spec: str | Sequence[str], scenario: Scenario) -> list[Parameter]:
    """The parameters of a comma-separated list of names and presets, in order, each once."""
    names = [n.strip() for n in (spec.split(",") if isinstance(spec, str) else spec)]
    names = [n for n in names if n]
    if not names:
        raise ParameterError(f"no parameter to fit; presets: {sorted(PRESETS)}")
    out: list[Parameter] = []
    for name in names:
        expanded = PRESETS[name](scenario) if name in PRESETS else [name]
        for one in expanded:
            if all(p.name != one for p in out):
                out.append(parameter(one, scenario))
    return out


def apply(start: Scenario, params: Sequence[Parameter], values: Sequence[float] | Any) -> Scenario:
    """``start`` with every parameter at its value (factors on ``start``'s own values)."""
    scenario = start
    for p, v in zip(params, values, strict=True):
        scenario = p.set(scenario, v)
    return scenario


def box(params: Sequence[Parameter]) -> tuple[Array, Array, Array]:
    """The parameters' lower bounds, upper bounds and scales, as arrays in their order."""
    low = np.array([p.low for p in params], dtype=np.float64)
    high = np.array([p.high for p in params], dtype=np.float64)
    scale = np.array([p.scale for p in params], dtype=np.float64)
    return low, high, scale
