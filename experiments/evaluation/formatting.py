"""How figures read: money, shares and intervals, on the console and in the report.

The one home of number formatting: the evaluation's and the off-policy evaluation's
consoles, the merchant report, its plots' axes and the calibration's pages all format
here (``tests/test_layout.py`` fails on a euro-formatting helper anywhere else).
Intervals are ``{"estimate", "low", "high"}`` mappings as the evaluations write them (any
of the three may be None or missing).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def amount(x: float) -> str:
    """A number to the unit with thousands separators, no currency sign: ``1,234``,
    ``-1,234``."""
    return f"{x:,.0f}"


def eur(x: float | None, signed: bool = False) -> str:
    """``€1,234`` (``-€1,234``; ``+€1,234`` when ``signed``); ``n/a`` for None."""
    if x is None:
        return "n/a"
    sign = "-" if round(x) < 0 else ("+" if signed and round(x) > 0 else "")
    return f"{sign}€{amount(abs(x))}"


def eur_compact(x: float) -> str:
    """An axis tick in EUR: ``€950``, ``€12k`` from 1,000 on, ``-€3k``."""
    sign = "-" if x < 0 else ""
    return sign + (f"€{amount(abs(x) / 1000)}k" if abs(x) >= 1000 else f"€{amount(abs(x))}")


def pct(x: float | None, digits: int | None = None) -> str:
    """A share as ``51%`` (one decimal below 10%); ``n/a`` for None."""
    if x is None:
        return "n/a"
    value = 100 * x
    if digits is None:
        digits = 1 if abs(value) < 10 and round(value, 1) != round(value) else 0
    return f"{round(value, digits) + 0.0:.{digits}f}%"  # + 0.0: no "-0%"


def per_100(x: float | None) -> str:
    """A share as shoppers in 100: ``12``, ``0.4``."""
    if x is None:
        return "n/a"
    value = 100 * x
    return f"{value:.0f}" if abs(value) >= 10 or value == round(value) else f"{value:.1f}"


def interval_text(i: Mapping[str, Any] | None, spec: str, *, bare_point: bool = True) -> str:
    """``estimate [low, high]`` with ``spec`` (a ``str.format`` spec); the estimate alone
    when a bound is missing, or when the interval is a point and ``bare_point``; ``n/a``
    without an estimate."""
    if not i or i.get("estimate") is None:
        return "n/a"
    est, low, high = i["estimate"], i.get("low"), i.get("high")
    text = spec.format(est)
    if low is None or high is None or (bare_point and low == high == est):
        return text
    return f"{text} [{spec.format(low)}, {spec.format(high)}]"


def eur_interval(i: Mapping[str, Any] | None, *, bare_point: bool = True) -> str:
    """An amount in EUR and its interval, to the euro: ``1,234 [1,100, 1,368]``."""
    return interval_text(i, "{:,.0f}", bare_point=bare_point)


def pct_interval(i: Mapping[str, Any] | None, *, bare_point: bool = True) -> str:
    """A share and its interval in percent, one decimal: ``12.5% [11.9%, 13.1%]``."""
    scaled = {k: None if v is None else 100 * v for k, v in (i or {}).items()}
    return interval_text(scaled, "{:.1f}%", bare_point=bare_point)


def num_interval(i: Mapping[str, Any]) -> str:
    """A number and its interval, two decimals."""
    return interval_text(i, "{:.2f}")
