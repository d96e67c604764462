"""The result cache on real PostgreSQL and a real redis-server.

Ground truth for "served from the cache": the data is changed behind the router's back
(directly on the primary, replicated before the read), so a cached answer is recognisably
the old value, and a database answer the new one.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry
from replicadb_operator.local.topology import LocalTopology

from router_lib.config import CacheConfig, RouterConfig
from router_lib.consistency import EVENTUAL, READ_YOUR_WRITES, STRONG
from router_lib.router import Router
from tests.integration.conftest import replicated, static_config
from tests.integration.sql import execute

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.timeout(120)]

READ = "SELECT name FROM products WHERE id = %s"


@pytest.fixture(scope="module")
def topology(shared_topology: LocalTopology) -> LocalTopology:
    primary = shared_topology.dsn(shared_topology.primary)
    execute(primary, "CREATE TABLE products (id int PRIMARY KEY, name text NOT NULL)")
    execute(primary, "CREATE TABLE other (id int PRIMARY KEY)")
    execute(primary, "INSERT INTO products SELECT g, 'v0' FROM generate_series(1, 20) g")
    replicated(shared_topology)
    return shared_topology


def behind_the_routers_back(topology: LocalTopology, key: int, name: str) -> None:
    execute(
        topology.dsn(topology.primary), "UPDATE products SET name = %s WHERE id = %s", (name, key)
    )
    replicated(topology)


def config(topology: LocalTopology, cache: CacheConfig) -> RouterConfig:
    return static_config(topology, cache=cache, consistency=EVENTUAL)


def hits(registry: CollectorRegistry, layer: str) -> float:
    value = registry.get_sample_value("replicadb_router_cache_hits_total", {"layer": layer})
    return value or 0.0


@pytest.fixture
def memory_router(topology: LocalTopology) -> Iterator[tuple[Router, CollectorRegistry]]:
    registry = CollectorRegistry()
    cache = CacheConfig(mode="memory", ttl_s=60)
    with Router(config(topology, cache), registry=registry) as router:
        yield router, registry


def test_a_repeated_read_is_served_from_the_cache(
    memory_router: tuple[Router, CollectorRegistry], topology: LocalTopology
) -> None:
    router, registry = memory_router
    assert router.query(READ, (1,), cache=True) == [("v0",)]
    behind_the_routers_back(topology, 1, "changed elsewhere")
    assert router.query(READ, (1,), cache=True) == [("v0",)]  # the cached answer
    assert hits(registry, "memory") == 1
    assert router.query(READ, (1,)) == [("changed elsewhere",)]  # not cached: the database
    assert router.query(READ, (1,), consistency=STRONG, cache=True) == [("changed elsewhere",)]
    # Other parameters are another entry.
    assert router.query(READ, (2,), cache=True) == [("v0",)]
    assert hits(registry, "memory") == 1


def test_a_write_through_the_router_invalidates_the_tables_it_touches(
    memory_router: tuple[Router, CollectorRegistry], topology: LocalTopology
) -> None:
    router, registry = memory_router
    router.query(READ, (3,), cache=True)
    router.query("SELECT count(*) FROM other", cache=True)
    router.execute("UPDATE products SET name = 'v1' WHERE id = %s", (4,))  # another row
    assert router.query(READ, (3,), cache=True) == [("v0",)]  # miss: the table was written
    assert hits(registry, "memory") == 0
    assert router.query("SELECT count(*) FROM other", cache=True) == [(0,)]
    assert hits(registry, "memory") == 1  # a table the write did not touch stays cached
    router.invalidate_pattern("prod*")
    behind_the_routers_back(topology, 3, "v2")
    assert router.query(READ, (3,), cache=True) == [("v2",)]


def test_read_your_writes_never_takes_a_cached_answer_older_than_the_session_write(
    memory_router: tuple[Router, CollectorRegistry], topology: LocalTopology
) -> None:
    router, _ = memory_router
    session = router.session(READ_YOUR_WRITES)
    router.query(READ, (5,), cache=True)  # cached by an EVENTUAL read
    # The session writes a table the cached statement does not name (a view or trigger
    # could still connect them): the entry predates the write, so RYW must not use it.
    session.execute("INSERT INTO other VALUES (5)")
    behind_the_routers_back(topology, 5, "newer")
    assert session.query(READ, (5,), cache=True) == [("newer",)]


def test_entries_expire_after_their_ttl(topology: LocalTopology) -> None:
    cache = CacheConfig(mode="memory", ttl_s=0.3)
    with Router(config(topology, cache), registry=CollectorRegistry()) as router:
        assert router.query(READ, (6,), cache=True) == [("v0",)]
        behind_the_routers_back(topology, 6, "after ttl")
        assert router.query(READ, (6,), cache=True) == [("v0",)]
        time.sleep(0.35)
        assert router.query(READ, (6,), cache=True) == [("after ttl",)]


def test_redis_is_shared_by_two_routers(topology: LocalTopology, redis_url: str) -> None:
    cache = CacheConfig(mode="redis", ttl_s=60, redis_url=redis_url, prefix="shared-test:")
    registry_a, registry_b = CollectorRegistry(), CollectorRegistry()
    with (
        Router(config(topology, cache), registry=registry_a) as a,
        Router(config(topology, cache), registry=registry_b) as b,
    ):
        assert a.query(READ, (7,), cache=True) == [("v0",)]
        behind_the_routers_back(topology, 7, "changed elsewhere")
        assert b.query(READ, (7,), cache=True) == [("v0",)]  # stored by a, served to b
        assert hits(registry_b, "redis") == 1
        b.execute("UPDATE products SET name = 'written by b' WHERE id = %s", (8,))
        assert a.query(READ, (7,), cache=True) == [("changed elsewhere",)]  # invalidated
        assert hits(registry_a, "redis") == 0


def test_redis_entries_expire_and_redis_plus_memory_layers_both_answer(
    topology: LocalTopology, redis_url: str
) -> None:
    cache = CacheConfig(mode="memory+redis", ttl_s=0.5, redis_url=redis_url, prefix="ttl-test:")
    registry_a, registry_b = CollectorRegistry(), CollectorRegistry()
    with (
        Router(config(topology, cache), registry=registry_a) as a,
        Router(config(topology, cache), registry=registry_b) as b,
    ):
        a.query(READ, (9,), cache=True)
        a.query(READ, (9,), cache=True)
        assert hits(registry_a, "memory") == 1
        b.query(READ, (9,), cache=True)
        assert hits(registry_b, "redis") == 1
        behind_the_routers_back(topology, 9, "after ttl")
        time.sleep(0.6)
        assert b.query(READ, (9,), cache=True) == [("after ttl",)]
        assert a.query(READ, (9,), cache=True) == [("after ttl",)]
