"""Client and server connection counts of a pooler, from the PgBouncer exporter in its pods
(port 9127). Pure: exposition text in, counts out; the plugin fetches the text."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

SERIES = {
    "pgbouncer_pools_client_active_connections": "clients_active",
    "pgbouncer_pools_client_waiting_connections": "clients_waiting",
    "pgbouncer_pools_server_active_connections": "servers_active",
    "pgbouncer_pools_server_idle_connections": "servers_idle",
}
ADMIN_DATABASE = "pgbouncer"  # the exporter's own connection, not an application's


@dataclass(frozen=True)
class PoolCounts:
    pods: int = 0
    clients_active: int = 0
    clients_waiting: int = 0
    servers_active: int = 0
    servers_idle: int = 0

    def __add__(self, other: PoolCounts) -> PoolCounts:
        return PoolCounts(
            self.pods + other.pods,
            self.clients_active + other.clients_active,
            self.clients_waiting + other.clients_waiting,
            self.servers_active + other.servers_active,
            self.servers_idle + other.servers_idle,
        )

    def describe(self) -> str:
        return (
            f"clients {self.clients_active} active / {self.clients_waiting} waiting, "
            f"servers {self.servers_active} active / {self.servers_idle} idle "
            f"({self.pods} pod{'s' if self.pods != 1 else ''})"
        )


def counts_from_exposition(text: str) -> PoolCounts:
    """One exporter's /metrics -> the counts of one pod, over every PgBouncer database and
    user but the admin console."""
    totals = dict.fromkeys(SERIES.values(), 0)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            field = SERIES.get(sample.name)
            if field and sample.labels.get("database") != ADMIN_DATABASE:
                totals[field] += int(sample.value)
    return PoolCounts(pods=1, **totals)


def total(counts: Iterable[PoolCounts]) -> PoolCounts:
    return sum(counts, PoolCounts())
