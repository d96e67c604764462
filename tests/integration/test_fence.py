"""Fencing stops a reachable primary from inside, at once (no waiting for a pod to die)."""

from __future__ import annotations

import time

import pytest
from psycopg.conninfo import make_conninfo
from replicadb_operator.dataplane.probe import probe_instance
from replicadb_operator.failover.steps import stop_postgres, wait_no_writes
from replicadb_operator.local.topology import LocalTopology

pytestmark = pytest.mark.postgres


async def test_stop_postgres_from_inside(topology: LocalTopology) -> None:
    started = time.monotonic()
    assert await stop_postgres(topology.dsn("pg-0"))
    probe = await probe_instance("pg-0", topology.dsn("pg-0"))
    assert not probe.reachable
    assert time.monotonic() - started < 5
    assert await stop_postgres(None) is False
    assert await stop_postgres(topology.dsn("pg-0")) is False  # already down: not by us


async def test_no_writes_is_confirmed_only_once_the_server_stopped(
    topology: LocalTopology,
) -> None:
    """A label or a deleted pod proves nothing: the fence waits for the server itself."""
    dsn = topology.dsn("pg-0")
    assert not await wait_no_writes([dsn], timeout_s=0.3)
    assert await stop_postgres(dsn)
    assert await wait_no_writes([dsn], timeout_s=5)
    replaced_pod = make_conninfo(dsn, host="127.255.255.254", connect_timeout=1)
    assert await wait_no_writes([replaced_pod], timeout_s=1)
