"""A decision log as numpy arrays grouped by journey: what the estimators work on.

:class:`Journeys` holds the rows of a validated log (:class:`agents.logs.DecisionLog`)
sorted by journey (rows of a journey keep their order): per row the journey index, its
position in the journey (0, 1, ...), the features (NaN where null), the eligibility mask,
the actions the campaign budget alone withheld (if logged), the action taken, the logged
propensity (NaN when the log has none), the logger's probabilities of every action (if
logged), and the per-row **signals** the estimators average per journey:

- ``profit``: the ``reward`` column, EUR;
- ``conversion``: 1 on the row whose ``journey_end`` is ``purchase``, else 0;
- ``spend``: concession spend, EUR: ``concession_cost + voucher_liability + agent_cost``
  terms (only when the log has those terms; as the ledger books them, so a discount is
  capped at the order's list total).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numpy.typing import NDArray

from agents.logs import DecisionLog
from agents.logs.schema import (
    ACTION,
    JOURNEY_END,
    PROPENSITY,
    PURCHASE,
    REWARD,
    term_column,
)
from agents.logs.validate import journey_codes

PROFIT = "profit"
CONVERSION = "conversion"
SPEND = "spend"
SIGNALS: tuple[str, ...] = (PROFIT, CONVERSION, SPEND)
SPEND_TERMS = ("concession_cost", "voucher_liability", "agent_cost")

FloatArray = NDArray[np.float64]


class MissingFeaturesError(ValueError):
    """A policy needs features the log does not have."""


@dataclass(frozen=True)
class Journeys:
    """The rows of a log sorted by journey; see the module docstring.

    Per row ``(n_rows,)``: ``journey`` (0..n_journeys-1), ``position``, ``action``,
    ``propensity``; ``features`` ``(n_rows, n_features)`` by ``feature_names``; ``mask``,
    ``withheld`` (or None: not logged) and ``logged_probs`` (or None) ``(n_rows,
    n_actions)``; ``signals`` by name. Per journey ``(n_journeys,)``: ``start`` (first row)
    and ``length``. ``keys`` are the journey keys in journey order; ``source_rows`` the
    log's row of each row. ``budget_per_1000``: the campaign budget's allowance, EUR per
    1,000 journeys, if the log says.
    """

    keys: tuple[str, ...]
    feature_names: tuple[str, ...]
    action_names: tuple[str, ...]
    journey: NDArray[np.int64]
    position: NDArray[np.int64]
    start: NDArray[np.int64]
    length: NDArray[np.int64]
    features: FloatArray
    mask: NDArray[np.bool_]
    action: NDArray[np.int64]
    propensity: FloatArray
    logged_probs: FloatArray | None
    signals: dict[str, FloatArray]
    source_rows: NDArray[np.int64]
    withheld: NDArray[np.bool_] | None = None
    budget_per_1000: float | None = None

    @property
    def n_rows(self) -> int:
        return len(self.journey)

    @property
    def n_journeys(self) -> int:
        return len(self.start)

    @property
    def n_actions(self) -> int:
        return len(self.action_names)

    @property
    def max_length(self) -> int:
        return int(self.length.max())

    @property
    def single_decision(self) -> bool:
        return self.max_length == 1

    @property
    def propensity_logged(self) -> bool:
        return not np.isnan(self.propensity).any()

    @property
    def last_row(self) -> NDArray[np.int64]:
        """Each journey's last row."""
        return self.start + self.length - 1

    def next_row(self) -> NDArray[np.int64]:
        """Per row, the row of the journey's next decision, or -1 on its last row."""
        nxt = np.arange(1, self.n_rows + 1)
        nxt[self.last_row] = -1
        return nxt

    def observations(self, names: tuple[str, ...] | list[str]) -> NDArray[np.float32]:
        """The features ``names`` as a policy sees them ``(n_rows, len(names))``, float32:
        a null (a consent-gated feature of a shopper without consent) is 0, as the
        simulator shows it.

        Raises:
            MissingFeaturesError: a name the log has no column for.
        """
        index = {n: i for i, n in enumerate(self.feature_names)}
        missing = [n for n in names if n not in index]
        if missing:
            raise MissingFeaturesError(
                f"the log has no feature column(s) {missing} that the policy reads; log them "
                "(null where not observed) or evaluate a policy that does not need them"
            )
        cols = [index[n] for n in names]
        return np.nan_to_num(self.features[:, cols], nan=0.0).astype(np.float32)

    def per_journey(self, values: FloatArray) -> FloatArray:
        """Row values summed per journey ``(n_journeys,)``."""
        return np.bincount(self.journey, weights=values, minlength=self.n_journeys).astype(
            np.float64
        )

    def journey_rows(self, journeys: NDArray[np.bool_]) -> NDArray[np.bool_]:
        """The rows of the journeys flagged in ``journeys`` ``(n_journeys,)``."""
        return journeys[self.journey]


def from_log(log: DecisionLog) -> Journeys:
    """The journeys of a validated log (see :class:`Journeys`)."""
    table, spec = log.table, log.spec
    codes, n_journeys = journey_codes(table)
    order = np.argsort(codes, kind="stable")
    journey = codes[order]
    length = np.bincount(journey, minlength=n_journeys).astype(np.int64)
    start = np.concatenate([[0], np.cumsum(length)[:-1]]).astype(np.int64)
    position = np.arange(len(journey)) - start[journey]
    encoded = pc.dictionary_encode(table.column("journey")).combine_chunks()
    keys = tuple(str(k) for k in encoded.dictionary.to_pylist())

    def floats(name: str) -> FloatArray:
        return np.asarray(table.column(name).to_numpy(), dtype=np.float64)[order]

    if spec.features:
        features = np.column_stack([floats(f) for f in spec.features])
    else:
        features = np.zeros((len(order), 0))

    def flags(columns: tuple[str, ...]) -> NDArray[np.bool_]:
        return np.column_stack(
            [np.asarray(table.column(c).to_numpy(zero_copy_only=False), bool) for c in columns]
        )[order]

    mask = flags(spec.eligible_columns)
    action = np.asarray(
        pc.index_in(table.column(ACTION), value_set=pa.array(spec.actions, pa.string())).to_numpy(
            zero_copy_only=False
        ),
        dtype=np.int64,
    )[order]
    probs = (
        np.column_stack([floats(c) for c in spec.probability_columns])
        if spec.probabilities
        else None
    )
    ends = np.asarray(
        pc.fill_null(pc.equal(table.column(JOURNEY_END), PURCHASE), False).to_numpy(
            zero_copy_only=False
        ),
        dtype=np.float64,
    )[order]
    signals = {PROFIT: floats(REWARD), CONVERSION: ends}
    if all(t in spec.terms for t in SPEND_TERMS):
        signals[SPEND] = sum((floats(term_column(t)) for t in SPEND_TERMS), np.zeros(len(order)))
    return Journeys(
        keys=keys,
        feature_names=spec.features,
        action_names=spec.actions,
        journey=journey.astype(np.int64),
        position=position.astype(np.int64),
        start=start,
        length=length,
        features=features,
        mask=mask,
        action=action,
        propensity=floats(PROPENSITY),
        logged_probs=probs,
        signals=signals,
        source_rows=order.astype(np.int64),
        withheld=flags(spec.withheld_columns) if spec.withheld else None,
        budget_per_1000=spec.budget_per_1000,
    )
