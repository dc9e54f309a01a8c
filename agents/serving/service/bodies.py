"""Request bodies of the decision service: parsed and checked field by field.

Every problem raises :class:`BadRequest` with the HTTP status (4xx), the field and the
row (the event's index in the request) it concerns.

``POST /decide`` takes exactly one top-level key: ``event`` (one object) or ``events``
(a list of objects). An event has exactly the policy's input names
(``PolicyRuntime.input_names``: the manifest's features and the merchant-side context),
and optionally ``journey`` (the shop's pseudonymous journey key, a non-empty string of at
most :data:`MAX_KEY` characters) with ``step`` (the decision step in that journey, a
whole number >= 0, required with ``journey``). Without a journey, the event is a journey
of its own (its key is the event id, its step 0): the single-decision case.

``POST /reward`` takes ``reward`` (one object) or ``rewards`` (a list): ``event_id`` (as
``/decide`` answered it), and the margin booked for that decision: ``reward`` (EUR) or
``terms`` (every ledger term, ``envs.ledger.LEDGER_TERMS``, EUR, costs positive; the
reward is then their signed sum) or both (they must agree), and ``journey_end``
(``purchase``, ``abandoned``, ``horizon``) when the journey ended at that decision.
"""

from __future__ import annotations

import itertools
import math
import operator
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from agents.logs.schema import END_EVENTS
from envs.ledger import LEDGER_TERMS, profit

MAX_KEY = 128
META = ("journey", "step")
REWARD_KEYS = frozenset({"event_id", "reward", "terms", "journey_end"})
_NUMBER = (int, float)
_NUMBERS = frozenset(_NUMBER)


class BadRequest(Exception):
    """A request the service refuses: ``status`` (4xx), ``field`` and ``row`` (or None)."""

    def __init__(
        self, status: int, message: str, field: str | None = None, row: int | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.field = field
        self.row = row
        self.message = message

    def to_dict(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "field": self.field, "row": self.row}}


def one_key(body: Any, one: str, many: str) -> tuple[list[Any], bool]:
    """The items of a body ``{one: item}`` or ``{many: [items]}``, and whether it was
    ``many``."""
    if not isinstance(body, dict):
        raise BadRequest(
            400, f"the body must be a JSON object with one key, {one!r} or {many!r}", None
        )
    if len(body) != 1 or not ({one, many} & body.keys()):
        keys = sorted(map(str, body))
        raise BadRequest(
            400,
            f"the body must have exactly one key, {one!r} or {many!r}; got {keys}",
            next((k for k in keys if k not in (one, many)), keys[0] if keys else None),
        )
    if one in body:
        return [body[one]], False
    items = body[many]
    if not isinstance(items, list):
        raise BadRequest(400, f"{many} must be a list of objects", many)
    return items, True


@dataclass
class DecideRequest:
    """The events of one ``/decide`` request: ``events`` as sent (with ``journey`` and
    ``step`` if given), ``rows`` their values in the policy's input order (one tuple per
    event), their journeys (None: the event is a journey of its own) and steps."""

    events: list[dict[str, Any]]
    journeys: list[str | None]
    steps: list[int]
    n: int
    rows: list[tuple[Any, ...]]

    def event(self, i: int) -> dict[str, Any]:
        """Event ``i`` without ``journey`` and ``step``."""
        event = self.events[i]
        if self.journeys[i] is None:
            return event
        return {k: v for k, v in event.items() if k not in META}

    def matrix(self) -> NDArray[np.float64] | None:
        """The rows as one float64 matrix ``(n, n_inputs)`` when every value is a number
        (int or float, not a boolean), else None."""
        values = itertools.chain.from_iterable(self.rows)
        if not _NUMBERS.issuperset(map(type, values)):
            return None
        width = len(self.rows[0])
        flat = itertools.chain.from_iterable(self.rows)
        try:
            return np.fromiter(flat, np.float64, self.n * width).reshape(self.n, width)
        except OverflowError:  # an integer beyond float64: the runtime names it
            return None

    def columns(self, names: Sequence[str], x: NDArray[np.float64] | None = None) -> dict[str, Any]:
        """The events as columns by ``names`` (the order of the rows): views of
        :meth:`matrix` (or of ``x``, that matrix already made) when every value is a
        number (the fast path), else the lists as sent (the runtime then names the bad
        value and its row)."""
        if x is None:
            x = self.matrix()
        if x is not None:
            return {name: x[:, j] for j, name in enumerate(names)}
        return {name: [row[j] for row in self.rows] for j, name in enumerate(names)}


