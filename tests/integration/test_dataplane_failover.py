"""Failover on real processes: choice, promotion without loss, repoint, rewind and rejoin."""

from __future__ import annotations

import threading
import time

import psycopg
import pytest
from replicadb_operator.dataplane import instance_control
from replicadb_operator.dataplane.failover import (
    execute_failover,
    failover_policy,
    wait_for_primary_failure,
)
from replicadb_operator.dataplane.failover_target import choose_failover_target
from replicadb_operator.dataplane.monitor import TopologyMonitor
from replicadb_operator.dataplane.probe import probe_instance
from replicadb_operator.dataplane.sync_standbys import SyncMode, SyncSettings
from replicadb_operator.local.topology import LocalTopology

from tests.integration.sql import caught_up, eventually, execute, scalar

pytestmark = pytest.mark.postgres

QUORUM_ONE = SyncSettings(SyncMode.QUORUM, num_sync=1)


class Writer(threading.Thread):
    """Commits one row at a time and remembers exactly which commits were acknowledged."""

    def __init__(self, dsn: str) -> None:
        super().__init__(daemon=True)
        self.dsn = dsn
        self.acknowledged: list[int] = []
        self.error: Exception | None = None

    def run(self) -> None:
        try:
            with psycopg.connect(self.dsn, autocommit=True) as conn:
                for i in range(1, 10_000_000):
                    conn.execute("INSERT INTO acked (id) VALUES (%s)", (i,))
                    self.acknowledged.append(i)
        except psycopg.Error as exc:
            self.error = exc


async def noop_fence(name: str) -> None:
    """Local processes: the killed primary is already down."""


async def kill_and_fail_over(topology: LocalTopology, sync: SyncSettings) -> tuple[str, Writer]:
    primary = topology.dsn("pg-0")
    execute(primary, "CREATE TABLE acked (id int PRIMARY KEY)")
    monitor = TopologyMonitor(topology.dsns(), "pg-0")
    try:
        writer = Writer(primary)
        writer.start()
        eventually(lambda: len(writer.acknowledged) > 200, what="writer running")
        await monitor.sample()  # remembers timeline, position and sync states
        topology.kill("pg-0")
        writer.join(10)
        assert writer.error is not None, "the writer saw the primary die"
        snapshot = await wait_for_primary_failure(monitor, interval_s=0.2, threshold=2)
        result = await execute_failover(
            snapshot,
            failover_policy(snapshot, sync, max_lag_bytes=None),
            topology.dsns(),
            noop_fence,
            topology.follower_conninfo,
            sync,
        )
    finally:
        await monitor.close()
    topology.primary = result.new_primary
    return result.new_primary, writer


async def test_chooser_picks_the_most_advanced_replica(topology: LocalTopology) -> None:
    primary = topology.dsn("pg-0")
    execute(primary, "CREATE TABLE t (id int)")
    # pg-1 (first by name) stops receiving; pg-2 gets more WAL and must be chosen.
    await instance_control.repoint_replica(topology.dsn("pg-1"), "")
    eventually(
        lambda: scalar(topology.dsn("pg-1"), "SELECT count(*) FROM pg_stat_wal_receiver") == 0
    )
    execute(primary, "INSERT INTO t SELECT generate_series(1, 5000)")
    eventually(lambda: caught_up(primary, topology.dsn("pg-2")))
    monitor = TopologyMonitor(topology.dsns(), "pg-0")
    try:
        await monitor.sample()
        topology.kill("pg-0")
        snapshot = await wait_for_primary_failure(monitor, interval_s=0.1, threshold=2)
    finally:
        await monitor.close()
    receive = {c.name: c.receive_lsn or 0 for c in snapshot.candidates}
    assert receive["pg-2"] > receive["pg-1"]
    choice = choose_failover_target(
        snapshot.candidates, failover_policy(snapshot, SyncSettings(), max_lag_bytes=None)
    )
    assert choice.target == "pg-2"
    assert choice.rejected == {"pg-1": "less advanced than pg-2"}


