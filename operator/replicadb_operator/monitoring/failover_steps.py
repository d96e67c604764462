"""Failover and switchover on Kubernetes, each step safe to repeat.

Order matters, and is recorded in status before anything irreversible:
1. status: ``targetPrimary`` = the chosen replica, ``failover`` = {from, to, reason, since}.
   From here a restarting former primary rewinds and follows (see instance/prepare.py), and
   a new operator that finds ``failover`` in status finishes the job.
2. fence the old primary: role label ``fenced`` (out of the read-write Service and thereby
   the read-write pooler), then delete its pod so that it cannot keep accepting writes.
3. promote the target, repoint the other replicas, re-list synchronous standbys.
4. label the new primary, then status: ``primary``, ``lastFailover``; clear ``failover``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict

from replicadb_operator.builders import names
from replicadb_operator.builders.statefulsets import RUN_DIR
from replicadb_operator.dataplane import instance_control
from replicadb_operator.dataplane.conninfo import primary_conninfo
from replicadb_operator.dataplane.failover import promote_target
from replicadb_operator.dataplane.probe import InstanceProber, ProbeTimeouts
from replicadb_operator.kube import status as kube_status
from replicadb_operator.monitoring import metrics, pods
from replicadb_operator.monitoring.status_model import now_iso
from replicadb_operator.spec import DatabaseSpec

Log = Callable[[str], None]
StatusWriter = Callable[[dict[str, Any]], Awaitable[None]]


@dataclass(frozen=True)
class Outcome:
    new_primary: str
    lag_bytes: int | None
    seconds: float


def failover_record(old: str, target: str, reason: str, kind: str) -> dict[str, str]:
    """What status says while a failover or switchover is under way (see failover_steps)."""
    return {
        "from": old,
        "to": target,
        "reason": reason,
        "kind": kind,
        "since": now_iso(),
    }


def follower_conninfo(
    db: DatabaseSpec, addresses: Mapping[str, str] | None = None
) -> Callable[[str, str], str]:
    """primary_conninfo for ``follower`` streaming from ``primary``, by the pod's DNS name,
    with the passfile the entrypoint writes in the pod.

    With the primary's pod address known, it goes in ``hostaddr``: cluster DNS caches a pod's
    record for up to 30 s (CoreDNS ``ttl 30`` / ``cache 30`` by default), and a pod recreated
    a few seconds before its promotion would still resolve to its previous address, leaving
    every repointed replica, and with them the synchronous commits, waiting that long."""
    sslmode = "require" if db.tls.required else "prefer"
    known = addresses or {}

    def build(primary: str, follower: str) -> str:
        host = f"{primary}.{names.dns(db, names.headless_service(db))}"
        return primary_conninfo(
            host,
            names.PG_PORT,
            follower,
            f"{RUN_DIR}/pgpass",
            sslmode,
            hostaddr=known.get(primary),
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


# Run by the server itself as its own OS user: an immediate stop of this very postgres. The
# container then exits and restarts, and the entrypoint rewinds it into a replica.
STOP_ITSELF = "COPY (SELECT 1) TO PROGRAM 'pg_ctl stop -m immediate -D \"$PGDATA\"'"


async def stop_postgres(dsn: str | None) -> bool:
    """Stop a reachable postgres at once, from inside; True when it went down (or was already
    down). A force-deleted pod's container can live on for seconds, writable; this cannot."""
    if dsn is None:
        return False
    try:
        async with instance_control.admin_connection(dsn, connect_timeout_s=0.5) as conn:
            await conn.execute(STOP_ITSELF)
    except (OSError, TimeoutError, psycopg.Error) as exc:
        # The server dying under our own command ends the connection: that is success.
        return "terminat" in str(exc) or "closed" in str(exc) or "immediate" in str(exc)
    return True


async def fence(
    db: DatabaseSpec,
    pod: str,
    pod_exists: bool,
    dsn: str | None = None,
    last_seen_dsn: str | None = None,
) -> None:
    """Out of the read-write Service first, then stop its postgres: from inside when it is
    reachable (fast, and the pod stays), else by deleting the pod (grace 0). Either way it
    comes back through the entrypoint, which reads the new target, rewinds and follows.

    ``last_seen_dsn``: where the instance last answered, when that differs from its pod's
    address now. A pod deleted with grace 0 is replaced at once by one with a new address,
    while the old container keeps serving, writable, at the old one for seconds: it is
    stopped there too, and nobody is promoted while it still answers."""
    if pod_exists:
        await asyncio.to_thread(pods.set_role_label, db.namespace, pod, names.ROLE_FENCED)
    if last_seen_dsn is not None and last_seen_dsn != dsn:
        await stop_postgres(last_seen_dsn)
        await wait_unreachable(last_seen_dsn)
    if await stop_postgres(dsn):
        return
    if pod_exists:
        await asyncio.to_thread(kube_status.delete_pod, db.namespace, pod, 0)
    # A deleted pod's container lives on for a moment: promote nobody while it still answers.
    await wait_unreachable(dsn)


