"""Consistency levels against real replication, with ground truth from the servers:
``inet_server_addr()`` says which instance answered, ``pg_wal_replay_pause()`` makes a
replica fall behind on purpose.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from functools import partial

import pytest
from prometheus_client import CollectorRegistry
from replicadb_operator.local.topology import LocalTopology

from router_lib.consistency import BOUNDED, EVENTUAL, READ_YOUR_WRITES
from router_lib.router import Router
from router_lib.session import Session
from tests.integration.conftest import replay_paused, replicated, server_of, static_config
from tests.integration.sql import caught_up, eventually, execute, scalar

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(120)]

READ = "SELECT v, inet_server_addr()::text FROM counters WHERE id = %s"
WRITE = "UPDATE counters SET v = v + 1 WHERE id = %s RETURNING v"


@pytest.fixture(scope="module")
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture(scope="module")
def router(shared_topology: LocalTopology, registry: CollectorRegistry) -> Iterator[Router]:
    primary = shared_topology.dsn(shared_topology.primary)
    execute(primary, "CREATE TABLE counters (id int PRIMARY KEY, v int NOT NULL)")
    execute(primary, "INSERT INTO counters SELECT g, 0 FROM generate_series(1, 10) g")
    # Replicas paused before they replay the table would have no table at all.
    replicated(shared_topology)
    config = static_config(shared_topology, ryw_wait_s=0.05, lag_probe_interval_s=0.1)
    with Router(config, registry=registry) as router:
        yield router


@pytest.fixture
def topology(shared_topology: LocalTopology) -> Iterator[LocalTopology]:
    """The shared topology, with replay running again after the test whatever happened."""
    yield shared_topology
    for name in shared_topology.replicas:
        replay_paused(shared_topology, name, False)
    primary = shared_topology.dsn(shared_topology.primary)
    for replica in [shared_topology.dsn(name) for name in shared_topology.replicas]:
        eventually(partial(caught_up, primary, replica), what="the replicas catch up")


def write_then_read(session: Session, topology: LocalTopology, key: int) -> tuple[int, int, str]:
    """(value written, value read back, instance that served the read)."""
    (written,) = session.query(WRITE, (key,))[0]
    value, address = session.query(READ, (key,))[0]
    return written, value, server_of(topology, address)


def test_read_your_writes_never_reads_stale_data_from_a_paused_replica(
    router: Router, topology: LocalTopology, registry: CollectorRegistry
) -> None:
    for name in topology.replicas:
        replay_paused(topology, name, True)
    session = router.session(READ_YOUR_WRITES)
    served: Counter[str] = Counter()
    for _ in range(10):
        written, read, server = write_then_read(session, topology, 1)
        assert read == written
        served[server] += 1
    # Only the primary had the writes; the replicas really were stale.
    assert served == {topology.primary: 10}
    assert (registry.get_sample_value("replicadb_router_ryw_waits_total") or 0) >= 10
    fallbacks = {"reason": "fallback_ryw"}
    assert (registry.get_sample_value("replicadb_router_fallbacks_total", fallbacks) or 0) >= 10
    stale = scalar(topology.dsn(topology.replicas[0]), "SELECT v FROM counters WHERE id = 1")
    assert stale < written
    # The same reads at EVENTUAL do reach the paused replicas and do see old data.
    eventual = router.session(EVENTUAL)
    value, address = eventual.query(READ, (1,))[0]
    assert server_of(topology, address) in topology.replicas
    assert value < written


def test_read_your_writes_uses_a_replica_that_has_replayed_while_another_is_paused(
    router: Router, topology: LocalTopology
) -> None:
    paused, running = topology.replicas
    replay_paused(topology, paused, True)
    session = router.session(READ_YOUR_WRITES)
    served: Counter[str] = Counter()
    for _ in range(20):
        written, read, server = write_then_read(session, topology, 2)
        assert read == written
        served[server] += 1
    assert served[paused] == 0
    assert served[running] >= 15  # the rest: waits that ran out, served by the primary


def test_with_replay_running_most_read_your_writes_reads_hit_replicas(
    router: Router, topology: LocalTopology
) -> None:
    session = router.session(READ_YOUR_WRITES)
    served: Counter[str] = Counter()
    for _ in range(50):
        written, read, server = write_then_read(session, topology, 3)
        assert read == written
        served[server] += 1
    assert served[topology.primary] <= 10, served
    assert sum(served[name] for name in topology.replicas) >= 40


def test_router_writes_read_their_position_only_when_a_read_your_writes_read_needs_it(
    router: Router, topology: LocalTopology
) -> None:
    """The router's own (EVENTUAL) state saves the position round trip on each write; a
    per-call read-your-writes read then reads the primary's position and is still right."""
    config = static_config(
        topology, consistency=EVENTUAL, ryw_wait_s=0.05, lag_probe_interval_s=0.1
    )
    del router  # only for its table: this test needs a router state of its own
    with Router(config, registry=CollectorRegistry()) as own:
        for name in topology.replicas:
            replay_paused(topology, name, True)
        for _ in range(3):
            before = own.write_lsn
            (written,) = own.query(WRITE, (4,))[0]
            assert own.write_lsn == before  # no position read back after the write
            value, address = own.query(READ, (4,), consistency=READ_YOUR_WRITES)[0]
            assert value == written
            assert server_of(topology, address) == topology.primary  # replicas are stale
            assert own.write_lsn > before  # read for that read
        for name in topology.replicas:
            replay_paused(topology, name, False)
        served: Counter[str] = Counter()
        for _ in range(20):
            (written,) = own.query(WRITE, (4,))[0]
            value, address = own.query(READ, (4,), consistency=READ_YOUR_WRITES)[0]
            assert value == written
            served[server_of(topology, address)] += 1
        assert sum(served[name] for name in topology.replicas) >= 10, served


