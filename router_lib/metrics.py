"""The router's metrics: where queries went and why, fallbacks, RYW waits, cache.

They are exported to Prometheus when prometheus-client is installed (the ``metrics`` extra):
into the registry given to the router, by default prometheus_client's global one. A router
without a registry (``registry=None``, or no prometheus-client) counts into stand-ins that
keep nothing, so routing never depends on the extra.

Metric objects are created once per registry and shared by every router that uses it (two
routers in one process add to the same counters instead of failing on duplicate names);
tests pass their own ``CollectorRegistry``. The exported per-query counter is
:class:`~router_lib.query_tally.QueryTally` (no lock per increment); the others change
rarely. The Prometheus side is :mod:`router_lib.prometheus_metrics`.
"""

from __future__ import annotations

import threading
import weakref
from typing import TYPE_CHECKING, Any, Final, Protocol

from router_lib.extras import MissingExtra

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry


class CountingMetric(Protocol):
    def inc(self, amount: float = 1) -> None: ...

    def labels(self, *values: str) -> CountingMetric: ...


class GaugeMetric(Protocol):
    def set(self, value: float) -> None: ...

    def labels(self, *values: str) -> GaugeMetric: ...


class ObservingMetric(Protocol):
    def observe(self, amount: float) -> None: ...


class QueryCounter(Protocol):
    def add(self, target: str, reason: str) -> None: ...


class MetricFactory(Protocol):
    """Makes the metric objects of one :class:`RouterMetrics`, exported or not."""

    def counter(
        self, name: str, documentation: str, labels: tuple[str, ...] = ()
    ) -> CountingMetric: ...

    def gauge(self, name: str, documentation: str, labels: tuple[str, ...]) -> GaugeMetric: ...

    def histogram(
        self, name: str, documentation: str, buckets: tuple[float, ...]
    ) -> ObservingMetric: ...

    def query_counter(self) -> QueryCounter: ...


class UnexportedMetric:
    """Takes every update and keeps none: the metrics of a router without a registry."""

    def labels(self, *values: str) -> UnexportedMetric:
        return self

    def inc(self, amount: float = 1) -> None:
        pass

    def set(self, value: float) -> None:
        pass

    def observe(self, amount: float) -> None:
        pass

    def add(self, target: str, reason: str) -> None:
        pass


class UnexportedMetrics:
    """The :class:`MetricFactory` of stand-ins (no prometheus-client needed)."""

    def counter(
        self, name: str, documentation: str, labels: tuple[str, ...] = ()
    ) -> CountingMetric:
        return UnexportedMetric()

    def gauge(self, name: str, documentation: str, labels: tuple[str, ...]) -> GaugeMetric:
        return UnexportedMetric()

    def histogram(
        self, name: str, documentation: str, buckets: tuple[float, ...]
    ) -> ObservingMetric:
        return UnexportedMetric()

    def query_counter(self) -> QueryCounter:
        return UnexportedMetric()  # not a QueryTally: it would keep a tally per thread


class RouterMetrics:
    def __init__(self, make: MetricFactory) -> None:
        self.queries = make.query_counter()
        self.fallbacks = make.counter(
            "replicadb_router_fallbacks",
            "Reads served by the primary because no replica qualified, by reason",
            ("reason",),
        )
        self.read_retries = make.counter(
            "replicadb_router_read_retries",
            "Reads retried on another endpoint after an error, by SQLSTATE class",
            ("cause",),
        )
        self.ryw_waits = make.counter(
            "replicadb_router_ryw_waits",
            "Read-your-writes reads that polled a replica for the session's commit",
        )
        self.ryw_wait_seconds = make.histogram(
            "replicadb_router_ryw_wait_seconds",
            "Time read-your-writes reads spent waiting for replay",
            (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0),
        )
        self.cache_hits = make.counter(
            "replicadb_router_cache_hits", "Result cache hits, by layer", ("layer",)
        )
        self.cache_misses = make.counter("replicadb_router_cache_misses", "Result cache misses")
        self.ejections = make.counter(
            "replicadb_router_ejections", "Replica ejections, by endpoint", ("endpoint",)
        )
        self.write_outcome_unknown = make.counter(
            "replicadb_router_write_outcome_unknown",
            "Writes whose connection was lost in flight (raised, never retried)",
        )
        self.topology_updates = make.counter(
            "replicadb_router_topology_updates", "Topology changes applied"
        )
        self.replica_lag_bytes = make.gauge(
            "replicadb_router_replica_lag_bytes",
            "Replay lag measured by the router's probe",
            ("endpoint",),
        )
        self.session_pins = make.counter(
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


def _prometheus_default_registry() -> CollectorRegistry | None:
    try:
        from prometheus_client import REGISTRY
    except ModuleNotFoundError:
        return None  # no metrics extra: the router counts into stand-ins
    return REGISTRY


# The default of the routers' ``registry`` parameter.
DEFAULT_REGISTRY: Final = _prometheus_default_registry()


def default_registry() -> CollectorRegistry:
    """prometheus_client's global registry, where routers export by default."""
    if DEFAULT_REGISTRY is None:
        raise MissingExtra("metrics", "exporting router metrics to Prometheus")
    return DEFAULT_REGISTRY


_shared: weakref.WeakKeyDictionary[CollectorRegistry, RouterMetrics] = weakref.WeakKeyDictionary()
_unexported = RouterMetrics(UnexportedMetrics())
_lock = threading.Lock()


def metrics_for(registry: CollectorRegistry | None = DEFAULT_REGISTRY) -> RouterMetrics:
    """The metrics registered in ``registry``; None: counted into stand-ins, not exported."""
    if registry is None:
        return _unexported
    # Imported here: a registry can only come from prometheus-client, which is then installed
    # (and if it is not, the import raises MissingExtra naming the extra).
    from router_lib.prometheus_metrics import PrometheusMetrics

    with _lock:
        metrics = _shared.get(registry)
        if metrics is None:
            metrics = _shared[registry] = RouterMetrics(PrometheusMetrics(registry))
        return metrics
