"""The SQLAlchemy integration (router_lib.contrib.sqlalchemy_routing) in a small app
(tests/sqlalchemy_app) on a real primary and two streaming replicas: where statements run,
what each consistency level returns while replay is paused, the asyncio engine, and a
failover followed without a restart."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest
from psycopg.conninfo import conninfo_to_dict
from replicadb_operator.dataplane import instance_control
from replicadb_operator.local.topology import LocalTopology
from sqlalchemy import URL, insert, select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import sessionmaker

from router_lib.config import RouterConfig
from router_lib.consistency import BOUNDED, EVENTUAL, READ_YOUR_WRITES, STRONG
from router_lib.contrib.routing_service import RoutingService
from router_lib.contrib.sqlalchemy_routing import RoutedDatabase, RoutingSession
from router_lib.sources import StatusSource
from tests.conftest import TopologyFactory
from tests.integration.conftest import (
    replay_paused,
    replicated,
    settings_for,
    static_config,
    status_for,
)
from tests.integration.sql import eventually, execute
from tests.sqlalchemy_app import shop
from tests.sqlalchemy_app.models import Base, Item

pytestmark = pytest.mark.postgres

DATABASE = "shop_sa"


def app_url(topology: LocalTopology) -> URL:
    """Who connects and to which database; the addresses come from router_lib."""
    values = conninfo_to_dict(topology.dsn(topology.primary))
    return URL.create(
        "postgresql+psycopg",
        username=str(values["user"]),
        password=str(values["password"]),
        database=DATABASE,
    )


def host_of(topology: LocalTopology, name: str) -> str:
    return topology.instances[name].host


@pytest.fixture(scope="module")
def routed(shared_topology: LocalTopology) -> Iterator[tuple[LocalTopology, RoutedDatabase]]:
    topology = shared_topology
    execute(topology.dsn(topology.primary), f"CREATE DATABASE {DATABASE}")
    config = static_config(topology, consistency=READ_YOUR_WRITES)
    db = RoutedDatabase(app_url(topology), service=RoutingService(config))
    Base.metadata.create_all(db.primary())
    replicated(topology)
    try:
        yield topology, db
    finally:
        db.dispose()
        db.service.close()


def test_reads_on_replicas_writes_and_locks_on_the_primary(
    routed: tuple[LocalTopology, RoutedDatabase],
) -> None:
    topology, db = routed
    primary = host_of(topology, topology.primary)
    replicas = {host_of(topology, name) for name in topology.replicas}
    Sessions = sessionmaker(class_=RoutingSession, replicadb=db)
    with Sessions() as session:
        assert shop.server(session, EVENTUAL) in replicas
    with Sessions() as session:
        assert shop.server(session, STRONG) == primary
    with Sessions() as session:
        item = shop.add_item(session, "first")
        # Read-your-writes (the configured level): a replica that has the commit, or the
        # primary; the lazy load of the basket too.
        assert "first" in shop.item_names(session)
        assert item.basket is not None
        assert item.basket.owner == "ann"
        locked = session.scalars(select(Item).where(Item.id == item.id).with_for_update()).one()
        assert locked.name == "first"
        # After the lock, the rest of the transaction stays on the primary.
        assert shop.server(session, EVENTUAL) == primary
        session.commit()
    with Sessions() as session, session.begin():
        # An explicit transaction runs on the primary, reads included.
        assert shop.server(session, EVENTUAL) == primary
    with Sessions() as session:
        # Session state: the rest of the transaction reads where the SET was run.
        session.execute(text("SET LOCAL statement_timeout = 4321"))
        setting = session.scalar(text("SELECT current_setting('statement_timeout')"))
        assert setting == "4321ms"
        assert shop.server(session, EVENTUAL) == primary
        session.commit()
        assert shop.server(session, EVENTUAL) in replicas  # a new transaction
    tally = db.service.tally
    assert tally[("replica", "eventual")] >= 1
    assert tally[("primary", "locking_clause")] >= 1


def test_paused_replay_read_your_writes_eventual_bounded(
    routed: tuple[LocalTopology, RoutedDatabase],
) -> None:
    topology, db = routed
    primary = host_of(topology, topology.primary)
    Sessions = sessionmaker(class_=RoutingSession, replicadb=db)
    for name in topology.replicas:
        replay_paused(topology, name, True)
    try:
        with Sessions() as session:
            # The Session's own write, read back: the replicas do not have it, so
            # read-your-writes waits briefly and reads from the primary.
            shop.add_item(session, "ryw-item")
            assert "ryw-item" in shop.item_names(session)
        with Sessions() as session:
            # EVENTUAL reads a paused replica: the write is not there.
            shop.add_item(session, "eventual-item")
            assert "eventual-item" not in shop.item_names(session, EVENTUAL)
            assert shop.server(session, EVENTUAL) != primary
            session.commit()
        # Once the probe has seen the replicas behind, BOUNDED (no lag allowed) reads the
        # primary, which has both writes.
        table = db.service.core.table

        def behind() -> bool:
            latest = table.history.latest()
            return latest is not None and all(
                state.replay_lsn < latest[0] for state in table.view.replicas
            )

        eventually(behind, what="the probe saw the replicas behind")
        with Sessions() as session:
            names = shop.item_names(session, BOUNDED(max_lag_bytes=0))
            assert {"ryw-item", "eventual-item"} <= set(names)
            assert shop.server(session, BOUNDED(max_lag_bytes=0)) == primary
        # A new Session that did not write: EVENTUAL still serves the stale replica.
        with Sessions() as session:
            assert "eventual-item" not in shop.item_names(session, EVENTUAL)
    finally:
        for name in topology.replicas:
            replay_paused(topology, name, False)
    replicated(topology)
    with Sessions() as session:
        assert {"ryw-item", "eventual-item"} <= set(shop.item_names(session, EVENTUAL))


def test_another_session_s_commit_in_the_same_thread_is_read(
    routed: tuple[LocalTopology, RoutedDatabase],
) -> None:
    """As on one server (SQLAlchemy's test_concurrent_commit_persistent): one Session
    commits, another Session of the same thread reads it, replicas paused or not. Another
    thread's read-your-writes is its own: it reads a replica without waiting for this one."""
    topology, db = routed
    Sessions = sessionmaker(class_=RoutingSession, replicadb=db)
    for name in topology.replicas:
        replay_paused(topology, name, True)
    try:
        with Sessions() as reader:
            assert "other-session-item" not in shop.item_names(reader)
            reader.commit()
            with Sessions() as writer:
                shop.add_item(writer, "other-session-item")
            assert "other-session-item" in shop.item_names(reader)
        elsewhere: list[list[str]] = []

        def read_in_another_thread() -> None:
            with Sessions() as session:
                elsewhere.append(shop.item_names(session))

        thread = threading.Thread(target=read_in_another_thread)
        thread.start()
        thread.join()
        assert "other-session-item" not in elsewhere[0]
    finally:
        for name in topology.replicas:
            replay_paused(topology, name, False)
    replicated(topology)


def test_connection_api_writes_count_for_read_your_writes(
    routed: tuple[LocalTopology, RoutedDatabase],
) -> None:
    """A write made on the primary engine outside any Session (a migration, a bulk load)
    is seen by the next Session's read-your-writes read, replicas paused or not."""
    topology, db = routed
    Sessions = sessionmaker(class_=RoutingSession, replicadb=db)
    for name in topology.replicas:
        replay_paused(topology, name, True)
    try:
        with db.primary().begin() as conn:
            conn.execute(insert(Item).values(name="bulk-item"))
        with Sessions() as session:
            assert "bulk-item" in shop.item_names(session)
            assert "bulk-item" not in shop.item_names(session, EVENTUAL)
    finally:
        for name in topology.replicas:
            replay_paused(topology, name, False)
    replicated(topology)


def test_asyncio_engine(routed: tuple[LocalTopology, RoutedDatabase]) -> None:
    topology, sync_db = routed
    primary = host_of(topology, topology.primary)
    replicas = {host_of(topology, name) for name in topology.replicas}

    async def scenario() -> None:
        db = RoutedDatabase(app_url(topology), service=sync_db.service, asyncio=True)
        try:
            async with AsyncSession(sync_session_class=RoutingSession, replicadb=db) as session:
                assert await shop.server_async(session, EVENTUAL) in replicas
                await session.commit()
                assert await shop.server_async(session, STRONG) == primary
                await session.commit()
            for name in topology.replicas:
                replay_paused(topology, name, True)
            try:
                async with AsyncSession(sync_session_class=RoutingSession, replicadb=db) as session:
                    await shop.add_item_async(session, "async-item")
                    assert "async-item" in await shop.item_names_async(session)
                    await session.commit()
                    names = await shop.item_names_async(session, EVENTUAL)
                    assert "async-item" not in names
            finally:
                for name in topology.replicas:
                    replay_paused(topology, name, False)
        finally:
            for engine in db.engines.engines():
                await engine.dispose()

    asyncio.run(scenario())
    replicated(topology)


def test_failover_followed_without_restart(make_topology: TopologyFactory) -> None:
    """Endpoints from a ReplicatedDatabase status: the operator promotes a replica and
    publishes it; the next Session writes on the new primary, and no connection to the
    former primary is used again."""
    topology = make_topology()
    execute(topology.dsn(topology.primary), f"CREATE DATABASE {DATABASE}")
    old, new, other = topology.primary, *topology.replicas
    source = StatusSource(settings_for(topology))
    source.publish(status_for(topology))
    config = RouterConfig(kube_name="shop", lag_probe_interval_s=0.1)
    db = RoutedDatabase(app_url(topology), service=RoutingService(config, source=source))
    Sessions = sessionmaker(class_=RoutingSession, replicadb=db)
    try:
        with Sessions() as session:
            session.execute(text("CREATE TABLE notes (body text)"))
            session.execute(text("INSERT INTO notes VALUES ('before')"))
            session.commit()
        before = db.primary_sync()
        topology.kill(old)
        asyncio.run(instance_control.promote(topology.dsn(new)))
        conninfo = topology.follower_conninfo(new, other)
        asyncio.run(instance_control.repoint_replica(topology.dsn(other), conninfo))
        topology.primary = new
        status = status_for(topology, primary=new)
        status["instances"] = [e for e in status["instances"] if e["name"] != old]
        source.publish(status)
        with Sessions() as session:
            row = session.execute(
                text("INSERT INTO notes VALUES ('after') RETURNING host(inet_server_addr())")
            ).scalar()
            assert row == host_of(topology, new)
            session.commit()
            bodies = session.scalars(
                text("SELECT body FROM notes ORDER BY body"),
                execution_options={"replicadb_consistency": STRONG},
            )
            assert list(bodies) == ["after", "before"]
        assert db.primary_sync() is not before
        assert before not in {e for e in db.engines.engines()}
    finally:
        db.dispose()
        db.service.close()