def parse_decide(body: Any, names: Sequence[str], max_events: int) -> DecideRequest:
    """Check the structure of a ``/decide`` body; the runtime checks the values."""
    events, _ = one_key(body, "event", "events")
    n = len(events)
    if n == 0:
        raise BadRequest(400, "events is empty: send at least one event", "events")
    if n > max_events:
        raise BadRequest(
            413, f"{n} events in one request; at most {max_events}: split the batch", "events"
        )
    m = len(names)
    get = operator.itemgetter(*names) if m > 1 else lambda event: (event[names[0]],)
    fast = _uniform_batch(events, get, m)
    if fast is not None:
        return fast
    keys = frozenset(names)
    with_meta = keys | frozenset(META)
    journeys: list[str | None] = [None] * n
    steps = [0] * n
    rows: list[tuple[Any, ...]] = []
    append = rows.append
    for i, event in enumerate(events):
        if type(event) is not dict:
            raise BadRequest(
                400, f"an event must be a JSON object, got {_kind(event)}", "events", i
            )
        # every name present and no other key: exactly the policy's fields (plus journey
        # and step, checked below, when two more keys are those)
        size = len(event)
        if size == m or (size == m + 2 and "journey" in event and "step" in event):
            try:
                append(get(event))
            except KeyError:
                pass
            else:
                if size != m:
                    journeys[i], steps[i] = _journey(event, i)
                continue
        given = event.keys()
        unknown = sorted(str(k) for k in given if k not in with_meta)
        missing = [k for k in names if k not in given]
        if unknown or missing:
            parts = []
            if missing:
                parts.append(f"missing field(s) {missing}")
            if unknown:
                parts.append(f"unknown field(s) {unknown}")
            raise BadRequest(
                400,
                "; ".join(parts) + ": an event has exactly the policy's features and context "
                "fields, and optionally journey with step",
                (missing or unknown)[0],
                i,
            )
        journeys[i], steps[i] = _journey(event, i)
        append(get(event))
    return DecideRequest(events, journeys, steps, n, rows)


def _uniform_batch(events: list[Any], get: Any, m: int) -> DecideRequest | None:
    """The request of a batch whose events all have exactly the policy's ``m`` fields, or
    all exactly those and a valid ``journey`` with its ``step``, checked in whole-list
    passes; None otherwise (the event-by-event check then names the problem)."""
    n = len(events)
    if set(map(type, events)) != {dict}:
        return None
    try:
        rows = list(map(get, events))  # every event has every name...
        size = sum(map(len, events))
        if size == n * m:  # ...and, each having m keys at least, no other
            return DecideRequest(events, [None] * n, [0] * n, n, rows)
        if size != n * (m + 2):
            return None
        journeys = list(map(operator.itemgetter("journey"), events))
        steps = list(map(operator.itemgetter("step"), events))
    except KeyError:
        return None
    if set(map(type, journeys)) != {str} or set(map(type, steps)) != {int}:
        return None
    lengths = list(map(len, journeys))
    if min(lengths) < 1 or max(lengths) > MAX_KEY or min(steps) < 0 or max(steps) >= 2**63:
        return None
    return DecideRequest(events, list(journeys), steps, n, rows)


def _journey(event: dict[str, Any], row: int) -> tuple[str | None, int]:
    journey = event.get("journey")
    has_step = "step" in event
    if "journey" not in event:
        if has_step:
            raise BadRequest(400, "step needs journey (the journey it is a step of)", "step", row)
        return None, 0
    if type(journey) is not str or not 0 < len(journey) <= MAX_KEY:
        raise BadRequest(
            400,
            f"journey must be a non-empty string of at most {MAX_KEY} characters, got "
            f"{_kind(journey)}",
            "journey",
            row,
        )
    if not has_step:
        raise BadRequest(400, "an event with a journey needs its step", "step", row)
    step = event["step"]
    if type(step) is not int or step < 0 or step >= 2**63:
        raise BadRequest(400, f"step must be a whole number >= 0, got {_kind(step)}", "step", row)
    return journey, step


