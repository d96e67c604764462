"""The drop-in module API configured from the environment, zone preference from status,
writes through PgBouncer, and the metrics a deployment scrapes."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import psycopg
import pytest
from prometheus_client import CollectorRegistry
from psycopg.conninfo import conninfo_to_dict
from replicadb_operator.local.pgbouncer import LocalPgBouncer
from replicadb_operator.local.topology import LocalTopology

import router_lib
from router_lib.balancing import Strategy
from router_lib.consistency import EVENTUAL, STRONG
from router_lib.endpoints import Via
from router_lib.router import Router
from router_lib.sources import StatusSource
from tests.integration.conftest import (
    replicated,
    server_of,
    settings_for,
    static_config,
    status_for,
)
from tests.integration.sql import execute

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(120)]

WHERE_AM_I = "SELECT inet_server_addr()::text"


@pytest.fixture(scope="module")
def topology(shared_topology: LocalTopology) -> LocalTopology:
    execute(
        shared_topology.dsn(shared_topology.primary),
        "CREATE TABLE notes (id serial PRIMARY KEY, body text NOT NULL)",
    )
    replicated(shared_topology)
    return shared_topology


@pytest.fixture
def environment(topology: LocalTopology, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    values = conninfo_to_dict(topology.dsn(topology.primary))
    hosts = {name: topology.instances[name].host for name in topology.instances}
    monkeypatch.setenv("REPLICADB_PRIMARY_DSN", f"host={hosts[topology.primary]}")
    monkeypatch.setenv(
        "REPLICADB_REPLICA_DSNS", ",".join(f"host={hosts[n]}" for n in topology.replicas)
    )
    monkeypatch.setenv("REPLICADB_USER", str(values["user"]))
    monkeypatch.setenv("REPLICADB_PASSWORD", str(values["password"]))
    monkeypatch.setenv("REPLICADB_DBNAME", "postgres")
    monkeypatch.setenv("REPLICADB_SSLMODE", "disable")
    monkeypatch.setenv("REPLICADB_LAG_PROBE_INTERVAL", "0.1")
    yield
    router_lib.close()


def test_the_module_api_reads_its_writes_through_replicas(
    environment: None, topology: LocalTopology
) -> None:
    router_lib.configure()  # from REPLICADB_* (a fresh router; the default registry is shared)
    note_id = router_lib.query("INSERT INTO notes (body) VALUES (%s) RETURNING id", ("hi",))[0][0]
    assert router_lib.query_one("SELECT body FROM notes WHERE id = %s", (note_id,)) == ("hi",)
    with router_lib.transaction() as tx:
        tx.execute("UPDATE notes SET body = 'edited' WHERE id = %s", (note_id,))
    with router_lib.transaction(read_only=True) as tx:
        assert tx.query_one("SELECT body FROM notes WHERE id = %s", (note_id,)) == ("edited",)
    assert router_lib.execute("DELETE FROM notes WHERE id = %s", (note_id,)) == 1
    served = Counter(
        server_of(topology, router_lib.query(WHERE_AM_I, consistency=EVENTUAL)[0][0])
        for _ in range(6)
    )
    assert set(served) == set(topology.replicas)
    assert server_of(topology, router_lib.query(WHERE_AM_I, consistency=STRONG)[0][0]) == (
        topology.primary
    )


def test_reads_prefer_replicas_in_the_callers_zone(topology: LocalTopology) -> None:
    local, remote = topology.replicas
    zones = {topology.primary: "a", local: "b", remote: "c"}
    source = StatusSource(settings_for(topology))
    source.publish(status_for(topology, zones=zones))
    config = static_config(topology, primary_dsn=None, replica_dsns=(), zone="b")
    with Router(config, source=source, registry=CollectorRegistry()) as router:
        served = Counter(
            server_of(topology, router.query(WHERE_AM_I, consistency=EVENTUAL)[0][0])
            for _ in range(10)
        )
        assert served == {local: 10}
        # The operator reports the local replica not ready: the other zone serves reads.
        source.publish(status_for(topology, zones=zones, ready={local: False}))
        served = Counter(
            server_of(topology, router.query(WHERE_AM_I, consistency=EVENTUAL)[0][0])
            for _ in range(10)
        )
        assert served == {remote: 10}


def test_metrics_count_queries_by_target_and_reason(topology: LocalTopology) -> None:
    registry = CollectorRegistry()
    with Router(static_config(topology), registry=registry) as router:
        router.execute("INSERT INTO notes (body) VALUES ('m')")
        for _ in range(3):
            router.query("SELECT count(*) FROM notes", consistency=EVENTUAL)
        router.query("SELECT nextval('notes_id_seq')")
        router.query(WHERE_AM_I, consistency=STRONG)

        def count(target: str, reason: str) -> float:
            labels = {"target": target, "reason": reason}
            return registry.get_sample_value("replicadb_router_queries_total", labels) or 0.0

        assert count("primary", "write") == 1
        assert count("replica", "eventual") == 3
        assert count("primary", "write_function") == 1
        assert count("primary", "strong") == 1
        assert registry.get_sample_value("replicadb_router_topology_updates_total") == 1


def test_writes_through_pgbouncer(topology: LocalTopology, pgbouncer: LocalPgBouncer) -> None:
    """Transaction pooling (no prepared statements), more writes than psycopg's prepare
    threshold; reads still go to the replicas directly."""
    status = status_for(topology)
    status["endpoints"]["poolerReadWrite"] = {"host": pgbouncer.host, "port": 6432}
    source = StatusSource(settings_for(topology), via=Via.POOLER)
    source.publish(status)
    config = static_config(topology, primary_dsn=None, replica_dsns=())
    with Router(config, source=source, registry=CollectorRegistry()) as router:
        primary = router.view.primary
        assert primary is not None
        assert primary.endpoint.via is Via.POOLER
        assert primary.endpoint.port == 6432
        for n in range(12):
            router.execute("INSERT INTO notes (body) VALUES (%s)", (f"pooled {n}",))
        with router.transaction() as tx:
            tx.execute("INSERT INTO notes (body) VALUES ('pooled in a transaction')")
        assert router.query("SELECT count(*) FROM notes WHERE body LIKE 'pooled%%'", ()) == [(13,)]


def test_wait_returns_with_every_pool_at_its_minimum(topology: LocalTopology) -> None:
    config = static_config(topology, primary_pool_min=3, replica_pool_min=2)
    with Router(config, registry=CollectorRegistry()) as router:
        router.wait(30)
        sizes = {
            state.endpoint.role.value: router.pools.get(state).get_stats()["pool_size"]
            for state in router.view.states
        }
        assert sizes == {"primary": 3, "replica": 2}


def test_least_outstanding_sends_reads_away_from_a_replica_held_busy(
    topology: LocalTopology,
) -> None:
    """A read-only transaction holds a connection on one replica: with least-outstanding
    balancing every other read goes to the other replica, where round robin alternates."""
    config = static_config(topology, balancing=Strategy.LEAST_OUTSTANDING)
    with Router(config, registry=CollectorRegistry()) as router, router.session() as session:
        with session.transaction(read_only=True) as tx:
            busy = server_of(topology, tx.query(WHERE_AM_I)[0][0])
            served = Counter(
                server_of(topology, router.query(WHERE_AM_I, consistency=EVENTUAL)[0][0])
                for _ in range(10)
            )
            assert served == {next(n for n in topology.replicas if n != busy): 10}
        with pytest.raises(psycopg.errors.DivisionByZero):
            router.query("SELECT 1 / 0", consistency=EVENTUAL)
        served = Counter(
            server_of(topology, router.query(WHERE_AM_I, consistency=EVENTUAL)[0][0])
            for _ in range(10)
        )
        assert served == {name: 5 for name in topology.replicas}
        # Every connection handed out came back, the failed read's too.
        assert {state.endpoint.label: state.in_use for state in router.view.states} == {
            state.endpoint.label: 0 for state in router.view.states
        }
