"""Prometheus metrics: per-route counts and latency, Vault call latency, cache results.

With several worker processes the values live in prometheus-client's
multiprocess files (``PROMETHEUS_MULTIPROC_DIR``, set by ``secretsd serve``)
and ``/metrics`` aggregates all workers. Each app gets its own registry, so
tests can build many apps in one process.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client import multiprocess as prometheus_multiprocess

__all__ = ["CONTENT_TYPE_LATEST", "Metrics"]

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "secretsd_http_requests_total",
            "HTTP requests by route template, method and status.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "secretsd_http_request_duration_seconds",
            "HTTP request latency by route template and method.",
            ["route", "method"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.vault_latency = Histogram(
            "secretsd_vault_call_duration_seconds",
            "Latency of calls to Vault/OpenBao by operation.",
            ["operation"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.cache = Counter(
            "secretsd_cache_requests_total",
            "Read-cache lookups by result (hit, miss, revalidated, stale).",
            ["result"],
            registry=self.registry,
        )
        self.audit_records = Counter(
            "secretsd_audit_records_total",
            "Audit records written.",
            registry=self.registry,
        )

    def observe_vault(self, operation: str, seconds: float) -> None:
        self.vault_latency.labels(operation).observe(seconds)

    def render(self) -> bytes:
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            registry = CollectorRegistry()
            prometheus_multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            return generate_latest(registry)
        return generate_latest(self.registry)
