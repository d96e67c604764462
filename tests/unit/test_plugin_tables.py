from __future__ import annotations

from typing import Any

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
