"""Lag against ground truth on real streaming replicas."""

from __future__ import annotations

import asyncio

import pytest
from replicadb_operator.dataplane.lsn import parse_lsn
from replicadb_operator.dataplane.monitor import TopologyMonitor, TopologySnapshot
from replicadb_operator.local.topology import LocalTopology

from tests.integration.sql import caught_up, eventually, execute, scalar

pytestmark = pytest.mark.postgres


async def sample_while_primary_still(
    topology: LocalTopology, monitor: TopologyMonitor
) -> TopologySnapshot:
    """A sample taken while the primary wrote nothing, so that SQL taken before and after
    it is ground truth for it."""
    primary = topology.dsn(topology.primary)
    for _ in range(20):
        before = scalar(primary, "SELECT pg_current_wal_lsn()::text")
        snapshot = await monitor.sample()
        if scalar(primary, "SELECT pg_current_wal_lsn()::text") == before:
            return snapshot
    raise AssertionError("the primary never stood still")


async def test_lag_bytes_equal_pg_wal_lsn_diff_while_replay_is_paused(
    topology: LocalTopology,
) -> None:
    primary, paused = topology.dsn("pg-0"), topology.dsn("pg-1")
    execute(paused, "SELECT pg_wal_replay_pause()")
    eventually(lambda: scalar(paused, "SELECT pg_get_wal_replay_pause_state()") == "paused")
    execute(primary, "CREATE TABLE rows AS SELECT g AS id FROM generate_series(1, 10000) g")
    target = scalar(primary, "SELECT pg_current_wal_lsn()::text")
    eventually(
        lambda: scalar(paused, "SELECT pg_last_wal_receive_lsn() >= %s::pg_lsn", (target,)),
        what="the paused replica still receives",
    )
    eventually(lambda: caught_up(primary, topology.dsn("pg-2")))

    monitor = TopologyMonitor(topology.dsns(), "pg-0")
    try:
        first = await sample_while_primary_still(topology, monitor)
        replayed = scalar(paused, "SELECT pg_last_wal_replay_lsn()::text")
        truth = scalar(
            primary, "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), %s::pg_lsn)", (replayed,)
        )
        assert truth > 0
        assert first.lags["pg-1"].replay_bytes == int(truth)
        assert first.lags["pg-1"].receive_bytes == 0
        assert first.lags["pg-2"].replay_bytes == 0
        assert first.probes["pg-1"].replay_paused
        assert first.probes["pg-1"].replay_lsn == parse_lsn(replayed)

        await asyncio.sleep(1.0)
        later = await monitor.sample()
        seconds = later.lags["pg-1"].seconds
        assert seconds is not None
        assert seconds >= 1.0, "seconds lag grows while replay is paused"
        assert later.lags["pg-2"].seconds == 0.0

        execute(paused, "SELECT pg_wal_replay_resume()")
        eventually(lambda: caught_up(primary, paused))
        resumed = await sample_while_primary_still(topology, monitor)
        assert resumed.lags["pg-1"].replay_bytes == 0
        assert resumed.lags["pg-1"].seconds == 0.0
    finally:
        await monitor.close()


@pytest.mark.slow
async def test_seconds_lag_stays_zero_on_an_idle_caught_up_cluster(
    topology: LocalTopology,
) -> None:
    primary = topology.dsn("pg-0")
    execute(primary, "CREATE TABLE t (id int)")
    execute(primary, "INSERT INTO t SELECT generate_series(1, 100)")
    for replica in topology.replicas:
        eventually(lambda r=replica: caught_up(primary, topology.dsn(r)))  # type: ignore[misc]
    monitor = TopologyMonitor(topology.dsns(), "pg-0")
    try:
        for _ in range(11):  # 10 s
            snapshot = await monitor.sample()
            assert {n: lag.seconds for n, lag in snapshot.lags.items()} == {
                "pg-1": 0.0,
                "pg-2": 0.0,
            }
            assert {n: lag.replay_bytes for n, lag in snapshot.lags.items()} == {
                "pg-1": 0,
                "pg-2": 0,
            }
            await asyncio.sleep(1.0)
    finally:
        await monitor.close()


async def test_probe_reports_roles_timeline_receiver_and_replication_rows(
    topology: LocalTopology,
) -> None:
    monitor = TopologyMonitor(topology.dsns(), "pg-0")
    try:
        snapshot = await monitor.sample()
    finally:
        await monitor.close()
    primary = snapshot.probes["pg-0"]
    assert primary.is_primary
    assert primary.timeline == 1
    assert sorted(p.application_name for p in primary.replication) == ["pg-1", "pg-2"]
    assert all(p.state == "streaming" for p in primary.replication)
    for name in ("pg-1", "pg-2"):
        replica = snapshot.probes[name]
        assert replica.is_replica
        assert replica.streaming
        assert replica.wal_receiver is not None
        assert replica.wal_receiver.sender_host == topology.instances["pg-0"].host
        assert replica.timeline == 1
    assert snapshot.writable == ["pg-0"]


async def test_unreachable_instance_is_reported_within_the_deadline(
    topology: LocalTopology,
) -> None:
    topology.kill("pg-2")
    monitor = TopologyMonitor(topology.dsns(), "pg-0")
    try:
        snapshot = await monitor.sample()
    finally:
        await monitor.close()
    down = snapshot.probes["pg-2"]
    assert not down.reachable
    assert down.error
    assert down.duration_s < 2.0
    assert snapshot.lags["pg-2"].replay_bytes is None
    assert not next(c for c in snapshot.candidates if c.name == "pg-2").healthy
