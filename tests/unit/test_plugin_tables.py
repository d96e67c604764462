from __future__ import annotations

from typing import Any

from replicadb_operator.cli import pooler_counts
from replicadb_operator.cli.tables import health_code, render_status

OBJ: dict[str, Any] = {
    "spec": {"pgbouncer": {"enabled": True, "poolMode": "transaction"}},
    "status": {
        "phase": "Degraded",
        "primary": "shop-replica-0",
        "timeline": 2,
        "readyReplicas": "1/2",
        "maxLag": "2.0 KiB, 0.4s",
        "instances": [
            {"name": "shop-primary-0", "role": "unknown", "ready": False, "state": "down"},
            {
                "name": "shop-replica-0",
                "role": "primary",
                "ready": True,
                "state": "primary",
                "timeline": 2,
                "currentLsn": "0/5000060",
                "zone": "a",
            },
            {
                "name": "shop-replica-1",
                "role": "replica",
                "ready": True,
                "state": "streaming",
                "timeline": 2,
                "receivedLsn": "0/5000060",
                "replayedLsn": "0/4FFF860",
                "lagBytes": 2048,
                "lagSeconds": 0.4,
                "zone": "b",
            },
        ],
        "endpoints": {"readWrite": {"host": "shop-rw.prod.svc", "port": 5432}},
        "lastFailover": {
            "time": "2026-11-28T20:00:00Z",
            "from": "shop-primary-0",
            "to": "shop-replica-0",
            "reason": "pod gone",
            "lagBytes": 0,
            "durationSeconds": 0.05,
        },
        "conditions": [{"type": "Degraded", "status": "True", "message": "shop-primary-0: down"}],
    },
}


def test_status_shows_topology_lag_endpoints_failover_and_problems() -> None:
    text = render_status("shop", "prod", OBJ)
    assert "ReplicatedDatabase prod/shop: Degraded" in text
    assert "shop-replica-0 *" in text  # the primary is starred
    assert "2.0 KiB / 0.4s" in text
    assert "shop-rw.prod.svc:5432" in text
    assert "shop-primary-0 -> shop-replica-0" in text
    assert "! Degraded: shop-primary-0: down" in text
    assert "transaction mode" in text


def test_health_exit_codes() -> None:
    assert health_code({"status": {"phase": "Healthy"}}) == 0
    assert health_code(OBJ) == 1
    assert health_code({"status": {"phase": "PrimaryUnavailable"}}) == 2
    assert health_code({}) == 2


EXPOSITION = """\
# HELP pgbouncer_pools_client_active_connections Client connections linked to a server
# TYPE pgbouncer_pools_client_active_connections gauge
pgbouncer_pools_client_active_connections{database="app",user="app"} 3.0
pgbouncer_pools_client_active_connections{database="pgbouncer",user="postgres"} 1.0
# HELP pgbouncer_pools_client_waiting_connections Client connections waiting
# TYPE pgbouncer_pools_client_waiting_connections gauge
pgbouncer_pools_client_waiting_connections{database="app",user="app"} 2.0
# HELP pgbouncer_pools_server_active_connections Server connections linked to a client
# TYPE pgbouncer_pools_server_active_connections gauge
pgbouncer_pools_server_active_connections{database="app",user="app"} 3.0
# HELP pgbouncer_pools_server_idle_connections Server connections unused
# TYPE pgbouncer_pools_server_idle_connections gauge
pgbouncer_pools_server_idle_connections{database="app",user="app"} 1.0
# HELP pgbouncer_up PgBouncer is UP
# TYPE pgbouncer_up gauge
pgbouncer_up 1.0
"""


def test_pooler_counts_from_the_exporter_leave_out_its_own_admin_connection() -> None:
    one = pooler_counts.counts_from_exposition(EXPOSITION)
    assert one == pooler_counts.PoolCounts(
        pods=1, clients_active=3, clients_waiting=2, servers_active=3, servers_idle=1
    )
    both = pooler_counts.total([one, one])
    assert both.pods == 2
    assert both.clients_active == 6
    text = render_status("shop", "prod", OBJ, {"rw": both, "ro": "counts unavailable (X)"})
    assert "pooler rw   clients 6 active / 4 waiting, servers 6 active / 2 idle (2 pods)" in text
    assert "pooler ro   counts unavailable (X)" in text
