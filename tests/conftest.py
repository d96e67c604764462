"""Fixtures that start real PostgreSQL and PgBouncer processes on loopback.

``topology`` gives a primary and two streaming replicas (``pg-0`` primary, each instance on
its own 127.B.0.x address, port 5432), stopped and removed after the test. Tests that break
the topology (kill, promote, rewind) get their own; read-only tests may share the module one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from replicadb_operator.dataplane.datadir import RunAs
from replicadb_operator.local.os_user import server_user
from replicadb_operator.local.pgbouncer import LocalPgBouncer, PoolerSettings
from replicadb_operator.local.topology import LocalTopology, reap_abandoned

TopologyFactory = Callable[..., LocalTopology]


@pytest.fixture(scope="session")
def pg_user() -> RunAs | None:
    reap_abandoned()  # what an earlier run killed by a signal left behind
    return server_user()


@pytest.fixture
def make_topology(pg_user: RunAs | None) -> Iterator[TopologyFactory]:
    """Start topologies on demand; every one is destroyed when the test ends."""
    started: list[LocalTopology] = []

    def factory(replicas: int = 2, parameters: dict[str, str] | None = None) -> LocalTopology:
        topology = LocalTopology(replicas=replicas, run_as=pg_user, parameters=parameters)
        started.append(topology)
        topology.start()
        return topology

    yield factory
    for topology in started:
        topology.destroy()


@pytest.fixture
def topology(make_topology: TopologyFactory) -> LocalTopology:
    return make_topology()


@pytest.fixture(scope="module")
def shared_topology(pg_user: RunAs | None) -> Iterator[LocalTopology]:
    """One topology for a module whose tests leave roles and replication as they found them."""
    topology = LocalTopology(replicas=2, run_as=pg_user)
    try:
        topology.start()
        yield topology
    finally:
        topology.destroy()


@pytest.fixture
def pgbouncer(topology: LocalTopology) -> Iterator[LocalPgBouncer]:
    bouncer = LocalPgBouncer(topology, PoolerSettings())
    bouncer.start()
    try:
        yield bouncer
    finally:
        bouncer.stop()