class Writer(threading.Thread):
    """Keeps the primary's WAL moving (a paused replica only falls behind if there is
    something to fall behind on)."""

    def __init__(self, dsn: str) -> None:
        super().__init__(daemon=True)
        self.dsn = dsn
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.02):
            execute(self.dsn, "UPDATE counters SET v = v + 1 WHERE id = 10")


def servers_for(session: Session, topology: LocalTopology, reads: int) -> Counter[str]:
    served: Counter[str] = Counter()
    for _ in range(reads):
        _, address = session.query(READ, (10,))[0]
        served[server_of(topology, address)] += 1
    return served


def test_bounded_excludes_a_lagging_replica_and_readmits_it_after_catch_up(
    router: Router, topology: LocalTopology
) -> None:
    lagging, fresh = topology.replicas
    session = router.session(BOUNDED(max_lag_seconds=1.0))
    writer = Writer(topology.dsn(topology.primary))
    writer.start()
    try:
        eventually(lambda: servers_for(session, topology, 10)[lagging] > 0, what="both used")
        replay_paused(topology, lagging, True)
        time.sleep(1.5)  # behind by more than the bound now
        served = servers_for(session, topology, 30)
        assert served[lagging] == 0, served
        assert served[fresh] == 30, served
        replay_paused(topology, lagging, False)
        eventually(
            lambda: servers_for(session, topology, 10)[lagging] > 0,
            timeout_s=10,
            what="the caught-up replica is read from again",
        )
    finally:
        writer.stop.set()
        writer.join()


def test_bounded_falls_back_to_the_primary_when_no_replica_is_fresh_enough(
    router: Router, topology: LocalTopology
) -> None:
    writer = Writer(topology.dsn(topology.primary))
    writer.start()
    try:
        for name in topology.replicas:
            replay_paused(topology, name, True)
        time.sleep(1.2)
        served = servers_for(router.session(BOUNDED(max_lag_seconds=1.0)), topology, 10)
        assert served == {topology.primary: 10}
    finally:
        writer.stop.set()
        writer.join()
