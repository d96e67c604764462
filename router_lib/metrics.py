"""Prometheus metrics of the router: where queries went and why, fallbacks, RYW waits, cache.

Metric objects are created once per registry and shared by every router that uses it (two
routers in one process add to the same counters instead of failing on duplicate names);
tests pass their own ``CollectorRegistry``. The per-query counter is
:class:`~router_lib.query_tally.QueryTally` (no lock per increment); the others change
rarely and are ordinary prometheus_client metrics.
"""

from __future__ import annotations

import threading
import weakref
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

from router_lib.query_tally import QueryTally


class RouterMetrics:
    def __init__(self, registry: CollectorRegistry | None) -> None:
        def counter(name: str, documentation: str, labels: tuple[str, ...] = ()) -> Counter:
            return Counter(name, documentation, labels, registry=registry)

        self.queries = QueryTally()
        if registry is not None:
            registry.register(self.queries)
        self.fallbacks = counter(
            "replicadb_router_fallbacks",
            "Reads served by the primary because no replica qualified, by reason",
            ("reason",),
        )
        self.read_retries = counter(
            "replicadb_router_read_retries",
            "Reads retried on another endpoint after an error, by SQLSTATE class",
            ("cause",),
        )
        self.ryw_waits = counter(
            "replicadb_router_ryw_waits",
            "Read-your-writes reads that polled a replica for the session's commit",
        )
        self.ryw_wait_seconds = Histogram(
            "replicadb_router_ryw_wait_seconds",
            "Time read-your-writes reads spent waiting for replay",
            buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0),
            registry=registry,
        )
        self.cache_hits = counter(
            "replicadb_router_cache_hits", "Result cache hits, by layer", ("layer",)
        )
        self.cache_misses = counter("replicadb_router_cache_misses", "Result cache misses")
        self.ejections = counter(
            "replicadb_router_ejections", "Replica ejections, by endpoint", ("endpoint",)
        )
        self.write_outcome_unknown = counter(
            "replicadb_router_write_outcome_unknown",
            "Writes whose connection was lost in flight (raised, never retried)",
        )
        self.topology_updates = counter(
            "replicadb_router_topology_updates", "Topology changes applied"
        )
        self.replica_lag_bytes = Gauge(
            "replicadb_router_replica_lag_bytes",
            "Replay lag measured by the router's probe",
            ("endpoint",),
            registry=registry,
        )
        self.session_pins = counter(
            "replicadb_router_session_pins",
            "Sessions pinned to one primary connection by state that cannot move, by reason",
            ("reason",),
        )
        self._fallback_children: dict[str, Any] = {}

    def query(self, target: str, reason: str) -> None:
        """``target``: "primary" or "replica" (``EndpointState.target``)."""
        self.queries.add(target, reason)

    def fallback(self, reason: str) -> None:
        child = self._fallback_children.get(reason)
        if child is None:
            child = self._fallback_children[reason] = self.fallbacks.labels(reason)
        child.inc()


_shared: weakref.WeakKeyDictionary[CollectorRegistry, RouterMetrics] = weakref.WeakKeyDictionary()
_unregistered_key = CollectorRegistry(auto_describe=False)
_lock = threading.Lock()


def metrics_for(registry: CollectorRegistry | None = REGISTRY) -> RouterMetrics:
    """The metrics registered in ``registry``; None: counted but not exported."""
    with _lock:
        key = _unregistered_key if registry is None else registry
        metrics = _shared.get(key)
        if metrics is None:
            metrics = _shared[key] = RouterMetrics(registry)
        return metrics
