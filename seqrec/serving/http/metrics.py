"""Prometheus metrics of one server process: requests by route and status, latency,
batch sizes, unknown ids, reloads, and gauges read from the runtime at scrape time."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily

from seqrec.serving.stores import StoreError

if TYPE_CHECKING:
    from seqrec.serving.runtime import Runtime

LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.002,
    0.003,
    0.005,
    0.0075,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    1.0,
    2.5,
)


class Metrics:
    """Prometheus metrics of one server process (own registry; multi-process aware)."""

    def __init__(self, runtime_ref: Callable[[], Runtime]) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "seqrec_http_requests",
            "HTTP requests by method, route template and status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "seqrec_http_request_duration_seconds",
            "HTTP request latency in the server (seconds)",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.batch = Histogram(
            "seqrec_batch_size",
            "requests coalesced into one model call",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128),
            registry=self.registry,
        )
        self.unknown = Counter(
            "seqrec_unknown_items", "unknown item ids in requests (ignored)", registry=self.registry
        )
        self.reloads = Counter(
            "seqrec_model_reloads", "model reloads by outcome", ["outcome"], registry=self.registry
        )
        self._runtime_ref = runtime_ref
        self.registry.register(_RuntimeCollector(runtime_ref))

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route).observe(seconds)

    def render(self) -> bytes:
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            from prometheus_client import multiprocess

            reg = CollectorRegistry()
            multiprocess.MultiProcessCollector(reg)
            reg.register(_RuntimeCollector(self._runtime_ref))
            return generate_latest(reg)
        return generate_latest(self.registry)


class _RuntimeCollector:
    """Gauges read at scrape time: model size, sessions and bytes in the store."""

    def __init__(self, runtime_ref: Callable[[], Runtime]) -> None:
        self._ref = runtime_ref

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> Any:
        rt = self._ref()
        g = GaugeMetricFamily("seqrec_model_items", "items in the served model's catalogue")
        g.add_metric([], rt.model.n_items)
        yield g
        try:
            stats = rt.store.stats()
        except StoreError:
            stats = {}
        for key, name, doc in (
            ("sessions", "seqrec_store_sessions", "sessions held in the in-memory store"),
            ("bytes", "seqrec_store_bytes", "bytes held by the in-memory store"),
            ("keys_in_db", "seqrec_store_keys", "keys in the Redis database"),
            ("redis_used_memory", "seqrec_store_redis_used_bytes", "Redis used_memory"),
            ("evictions", "seqrec_store_evictions", "sessions evicted (LRU bound)"),
        ):
            if key in stats:
                g = GaugeMetricFamily(name, doc)
                g.add_metric([], float(stats[key]))
                yield g
        g = GaugeMetricFamily("seqrec_sessions_restarted", "sessions restarted after a reload")
        g.add_metric([], rt.restarted_sessions)
        yield g
