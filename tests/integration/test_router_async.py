"""The asyncio router on real PostgreSQL: the same guarantees through the async twin."""

from __future__ import annotations

import asyncio
from collections import Counter
from functools import partial

import psycopg
import pytest
from prometheus_client import CollectorRegistry
from replicadb_operator.local.topology import LocalTopology

from router_lib.async_router import AsyncRouter
from router_lib.config import CacheConfig
from router_lib.consistency import EVENTUAL, READ_YOUR_WRITES
from router_lib.errors import WriteOutcomeUnknown
from router_lib.sources import StatusSource
from tests.conftest import TopologyFactory
from tests.integration.conftest import (
    replay_paused,
    replicated,
    server_of,
    settings_for,
    static_config,
    status_for,
)
from tests.integration.sql import caught_up, eventually, execute

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(120)]

READ = "SELECT v, inet_server_addr()::text FROM tallies WHERE id = %s"


@pytest.fixture(scope="module")
def topology(shared_topology: LocalTopology) -> LocalTopology:
    primary = shared_topology.dsn(shared_topology.primary)
    execute(primary, "CREATE TABLE tallies (id int PRIMARY KEY, v int NOT NULL)")
    execute(primary, "INSERT INTO tallies SELECT g, 0 FROM generate_series(1, 10) g")
    replicated(shared_topology)
    return shared_topology


async def test_async_reads_go_to_replicas_and_writes_to_the_primary(
    topology: LocalTopology,
) -> None:
    config = static_config(topology, consistency=EVENTUAL)
    async with AsyncRouter(config, registry=CollectorRegistry()) as router:
        served: Counter[str] = Counter()
        for _ in range(10):
            _, address = (await router.query(READ, (1,)))[0]
            served[server_of(topology, address)] += 1
        assert set(served) == set(topology.replicas)
        where = "UPDATE tallies SET v = v + 1 WHERE id = 1 RETURNING inet_server_addr()::text"
        (address,) = (await router.query(where))[0]
        assert server_of(topology, address) == topology.primary
        assert await router.execute("UPDATE tallies SET v = v WHERE id < %s", (4,)) == 3


async def test_async_read_your_writes_with_a_paused_replica(topology: LocalTopology) -> None:
    paused, running = topology.replicas
    config = static_config(topology, ryw_wait_s=0.05)
    async with AsyncRouter(config, registry=CollectorRegistry()) as router:
        session = router.session(READ_YOUR_WRITES)
        replay_paused(topology, paused, True)
        try:
            served: Counter[str] = Counter()
            for _ in range(15):
                (written,) = (
                    await session.query("UPDATE tallies SET v = v + 1 WHERE id = 2 RETURNING v")
                )[0]
                value, address = (await session.query(READ, (2,)))[0]
                assert value == written
                served[server_of(topology, address)] += 1
            assert served[paused] == 0
            assert served[running] >= 10
        finally:
            replay_paused(topology, paused, False)
            primary = topology.dsn(topology.primary)
            eventually(partial(caught_up, primary, topology.dsn(paused)), what="catch up")


async def test_async_transactions(topology: LocalTopology) -> None:
    config = static_config(topology)
    async with AsyncRouter(config, registry=CollectorRegistry()) as router:
        async with router.transaction() as tx:
            await tx.execute("UPDATE tallies SET v = 100 WHERE id = 3")
            (address,) = (await tx.query("SELECT inet_server_addr()::text"))[0]
            assert server_of(topology, address) == topology.primary

        async def abandoned() -> None:
            async with router.transaction() as tx:
                await tx.execute("UPDATE tallies SET v = 999 WHERE id = 3")
                raise RuntimeError("abandon")

        with pytest.raises(RuntimeError, match="abandon"):
            await abandoned()
        async with router.transaction(read_only=True) as tx:
            value, address = (await tx.query(READ, (3,)))[0]
            assert value == 100  # committed, rolled back: read-your-writes on a replica
            assert server_of(topology, address) in topology.replicas
            with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
                await tx.execute("UPDATE tallies SET v = 0 WHERE id = 3")


async def test_async_cache(topology: LocalTopology) -> None:
    registry = CollectorRegistry()
    config = static_config(topology, cache=CacheConfig(mode="memory"), consistency=EVENTUAL)
    async with AsyncRouter(config, registry=registry) as router:
        first = await router.query("SELECT v FROM tallies WHERE id = 4", cache=True)
        execute(topology.dsn(topology.primary), "UPDATE tallies SET v = -1 WHERE id = 4")
        replicated(topology)
        assert await router.query("SELECT v FROM tallies WHERE id = 4", cache=True) == first
        hit = registry.get_sample_value("replicadb_router_cache_hits_total", {"layer": "memory"})
        assert hit == 1
        await router.execute("UPDATE tallies SET v = -2 WHERE id = 5")  # same table
        assert await router.query("SELECT v FROM tallies WHERE id = 4", cache=True) == [(-1,)]


async def test_async_in_flight_write_fails_clearly_when_the_primary_dies(
    make_topology: TopologyFactory,
) -> None:
    topology = make_topology()  # its own: the primary gets killed
    source = StatusSource(settings_for(topology))
    source.publish(status_for(topology))
    config = static_config(topology, primary_dsn=None, replica_dsns=(), failover_wait_s=0.2)
    async with AsyncRouter(config, source=source, registry=CollectorRegistry()) as router:
        await router.execute("CREATE TABLE IF NOT EXISTS slow (id int)")
        write = asyncio.create_task(router.execute("INSERT INTO slow SELECT 1 FROM pg_sleep(3)"))
        await asyncio.sleep(0.5)
        await asyncio.to_thread(topology.kill, topology.primary)
        with pytest.raises(WriteOutcomeUnknown):
            await write


async def test_async_wait_returns_with_every_pool_at_its_minimum(topology: LocalTopology) -> None:
    config = static_config(topology, primary_pool_min=3, replica_pool_min=2)
    async with AsyncRouter(config, registry=CollectorRegistry()) as router:
        await router.wait(30)
        sizes = [
            (state.endpoint.role.value, (await router.pools.get(state)).get_stats()["pool_size"])
            for state in router.view.states
        ]
        assert sorted(sizes) == [("primary", 3), ("replica", 2), ("replica", 2)]
