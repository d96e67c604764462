"""Failures under traffic: a replica stopped, the primary killed and another promoted, a
stale primary that refuses writes, a read that turns out to write.

Endpoints come from a ReplicatedDatabase status published into a :class:`StatusSource`, the
same path the Kubernetes watcher feeds, so a failover is what the operator would publish.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter

import psycopg
import pytest
from prometheus_client import CollectorRegistry
from replicadb_operator.dataplane import instance_control
from replicadb_operator.local.topology import LocalTopology

from router_lib.consistency import EVENTUAL
from router_lib.errors import StalePrimary, WriteOutcomeUnknown
from router_lib.router import Router
from router_lib.sources import StatusSource
from tests.conftest import TopologyFactory
from tests.integration.conftest import (
    replicated,
    server_of,
    settings_for,
    static_config,
    status_for,
)
from tests.integration.sql import eventually, execute

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(120)]

WHERE_AM_I = "SELECT inet_server_addr()::text"


def prepare(topology: LocalTopology) -> None:
    primary = topology.dsn(topology.primary)
    execute(primary, "CREATE TABLE events (id serial PRIMARY KEY, note text)")
    execute(primary, "CREATE TABLE counters (id int PRIMARY KEY, v int NOT NULL)")
    execute(primary, "INSERT INTO counters VALUES (1, 0)")


def status_router(topology: LocalTopology, source: StatusSource, **overrides: object) -> Router:
    config = static_config(topology, primary_dsn=None, replica_dsns=(), **overrides)
    return Router(config, source=source, registry=CollectorRegistry())


@pytest.fixture
def prepared(topology: LocalTopology) -> LocalTopology:
    """A topology of the test's own: these tests stop, kill and promote instances."""
    prepare(topology)
    return topology


@pytest.fixture(scope="module")
def shared(shared_topology: LocalTopology) -> LocalTopology:
    """For the tests that leave roles and processes as they found them."""
    prepare(shared_topology)
    replicated(shared_topology)
    return shared_topology


def test_reads_continue_when_a_replica_stops_mid_traffic(prepared: LocalTopology) -> None:
    topology = prepared
    victim, survivor = topology.replicas
    config = static_config(topology, consistency=EVENTUAL, eject_base_s=0.2)
    with Router(config, registry=CollectorRegistry()) as router:
        served: Counter[str] = Counter()
        for _ in range(20):
            served[server_of(topology, router.query(WHERE_AM_I)[0][0])] += 1
        assert served[victim] > 0
        topology.stop_instance(victim, "immediate")
        after: Counter[str] = Counter()
        for _ in range(200):  # no error may escape
            after[server_of(topology, router.query(WHERE_AM_I)[0][0])] += 1
        assert after[victim] == 0
        assert after[survivor] >= 150  # not everything fell back to the primary
        topology.start_instance(victim)
        eventually(
            lambda: server_of(topology, router.query(WHERE_AM_I)[0][0]) == victim,
            timeout_s=20,
            what="the restarted replica is re-admitted",
        )


def slow_write(router: Router, outcome: list[BaseException | int]) -> None:
    try:
        outcome.append(
            router.execute("UPDATE counters SET v = v + 1 WHERE id = 1 AND pg_sleep(3) IS NOT NULL")
        )
    except BaseException as exc:
        outcome.append(exc)


def test_after_a_failover_writes_go_to_the_new_primary_and_in_flight_writes_fail_clearly(
    prepared: LocalTopology,
) -> None:
    topology = prepared
    old, new, other = topology.primary, *topology.replicas
    source = StatusSource(settings_for(topology))
    source.publish(status_for(topology))
    with status_router(topology, source, failover_wait_s=5.0, pool_timeout_s=1.0) as router:
        assert router.query("INSERT INTO events (note) VALUES ('before') RETURNING id")
        outcome: list[BaseException | int] = []
        in_flight = threading.Thread(target=slow_write, args=(router, outcome))
        in_flight.start()
        time.sleep(0.5)  # the UPDATE is running on the primary now
        topology.kill(old)
        in_flight.join()
        assert len(outcome) == 1
        assert isinstance(outcome[0], WriteOutcomeUnknown)
        assert isinstance(outcome[0], psycopg.OperationalError)
        assert outcome[0].endpoint == old

        # The operator promotes a replica and publishes it; a write made meanwhile waits
        # for the new primary (nothing was sent to the dead one, so retrying is safe).
        def fail_over() -> None:
            asyncio.run(instance_control.promote(topology.dsn(new)))
            conninfo = topology.follower_conninfo(new, other)
            asyncio.run(instance_control.repoint_replica(topology.dsn(other), conninfo))
            topology.primary = new
            source.publish(
                status_for(topology, primary=new)
                | {
                    "instances": [
                        entry
                        for entry in status_for(topology, primary=new)["instances"]
                        if entry["name"] != old
                    ]
                }
            )

        operator = threading.Timer(0.3, fail_over)
        operator.start()
        (address,) = router.query(
            "INSERT INTO events (note) VALUES ('after') RETURNING inet_server_addr()::text"
        )[0]
        operator.join()
        assert server_of(topology, address) == new
        for _ in range(5):
            (address,) = router.query(
                "INSERT INTO events (note) VALUES ('more') RETURNING inet_server_addr()::text"
            )[0]
            assert server_of(topology, address) == new
        # Read-your-writes still holds on the new timeline.
        assert router.query("SELECT count(*) FROM events WHERE note = 'more'")[0][0] == 5


