"""SQL-level control of a running instance: promote, repoint, synchronous standbys.

Each call opens a short-lived superuser connection with tight timeouts; none restarts the
server. ``pg_promote(wait => true)`` polls every 100 ms, so promotion asks without waiting and
polls ``pg_is_in_recovery()`` itself every few milliseconds.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import psycopg
from psycopg import sql

from replicadb_operator.dataplane.lsn import Lsn, parse_lsn


class PromotionFailed(RuntimeError):
    pass


@asynccontextmanager
async def admin_connection(
    dsn: str, connect_timeout_s: float = 2.0, statement_timeout_ms: int = 5000
) -> AsyncIterator[psycopg.AsyncConnection[tuple[object, ...]]]:
    conn = await asyncio.wait_for(
        psycopg.AsyncConnection.connect(
            dsn,
            autocommit=True,
            connect_timeout=max(2, int(connect_timeout_s + 0.999)),
            options=f"-c statement_timeout={statement_timeout_ms}",
            application_name="replicadb-operator",
            prepare_threshold=None,
        ),
        connect_timeout_s,
    )
    try:
        yield conn
    finally:
        await conn.close()


async def _scalar(conn: psycopg.AsyncConnection[tuple[object, ...]], query: str) -> object:
    cur = await conn.execute(query)
    row = await cur.fetchone()
    return None if row is None else row[0]


async def promote(dsn: str, timeout_s: float = 30.0, poll_s: float = 0.005) -> float:
    """Promote a standby; returns seconds until it accepted writes. Safe to repeat: an
    instance that is already a primary returns at once."""
    started = time.monotonic()
    async with admin_connection(dsn) as conn:
        if await _scalar(conn, "SELECT pg_is_in_recovery()") is False:
            return 0.0
        await conn.execute("SELECT pg_promote(wait => false)")
        deadline = started + timeout_s
        while await _scalar(conn, "SELECT pg_is_in_recovery()"):
            if time.monotonic() > deadline:
                raise PromotionFailed(f"still in recovery {timeout_s:.0f} s after pg_promote()")
            await asyncio.sleep(poll_s)
    return time.monotonic() - started


async def alter_system(dsn: str, settings: dict[str, str]) -> None:
    """ALTER SYSTEM SET each setting, then reload. Only for reloadable settings."""
    async with admin_connection(dsn) as conn:
        for key, value in settings.items():
            await conn.execute(
                sql.SQL("ALTER SYSTEM SET {} = {}").format(sql.Identifier(key), sql.Literal(value))
            )
        await conn.execute("SELECT pg_reload_conf()")


async def repoint_replica(dsn: str, primary_conninfo: str) -> None:
    """Make a running standby stream from another primary, without a restart (PostgreSQL 13+
    reloads primary_conninfo; recovery_target_timeline=latest follows the new timeline)."""
    await alter_system(dsn, {"primary_conninfo": primary_conninfo})


async def set_synchronous_standby_names(dsn: str, value: str) -> None:
    await alter_system(dsn, {"synchronous_standby_names": value})


async def checkpoint(dsn: str) -> None:
    """A checkpoint on a new primary records its timeline in pg_control, which pg_rewind reads
    from the source; without it the rewound node can loop on "new timeline forked off"."""
    async with admin_connection(dsn, statement_timeout_ms=120_000) as conn:
        await conn.execute("CHECKPOINT")


async def current_wal_lsn(dsn: str) -> Lsn:
    async with admin_connection(dsn) as conn:
        return parse_lsn(str(await _scalar(conn, "SELECT pg_current_wal_lsn()::text")))


async def wait_for_replay(
    dsn: str, target: Lsn, timeout_s: float = 30.0, poll_s: float = 0.005
) -> float:
    """Wait until a standby has replayed ``target``; returns the seconds waited."""
    started = time.monotonic()
    async with admin_connection(dsn) as conn:
        while True:
            replayed = await _scalar(conn, "SELECT pg_last_wal_replay_lsn()::text")
            if replayed is not None and parse_lsn(str(replayed)) >= target:
                return time.monotonic() - started
            if time.monotonic() - started > timeout_s:
                raise TimeoutError(f"replay did not reach {target:X} in {timeout_s} s")
            await asyncio.sleep(poll_s)