@pytest.mark.slow
async def test_synchronous_failover_loses_no_acknowledged_row(topology: LocalTopology) -> None:
    await instance_control.set_synchronous_standby_names(
        topology.dsn("pg-0"), 'ANY 1 ("pg-1", "pg-2")'
    )
    new_primary, writer = await kill_and_fail_over(topology, QUORUM_ONE)

    dsn = topology.dsn(new_primary)
    assert scalar(dsn, "SELECT pg_is_in_recovery()") is False
    present = {row[0] for row in psycopg.connect(dsn).execute("SELECT id FROM acked").fetchall()}
    lost = [i for i in writer.acknowledged if i not in present]
    assert lost == [], f"{len(lost)} acknowledged rows lost"
    # The other replica now streams from the new primary; the sync setting follows.
    follower = next(n for n in topology.replicas if n != new_primary and n != "pg-0")
    execute(dsn, "INSERT INTO acked (id) VALUES (-1)")
    eventually(
        lambda: scalar(topology.dsn(follower), "SELECT count(*) FROM acked WHERE id = -1") == 1
    )
    assert scalar(dsn, "SHOW synchronous_standby_names") == f'ANY 1 ("pg-0", "{follower}")'


@pytest.mark.slow
async def test_former_primary_rewinds_and_follows_the_new_primary(topology: LocalTopology) -> None:
    new_primary, _ = await kill_and_fail_over(topology, SyncSettings())
    # The old primary had WAL the new one never got (async mode): a real rewind.
    topology.rejoin("pg-0", new_primary)
    probe = await probe_instance("pg-0", topology.dsn("pg-0"))
    assert probe.is_replica
    eventually(
        lambda: (
            scalar(topology.dsn("pg-0"), "SELECT status FROM pg_stat_wal_receiver") == "streaming"
        ),
        what="rejoined former primary streams",
    )
    sender = scalar(topology.dsn("pg-0"), "SELECT sender_host FROM pg_stat_wal_receiver")
    assert sender == topology.instances[new_primary].host
    execute(topology.dsn(new_primary), "INSERT INTO acked (id) VALUES (-42)")
    eventually(
        lambda: scalar(topology.dsn("pg-0"), "SELECT count(*) FROM acked WHERE id = -42") == 1,
        what="former primary replays a write made on the new primary",
    )
    assert scalar(topology.dsn("pg-0"), "SELECT pg_is_in_recovery()") is True


async def test_repoint_does_not_restart_the_replica(topology: LocalTopology) -> None:
    pid_before = scalar(topology.dsn("pg-2"), "SELECT pg_postmaster_start_time()")
    await instance_control.promote(topology.dsn("pg-1"))
    started = time.monotonic()
    await instance_control.repoint_replica(
        topology.dsn("pg-2"), topology.follower_conninfo("pg-1", "pg-2")
    )
    eventually(
        lambda: (
            scalar(topology.dsn("pg-2"), "SELECT sender_host FROM pg_stat_wal_receiver")
            == topology.instances["pg-1"].host
        ),
        what="pg-2 streams from pg-1",
    )
    assert time.monotonic() - started < 10
    assert scalar(topology.dsn("pg-2"), "SELECT pg_postmaster_start_time()") == pid_before


async def test_promote_is_safe_to_repeat(topology: LocalTopology) -> None:
    first = await instance_control.promote(topology.dsn("pg-1"))
    again = await instance_control.promote(topology.dsn("pg-1"))
    assert first > 0
    assert again == 0.0
    assert scalar(topology.dsn("pg-1"), "SELECT pg_is_in_recovery()") is False


async def test_detached_replica_streams_from_the_new_primary_once_repointed(
    topology: LocalTopology,
) -> None:
    """The operator's failover detaches every replica from the old primary before choosing.
    A replica whose WAL receiver was down (its primary killed) must still follow the new
    primary at once when repointed."""
    from replicadb_operator.failover.steps import detach_replicas

    execute(topology.dsn("pg-0"), "CREATE TABLE t (id int)")
    eventually(lambda: caught_up(topology.dsn("pg-0"), topology.dsn("pg-2")))
    topology.kill("pg-0")
    eventually(
        lambda: scalar(topology.dsn("pg-2"), "SELECT count(*) FROM pg_stat_wal_receiver") == 0,
        what="pg-2's receiver notices the dead primary",
    )
    failed = await detach_replicas({"pg-1": topology.dsn("pg-1"), "pg-2": topology.dsn("pg-2")})
    assert failed == []
    await instance_control.promote(topology.dsn("pg-1"))
    await instance_control.repoint_replica(
        topology.dsn("pg-2"), topology.follower_conninfo("pg-1", "pg-2")
    )
    execute(topology.dsn("pg-1"), "INSERT INTO t VALUES (7)")
    eventually(
        lambda: scalar(topology.dsn("pg-2"), "SELECT count(*) FROM t WHERE id = 7") == 1,
        timeout_s=5,
        what="pg-2 streams from pg-1 within 5 s",
    )
