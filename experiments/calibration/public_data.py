"""Fit a scenario to real session logs: purchase rate per visit, overall and by visitor type.

The targets come from the Online Shoppers Purchasing Intention data shipped in
``experiments/calibration/data/`` (UCI 468, CC BY 4.0): the share of sessions that end in a
purchase, overall and for new and returning visitors. As in the data's
``VisitorType``, a returning visitor is one who has been to the shop before, in this
journey or an earlier one: every visit of an existing customer, and every visit after
the first of a new shopper.

With no concession offered, three calibration parameters of the scenario (the preset
``appeal``) are fitted by the general fit of :mod:`experiments.calibration.pipeline`, by
least squares on common random numbers (the same simulated shoppers at every trial): the
appeal offset of first-time shoppers, that of existing customers, and the share of
journeys by existing customers. The fit is written into the scenario file's
``calibration`` block; the cart-abandonment rate it implies is reported beside the
industry's figure (about 70%).

The app is ``concede calibrate``.
"""

from __future__ import annotations

import csv
import dataclasses
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from envs.core import PURCHASE, ShopperCore
from envs.scenario import Calibration, Scenario
from envs.shoppers import T
from experiments.calibration.objective import ShopData
from experiments.calibration.parameters import resolve
from experiments.calibration.pipeline import calibrate
from experiments.calibration.sessions import online_shoppers_sessions

DATA = Path(__file__).resolve().parent / "data"
TOLERANCE = 0.015  # points of purchase rate the fit must reach on each target
INDUSTRY_CART_ABANDONMENT = 0.70


@dataclass(frozen=True)
class VisitRates:
    """Purchase rate per visit (session): overall, new visitors, returning visitors."""

    overall: float
    new: float
    returning: float

    def as_array(self) -> np.ndarray:
        return np.array([self.overall, self.new, self.returning])


@dataclass(frozen=True)
class SimulatedRates:
    rates: VisitRates
    new_visit_share: float
    cart_abandonment: float  # journeys that filled a cart and did not buy
    visits: int


def observed_rates(path: Path = DATA / "online_shoppers_intention.csv") -> VisitRates:
    """The targets, read from the session log (``Revenue`` by ``VisitorType``)."""
    counts: dict[str, list[int]] = {}
    with path.open(newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            n_buy = counts.setdefault(row["VisitorType"], [0, 0])
            n_buy[0] += 1
            n_buy[1] += row["Revenue"].strip().upper() == "TRUE"
    total = sum(n for n, _ in counts.values())
    bought = sum(b for _, b in counts.values())
    new_n, new_b = counts["New_Visitor"]
    ret_n, ret_b = counts["Returning_Visitor"]
    return VisitRates(bought / total, new_b / new_n, ret_b / ret_n)


def simulate_rates(scenario: Scenario, n_shoppers: int, seed: int) -> SimulatedRates:
    """Per-visit purchase rates of ``scenario`` when the merchant never offers anything."""
    core = ShopperCore(scenario, n_shoppers, autoreset=False)
    core.reset(seed)
    existing = core.traits[T["existing"]] > 0.5
    bought = np.zeros(n_shoppers, dtype=bool)
    reached_cart = np.zeros(n_shoppers, dtype=bool)
    wait = np.zeros(n_shoppers, dtype=np.int64)
    for _ in range(scenario.horizon):
        if not core.alive.any():
            break
        core.step(wait)
        bought |= core.event == PURCHASE
        reached_cart |= core.stage >= 1
    visits = core.visit
    total_visits = int(visits.sum())
    new_visits = int((~existing).sum())
    new_bought = int((bought & ~existing & (visits == 1)).sum())
    ret_bought = int(bought.sum()) - new_bought
    reached_cart |= bought
    rates = VisitRates(
        overall=bought.sum() / total_visits,
        new=new_bought / max(1, new_visits),
        returning=ret_bought / max(1, total_visits - new_visits),
    )
    abandonment = float((reached_cart & ~bought).sum() / max(1, reached_cart.sum()))
    return SimulatedRates(rates, new_visits / total_visits, abandonment, total_visits)


def fit(scenario: Scenario, n_shoppers: int, seed: int) -> Calibration:
    """Least-squares fit of the calibration block to the public session data, on fixed
    shoppers: the general fit (:func:`experiments.calibration.pipeline.calibrate`) of the
    preset ``appeal`` to the session table of the Online Shoppers data, every journey
    fitted (none held out)."""
    result = calibrate(
        scenario,
        ShopData(sessions=online_shoppers_sessions(DATA / "online_shoppers_intention.csv")),
        resolve("appeal", scenario),
        n_shoppers=n_shoppers,
        seed=seed,
        holdout=0.0,
        replicates=50,
        drop_unidentified=False,
    )
    c = result.fitted.calibration
    return Calibration(
        round(c.new_shopper_appeal, 4),
        round(c.existing_customer_appeal, 4),
        round(c.existing_customer_share, 4),
    )


def write_calibration(path: Path, calibration: Calibration) -> None:
    """Rewrite the ``calibration:`` block at the end of a scenario YAML file in place."""
    text = path.read_text(encoding="utf-8")
    block = "calibration:\n" + "".join(
        f"  {k}: {v}\n" for k, v in dataclasses.asdict(calibration).items()
    )
    new, count = re.subn(r"(?ms)^calibration:\n(?:[ \t]+\S.*\n?)*", block, text)
    if count != 1:
        raise ValueError(f"{path}: expected one 'calibration:' block at top level, found {count}")
    path.write_text(new, encoding="utf-8")


def report(name: str, sim: SimulatedRates, targets: VisitRates) -> dict[str, object]:
    rows = [
        ("overall", sim.rates.overall, targets.overall),
        ("new visitors", sim.rates.new, targets.new),
        ("returning visitors", sim.rates.returning, targets.returning),
    ]
    print(f"scenario {name}: purchase rate per visit, simulated vs data (within ±1.5 points)")
    for label, got, want in rows:
        ok = "ok" if abs(got - want) <= TOLERANCE else "OUT"
        print(f"  {label:<19} {got:6.1%}   data {want:6.1%}   {ok}")
    print(f"  share of new-visitor visits {sim.new_visit_share:6.1%}   data {0.1374:6.1%}")
    print(
        f"  implied cart abandonment {sim.cart_abandonment:6.1%}   "
        f"industry about {INDUSTRY_CART_ABANDONMENT:.0%}"
    )
    within = all(abs(got - want) <= TOLERANCE for _, got, want in rows)
    return {
        "scenario": name,
        "simulated": dataclasses.asdict(sim.rates),
        "data": dataclasses.asdict(targets),
        "new_visit_share": sim.new_visit_share,
        "cart_abandonment": sim.cart_abandonment,
        "visits": sim.visits,
        "within_tolerance": within,
    }
