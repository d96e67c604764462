"""Probe one PostgreSQL instance: is it up, which role, where is its WAL.

One probe is three short queries on a connection the prober keeps between probes (a fresh
connection costs ~2.5 ms and a backend fork; a kept one ~0.1 ms a query). Every probe runs
under a hard deadline: a probe that cannot finish in time reports the instance unreachable,
which is what failure detection needs, and never blocks the caller longer than the deadline.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row

from replicadb_operator.dataplane.lsn import Lsn, parse_optional_lsn

# One round trip for what every instance can answer. pg_walfile_name() is refused during
# recovery, hence the CASE; on a primary the timeline is the one its WAL is written on now
# (pg_control_checkpoint() lags behind a promotion until the next checkpoint).
_STATE_SQL = """
SELECT pg_is_in_recovery() AS in_recovery,
       CASE WHEN pg_is_in_recovery() THEN NULL
            ELSE pg_current_wal_lsn()::text END AS current_lsn,
       CASE WHEN pg_is_in_recovery() THEN NULL
            ELSE ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int
       END AS primary_timeline,
       (SELECT timeline_id FROM pg_control_checkpoint()) AS checkpoint_timeline,
       pg_last_wal_receive_lsn()::text AS receive_lsn,
       pg_last_wal_replay_lsn()::text AS replay_lsn,
       pg_last_xact_replay_timestamp() AS last_replay_time,
       CASE WHEN pg_is_in_recovery() THEN pg_is_wal_replay_paused() ELSE false END
           AS replay_paused,
       current_setting('synchronous_standby_names') AS synchronous_standby_names
"""

# received_tli stays on the old timeline until WAL of the new one arrives (an idle primary
# after a failover sends none); receive_start_tli is the timeline streaming started on.
_RECEIVER_SQL = """
SELECT status, sender_host, sender_port,
       greatest(received_tli, receive_start_tli) AS received_tli, slot_name,
       extract(epoch FROM now() - last_msg_receipt_time)::float8 AS silent_s
FROM pg_stat_wal_receiver
"""

_REPLICATION_SQL = """
SELECT application_name, client_addr::text AS client_addr, state,
       sent_lsn::text AS sent_lsn, write_lsn::text AS write_lsn,
       flush_lsn::text AS flush_lsn, replay_lsn::text AS replay_lsn,
       extract(epoch FROM replay_lag)::float8 AS replay_lag_s, sync_state