def test_a_stale_primary_refusing_writes_triggers_a_refresh_and_a_safe_retry(
    shared: LocalTopology,
) -> None:
    topology = shared
    actual = topology.primary
    stale_view = status_for(topology, primary=topology.replicas[0])
    source = StatusSource(settings_for(topology))
    source.publish(stale_view)  # the router believes a replica is the primary

    def operator_corrects_the_status() -> None:
        source.publish(status_for(topology))

    source.on_refresh_request = operator_corrects_the_status
    with status_router(topology, source, failover_wait_s=0.5) as router:
        (address,) = router.query(
            "INSERT INTO events (note) VALUES ('x') RETURNING inet_server_addr()::text"
        )[0]
        assert server_of(topology, address) == actual
        assert source.refresh_requests >= 1
        # With nobody to correct the view, the refusal surfaces as StalePrimary.
        source.on_refresh_request = None
        source.publish(stale_view)
        with pytest.raises(StalePrimary):
            router.execute("INSERT INTO events (note) VALUES ('y')")


def test_a_read_that_writes_is_rerouted_to_the_primary_and_remembered(
    shared: LocalTopology,
) -> None:
    topology = shared
    execute(
        topology.dsn(topology.primary),
        "CREATE FUNCTION note_it() RETURNS int LANGUAGE sql "
        "AS 'INSERT INTO events (note) VALUES (''via function'') RETURNING id'",
    )
    replicated(topology)
    with Router(static_config(topology), registry=CollectorRegistry()) as router:
        for _ in range(3):  # not declared in write_functions: looks like a read
            router.query("SELECT note_it()")
        count = router.query("SELECT count(*) FROM events WHERE note = 'via function'")[0][0]
        assert count == 3
        learned = router.core.classifier.classify("SELECT note_it()", False)
        assert not learned.read_only


def test_a_topology_change_lets_in_flight_reads_finish(shared: LocalTopology) -> None:
    topology = shared
    leaving, staying = topology.replicas
    source = StatusSource(settings_for(topology))
    source.publish(status_for(topology, without=(staying,)))
    with status_router(topology, source, consistency=EVENTUAL) as router:
        results: list[object] = []

        def long_read() -> None:
            try:
                sql = "SELECT pg_sleep(0.8), inet_server_addr()::text"
                results.append(router.query(sql)[0][1])
            except BaseException as exc:
                results.append(exc)

        reader = threading.Thread(target=long_read)
        reader.start()
        time.sleep(0.3)  # the read is running on the only replica
        source.publish(status_for(topology, without=(leaving,)))  # that replica leaves
        assert server_of(topology, router.query(WHERE_AM_I)[0][0]) == staying
        reader.join()
        assert len(results) == 1
        assert isinstance(results[0], str)
        assert server_of(topology, results[0]) == leaving


def test_a_recovery_conflict_on_a_replica_is_retried_elsewhere(
    make_topology: TopologyFactory,
) -> None:
    """A replica that cancels a read to apply WAL (SQLSTATE 40001): the read is retried.
    Its own topology: conflicts need hot_standby_feedback off and no standby delay."""
    topology = make_topology(
        parameters={"hot_standby_feedback": "off", "max_standby_streaming_delay": "0"}
    )
    replica = topology.replicas[0]
    primary = topology.dsn(topology.primary)
    execute(primary, "CREATE TABLE doomed (id int)")
    execute(primary, "INSERT INTO doomed SELECT generate_series(1, 1000)")
    registry = CollectorRegistry()
    config = static_config(topology, replica_dsns=(topology.dsn(replica),), consistency=EVENTUAL)
    replicated(topology)
    with Router(config, registry=registry) as router:

        def vacuum_meanwhile() -> None:
            execute(primary, "DELETE FROM doomed")
            execute(primary, "VACUUM doomed")

        cleaner = threading.Timer(0.4, vacuum_meanwhile)
        cleaner.start()
        (count, address) = router.query(
            "SELECT count(*), inet_server_addr()::text FROM doomed, pg_sleep(2)"
        )[0]
        cleaner.join()
        cause = {"cause": "recovery_conflict"}
        assert registry.get_sample_value("replicadb_router_read_retries_total", cause) == 1
        # Retried on the primary (the only other endpoint), after the delete.
        assert server_of(topology, address) == topology.primary
        assert count == 0


def test_a_write_waiting_on_a_replaced_primary_fails_at_once(prepared: LocalTopology) -> None:
    """A write stuck on the old primary (here behind a row lock; after a network cut, behind
    TCP timeouts) ends as soon as the source names another primary: the operator fenced the
    old one first, so its outcome is reported unknown at once and the next write goes on."""
    topology = prepared
    old, new = topology.primary, topology.replicas[0]
    source = StatusSource(settings_for(topology))
    source.publish(status_for(topology))
    with (
        status_router(topology, source, failover_wait_s=5.0) as router,
        psycopg.connect(topology.dsn(old)) as blocker,
    ):
        blocker.execute("SELECT v FROM counters WHERE id = 1 FOR UPDATE")
        outcome: list[tuple[BaseException, float]] = []

        def write() -> None:
            try:
                router.execute("UPDATE counters SET v = v + 1 WHERE id = 1")
            except BaseException as exc:
                outcome.append((exc, time.monotonic()))

        writer = threading.Thread(target=write)
        writer.start()
        time.sleep(0.5)  # the UPDATE waits for the lock on the old primary now
        asyncio.run(instance_control.promote(topology.dsn(new)))
        published = time.monotonic()
        source.publish(status_for(topology, primary=new, without=(old,)))
        writer.join(10)
        blocker.rollback()
        assert outcome, "the write was still waiting on the replaced primary after 10 s"
        error, ended = outcome[0]
        assert isinstance(error, WriteOutcomeUnknown)
        assert ended - published < 2.0
        (address,) = router.query(
            "UPDATE counters SET v = v + 1 WHERE id = 1 RETURNING inet_server_addr()::text"
        )[0]
        assert server_of(topology, address) == new
