"""Targets from decision logs with randomised offers: take-up and uplift per concession kind.

A decision log (:mod:`agents.logs`, one row per decision) whose logger explored — drew
some offers at random among the eligible ones, with known probabilities — shows how
shoppers answer each kind of concession. Per journey (the log's ``journey`` key), with
the kind of each action read from the starting scenario's catalogue:

- ``log_conversion``: journeys that ended in a purchase;
- ``first_offer_conversion[<kind>]``: conversion of the journeys whose first concession
  was of that kind; ``first_offer_conversion[none]``: of those never offered one;
- ``take_up[<kind>]``: offers of that kind followed by a purchase while still valid
  (within the concession's ``expiry_steps``), and the same for carts below and above the
  middle of the scenario's price range (``take_up[<kind>, low cart]`` / ``high cart``).

The uplift of a kind, ``first_offer_conversion[<kind>] - first_offer_conversion[none]``,
is derived for the report. These are descriptive contrasts under the logging policy, not
causal effects: the fit compares them with the same contrasts computed on logs simulated
with the same logger and exploration (:mod:`.log_simulation`), so whatever the
logger's choices confound, they confound on both sides alike.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pyarrow as pa
from numpy.typing import NDArray

from agents.logs.schema import ACTION, JOURNEY, JOURNEY_END, PURCHASE, STEP
from envs.scenario import Scenario
from experiments.calibration.targets import TargetTable

CART_VALUE = "cart_value"  # the log's feature, in hundreds of EUR (the manifest's unit)
NONE = "none"


class LogTargetError(ValueError):
    """A decision log cannot give calibration targets (the message says why)."""


def cart_cut(scenario: Scenario) -> float:
    """The cart value (EUR) splitting low and high carts: the geometric midpoint between the
    product at the catalogue's median popularity and the next dearer one."""
    products = sorted(scenario.products, key=lambda p: p.price)
    weights = np.cumsum([p.weight for p in products])
    k = int(np.searchsorted(weights / weights[-1], 0.5))
    if k + 1 >= len(products):
        return products[-1].price
    return math.sqrt(products[k].price * products[k + 1].price)


def log_targets(table: pa.Table, scenario: Scenario) -> TargetTable:
    """The targets of a decision log, its actions named as in ``scenario``'s catalogue."""
    needed = [JOURNEY, STEP, ACTION, JOURNEY_END, CART_VALUE]
    missing = [c for c in needed if c not in table.column_names]
    if missing:
        raise LogTargetError(f"the decision log lacks column(s) {missing} the targets need")
    frame = table.select(needed).to_pandas()
    names = scenario.action_names
    unknown = sorted(set(frame[ACTION].unique()) - set(names))
    if unknown:
        raise LogTargetError(
            f"the log's actions {unknown} are not in scenario {scenario.name!r}'s catalogue "
            f"{list(names)}: start from the scenario the shop's catalogue is written in"
        )
    kinds = ("wait", *(c.kind.value for c in scenario.concessions))
    expiry = np.array([0, *(c.expiry_steps for c in scenario.concessions)])
    action = pd.Categorical(frame[ACTION], categories=list(names)).codes.astype(np.int64)
    codes, keys = pd.factorize(frame[JOURNEY], sort=False)
    n_j = len(keys)
    step = frame[STEP].to_numpy(np.int64)
    bought_row = (frame[JOURNEY_END] == PURCHASE).to_numpy()
    buy_step = np.full(n_j, np.iinfo(np.int64).max)
    np.minimum.at(buy_step, codes[bought_row], step[bought_row])
    bought = buy_step < np.iinfo(np.int64).max
    cart = np.zeros(n_j)
    cart[codes] = frame[CART_VALUE].to_numpy(np.float64) * 100.0
    high = cart >= cart_cut(scenario)

    offered = action > 0
    kind_of_row = np.array(kinds)[action]
    taken = (
        offered
        & bought[codes]
        & (buy_step[codes] >= step)
        & (buy_step[codes] - step < expiry[action])
    )
    # the first offer of each journey (rows are in step order within a journey)
    order = np.lexsort((step, codes))
    first_kind = np.full(n_j, NONE, dtype=object)
    rows = order[offered[order]]
    first_rows = rows[~pd.Series(codes[rows]).duplicated().to_numpy()]
    first_kind[codes[first_rows]] = kind_of_row[first_rows]

    cols: list[tuple[str, str, NDArray[np.float64], NDArray[np.float64]]] = []
    ones = np.ones(n_j)
    cols.append(
        ("log_conversion", "journeys of the log that bought", bought.astype(np.float64), ones)
    )
    used = list(dict.fromkeys(kinds[1:]))
    for k in (NONE, *used):
        is_k = first_kind == k
        label = "never offered a concession" if k == NONE else f"first offered {k}"
        cols.append(
            (
                f"first_offer_conversion[{k}]",
                f"conversion, {label}",
                (is_k & bought) * 1.0,
                is_k * 1.0,
            )
        )

    def per_journey(values: NDArray[np.bool_]) -> NDArray[np.float64]:
        return np.bincount(codes, weights=values.astype(np.float64), minlength=n_j).astype(
            np.float64
        )

    for k in used:
        of_k = offered & (kind_of_row == k)
        cols.append(
            (f"take_up[{k}]", f"{k} offers taken up", per_journey(of_k & taken), per_journey(of_k))
        )
        for band, in_band in (("low cart", ~high), ("high cart", high)):
            rows_in = of_k & in_band[codes]
            cols.append(
                (
                    f"take_up[{k}, {band}]",
                    f"{k} offers taken up, {band}",
                    per_journey(rows_in & taken),
                    per_journey(rows_in),
                )
            )
    return TargetTable(
        names=tuple(c[0] for c in cols),
        labels=tuple(c[1] for c in cols),
        fitted=np.ones(len(cols), dtype=bool),
        num=np.stack([c[2] for c in cols], axis=1),
        den=np.stack([c[3] for c in cols], axis=1),
        keys=np.asarray(keys, dtype=str),
    )


def uplifts(names: tuple[str, ...], values: NDArray[np.float64]) -> dict[str, float]:
    """Each kind's uplift: its first-offer conversion minus that of journeys never offered."""
    at = dict(zip(names, values, strict=True))
    base = at.get(f"first_offer_conversion[{NONE}]")
    if base is None:
        return {}
    prefix = "first_offer_conversion["
    return {
        n[len(prefix) : -1]: float(v - base)
        for n, v in at.items()
        if n.startswith(prefix) and n != f"{prefix}{NONE}]"
    }
