"""The operator's Prometheus metrics, served on its metrics port (see README for the list)."""

from __future__ import annotations

import contextlib

from prometheus_client import Counter, Gauge, Histogram

from replicadb_operator.failover.record import Kind

LABELS = ("namespace", "database", "instance")
DB_LABELS = ("namespace", "database")

LAG_BYTES = Gauge(
    "replicadb_replica_lag_bytes", "Replica replay lag behind the primary, bytes", LABELS
)
LAG_SECONDS = Gauge(
    "replicadb_replica_lag_seconds",
    "How long the replica has been missing WAL the primary had",
    LABELS,
)
INSTANCE_UP = Gauge("replicadb_instance_up", "1 when the last probe succeeded", LABELS)
INSTANCE_IS_PRIMARY = Gauge(
    "replicadb_instance_is_primary", "1 on the primary, 0 on replicas", LABELS
)
TIMELINE = Gauge("replicadb_timeline", "Timeline of the current primary", DB_LABELS)
FAILOVERS = Counter(
    "replicadb_failovers_total", "Failovers and switchovers done", (*DB_LABELS, "kind")
)
LAST_FAILOVER_SECONDS = Gauge(
    "replicadb_last_failover_duration_seconds",
    "From the failover decision to the new primary accepting writes",
    DB_LABELS,
)
PROBE_SECONDS = Histogram(
    "replicadb_probe_duration_seconds",
    "Duration of one probe of one instance",
    DB_LABELS,
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0),
)
RECONCILE_SECONDS = Histogram(
    "replicadb_reconcile_duration_seconds", "Duration of one reconcile", DB_LABELS
)
RECONCILE_ERRORS = Counter("replicadb_reconcile_errors_total", "Failed reconciles", DB_LABELS)
STATUS_WRITES = Counter("replicadb_status_writes_total", "Status patches sent", DB_LABELS)
REPLICA_STREAMING = Gauge(
    "replicadb_replica_streaming",
    "1 when the replica's WAL receiver streams from the primary (replicas only)",
    LABELS,
)
FAILOVER_BLOCKED = Gauge(
    "replicadb_failover_blocked",
    "1 while the failed primary cannot be replaced automatically (status.failoverBlocked)",
    DB_LABELS,
)
SYNC_STANDBYS = Gauge(
    "replicadb_sync_standbys",
    "Standbys confirming commits now (pg_stat_replication sync_state sync or quorum)",
    DB_LABELS,
)
SYNC_STANDBYS_REQUIRED = Gauge(
    "replicadb_sync_standbys_required",
    "Standbys spec.replication asks to confirm each commit (0 when asynchronous)",
    DB_LABELS,
)


def start_database(namespace: str, database: str) -> None:
    """Series that must exist before anything happens: a counter born at 1 on the first
    failover has no earlier sample, so increase() and rate() would never see that failover."""
    for kind in Kind:
        FAILOVERS.labels(namespace, database, kind.value)
    FAILOVER_BLOCKED.labels(namespace, database).set(0)


def forget_series(gauge: Gauge, *labels: str) -> None:
    with contextlib.suppress(KeyError):
        gauge.remove(*labels)


def forget_instance(namespace: str, database: str, instance: str) -> None:
    for gauge in (LAG_BYTES, LAG_SECONDS, INSTANCE_UP, INSTANCE_IS_PRIMARY, REPLICA_STREAMING):
        forget_series(gauge, namespace, database, instance)
