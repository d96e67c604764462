"""Failover cycle on local processes, repeated: kill the primary, detect at the default probe
interval and failure threshold, promote, measure the first successful write, check that no
acknowledged row was lost, rewind the old primary back in. Plus PgBouncer's client count.

Run with ``make bench-dataplane``; figures go to .bench/dataplane.json.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from dataclasses import dataclass

import psycopg
from replicadb_operator.dataplane import instance_control
from replicadb_operator.dataplane.failover import (
    DEFAULT_FAILURE_THRESHOLD,
    DEFAULT_PROBE_INTERVAL_S,
    execute_failover,
    failover_policy,
    wait_for_primary_failure,
)
from replicadb_operator.dataplane.monitor import TopologyMonitor
from replicadb_operator.dataplane.sync_standbys import (
    SyncMode,
    SyncSettings,
    synchronous_standby_names,
)
from replicadb_operator.local.client_load import hold_clients
from replicadb_operator.local.os_user import server_user
from replicadb_operator.local.pgbouncer import LocalPgBouncer
from replicadb_operator.local.topology import LocalTopology

from bench.report import maximum, median, progress, write_report

CYCLES = 5
SYNC = SyncSettings(SyncMode.QUORUM, num_sync=1)
PGBOUNCER_CLIENTS = 1000


class RoutedWriter(threading.Thread):
    """Commits rows to whatever ``primary_dsn`` currently names, like an application whose
    router follows the failover; reconnects on error. Records acknowledged ids and when
    writes succeeded."""

    def __init__(self, primary_dsn: str) -> None:
        super().__init__(daemon=True)
        self.primary_dsn = primary_dsn
        self.acknowledged: list[int] = []
        self.first_success_after: dict[float, float] = {}
        self.stop = threading.Event()
        self._next = 1
        self._lock = threading.Lock()
        self._watch: float | None = None

    def first_write_after(self, moment: float) -> None:
        with self._lock:
            self._watch = moment

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                with psycopg.connect(self.primary_dsn, autocommit=True, connect_timeout=2) as conn:
                    while not self.stop.is_set():
                        ident = self._next
                        conn.execute("INSERT INTO acked (id) VALUES (%s)", (ident,))
                        self._next += 1
                        self.acknowledged.append(ident)
                        with self._lock:
                            if self._watch is not None:
                                self.first_success_after[self._watch] = time.monotonic()
                                self._watch = None
                        time.sleep(0.002)
            except psycopg.Error:
                self._next += 1  # that id may or may not have committed: never reuse it
                time.sleep(0.005)


@dataclass
class Cycle:
    kill_to_write_ms: float
    promote_to_write_ms: float
    lost: int
    rewind_catchup_s: float


async def noop_fence(name: str) -> None:
    """The killed primary is already down."""


async def one_cycle(topology: LocalTopology, writer: RoutedWriter) -> Cycle:
    old = topology.primary
    monitor = TopologyMonitor(topology.dsns(), old)
    try:
        detection = asyncio.create_task(
            wait_for_primary_failure(monitor, DEFAULT_PROBE_INTERVAL_S, DEFAULT_FAILURE_THRESHOLD)
        )
        # The monitor is running; the fault lands at a random point of its schedule.
        await asyncio.sleep(1.0 + random.uniform(0, DEFAULT_PROBE_INTERVAL_S))
        acked_before = len(writer.acknowledged)
        killed_at = time.monotonic()
        await asyncio.to_thread(topology.kill, old)
        # Only a write that starts after the old primary is gone counts as "first write".
        writer.first_write_after(killed_at)
        snapshot = await detection
        decided_at = time.monotonic()
        result = await execute_failover(
            snapshot,
            failover_policy(snapshot, SYNC, max_lag_bytes=None),
            topology.dsns(),
            noop_fence,
            topology.follower_conninfo,
            SYNC,
        )
    finally:
        await monitor.close()
    new = result.new_primary
    topology.primary = new
    writer.primary_dsn = topology.dsn(new)
    deadline = time.monotonic() + 30
    while killed_at not in writer.first_success_after:
        if time.monotonic() > deadline:
            raise RuntimeError("no write succeeded within 30 s of the failover")
        await asyncio.sleep(0.001)
    first_write = writer.first_success_after[killed_at]
    progress(
        f"  promote {result.promote_s * 1000:.0f} ms, whole failover {result.total_s * 1000:.0f} ms"
    )

    acked = writer.acknowledged[:acked_before]
    with psycopg.connect(topology.dsn(new)) as conn:
        present = {row[0] for row in conn.execute("SELECT id FROM acked").fetchall()}
    lost = sum(1 for ident in acked if ident not in present)

    rejoin_started = time.monotonic()
    topology.rejoin(old, new)
    target = await instance_control.current_wal_lsn(topology.dsn(new))
    await instance_control.wait_for_replay(topology.dsn(old), target, timeout_s=60)
    rewind_s = time.monotonic() - rejoin_started
    healthy = topology.replicas
    await instance_control.set_synchronous_standby_names(
        topology.dsn(new), synchronous_standby_names(SYNC, healthy, healthy)
    )
    return Cycle(
        kill_to_write_ms=(first_write - killed_at) * 1000,
        promote_to_write_ms=(first_write - decided_at) * 1000,
        lost=lost,
        rewind_catchup_s=rewind_s,
    )


async def pgbouncer_figures(topology: LocalTopology) -> tuple[int, int]:
    bouncer = LocalPgBouncer(topology)
    bouncer.start()
    try:
        held, errors = await hold_clients(bouncer.dsn(), PGBOUNCER_CLIENTS)
    finally:
        bouncer.stop()
    return held, len(errors)


async def main() -> None:
    progress("starting a primary and 2 streaming replicas (synchronous, ANY 1)")
    topology = LocalTopology(replicas=2, run_as=server_user())
    writer: RoutedWriter | None = None
    try:
        topology.start()
        primary = topology.dsn(topology.primary)
        await instance_control.set_synchronous_standby_names(
            primary, synchronous_standby_names(SYNC, topology.replicas, topology.replicas)
        )
        with psycopg.connect(primary, autocommit=True) as conn:
            conn.execute("CREATE TABLE acked (id bigint PRIMARY KEY)")
        progress(f"PgBouncer: {PGBOUNCER_CLIENTS} clients at once against max_connections=100")
        held, pgb_errors = await pgbouncer_figures(topology)
        writer = RoutedWriter(primary)
        writer.start()
        cycles: list[Cycle] = []
        for i in range(CYCLES):
            await asyncio.sleep(1.0)
            progress(f"failover cycle {i + 1}/{CYCLES}: killing {topology.primary}")
            cycle = await one_cycle(topology, writer)
            progress(
                f"  new primary {topology.primary}: kill->write {cycle.kill_to_write_ms:.0f} ms, "
                f"promote->write {cycle.promote_to_write_ms:.0f} ms, lost {cycle.lost}, "
                f"rewind+catch-up {cycle.rewind_catchup_s:.2f} s"
            )
            cycles.append(cycle)
    finally:
        if writer is not None:
            writer.stop.set()
            writer.join(5)
        topology.destroy()
    write_report(
        "dataplane",
        {
            "promote_to_write_ms_p50": median([c.promote_to_write_ms for c in cycles]),
            "promote_to_write_ms_max": maximum([c.promote_to_write_ms for c in cycles]),
            "kill_to_write_ms_p50": median([c.kill_to_write_ms for c in cycles]),
            "kill_to_write_ms_max": maximum([c.kill_to_write_ms for c in cycles]),
            "rewind_catchup_s_p50": median([c.rewind_catchup_s for c in cycles]),
            "pgbouncer_clients_held": held,
            "pgbouncer_errors": pgb_errors,
            "acknowledged_rows_lost": sum(c.lost for c in cycles),
        },
        {
            "kill_to_write_ms_p50": (
                f"probe every {DEFAULT_PROBE_INTERVAL_S:.0f} s, "
                f"threshold {DEFAULT_FAILURE_THRESHOLD}; goal < 3000"
            ),
            "promote_to_write_ms_p50": "decision to first commit; goal < 500",
            "acknowledged_rows_lost": f"over {CYCLES} cycles, synchronous ANY 1",
        },
    )


if __name__ == "__main__":
    asyncio.run(main())
