"""The service's Prometheus metrics, summed over its worker processes.

The launcher sets ``PROMETHEUS_MULTIPROC_DIR`` (a fresh folder) before the workers
start, so that ``/metrics``, whichever worker answers it, reports every worker
(``prometheus_client``'s multiprocess mode). Names:

| metric | what |
| --- | --- |
| ``concede_decisions_total{explored}`` | decisions answered (rate: decisions per second) |
| ``concede_requests_total{endpoint,status}`` | requests answered, by HTTP status |
| ``concede_request_seconds{endpoint}`` | request latency, histogram |
| ``concede_guardrail_overrides_total{rule}`` | decisions where a guardrail overrode the model |
| ``concede_exploration_share`` | the configured exploration share (epsilon), or 0 |
| ``concede_rewards_total`` | rewards received |
| ``concede_log_queue_rows`` | rows waiting for the log writer (all workers) |
| ``concede_log_written_rows_total{stream}`` | rows written to the journals |
| ``concede_log_dropped_rows_total{stream}`` | rows dropped: the writer could not keep up |
"""

from __future__ import annotations

import os
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

from agents.serving.runtime import RULE_NAMES

BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
ENDPOINTS = ("decide", "reward")


class Metrics:
    """The service's metrics, children bound once (a label lookup per request costs)."""

    def __init__(self, exploration_share: float) -> None:
        self.decisions = Counter(
            "concede_decisions", "Decisions answered", ["explored"], registry=REGISTRY
        )
        self.requests = Counter(
            "concede_requests", "Requests answered", ["endpoint", "status"], registry=REGISTRY
        )
        self.latency = Histogram(
            "concede_request_seconds", "Request latency", ["endpoint"], buckets=BUCKETS
        )
        self.overrides = Counter(
            "concede_guardrail_overrides", "Guardrail overrides of the model", ["rule"]
        )
        self.share = Gauge(
            "concede_exploration_share", "Configured exploration share", multiprocess_mode="max"
        )
        self.rewards = Counter("concede_rewards", "Rewards received")
        self.queue = Gauge(
            "concede_log_queue_rows", "Rows waiting for the log writer", multiprocess_mode="livesum"
        )
        self.written = Counter(
            "concede_log_written_rows", "Rows written to the journals", ["stream"]
        )
        self.dropped = Counter(
            "concede_log_dropped_rows", "Rows dropped: the log writer could not keep up", ["stream"]
        )
        self.share.set(exploration_share)
        self.greedy = self.decisions.labels(explored="false")
        self.explored = self.decisions.labels(explored="true")
        self.latency_of = {e: self.latency.labels(endpoint=e) for e in ENDPOINTS}
        self.ok = {e: self.requests.labels(endpoint=e, status="200") for e in ENDPOINTS}
        self.override_of = {r: self.overrides.labels(rule=r) for r in RULE_NAMES}
        for stream in ("decisions", "rewards"):
            self.written.labels(stream=stream)
            self.dropped.labels(stream=stream)

    def refused(self, endpoint: str, status: int) -> None:
        self.requests.labels(endpoint=endpoint, status=str(status)).inc()


def exposition() -> tuple[bytes, str]:
    """The metrics text of every worker (multiprocess mode), or of this process."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry: Any = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = REGISTRY
    return generate_latest(registry), CONTENT_TYPE_LATEST


def process_exited(pid: int) -> None:
    """Drop a finished worker's live gauges (multiprocess mode)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.mark_process_dead(pid)
