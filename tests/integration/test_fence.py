"""Fencing stops a reachable primary from inside, at once (no waiting for a pod to die)."""

from __future__ import annotations

import time

import pytest
from psycopg.conninfo import make_conninfo
from replicadb_operator.dataplane.probe import probe_instance
from replicadb_operator.local.topology import LocalTopology
from replicadb_operator.monitoring.failover_steps import fence, stop_postgres
from replicadb_operator.spec import parse_spec

pytestmark = pytest.mark.postgres


async def test_stop_postgres_from_inside(topology: LocalTopology) -> None:
    started = time.monotonic()
    assert await stop_postgres(topology.dsn("pg-0"))
    probe = await probe_instance("pg-0", topology.dsn("pg-0"))
    assert not probe.reachable
    assert time.monotonic() - started < 5
    assert await stop_postgres(None) is False
    assert await stop_postgres(topology.dsn("pg-0")) is False  # already down: not by us


async def test_fence_stops_the_old_container_at_its_last_seen_address(
    topology: LocalTopology,
) -> None:
    """A pod deleted with grace 0 is replaced by one with a new address (nothing answers
    there yet) while its old container still serves at the old one: fencing must stop that."""
    db = parse_spec("shop", "prod", {"replicas": 2})
    replaced_pod = make_conninfo(topology.dsn("pg-0"), host="127.255.255.254", connect_timeout=1)
    await fence(db, "pg-0", pod_exists=False, dsn=replaced_pod, last_seen_dsn=topology.dsn("pg-0"))
    assert not (await probe_instance("pg-0", topology.dsn("pg-0"))).reachable
