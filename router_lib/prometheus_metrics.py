"""The router's metrics as prometheus_client objects in a registry (the ``metrics`` extra).

:mod:`router_lib.metrics` imports this module only when a router is given a registry, so
an application without prometheus-client never loads it.
"""

from __future__ import annotations

from collections.abc import Iterator

from router_lib.extras import MissingExtra
from router_lib.metrics import CountingMetric, GaugeMetric, ObservingMetric, QueryCounter
from router_lib.query_tally import QueryTally

try:
    from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
    from prometheus_client.core import CounterMetricFamily
    from prometheus_client.registry import Collector
except ModuleNotFoundError as exc:
    raise MissingExtra("metrics", "exporting router metrics to Prometheus") from exc


class QueryTallyCollector(Collector):
    """Hands a :class:`QueryTally`'s sums to Prometheus when it collects."""

    def __init__(self, tally: QueryTally) -> None:
        self.tally = tally

    def _family(self) -> CounterMetricFamily:
        return CounterMetricFamily(
            QueryTally.name, QueryTally.documentation, labels=("target", "reason")
        )

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = self._family()
        for (target, reason), count in sorted(self.tally.totals().items()):
            family.add_metric((target, reason), count)
        yield family

    def describe(self) -> Iterator[CounterMetricFamily]:
        yield self._family()


class PrometheusMetrics:
    """The :class:`~router_lib.metrics.MetricFactory` registering into ``registry``."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry

    def counter(
        self, name: str, documentation: str, labels: tuple[str, ...] = ()
    ) -> CountingMetric:
        return Counter(name, documentation, labels, registry=self.registry)

    def gauge(self, name: str, documentation: str, labels: tuple[str, ...]) -> GaugeMetric:
        return Gauge(name, documentation, labels, registry=self.registry)

    def histogram(
        self, name: str, documentation: str, buckets: tuple[float, ...]
    ) -> ObservingMetric:
        return Histogram(name, documentation, buckets=buckets, registry=self.registry)

    def query_counter(self) -> QueryCounter:
        tally = QueryTally()
        self.registry.register(QueryTallyCollector(tally))
        return tally
