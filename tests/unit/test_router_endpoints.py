"""Endpoints from the ReplicatedDatabase status contract and from static DSNs."""

from __future__ import annotations

from typing import Any

from psycopg.conninfo import conninfo_to_dict

from router_lib.conninfo import ConnectionSettings
from router_lib.endpoints import Role, Via, static_topology, topology_from_status
from router_lib.sources import StatusSource

SETTINGS = ConnectionSettings(
    user="app", password="s3cret", dbname="shop", sslmode="verify-full", sslrootcert="/ca.crt"
)


def status(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "primary": "db-0",
        "timeline": 3,
        "instances": [
            {
                "name": "db-0",
                "role": "primary",
                "address": "10.0.0.10",
                "port": 5432,
                "ready": True,
                "zone": "a",
                "receivedLsn": None,
                "replayedLsn": None,
                "lagBytes": 0,
                "lagSeconds": 0.0,
                "state": "running",
            },
            {
                "name": "db-1",
                "role": "replica",
                "address": "10.0.0.11",
                "port": 5432,
                "ready": True,
                "zone": "b",
                "receivedLsn": "0/3000148",
                "replayedLsn": "0/3000100",
                "lagBytes": 72,
                "lagSeconds": 0.25,
                "state": "streaming",
            },
            {
                "name": "db-2",
                "role": "replica",
                "address": "10.0.0.12",
                "port": 5433,
                "ready": False,
                "receivedLsn": "0/2000000",
                "replayedLsn": "0/2000000",
                "lagBytes": 16777544,
                "lagSeconds": 12.5,
                "state": "catching up",
            },
        ],
        "endpoints": {
            "readWrite": {"host": "shop-rw.ns.svc", "port": 5432},
            "readOnly": {"host": "shop-ro.ns.svc", "port": 5432},
            "poolerReadWrite": {"host": "shop-pooler.ns.svc", "port": 6432},
        },
    }
    base.update(overrides)
    return base


def test_status_becomes_a_topology_with_the_application_credentials() -> None:
    topology = topology_from_status(status(), SETTINGS)
    assert topology.timeline == 3
    assert topology.primary is not None
    assert (topology.primary.name, topology.primary.role) == ("db-0", Role.PRIMARY)
    primary = conninfo_to_dict(topology.primary.conninfo)
    assert primary["host"] == "10.0.0.10"
    assert primary["user"] == "app"
    assert primary["password"] == "s3cret"
    assert primary["sslmode"] == "verify-full"
    assert primary["sslrootcert"] == "/ca.crt"
    assert primary["dbname"] == "shop"
    db1, db2 = topology.replicas
    assert (db1.name, db1.zone, db1.ready, db1.status_lag_bytes) == ("db-1", "b", True, 72)
    assert db1.status_replay_lsn == 0x3000100
    assert db1.status_lag_seconds == 0.25
    assert (db2.port, db2.ready, db2.zone) == (5433, False, None)


def test_status_primary_field_wins_over_instance_roles() -> None:
    broken = status(primary="db-1")
    topology = topology_from_status(broken, SETTINGS)
    assert topology.primary is not None
    assert topology.primary.name == "db-1"
    # db-0 still says role: primary, but the status names db-1: db-0 is not used at all.
    assert [r.name for r in topology.replicas] == ["db-2"]


def test_writes_can_go_through_the_service_or_the_pooler() -> None:
    service = topology_from_status(status(), SETTINGS, Via.SERVICE).primary
    assert service is not None
    assert service.host == "shop-rw.ns.svc"
    assert service.via is Via.SERVICE
    pooler = topology_from_status(status(), SETTINGS, Via.POOLER).primary
    assert pooler is not None
    assert (pooler.host, pooler.port) == ("shop-pooler.ns.svc", 6432)
    assert pooler.via is Via.POOLER
    no_pooler = status(endpoints={"readWrite": {"host": "rw", "port": 5432}})
    fallback = topology_from_status(no_pooler, SETTINGS, Via.POOLER).primary
    assert fallback is not None
    assert fallback.host == "10.0.0.10"


def test_incomplete_status_entries_are_skipped() -> None:
    odd = status(
        instances=[
            {"name": "db-0", "role": "primary", "address": "10.0.0.10"},
            {"name": "db-1", "role": "replica"},  # no address yet
            {
                "name": "db-2",
                "role": "replica",
                "address": "10.0.0.12",
                "port": "x",
                "replayedLsn": "garbage",
            },
            "not an object",
        ]
    )
    topology = topology_from_status(odd, SETTINGS)
    assert topology.primary is not None
    assert topology.primary.port == 5432
    assert [(r.name, r.port, r.status_replay_lsn) for r in topology.replicas] == [
        ("db-2", 5432, None)
    ]
    assert topology_from_status({}, SETTINGS).primary is None


def test_static_dsns_keep_their_own_values_and_get_the_missing_ones() -> None:
    topology = static_topology(
        "host=p port=5433 user=owner", ["postgresql://r1:5432/db", "host=r2"], SETTINGS
    )
    assert topology.primary is not None
    primary = conninfo_to_dict(topology.primary.conninfo)
    assert primary["user"] == "owner"
    assert primary["password"] == "s3cret"
    assert (topology.primary.host, topology.primary.port) == ("p", 5433)
    assert [r.name for r in topology.replicas] == ["replica-1", "replica-2"]
    assert conninfo_to_dict(topology.replicas[0].conninfo)["dbname"] == "db"
    assert "s3cret" not in topology.primary.label


def test_status_source_publishes_only_changes() -> None:
    source = StatusSource(SETTINGS)
    seen: list[object] = []
    source.publish(status())
    source.start(seen.append)
    assert len(seen) == 1  # the status published before start
    source.publish(status())
    assert len(seen) == 1
    changed = status()
    changed["instances"][1]["lagBytes"] = 100
    source.publish(changed)
    assert len(seen) == 2
    source.request_refresh()
    assert source.refresh_requests == 1
