"""A shop's session table: what its analytics export has, read, checked, and turned into targets.

One row per visit (session):

| column | type | required | meaning |
| --- | --- | --- | --- |
| ``journey`` | string | yes | pseudonymous journey key: the visits of one cart's journey share it |
| ``visit`` | integer >= 1 | yes | the visit's rank in its journey |
| ``purchase`` | bool (true/false, 1/0) | yes | the visit ended in an order |
| ``visitor_type`` | ``new`` / ``returning`` | no | had the visitor been to the shop before |
| ``stage`` | 0-3 or ``browse``/``cart``/``checkout``/``payment`` | no | furthest funnel stage |
| ``cart_value`` | number, EUR | no | the cart's list price |
| ``exit_intent`` | bool | no | the visitor showed exit intent |
| ``date`` | ISO date | no | the visit's day (conversion by month is reported) |

Targets (every one a share, see :mod:`experiments.calibration.targets`), each where the
table has what it needs: conversion per visit overall and by visitor type; the share of
visits reaching each funnel stage (funnel drop-off) and showing exit intent; cart
abandonment (journeys that reached the cart and did not buy); with visits linked into
journeys (some journey has more than one visit), the return rate of journeys whose
first visit did not buy; the share of visits in each cart-value band and conversion per
band (bands cut between the scenario's product prices); conversion by month (reported,
not fitted: the simulator has no season).

:func:`simulate_sessions` writes the same table from the simulator, so data and
simulation go through the same counting code. :func:`online_shoppers_sessions` turns the
public Online Shoppers data (one row per session, visits not linked) into this format.
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from agents.policy import Policy
from envs.core import EXIT_INTENT, PURCHASE, ShopperCore
from envs.scenario import Scenario
from envs.shoppers import T
from experiments.calibration.targets import TargetTable
from experiments.evaluation.formatting import amount, eur

REQUIRED = ("journey", "visit", "purchase")
OPTIONAL = ("visitor_type", "stage", "cart_value", "exit_intent", "date")
STAGES = ("browse", "cart", "checkout", "payment")
VISITOR_TYPES = {
    "new": "new",
    "new_visitor": "new",
    "returning": "returning",
    "returning_visitor": "returning",
}
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_TRUE = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


class SessionTableError(ValueError):
    """A session table lacks a required column or holds a value of the wrong type."""


# ------------------------------------------------------------------ reading and checking
def read_sessions(path: str | Path) -> pd.DataFrame:
    """Read a session table (CSV or Parquet) and check it; see :func:`check_sessions`."""
    file = Path(path)
    if not file.is_file():
        raise SessionTableError(f"no session table at {str(file)!r}")
    if file.suffix.lower() == ".parquet":
        frame = pd.read_parquet(file)
    elif file.suffix.lower() == ".csv":
        frame = pd.read_csv(file, dtype={"journey": str}, keep_default_na=True)
    else:
        raise SessionTableError(f"{file.name}: a session table is a .csv or .parquet file")
    return check_sessions(frame, where=file.name)


def _bools(column: pd.Series, name: str, where: str) -> NDArray[np.bool_]:
    if column.dtype == bool:
        return column.to_numpy(dtype=bool)
    text = column.astype(str).str.strip().str.lower()
    bad = sorted(set(text) - set(_TRUE))
    if bad:
        raise SessionTableError(
            f"{where}: column {name!r} must be true/false (or 1/0), found {bad[:5]}"
        )
    return text.map(_TRUE).to_numpy(dtype=bool)


def check_sessions(frame: pd.DataFrame, where: str = "session table") -> pd.DataFrame:
    """The table in canonical types (``stage`` as 0-3, ``visitor_type`` as new/returning,
    ``month`` from ``date``), or :class:`SessionTableError` naming what is wrong."""
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        raise SessionTableError(
            f"{where}: missing column(s) {missing}; a session table needs {list(REQUIRED)} "
            f"and may have {list(OPTIONAL)}"
        )
    if len(frame) == 0:
        raise SessionTableError(f"{where}: the table has no rows")
    out = pd.DataFrame({"journey": frame["journey"].astype(str)})
    visit = pd.to_numeric(frame["visit"], errors="coerce")
    if visit.isna().any() or (visit < 1).any() or (visit != np.floor(visit)).any():
        raise SessionTableError(f"{where}: column 'visit' must hold whole numbers >= 1")
    out["visit"] = visit.astype(np.int64)
    out["purchase"] = _bools(frame["purchase"], "purchase", where)
    if "visitor_type" in frame.columns:
        kinds = frame["visitor_type"].astype(str).str.strip().str.lower()
        out["visitor_type"] = kinds.map(VISITOR_TYPES).fillna("other")
    if "stage" in frame.columns:
        raw = frame["stage"]
        numeric = pd.to_numeric(raw, errors="coerce")
        named = raw.astype(str).str.strip().str.lower().map({s: i for i, s in enumerate(STAGES)})
        stage = numeric.where(numeric.notna(), named)
        if stage.isna().any() or not stage.isin([0, 1, 2, 3]).all():
            raise SessionTableError(f"{where}: column 'stage' must be 0-3 or one of {list(STAGES)}")
        out["stage"] = stage.astype(np.int64)
    if "cart_value" in frame.columns:
        value = pd.to_numeric(frame["cart_value"], errors="coerce")
        if value.isna().any() or (value < 0).any():
            raise SessionTableError(f"{where}: column 'cart_value' must be numbers >= 0 (EUR)")
        out["cart_value"] = value.astype(np.float64)
    if "exit_intent" in frame.columns:
        out["exit_intent"] = _bools(frame["exit_intent"], "exit_intent", where)
    if "date" in frame.columns:
        dates = pd.to_datetime(frame["date"], errors="coerce")
        if dates.isna().any():
            raise SessionTableError(f"{where}: column 'date' must hold dates (YYYY-MM-DD)")
        out["month"] = dates.dt.month.to_numpy()
    elif "month" in frame.columns:
        out["month"] = frame["month"].to_numpy()
    return out


def linked(sessions: pd.DataFrame) -> bool:
    """True when visits are linked into journeys (some journey has several visits)."""
    return bool(sessions["journey"].duplicated().any())


def online_shoppers_sessions(path: Path) -> pd.DataFrame:
    """The public Online Shoppers data (UCI 468) as a session table: one journey per session
    (the data does not link visits), ``visitor_type`` from ``VisitorType`` (``Other``
    kept apart), ``purchase`` from ``Revenue``, ``month`` from ``Month``."""
    raw = pd.read_csv(path, dtype=str)
    month = raw["Month"].str.strip().str[:3].map({m: i + 1 for i, m in enumerate(MONTHS)})
    frame = pd.DataFrame(
        {
            "journey": [f"uci-{i}" for i in range(len(raw))],
            "visit": 1,
            "purchase": raw["Revenue"],
            "visitor_type": raw["VisitorType"],
        }
    )
    checked = check_sessions(frame, where=path.name)
    checked["month"] = month.to_numpy()
    return checked


# ------------------------------------------------------------------ the simulator's table
def simulate_sessions(
    scenario: Scenario,
    n_shoppers: int,
    seed: int,
    *,
    link_visits: bool = True,
    policy: Policy | None = None,
    segments: bool = False,
) -> pd.DataFrame:
    """The session table of ``n_shoppers`` simulated journeys (one batch, seeded: common
    random numbers across scenarios). With ``policy`` None the merchant never offers.
    Without ``link_visits`` each visit is its own journey, as in a table that does not
    link visits. With ``segments``, a column ``segment`` holds the index of the shopper's
    segment (what the simulator knows and a shop's table does not)."""
    core = ShopperCore(scenario, n_shoppers, autoreset=False)
    obs = core.reset(seed)
    visits = scenario.max_visits
    stage = np.zeros((visits, n_shoppers), dtype=np.int64)
    intent = np.zeros((visits, n_shoppers), dtype=bool)
    bought = np.zeros(n_shoppers, dtype=bool)
    rows = np.arange(n_shoppers)
    wait = np.zeros(n_shoppers, dtype=np.int64)
    for _ in range(scenario.horizon):
        # a shopper out of the journey before the step stays as it was: only the others move
        live = np.flatnonzero(core.alive)
        if not len(live):
            break
        actions = wait if policy is None else policy.act(obs, core.action_masks())
        obs, *_ = core.step(actions)
        v = np.minimum(core.visit[live], visits) - 1
        stage[v, live] = np.maximum(stage[v, live], core.stage[live])
        event = core.event[live]
        intent[v, live] |= event == EXIT_INTENT
        bought[live] |= event == PURCHASE
    n_visits = core.visit
    shopper = np.repeat(rows, n_visits)
    # each shopper's visits numbered 1..n: the row's place minus where its shopper's rows start
    visit = np.arange(len(shopper)) - np.repeat(np.cumsum(n_visits) - n_visits, n_visits) + 1
    existing = core.traits[T["existing"], shopper] > 0.5
    last = visit == n_visits[shopper]
    stage_v = stage[visit - 1, shopper]
    purchase = last & bought[shopper]
    stage_v = np.where(purchase, 3, stage_v)
    journey = (
        shopper.astype(str)
        if link_visits
        else np.char.add(np.char.add(shopper.astype(str), "-"), visit.astype(str))
    )
    table = pd.DataFrame(
        {
            "journey": journey,
            "visit": visit if link_visits else np.ones_like(visit),
            "purchase": purchase,
            "visitor_type": np.where(existing | (visit > 1), "returning", "new"),
            "stage": stage_v,
            "cart_value": core.traits[T["price"], shopper],
            "exit_intent": intent[visit - 1, shopper],
        }
    )
    if segments:
        table["segment"] = core.traits[T["segment"], shopper].astype(np.int64)
    return table


# ------------------------------------------------------------------ targets
def price_bands(scenario: Scenario) -> tuple[float, ...]:
    """Cut points of the cart-value bands: geometric midpoints between the scenario's
    distinct product prices (one band per price)."""
    prices = sorted({p.price for p in scenario.products})
    return tuple(math.sqrt(a * b) for a, b in itertools.pairwise(prices))


def _band_label(cuts: tuple[float, ...], i: int) -> str:
    if not cuts:
        return "all carts"
    if i == 0:
        return f"< {eur(cuts[0])}"
    if i == len(cuts):
        return f"≥ {eur(cuts[-1])}"
    return f"{eur(cuts[i - 1])}-{amount(cuts[i])}"


def session_targets(
    sessions: pd.DataFrame, cuts: tuple[float, ...], *, with_months: bool = True
) -> TargetTable:
    """Every target ``sessions`` supports (see the module docstring), counted per journey."""
    codes, keys = pd.factorize(sessions["journey"], sort=False)
    n_j = len(keys)
    cols: list[tuple[str, str, bool, NDArray[np.float64], NDArray[np.float64]]] = []

    def per_journey(values: Any) -> NDArray[np.float64]:
        return np.bincount(
            codes, weights=np.asarray(values, dtype=np.float64), minlength=n_j
        ).astype(np.float64)

    def add(name: str, label: str, num: NDArray[np.generic], den: NDArray[np.generic]) -> None:
        cols.append((name, label, True, per_journey(num), per_journey(den)))

    buy = sessions["purchase"].to_numpy(dtype=bool)
    one = np.ones(len(sessions))
    add("conversion_per_visit", "purchase rate per visit", buy, one)
    if "visitor_type" in sessions:
        kind = sessions["visitor_type"].to_numpy()
        for k in ("new", "returning"):
            if (kind == k).any():
                add(
                    f"conversion_per_visit[{k}]",
                    f"purchase rate per visit, {k} visitors",
                    buy & (kind == k),
                    kind == k,
                )
        if "new" in kind and "returning" in kind:
            add(
                "new_visit_share", "share of visits by new visitors", kind == "new", kind != "other"
            )
    if "stage" in sessions:
        stage = sessions["stage"].to_numpy()
        for s in (1, 2, 3):
            add(f"reach[{STAGES[s]}]", f"visits reaching the {STAGES[s]} stage", stage >= s, one)
        journey_stage = np.zeros(n_j)
        np.maximum.at(journey_stage, codes, stage)
        journey_buy = per_journey(buy) > 0
        cart = journey_stage >= 1
        cols.append(
            (
                "cart_abandonment",
                "journeys that filled a cart and did not buy",
                True,
                (cart & ~journey_buy).astype(np.float64),
                cart.astype(np.float64),
            )
        )
    if "exit_intent" in sessions:
        add("exit_intent_per_visit", "visits showing exit intent", sessions["exit_intent"], one)
    if linked(sessions):
        first = sessions["visit"].to_numpy() == 1
        came_back = per_journey(sessions["visit"].to_numpy() == 2) > 0
        first_no_buy = per_journey(first & ~buy) > 0
        cols.append(
            (
                "return_rate",
                "journeys whose first visit did not buy that came back",
                True,
                (first_no_buy & came_back).astype(np.float64),
                first_no_buy.astype(np.float64),
            )
        )
    if "cart_value" in sessions and cuts:
        band = np.searchsorted(np.asarray(cuts), sessions["cart_value"].to_numpy(), side="right")
        for b in range(len(cuts) + 1):
            label = _band_label(cuts, b)
            add(f"cart_share[{b}]", f"visits with a cart {label}", band == b, one)
            add(
                f"conversion_per_visit[cart {b}]",
                f"purchase rate per visit, cart {label}",
                buy & (band == b),
                band == b,
            )
    if with_months and "month" in sessions:
        month = pd.to_numeric(sessions["month"], errors="coerce").to_numpy()
        for m in range(1, 13):
            if (month == m).any():
                cols.append(
                    (
                        f"conversion_per_visit[month {m:02d}]",
                        f"purchase rate per visit in {MONTHS[m - 1]} (not modelled: no season)",
                        False,
                        per_journey(buy & (month == m)),
                        per_journey(month == m),
                    )
                )
    return TargetTable(
        names=tuple(c[0] for c in cols),
        labels=tuple(c[1] for c in cols),
        fitted=np.array([c[2] for c in cols], dtype=bool),
        num=np.stack([c[3] for c in cols], axis=1),
        den=np.stack([c[4] for c in cols], axis=1),
        keys=np.asarray(keys, dtype=str),
    )
