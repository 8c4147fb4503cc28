"""Prometheus metrics: per-route counts and latency, Vault call latency, cache results.

With several worker processes the values live in prometheus-client's
multiprocess files (``PROMETHEUS_MULTIPROC_DIR``, set by ``secretsd serve``)
and ``/metrics`` aggregates all workers. Each app gets its own registry, so
tests can build many apps in one process.

Those files are memory-mapped. prometheus-client creates them sparse and
grows them by truncation, so on a full disk the first write to a new page
raises SIGBUS and kills the worker. :func:`reserve_multiprocess_files`
therefore allocates each worker's files up front (``posix_fallocate``); if the
disk has no room for that, the worker keeps its metrics in memory instead.
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client import multiprocess as prometheus_multiprocess

__all__ = ["CONTENT_TYPE_LATEST", "Metrics", "reserve_multiprocess_files"]

log = logging.getLogger(__name__)

#: Bytes reserved per metrics file: all our series (bounded label values) fit with room.
RESERVED_BYTES = 1024 * 1024
#: The prometheus-client file kinds our metrics use (counters and histograms).
_FILE_KINDS = ("counter", "histogram")


def reserve_multiprocess_files() -> bool:
    """Allocate this process's metric files before prometheus-client maps them.

    Returns False (and switches this process to in-memory metrics) when the
    files cannot be allocated, e.g. on a full disk. Call before any metric exists.
    """
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not directory:
        return True
    paths = [Path(directory) / f"{kind}_{os.getpid()}.db" for kind in _FILE_KINDS]
    try:
        for path in paths:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                if os.fstat(fd).st_size < RESERVED_BYTES:
                    os.posix_fallocate(fd, 0, RESERVED_BYTES)
            finally:
                os.close(fd)
    except OSError as error:
        for path in paths:
            with contextlib.suppress(OSError):
                path.unlink()
        from prometheus_client import values

        os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
        values.ValueClass = values.MutexValue
        log.warning(
            "cannot reserve metrics files in %s (%s); this worker's /metrics shows only itself",
            directory,
            error.strerror,
        )
        return False
    return True


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