FROM pg_stat_replication
ORDER BY application_name
"""


@dataclass(frozen=True)
class WalReceiver:
    """The row of pg_stat_wal_receiver on a replica: is it streaming, and from whom."""

    status: str
    sender_host: str | None
    sender_port: int | None
    received_timeline: int | None
    slot_name: str | None
    silent_s: float | None = None  # since the last message from the primary

    def hears_primary(self, within_s: float) -> bool:
        return (
            self.status == "streaming" and self.silent_s is not None and (self.silent_s < within_s)
        )


@dataclass(frozen=True)
class ReplicationPeer:
    """A row of pg_stat_replication on a primary: one connected standby."""

    application_name: str
    client_addr: str | None
    state: str
    sent_lsn: Lsn | None
    write_lsn: Lsn | None
    flush_lsn: Lsn | None
    replay_lsn: Lsn | None
    replay_lag_s: float | None
    sync_state: str


@dataclass(frozen=True)
class ProbeResult:
    """What one probe saw. ``reachable`` False means every other field is unknown."""

    name: str
    reachable: bool
    probed_at: float  # time.monotonic() when the probe started
    duration_s: float
    error: str | None = None
    in_recovery: bool | None = None
    timeline: int | None = None
    current_lsn: Lsn | None = None  # primary only: pg_current_wal_lsn()
    receive_lsn: Lsn | None = None  # replica only: flushed to the replica's disk
    replay_lsn: Lsn | None = None  # replica only: visible to its queries
    last_replay_time: datetime | None = None
    replay_paused: bool = False
    synchronous_standby_names: str = ""
    wal_receiver: WalReceiver | None = None
    replication: tuple[ReplicationPeer, ...] = field(default_factory=tuple)

    @property
    def is_primary(self) -> bool:
        return self.reachable and self.in_recovery is False

    @property
    def is_replica(self) -> bool:
        return self.reachable and self.in_recovery is True

    @property
    def streaming(self) -> bool:
        return self.wal_receiver is not None and self.wal_receiver.status == "streaming"

    @property
    def position(self) -> Lsn | None:
        """How far this instance's data goes: its write position on a primary, its replay
        position on a replica."""
        return self.current_lsn if self.in_recovery is False else self.replay_lsn


@dataclass(frozen=True)
class ProbeTimeouts:
    """Deadlines for one probe. libpq's own connect_timeout has a 2 s floor, so the whole
    probe also runs under an asyncio deadline."""

    connect_s: float = 0.8
    statement_ms: int = 500
    total_s: float = 1.0


def _state_fields(row: dict[str, Any]) -> dict[str, Any]:
    in_recovery = bool(row["in_recovery"])
    return {
        "in_recovery": in_recovery,
        "timeline": row["checkpoint_timeline"] if in_recovery else row["primary_timeline"],
        "current_lsn": parse_optional_lsn(row["current_lsn"]),
        "receive_lsn": parse_optional_lsn(row["receive_lsn"]),
        "replay_lsn": parse_optional_lsn(row["replay_lsn"]),
        "last_replay_time": row["last_replay_time"],
        "replay_paused": bool(row["replay_paused"]),
        "synchronous_standby_names": row["synchronous_standby_names"] or "",
    }


def _receiver(row: dict[str, Any] | None) -> WalReceiver | None:
    if row is None:
        return None
    return WalReceiver(
        status=row["status"],
        sender_host=row["sender_host"],
        sender_port=row["sender_port"],
        received_timeline=row["received_tli"],
        slot_name=row["slot_name"],
        silent_s=row.get("silent_s"),
    )


def _peer(row: dict[str, Any]) -> ReplicationPeer:
    return ReplicationPeer(
        application_name=row["application_name"],
        client_addr=row["client_addr"],
        state=row["state"],
        sent_lsn=parse_optional_lsn(row["sent_lsn"]),
        write_lsn=parse_optional_lsn(row["write_lsn"]),
        flush_lsn=parse_optional_lsn(row["flush_lsn"]),
        replay_lsn=parse_optional_lsn(row["replay_lsn"]),
        replay_lag_s=row["replay_lag_s"],
        sync_state=row["sync_state"],
    )


class InstanceProber:
    """Probes one instance again and again over a kept connection.

    Not safe for concurrent use: one prober per instance, one probe at a time.
    """

    def __init__(self, name: str, dsn: str, timeouts: ProbeTimeouts | None = None) -> None:
        self.name = name
        self.dsn = dsn
        self.timeouts = timeouts or ProbeTimeouts()
        self._conn: psycopg.AsyncConnection[dict[str, Any]] | None = None
        self._abandoned: set[asyncio.Future[dict[str, Any]]] = set()

    async def _connect(self) -> psycopg.AsyncConnection[dict[str, Any]]:
        return await psycopg.AsyncConnection.connect(
            self.dsn,
            autocommit=True,
            row_factory=dict_row,
            connect_timeout=max(2, int(self.timeouts.connect_s + 0.999)),
            options=f"-c statement_timeout={self.timeouts.statement_ms}",
            application_name="replicadb-probe",
            # Unacknowledged data on a cut network fails the socket instead of hanging it.
            tcp_user_timeout=int(self.timeouts.total_s * 1000),
            prepare_threshold=None,
        )

    async def _query(self, conn: psycopg.AsyncConnection[dict[str, Any]]) -> dict[str, Any]:
        cur = await conn.execute(_STATE_SQL)
        state = await cur.fetchone()
        assert state is not None
        fields = _state_fields(state)
        if fields["in_recovery"]:
            cur = await conn.execute(_RECEIVER_SQL)
            receiver = _receiver(await cur.fetchone())
            fields["wal_receiver"] = receiver
            if receiver is not None and receiver.received_timeline is not None:
                fields["timeline"] = receiver.received_timeline
        else:
            cur = await conn.execute(_REPLICATION_SQL)
            fields["replication"] = tuple(_peer(r) for r in await cur.fetchall())
        return fields

    async def _probe_once(self) -> dict[str, Any]:
        if self._conn is None or self._conn.closed:
            self._conn = await asyncio.wait_for(self._connect(), self.timeouts.connect_s)
        return await self._query(self._conn)

    async def _probe_with_retry(self) -> dict[str, Any]:
        try:
            return await self._probe_once()
        except psycopg.OperationalError:
            # A kept connection may have died with a restart that is already over: one
            # fresh attempt before calling the instance unreachable.
            await self.close()
            return await self._probe_once()

    async def probe(self) -> ProbeResult:
        """Never takes longer than ``timeouts.total_s``. A probe past its deadline is
        abandoned, not awaited: psycopg answers the cancellation of a query on a silent
        network by trying to cancel it on the server, for up to ten seconds."""
        started = time.monotonic()
        attempt = asyncio.ensure_future(self._probe_with_retry())
        try:
            fields = await asyncio.wait_for(asyncio.shield(attempt), self.timeouts.total_s)
        except (OSError, TimeoutError, psycopg.Error) as exc:
            if not attempt.done():
                self._abandon(attempt)
            else:
                await self.close()
            return ProbeResult(
                name=self.name,
                reachable=False,
                probed_at=started,
                duration_s=time.monotonic() - started,
                error=f"{type(exc).__name__}: {exc}".strip() or type(exc).__name__,
            )
        return ProbeResult(
            name=self.name,
            reachable=True,
            probed_at=started,
            duration_s=time.monotonic() - started,
            **fields,
        )

    def _abandon(self, attempt: asyncio.Future[dict[str, Any]]) -> None:
        """Let a stuck attempt finish its cleanup in the background, with its connection:
        the next probe starts on a fresh one."""
        conn, self._conn = self._conn, None
        attempt.cancel()

        def finished(_: asyncio.Future[dict[str, Any]]) -> None:
            self._abandoned.discard(attempt)
            if conn is not None and not conn.closed:
                conn.pgconn.finish()

        self._abandoned.add(attempt)
        attempt.add_done_callback(finished)

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and not conn.closed:
            try:
                async with asyncio.timeout(0.5):
                    await conn.close()
            except (OSError, TimeoutError, psycopg.Error):
                pass


async def probe_instance(name: str, dsn: str, timeouts: ProbeTimeouts | None = None) -> ProbeResult:
    """One probe on a fresh connection (for one-off checks; loops keep an InstanceProber)."""
    prober = InstanceProber(name, dsn, timeouts)
    try:
        return await prober.probe()
    finally:
        await prober.close()
