"""router_lib against a plain psycopg pool, on local processes.

Point-select throughput through a plain ``psycopg_pool.ConnectionPool`` and through the
router, to the same replica, in the same process, one client thread, rounds interleaved so
that machine noise hits both alike (medians reported). Plus: classification cost (cached and
uncached), the read-your-writes overhead per read in a write-then-read workload, and the
speed-up of a cached read.

Run with ``make bench-router``; figures go to .bench/router.json.
"""

from __future__ import annotations

import statistics
import time
import timeit
from collections.abc import Callable

import psycopg
from prometheus_client import CollectorRegistry
from replicadb_operator.local.os_user import server_user
from replicadb_operator.local.topology import LocalTopology

from bench.report import progress, write_report
from router_lib.classify import Classifier
from router_lib.config import CacheConfig, RouterConfig
from router_lib.consistency import EVENTUAL, READ_YOUR_WRITES
from router_lib.router import Router

POINT_SELECT = "SELECT id, name, qty FROM items WHERE id = %s"
ROWS = 10_000
PAIRS = 40_000
QUERIES_PER_ROUND = 3_000
RYW_CYCLES = 300
READS_PER_WRITE = 10


def qps(run_one: Callable[[int], object], queries: int) -> float:
    started = time.perf_counter()
    for n in range(queries):
        run_one(n % ROWS + 1)
    return queries / (time.perf_counter() - started)


