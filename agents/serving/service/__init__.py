"""The decision service: an exported policy over HTTP for sale days.

``POST /decide`` (one event or a batch: validation, consent, guardrails, exploration over
the allowed actions, an event id and the exact probability of the action returned),
``POST /reward`` (an event's outcome), ``GET /health``, ``GET /ping``, ``GET /metrics``
(Prometheus). Decisions and rewards are appended, off the request path, to rotated
Parquet journals per worker; :func:`agents.serving.service.join.join_logs` joins them by
event id into a decision log of ``agents.logs``'s format.

Modules: :mod:`.settings` (what a deployment sets; exploration is
:mod:`agents.exploration`'s),
:mod:`.requests` (parsing and validating bodies), :mod:`.journal` (the writer and the
journal schemas), :mod:`.join`, :mod:`.metrics`, :mod:`.app` (the ASGI app).
Importing this package imports nothing.
"""
