"""The operator's series that alerts and the dashboard need before anything happens."""

from __future__ import annotations

from prometheus_client import REGISTRY
from replicadb_operator.monitoring import metrics


def test_a_started_database_has_zero_failover_counters_and_is_not_blocked() -> None:
    metrics.start_database("ns-metrics", "db-metrics")
    labels = {"namespace": "ns-metrics", "database": "db-metrics"}
    for kind in ("failover", "switchover"):
        value = REGISTRY.get_sample_value("replicadb_failovers_total", {**labels, "kind": kind})
        assert value == 0.0
    assert REGISTRY.get_sample_value("replicadb_failover_blocked", labels) == 0.0
