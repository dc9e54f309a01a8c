"""How figures read: money, shares and intervals, on the console and in the report.

One home for number formatting. Intervals are ``{"estimate", "low", "high"}`` mappings as
the evaluation writes them (any of the three may be None).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def eur(x: float | None, signed: bool = False) -> str:
    """``€1,234`` (``-€1,234``; ``+€1,234`` when ``signed``); ``n/a`` for None."""
    if x is None:
        return "n/a"
    sign = "-" if round(x) < 0 else ("+" if signed and round(x) > 0 else "")
    return f"{sign}€{abs(x):,.0f}"


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


def interval_text(i: Mapping[str, Any], spec: str) -> str:
    """``estimate [low, high]`` with ``spec`` (a ``str.format`` spec); the estimate alone
    when the interval is missing or a point; ``n/a`` without an estimate."""
    est, low, high = i["estimate"], i["low"], i["high"]
    if est is None:
        return "n/a"
    text = spec.format(est)
    if low is None or high is None or low == high == est:
        return text
    return f"{text} [{spec.format(low)}, {spec.format(high)}]"


def eur_interval(i: Mapping[str, Any]) -> str:
    """An amount in EUR and its interval, to the euro: ``1,234 [1,100, 1,368]``."""
    return interval_text(i, "{:,.0f}")


def pct_interval(i: Mapping[str, Any]) -> str:
    """A share and its interval in percent, one decimal: ``12.5% [11.9%, 13.1%]``."""
    return interval_text({k: None if v is None else 100 * v for k, v in i.items()}, "{:.1f}%")


def num_interval(i: Mapping[str, Any]) -> str:
    """A number and its interval, two decimals."""
    return interval_text(i, "{:.2f}")
