"""What the steps do to PostgreSQL: stop an old primary and confirm it accepts no writes,
make it read-only (switchover), cut replicas off it, and build what followers stream from.
Every function is safe to repeat. Kubernetes calls (labels, pod deletion) live in ``plan``.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Mapping

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from replicadb_operator.builders import names
from replicadb_operator.builders.statefulsets import RUN_DIR
from replicadb_operator.dataplane import instance_control
from replicadb_operator.dataplane.conninfo import primary_conninfo
from replicadb_operator.dataplane.lsn import Lsn
from replicadb_operator.dataplane.probe import InstanceProber, ProbeTimeouts
from replicadb_operator.spec import DatabaseSpec

# Where the instance pods keep the replication passfile (the entrypoint writes it there).
# The layer below the cluster runs instances as local processes and points this elsewhere.
PASSFILE = os.environ.get("RDB_FOLLOWER_PASSFILE", f"{RUN_DIR}/pgpass")

# Run by the server itself as its own OS user: a stop of this very postgres. ``immediate``
# for a failed primary (at once); ``fast`` for a switchover (a clean shutdown sends all WAL
# to the standbys). ``-W``: pg_ctl must not wait for a shutdown that waits for this backend.
STOP_ITSELF = "COPY (SELECT 1) TO PROGRAM 'pg_ctl stop -W -m {mode} -D \"$PGDATA\"'"


class NotConfirmed(RuntimeError):
    """The old primary may still accept writes: nobody is promoted."""


def follower_conninfo(
    db: DatabaseSpec, addresses: Mapping[str, str] | None = None
) -> Callable[[str, str], str]:
    """primary_conninfo for ``follower`` streaming from ``primary``: the pod's DNS name, and
    its address in ``hostaddr`` when known (cluster DNS caches a pod's record for up to 30 s,
    and a pod recreated shortly before its promotion would still resolve to its old address,
    leaving every repointed replica, and with them synchronous commits, waiting that long)."""
    sslmode = "require" if db.tls.required else "prefer"

    def build(primary: str, follower: str) -> str:
        host = f"{primary}.{names.dns(db, names.headless_service(db))}"
        return primary_conninfo(
            host,
            names.PG_PORT,
            follower,
            PASSFILE,
            sslmode,
            hostaddr=(addresses or {}).get(primary),
        )

    return build


def addresses_of(dsns: Mapping[str, str]) -> dict[str, str]:
    """Instance name -> the address its DSN connects to (the pod IP the monitor uses)."""
    out = {}
    for name, dsn in dsns.items():
        host = conninfo_to_dict(dsn).get("host")
        if isinstance(host, str) and host:
            out[name] = host
    return out


def at_address(dsn: str, address: str) -> str:
    """The same credentials, another address (where an instance answered before)."""
    return make_conninfo(dsn, host=address)


async def stop_postgres(dsn: str | None, mode: str = "immediate") -> bool:
    """Stop a reachable postgres from inside; True when the command was taken (the server
    going down under it ends the connection, which counts too)."""
    if dsn is None:
        return False
    try:
        async with instance_control.admin_connection(dsn, connect_timeout_s=0.3) as conn:
            try:
                await conn.execute(STOP_ITSELF.format(mode=mode))
            except psycopg.OperationalError:
                return True  # the server went down under the command
    except (OSError, TimeoutError, psycopg.Error):
        # Not connected (a server already down or shutting down refuses us): not taken.
        return False
    return True


async def accepts_writes(dsn: str) -> bool:
    """Reachable, out of recovery and not read-only: a client could commit here."""
    prober = InstanceProber("fenced", dsn, ProbeTimeouts(connect_s=0.3, total_s=0.5))
    try:
        probe = await prober.probe()
        if not probe.is_primary:
            return False
        async with instance_control.admin_connection(dsn, connect_timeout_s=0.5) as conn:
            cur = await conn.execute("SELECT current_setting('default_transaction_read_only')")
            row = await cur.fetchone()
            return row is None or row[0] != "on"
    except (OSError, TimeoutError, psycopg.Error):
        return False
    finally:
        await prober.close()


async def wait_no_writes(dsns: list[str], timeout_s: float) -> bool:
    """True once none of ``dsns`` accepts writes (each unreachable, in recovery or
    read-only); False when one still does at the deadline."""
    deadline = time.monotonic() + timeout_s
    while True:
        if not any(await asyncio.gather(*(accepts_writes(d) for d in dsns))):
            return True
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)


async def demote(dsn: str) -> Lsn:
    """Switchover: no new writes (read-only for every session, client sessions ended), then
    the position the target must replay to lose nothing."""
    await instance_control.alter_system(dsn, {"default_transaction_read_only": "on"})
    async with instance_control.admin_connection(dsn) as conn:
        await conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE backend_type = 'client backend' AND pid <> pg_backend_pid() "
            "AND application_name NOT LIKE 'replicadb-%'"
        )
    return await instance_control.current_wal_lsn(dsn)


# Where a detached standby streams from: a socket directory that does not exist, so every
# attempt fails at once. Not an empty primary_conninfo: seen on the local cluster, a standby
# whose WAL receiver was down when its conninfo went empty slept through the change back.
DETACHED_CONNINFO = "host=/nonexistent/replicadb-detached port=5432 connect_timeout=1"
STREAMING_SQL = "SELECT count(*) FROM pg_stat_wal_receiver WHERE status = 'streaming'"


async def detach_replicas(dsns: Mapping[str, str], settle_s: float = 2.0) -> list[str]:
    """Stop every reachable replica streaming from the old primary and wait until none
    streams: positions stop moving, and whatever still runs of the old primary can get no
    synchronous acknowledgement. Returns the replicas that could not be reached."""

    async def streaming(conn: psycopg.AsyncConnection[tuple[object, ...]]) -> bool:
        row = await (await conn.execute(STREAMING_SQL)).fetchone()
        return row is not None and row[0] != 0

    async def detach(dsn: str) -> None:
        async with instance_control.admin_connection(dsn) as conn:
            if not await streaming(conn):
                return  # a standby streaming from nobody acknowledges nothing: leave it
            await instance_control.repoint_replica(dsn, DETACHED_CONNINFO)
            deadline = time.monotonic() + settle_s
            while time.monotonic() < deadline and await streaming(conn):  # noqa: ASYNC110
                await asyncio.sleep(0.02)  # polling the server: nothing to wait on locally

    names_ = list(dsns)
    results = await asyncio.gather(*(detach(dsns[n]) for n in names_), return_exceptions=True)
    return [n for n, r in zip(names_, results, strict=True) if r is not None]
