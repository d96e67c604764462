"""No write reaches a replica: the whole corpus, and generated statement shapes, run through
the router against real PostgreSQL; the replicas' own statement logs are the ground truth.

Every instance logs every statement it executes (log_statement = all). After the run, no
statement the corpus marks as a write may appear in a replica's log, and every read that
succeeded must appear in one (a router that sent everything to the primary would fail).
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from prometheus_client import CollectorRegistry
from replicadb_operator.dataplane.datadir import RunAs
from replicadb_operator.local.topology import LocalTopology

from router_lib.consistency import EVENTUAL
from router_lib.placeholders import to_dollar_placeholders
from router_lib.router import Router
from tests.integration.conftest import replicated, static_config
from tests.integration.sql import execute
from tests.unit.test_router_corpus import CORPUS, SCHEMA, WRITE_FUNCTIONS, Case
from tests.unit.test_router_statement_shapes import read_statements, write_statements

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(180)]

# "... LOG:  statement: TEXT" (simple protocol) or "... LOG:  execute <name>: TEXT"
_LOGGED = re.compile(r" LOG:  (?:statement|execute [^:]*): (.*)$")
_NEW_ENTRY = re.compile(r"^\d{4}-\d\d-\d\d ")


@pytest.fixture(scope="module")
def logged_topology(pg_user: RunAs | None) -> Iterator[LocalTopology]:
    topology = LocalTopology(replicas=2, run_as=pg_user, parameters={"log_statement": "all"})
    try:
        topology.start()
        for statement in SCHEMA:
            execute(topology.dsn(topology.primary), statement)
        replicated(topology)
        yield topology
    finally:
        topology.destroy()


@pytest.fixture(scope="module")
def router(logged_topology: LocalTopology) -> Iterator[Router]:
    config = static_config(
        logged_topology,
        write_functions=frozenset(WRITE_FUNCTIONS),
        consistency=EVENTUAL,
        statement_timeout_ms=5000,  # a statement that waits on a lock fails instead of hanging
    )
    with Router(config, registry=CollectorRegistry()) as router:
        yield router


def executed_statements(topology: LocalTopology, name: str) -> set[str]:
    """Statement texts in an instance's log (continuation lines joined back)."""
    statements: list[str] = []
    current: str | None = None
    for line in topology.instances[name].logfile.read_text(errors="replace").splitlines():
        if _NEW_ENTRY.match(line):
            if current is not None:
                statements.append(current)
            found = _LOGGED.search(line)
            current = found.group(1) if found else None
        elif current is not None:
            # PostgreSQL puts a tab after every newline of a message it logs.
            current += "\n" + line.removeprefix("\t")
    if current is not None:
        statements.append(current)
    return {s.strip() for s in statements}


def on_replicas(topology: LocalTopology) -> set[str]:
    return set().union(*(executed_statements(topology, name) for name in topology.replicas))


def as_sent(case: Case) -> str:
    """The text PostgreSQL receives (psycopg rewrites placeholders when given parameters)."""
    if case.params is None:
        return case.sql.strip()
    try:
        return to_dollar_placeholders(case.sql).strip()
    except ValueError:  # psycopg refuses it before sending anything
        return case.sql.strip()


def run(router: Router, sql: str, params: object = None) -> bool:
    try:
        router.query(sql, params)  # type: ignore[arg-type]
    except psycopg.Error:
        return (
            False  # refused by the server, or by the router: fine, as long as it was not a replica
        )
    return True


def test_no_write_of_the_corpus_reaches_a_replica(
    router: Router, logged_topology: LocalTopology
) -> None:
    outcomes = [(case, run(router, case.sql, case.params)) for case in CORPUS if case.run]
    replica_log = on_replicas(logged_topology)
    primary_log = executed_statements(logged_topology, logged_topology.primary)
    leaked = [case.sql for case, _ in outcomes if not case.replica and as_sent(case) in replica_log]
    assert leaked == []
    reads = [case for case, ok in outcomes if case.replica and ok]
    assert len(reads) >= 30
    missing = [case.sql for case in reads if as_sent(case) not in replica_log]
    assert missing == []
    # And the writes did run, on the primary (or were refused before reaching any server).
    writes_run = [case for case, ok in outcomes if not case.replica and ok]
    assert len(writes_run) >= 60
    assert all(as_sent(c) in primary_log for c in writes_run)


@settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(write=write_statements(), read=read_statements())
def test_no_generated_write_shape_reaches_a_replica(
    router: Router, logged_topology: LocalTopology, write: str, read: str
) -> None:
    run(router, write)
    assert run(router, read), read
    replica_log = on_replicas(logged_topology)
    assert write.strip() not in replica_log
    assert read.strip() in replica_log
