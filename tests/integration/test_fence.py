"""Fencing stops a reachable primary from inside, at once (no waiting for a pod to die)."""

from __future__ import annotations

import time

import pytest
from replicadb_operator.dataplane.probe import probe_instance
from replicadb_operator.local.topology import LocalTopology
from replicadb_operator.monitoring.failover_steps import stop_postgres

pytestmark = pytest.mark.postgres


async def test_stop_postgres_from_inside(topology: LocalTopology) -> None:
    started = time.monotonic()
    assert await stop_postgres(topology.dsn("pg-0"))
    probe = await probe_instance("pg-0", topology.dsn("pg-0"))
    assert not probe.reachable
    assert time.monotonic() - started < 5
    assert await stop_postgres(None) is False
    assert await stop_postgres(topology.dsn("pg-0")) is False  # already down: not by us