@dataclass
class RewardRequest:
    """The rewards of one ``/reward`` request, as columns."""

    event_ids: list[str]
    reward: list[float]
    terms: dict[str, list[float | None]]
    journey_end: list[str | None]
    n: int


def parse_reward(body: Any, max_events: int) -> RewardRequest:
    items, _ = one_key(body, "reward", "rewards")
    n = len(items)
    if n == 0:
        raise BadRequest(400, "rewards is empty: send at least one reward", "rewards")
    if n > max_events:
        raise BadRequest(413, f"{n} rewards in one request; at most {max_events}", "rewards")
    ids: list[str] = []
    rewards: list[float] = []
    terms: dict[str, list[float | None]] = {t: [] for t in LEDGER_TERMS}
    ends: list[str | None] = []
    for i, item in enumerate(items):
        if type(item) is not dict:
            raise BadRequest(400, f"a reward must be a JSON object, got {_kind(item)}", None, i)
        unknown = sorted(str(k) for k in item if k not in REWARD_KEYS)
        if unknown:
            raise BadRequest(
                400,
                f"unknown field(s) {unknown}; a reward has {sorted(REWARD_KEYS)}",
                unknown[0],
                i,
            )
        event_id = item.get("event_id")
        if type(event_id) is not str or not 0 < len(event_id) <= MAX_KEY:
            raise BadRequest(
                400,
                f"event_id must be the event id /decide answered, got {_kind(event_id)}",
                "event_id",
                i,
            )
        given = item.get("terms")
        if given is None and "terms" in item:
            raise BadRequest(400, "terms must be an object, got null", "terms", i)
        if given is None and "reward" not in item:
            raise BadRequest(400, "give the margin booked: reward, or terms", "reward", i)
        value = item.get("reward")
        if "reward" in item:
            value = _money(value, "reward", i)
        if given is not None:
            row_terms = _terms(given, i)
            total = float(profit(np.asarray(row_terms, dtype=np.float64)[:, None])[0])
            if value is not None and abs(total - value) > 1e-6 * max(1.0, abs(total)):
                raise BadRequest(
                    400,
                    f"reward {value} is not the signed sum of the terms ({total})",
                    "reward",
                    i,
                )
            value = total
            for t, v in zip(LEDGER_TERMS, row_terms, strict=True):
                terms[t].append(v)
        else:
            for t in LEDGER_TERMS:
                terms[t].append(None)
        end = item.get("journey_end")
        if end is not None and end not in END_EVENTS:
            raise BadRequest(
                400,
                f"journey_end must be one of {list(END_EVENTS)} or null, got {_kind(end)}",
                "journey_end",
                i,
            )
        assert value is not None
        ids.append(event_id)
        rewards.append(value)
        ends.append(end)
    return RewardRequest(ids, rewards, terms, ends, n)


def _terms(given: Any, row: int) -> list[float]:
    if type(given) is not dict:
        raise BadRequest(400, f"terms must be an object, got {_kind(given)}", "terms", row)
    unknown = sorted(str(k) for k in given if k not in LEDGER_TERMS)
    missing = [t for t in LEDGER_TERMS if t not in given]
    if unknown or missing:
        raise BadRequest(
            400,
            f"terms must have exactly the ledger terms {list(LEDGER_TERMS)}"
            + (f"; missing {missing}" if missing else "")
            + (f"; unknown {unknown}" if unknown else ""),
            f"terms.{(missing or unknown)[0]}",
            row,
        )
    return [_money(given[t], f"terms.{t}", row) for t in LEDGER_TERMS]


def _money(value: Any, field: str, row: int) -> float:
    if type(value) not in _NUMBER:
        raise BadRequest(400, f"must be a number of EUR, got {_kind(value)}", field, row)
    try:
        out = float(value)
    except OverflowError:
        out = math.inf
    if not math.isfinite(out) or abs(out) > 1e12:
        raise BadRequest(
            400, f"must be a finite number of EUR (|x| <= 1e12), got {value!r:.40}", field, row
        )
    return out


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, str):
        return f"the string {value[:40]!r}"
    if isinstance(value, list | dict):
        return "a list" if isinstance(value, list) else "an object"
    return repr(value)[:40]
