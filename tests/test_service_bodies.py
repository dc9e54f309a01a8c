"""The decision service's request bodies, parsed in process: the whole-batch fast path and
the event-by-event check agree on every batch, and a bad event is named by its row."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from agents.serving.service.bodies import BadRequest, parse_decide

NAMES = ("a", "b", "c")


def event(i: int, **extra: Any) -> dict[str, Any]:
    return {"a": float(i), "b": i, "c": 0.5, **extra}


def test_batches_with_and_without_journeys_give_rows_in_input_order() -> None:
    plain = parse_decide({"events": [event(i) for i in range(4)]}, NAMES, 100)
    assert plain.journeys == [None] * 4 and plain.steps == [0] * 4
    assert plain.rows == [(float(i), i, 0.5) for i in range(4)]
    x = plain.matrix()
    assert x is not None and x.dtype == np.float64 and x.shape == (4, 3)
    journeys = [event(i, journey=f"j{i}", step=i) for i in range(4)]
    request = parse_decide({"events": journeys}, NAMES, 100)
    assert request.journeys == ["j0", "j1", "j2", "j3"] and request.steps == [0, 1, 2, 3]
    assert request.rows == plain.rows
    assert request.event(2) == event(2)
    mixed = parse_decide({"events": [event(0), event(1, journey="k", step=7)]}, NAMES, 100)
    assert mixed.journeys == [None, "k"] and mixed.steps == [0, 7]
    assert mixed.rows == plain.rows[:2]


def test_a_boolean_or_string_value_leaves_no_matrix() -> None:
    assert parse_decide({"events": [event(0), event(1, c=True)]}, NAMES, 9).matrix() is None
    assert parse_decide({"events": [event(0, c="1")]}, NAMES, 9).matrix() is None


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        ({"a": 1.0, "b": 1, "x": 0.5}, "c"),  # as many keys, one of them unknown
        ({"a": 1.0, "b": 1}, "c"),
        ({**event(1), "journey": "j"}, "step"),
        ({**event(1), "step": 1}, "step"),
        ({**event(1), "journey": "j", "step": -1}, "step"),
        ({**event(1), "journey": "j", "step": True}, "step"),
        ({**event(1), "journey": "", "step": 1}, "journey"),
        ({**event(1), "journey": 3, "step": 1}, "journey"),
        ({**event(1), "journey": "j", "x": 1}, "x"),
    ],
)
def test_a_bad_event_in_a_batch_is_named_by_its_row(bad: dict[str, Any], field: str) -> None:
    for before in ([event(0)], [event(0, journey="j0", step=0)]):
        with pytest.raises(BadRequest) as caught:
            parse_decide({"events": [*before, bad, event(2)]}, NAMES, 100)
        assert (caught.value.status, caught.value.field, caught.value.row) == (400, field, 1)
