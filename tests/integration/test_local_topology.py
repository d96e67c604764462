"""The local topology cleans up after runs that could not (killed by a signal or timeout)."""

from __future__ import annotations

import subprocess
import time

import pytest
from replicadb_operator.dataplane.datadir import RunAs
from replicadb_operator.local.topology import LocalTopology, reap_abandoned

from tests.integration.sql import scalar

pytestmark = pytest.mark.postgres


def test_topology_of_a_dead_owner_is_stopped_and_removed(pg_user: RunAs | None) -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    topology = LocalTopology(replicas=1, run_as=pg_user)
    try:
        topology.start(owner_pid=dead.pid)
        assert scalar(topology.dsn("pg-1"), "SELECT pg_is_in_recovery()") is True
        assert topology.base in reap_abandoned(topology.base.parent)
        assert not topology.base.exists()
        deadline = time.monotonic() + 10
        while subprocess.run(["pgrep", "-f", str(topology.base)], check=False).returncode == 0:
            assert time.monotonic() < deadline, "servers still running"
            time.sleep(0.05)
    finally:
        topology.destroy()


def test_topology_of_a_live_owner_is_left_alone(pg_user: RunAs | None) -> None:
    topology = LocalTopology(replicas=0, run_as=pg_user)
    try:
        topology.start()
        assert topology.base not in reap_abandoned(topology.base.parent)
        assert scalar(topology.dsn("pg-0"), "SELECT 1") == 1
    finally:
        topology.destroy()