def throughput(topology: LocalTopology, replica: str) -> tuple[float, float]:
    """(direct q/s, router q/s) of one client thread, from the median latency of each side.

    The two sides alternate query by query (direct then router, router then direct), so that
    whatever else runs on the machine falls on both alike, and the median ignores the
    queries that a burst of it hit. Both use the same psycopg_pool pool, hence the same
    server backend: the router's pool for that replica, a plain
    ``psycopg_pool.ConnectionPool`` (autocommit, psycopg's default prepare threshold), used
    the way plain psycopg code uses a pool. Two separate pools get two backends, and on a
    shared 2-core host where the kernel places each can change its round trip by 2x, which
    would swamp the router's microsecond or two."""
    config = RouterConfig(
        primary_dsn=topology.dsn(topology.primary),
        replica_dsns=(topology.dsn(replica),),
        consistency=EVENTUAL,
        replica_pool_min=1,
        replica_pool_max=1,
    )
    router = Router(config, registry=CollectorRegistry())
    (state,) = router.view.replicas
    pool = router.pools.get(state)
    pool.wait()

    def direct(key: int) -> object:
        with pool.connection() as conn:
            return conn.execute(POINT_SELECT, (key,)).fetchall()

    def routed(key: int) -> object:
        return router.query(POINT_SELECT, (key,))

    try:
        qps(direct, 3_000)  # warm up: connections, prepared statements, caches
        qps(routed, 3_000)
        clock = time.perf_counter
        direct_s: list[float] = []
        router_s: list[float] = []
        for n in range(PAIRS):
            key = n % ROWS + 1
            first, second = (direct, routed) if n % 2 else (routed, direct)
            started = clock()
            first(key)
            between = clock()
            second(key)
            ended = clock()
            (direct_s if first is direct else router_s).append(between - started)
            (direct_s if second is direct else router_s).append(ended - between)
            if (n + 1) % (PAIRS // 4) == 0:
                progress(
                    f"{n + 1:,}/{PAIRS:,} pairs: median direct "
                    f"{statistics.median(direct_s) * 1e6:.1f} us, router "
                    f"{statistics.median(router_s) * 1e6:.1f} us"
                )
        return 1 / statistics.median(direct_s), 1 / statistics.median(router_s)
    finally:
        router.close()


def classification_us() -> tuple[float, float]:
    classifier = Classifier()
    texts = [
        f"SELECT o.id, o.total FROM orders_{n} o JOIN customers c ON c.id = o.customer_id "
        f"WHERE o.id = %s AND c.region = %s ORDER BY o.created_at DESC LIMIT 10"
        for n in range(2_000)
    ]
    started = time.perf_counter()
    for text in texts:
        classifier.classify_uncached(text, True)
    uncached = (time.perf_counter() - started) / len(texts) * 1e6
    classifier.classify(POINT_SELECT, True)
    loops = 200_000
    cached = timeit.timeit(lambda: classifier.classify(POINT_SELECT, True), number=loops)
    # timeit's lambda call is part of the figure: an upper bound of the lookup itself.
    return cached / loops * 1e6, uncached


def ryw_overhead_us(topology: LocalTopology) -> float:
    """Extra time per read when reads must see the session's writes: a write, then ten
    reads of the same row, on a replica with replay running; EVENTUAL reads as baseline."""
    config = RouterConfig(
        primary_dsn=topology.dsn(topology.primary),
        replica_dsns=tuple(topology.dsn(name) for name in topology.replicas),
        lag_probe_interval_s=0.5,
    )
    with Router(config, registry=CollectorRegistry()) as router:

        def per_read_us(consistency_session: object) -> float:
            session = router.session(consistency_session)  # type: ignore[arg-type]
            reading = 0.0
            for cycle in range(RYW_CYCLES):
                key = cycle % ROWS + 1
                session.execute("UPDATE items SET qty = qty + 1 WHERE id = %s", (key,))
                started = time.perf_counter()
                for _ in range(READS_PER_WRITE):
                    session.query(POINT_SELECT, (key,))
                reading += time.perf_counter() - started
            return reading / (RYW_CYCLES * READS_PER_WRITE) * 1e6

        per_read_us(EVENTUAL)  # warm up
        rounds = []
        for _ in range(5):
            rounds.append(per_read_us(READ_YOUR_WRITES) - per_read_us(EVENTUAL))
        return statistics.median(rounds)


def cache_speedup(topology: LocalTopology, replica: str) -> float:
    config = RouterConfig(
        primary_dsn=topology.dsn(topology.primary),
        replica_dsns=(topology.dsn(replica),),
        consistency=EVENTUAL,
        cache=CacheConfig(mode="memory", ttl_s=600, max_entries=ROWS),
    )
    with Router(config, registry=CollectorRegistry()) as router:

        def uncached(key: int) -> object:
            return router.query(POINT_SELECT, (key,), cache=False)

        def cached(key: int) -> object:
            return router.query(POINT_SELECT, (key % 100 + 1,), cache=True)

        qps(cached, 200)  # fill the cache with the 100 keys read below
        uncached_rounds, cached_rounds = [], []
        for _ in range(3):
            uncached_rounds.append(qps(uncached, QUERIES_PER_ROUND))
            cached_rounds.append(qps(cached, QUERIES_PER_ROUND))
        return statistics.median(cached_rounds) / statistics.median(uncached_rounds)


def session_settings_qps(topology: LocalTopology, replica: str) -> tuple[float, float]:
    """(plain session q/s, q/s of a session that replays two settings): point selects on
    one replica, one thread, rounds interleaved. The settings session pays a set_config
    round trip before each read and a reset after it (the connection goes back clean)."""
    config = RouterConfig(
        primary_dsn=topology.dsn(topology.primary),
        replica_dsns=(topology.dsn(replica),),
        consistency=EVENTUAL,
        replica_pool_min=1,
        replica_pool_max=1,
        lag_probe_interval_s=0,
    )
    with Router(config, registry=CollectorRegistry()) as router:
        plain = router.session()
        carrying = router.session()
        carrying.execute("SET search_path = public")
        carrying.execute("SET statement_timeout = '5s'")

        def plain_read(key: int) -> object:
            return plain.query(POINT_SELECT, (key,))

        def carrying_read(key: int) -> object:
            return carrying.query(POINT_SELECT, (key,))

        plain_rounds, carrying_rounds = [], []
        for _ in range(3):
            plain_rounds.append(qps(plain_read, QUERIES_PER_ROUND))
            carrying_rounds.append(qps(carrying_read, QUERIES_PER_ROUND))
        carrying.close()
        return statistics.median(plain_rounds), statistics.median(carrying_rounds)


def main() -> None:
    progress("starting a primary and two replicas")
    topology = LocalTopology(replicas=2, run_as=server_user())
    try:
        topology.start()
        primary = topology.dsn(topology.primary)
        with psycopg.connect(primary, autocommit=True) as conn:
            conn.execute("CREATE TABLE items (id int PRIMARY KEY, name text, qty int)")
            conn.execute(
                "INSERT INTO items SELECT g, 'item ' || g, 0 FROM generate_series(1, %s) g",
                (ROWS,),
            )
            # Done now rather than by autovacuum in the middle of a measurement.
            conn.execute("VACUUM ANALYZE items")
            conn.execute("CHECKPOINT")
            target = conn.execute("SELECT pg_current_wal_lsn()").fetchone()
        for name in topology.replicas:
            with psycopg.connect(topology.dsn(name), autocommit=True) as conn:
                replayed = "SELECT pg_last_wal_replay_lsn() >= %s"
                while conn.execute(replayed, target).fetchone() != (True,):
                    time.sleep(0.01)
        replica = topology.replicas[0]
        progress(f"point selects on {replica}: plain pool vs router, alternating, {PAIRS:,} each")
        direct, routed = throughput(topology, replica)
        progress("classification, cached and uncached")
        cached_us, uncached_us = classification_us()
        progress("read-your-writes overhead per read (write, then 10 reads)")
        ryw_us = ryw_overhead_us(topology)
        progress("cached reads vs uncached reads through the router")
        speedup = cache_speedup(topology, replica)
        progress("a session replaying two settings vs a plain session")
        plain_qps, settings_qps = session_settings_qps(topology, replica)
    finally:
        progress("removing the topology")
        topology.destroy()
    write_report(
        "router",
        {
            "direct_qps": round(direct, 1),
            "router_qps": round(routed, 1),
            "router_direct_ratio": round(routed / direct, 4),
            "classify_cached_us": round(cached_us, 3),
            "classify_uncached_us": round(uncached_us, 2),
            "ryw_overhead_us": round(ryw_us, 1),
            "cache_speedup": round(speedup, 2),
            "plain_session_qps": round(plain_qps, 1),
            "settings_session_qps": round(settings_qps, 1),
            "settings_session_ratio": round(settings_qps / plain_qps, 4),
        },
        {
            "direct_qps": "point select through a psycopg_pool pool, 1 thread (1/median latency)",
            "router_qps": "the same through Router (EVENTUAL; same pool and server backend)",
            "router_direct_ratio": "goal >= 0.95",
            "classify_cached_us": "classification of a seen statement text; goal < 5",
            "classify_uncached_us": "pglast JSON parse + decode of a new statement text",
            "ryw_overhead_us": "extra per read: read-your-writes vs eventual, 10 reads/write",
            "cache_speedup": "cached read vs uncached read, in-process layer",
            "plain_session_qps": "point selects through router.session(), 1 thread",
            "settings_session_qps": "the same in a session that SET search_path and "
            "statement_timeout (replayed before each read, reset after)",
            "settings_session_ratio": "settings session / plain session",
        },
    )


if __name__ == "__main__":
    main()
