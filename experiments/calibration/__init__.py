"""Fitting a scenario to real session data (:mod:`.public_data`), with the public data it is fitted
to by default in ``data/`` (its licence and citation in ``data/README.md``)."""