async def wait_unreachable(dsn: str | None, timeout_s: float = 5.0) -> None:
    if dsn is None:
        return
    prober = InstanceProber("fenced", dsn, ProbeTimeouts(connect_s=0.3, total_s=0.5))
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            if not (await prober.probe()).reachable:
                break
            await asyncio.sleep(0.05)
    finally:
        await prober.close()


# Where a detached standby streams from: a socket directory that does not exist, so every
# attempt fails at once. Not an empty primary_conninfo: seen on the local cluster, a standby
# whose WAL receiver was down when its conninfo went empty slept through the change back
# (no receiver started, no retry logged) until other WAL woke it up.
DETACHED_CONNINFO = "host=/nonexistent/replicadb-detached port=5432 connect_timeout=1"


async def detach_replicas(dsns: dict[str, str], settle_s: float = 2.0) -> list[str]:
    """Stop every reachable replica streaming from the old primary, then wait until none
    streams, so that received positions no longer move. Returns the replicas that could not
    be detached (unreachable: they receive nothing either)."""

    streaming_sql = "SELECT count(*) FROM pg_stat_wal_receiver WHERE status = 'streaming'"

    async def streaming(conn: psycopg.AsyncConnection[tuple[object, ...]]) -> bool:
        row = await (await conn.execute(streaming_sql)).fetchone()
        return row is not None and row[0] != 0

    async def detach(dsn: str) -> None:
        async with instance_control.admin_connection(dsn) as conn:
            # A standby that streams from nobody acknowledges nothing: leave it alone (two
            # primary_conninfo changes in a row can leave a standby that is not streaming
            # asleep, see DETACHED_CONNINFO).
            if not await streaming(conn):
                return
            await instance_control.repoint_replica(dsn, DETACHED_CONNINFO)
            deadline = time.monotonic() + settle_s
            while time.monotonic() < deadline:
                if not await streaming(conn):
                    break
                await asyncio.sleep(0.02)

    names_ = list(dsns)
    results = await asyncio.gather(*(detach(dsns[n]) for n in names_), return_exceptions=True)
    return [n for n, r in zip(names_, results, strict=True) if r is not None]


async def promote_and_record(
    db: DatabaseSpec,
    old: str,
    target: str,
    lag_bytes: int | None,
    dsns: dict[str, str],
    write_status: StatusWriter,
    reason: str,
    kind: str,
    started: float,
) -> Outcome:
    """Steps 3 and 4, for a target already chosen and recorded (a repeat after an operator
    restart must not choose again). The old primary is fenced, so it is not repointed."""
    live = {name: dsn for name, dsn in dsns.items() if name != old}

    async def already_fenced(name: str) -> None:
        return None

    result = await promote_target(
        old,
        target,
        lag_bytes,
        live,
        already_fenced,
        follower_conninfo(db, addresses_of(live)),
        db.replication,
        started,
    )
    await asyncio.to_thread(pods.set_role_label, db.namespace, target, names.ROLE_PRIMARY)
    seconds = time.monotonic() - started
    await write_status(
        {
            "primary": target,
            "targetPrimary": target,
            "failover": None,
            "lastFailover": {
                "time": now_iso(),
                "from": old,
                "to": target,
                "reason": reason,
                "kind": kind,
                "lagBytes": result.lag_bytes,
                "durationSeconds": round(seconds, 3),
            },
        }
    )
    metrics.FAILOVERS.labels(db.namespace, db.name, kind).inc()
    metrics.LAST_FAILOVER_SECONDS.labels(db.namespace, db.name).set(seconds)
    return Outcome(new_primary=target, lag_bytes=result.lag_bytes, seconds=seconds)


async def wait_for_switchover_catch_up(
    target_dsn: str, old_final_lsn: int, timeout_s: float = 60.0
) -> None:
    """Zero-loss switchover: the target must have replayed all the old primary wrote."""
    await instance_control.wait_for_replay(target_dsn, old_final_lsn, timeout_s=timeout_s)
