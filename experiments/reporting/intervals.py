"""Intervals as the evaluation writes them (``{"estimate", "low", "high"}``), read safely.

Any of the three numbers may be missing, None or not finite: the helpers here read such
a number as None rather than fail, so a figure the evaluation lacks shows as ``n/a``.
"""

from __future__ import annotations

import math
from typing import Any

Interval = dict[str, float | None]

PER = "per 1,000 shoppers"
"""How every amount in the report is counted."""


def interval(estimate: float | None, low: float | None, high: float | None) -> Interval:
    return {"estimate": estimate, "low": low, "high": high}


def number(x: Any) -> float | None:
    """``x`` as a float if it is a finite number, else None."""
    return float(x) if isinstance(x, int | float) and math.isfinite(x) else None


def est(i: Interval | None) -> float | None:
    """The estimate of an interval, or None."""
    return None if i is None else number(i.get("estimate"))


def est_or(i: Interval | None, default: float) -> float:
    """The estimate of an interval, or ``default`` when it has none."""
    e = est(i)
    return default if e is None else e


def half_width(i: Interval) -> float | None:
    """The larger distance from the estimate to a bound; None without all three."""
    e, lo, hi = (number(i.get(k)) for k in ("estimate", "low", "high"))
    if e is None or lo is None or hi is None:
        return None
    return max(e - lo, hi - e)


def negate(i: Interval) -> Interval:
    """The interval of minus the figure: ``b - a`` from ``a - b``."""
    e, lo, hi = (number(i.get(k)) for k in ("estimate", "low", "high"))
    return interval(
        None if e is None else -e, None if hi is None else -hi, None if lo is None else -lo
    )


def relative(new: float | None, old: float | None) -> float | None:
    """``(new - old) / old``; None when either is missing or ``old`` is 0."""
    if new is None or old is None or old == 0:
        return None
    return (new - old) / old
