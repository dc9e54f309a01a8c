"""Fitting a scenario to real session data (:mod:`.public_data`), with the public data it is fitted
to by default in ``data/`` (its licence and citation in ``data/README.md``)."""

FORECAST_SCENARIOS = 30
"""Replicate scenarios a forecast runs every policy on, by default (:mod:`.forecast`); here,
where the apps' option schemas read it without loading the fit."""
