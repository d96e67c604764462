"""PgBouncer in transaction mode multiplexes many clients onto few server connections."""

from __future__ import annotations

import psycopg
import pytest
from replicadb_operator.local.client_load import hold_clients
from replicadb_operator.local.pgbouncer import LocalPgBouncer
from replicadb_operator.local.topology import LocalTopology

from tests.integration.sql import scalar

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

CLIENTS = 1000


async def test_thousand_clients_against_max_connections_100(
    topology: LocalTopology, pgbouncer: LocalPgBouncer
) -> None:
    assert scalar(topology.dsn("pg-0"), "SHOW max_connections") == "100"
    held, errors = await hold_clients(pgbouncer.dsn(), CLIENTS)
    assert errors == []
    assert held == CLIENTS
    server_connections = scalar(
        topology.dsn("pg-0"),
        "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'",
    )
    assert server_connections <= 100


async def test_the_same_load_directly_is_refused_by_the_server(topology: LocalTopology) -> None:
    """The baseline that makes the test above mean something."""
    held, errors = await hold_clients(topology.dsn("pg-0"), 150)
    assert held < 150
    assert any("too many clients" in e for e in errors), errors[:3]
    with psycopg.connect(topology.dsn("pg-0")) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
