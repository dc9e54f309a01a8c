"""The report's one error: what it cannot be made from, and what to do about it."""

from __future__ import annotations


class ReportError(Exception):
    """What the report cannot be made from, and what to do about it (exit status 2)."""
