"""Prometheus metrics of one server (its own registry, so several apps in one process do not mix counts)."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "openbind_requests", "HTTP requests by endpoint and status code", ["endpoint", "status"],
            registry=self.registry,
        )  # fmt: skip
        self.latency = Histogram(
            "openbind_request_seconds", "time to answer a request, by endpoint", ["endpoint"],
            buckets=LATENCY_BUCKETS, registry=self.registry,
        )  # fmt: skip
        self.batch_size = Histogram(
            "openbind_batch_size", "items per forward pass, by tower", ["tower"], buckets=BATCH_BUCKETS,
            registry=self.registry,
        )  # fmt: skip
        self.queue_depth = Gauge("openbind_queue_depth", "items waiting for a tower", ["tower"], registry=self.registry)
        self.in_flight = Gauge("openbind_in_flight", "embed and search requests being answered", registry=self.registry)
        self.rejected = Counter(
            "openbind_rejected", "requests refused, by reason (busy, too_large, unauthorized, bad_input, timeout)",
            ["reason"], registry=self.registry,
        )  # fmt: skip

    def render(self) -> bytes:
        return generate_latest(self.registry)
