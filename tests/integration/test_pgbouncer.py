"""PgBouncer in transaction mode multiplexes many clients onto few server connections."""

from __future__ import annotations

import asyncio
import resource

import psycopg
import pytest
from replicadb_operator.local.pgbouncer import LocalPgBouncer
from replicadb_operator.local.topology import LocalTopology

from tests.integration.sql import scalar

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

CLIENTS = 1000


async def hold_clients(dsn: str, clients: int) -> tuple[int, list[str]]:
    """Open ``clients`` connections, all held at once, each running a query; returns how many
    were held together and the errors seen."""
    errors: list[str] = []
    opened: list[psycopg.AsyncConnection[tuple[object, ...]]] = []
    all_open = asyncio.Event()
    gate = asyncio.Semaphore(100)  # pace the handshakes, not the holding

    async def client() -> None:
        try:
            async with gate:
                conn = await psycopg.AsyncConnection.connect(
                    dsn, autocommit=True, prepare_threshold=None
                )
            opened.append(conn)
            if len(opened) == clients:
                all_open.set()
            await asyncio.wait_for(all_open.wait(), 60)
            cur = await conn.execute("SELECT 1")
            assert await cur.fetchone() == (1,)
        except (psycopg.Error, TimeoutError, AssertionError) as exc:
            errors.append(repr(exc))
            all_open.set()

    await asyncio.gather(*(client() for _ in range(clients)))
    held = len(opened)
    await asyncio.gather(*(c.close() for c in opened))
    return held, errors


async def test_thousand_clients_against_max_connections_100(
    topology: LocalTopology, pgbouncer: LocalPgBouncer
) -> None:
    assert scalar(topology.dsn("pg-0"), "SHOW max_connections") == "100"
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4096), hard))
    held, errors = await hold_clients(pgbouncer.dsn(), CLIENTS)
    assert errors == []
    assert held == CLIENTS
    server_connections = scalar(
        topology.dsn("pg-0"),
        "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'",
    )
    assert server_connections <= 100
