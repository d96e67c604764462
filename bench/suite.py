"""The benchmark suite: one mixed workload (90 % reads, 10 % writes) through each way an
application can reach the database, and a PgBouncer concurrency sweep up to 1000 clients.

Variants, each run by the same client threads on the same seeded stream, in rounds that
rotate the order so that machine noise falls on all alike:

  (a) primary       plain psycopg_pool to the primary, everything there (the baseline)
      split         plain psycopg_pool, reads on one replica, writes on the primary: what
                    sending reads elsewhere costs or gains before any router logic
  (b) router        router_lib, reads to replicas, EVENTUAL
  (b) router_ryw    router_lib, each client a READ_YOUR_WRITES session
  (c) poolers       plain psycopg_pool through PgBouncer: writes via the read-write pool,
                    reads via the read-only pool (which spreads over the replicas)
  (d) router_cache  router_lib EVENTUAL with the in-process result cache on every read

``make bench-suite`` runs it on local processes (a primary, 2 replicas, 2 PgBouncers);
``--target cluster`` runs it against a ReplicatedDatabase on KUBECONFIG's cluster (default
the demo's). Prints tables, writes .bench/suite.json and .bench/suite-latency.png.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import psycopg
from prometheus_client import CollectorRegistry
from psycopg_pool import ConnectionPool
from replicadb_operator.local.os_user import server_user
from replicadb_operator.local.pgbouncer import LocalPgBouncer
from replicadb_operator.local.topology import LocalTopology

from bench.report import BENCH_DIR, progress
from bench.suite_runs import Client, SweepPoint, run_threads, sweep_point
from bench.workload import FILL, SCHEMA, Mix, Operation, summarize
from router_lib.config import CacheConfig, RouterConfig
from router_lib.consistency import EVENTUAL, READ_YOUR_WRITES
from router_lib.router import Router

MIX = Mix()
SEED = 20261203
RO_POOLER_PORT = 6433


@dataclass(frozen=True)
class Endpoints:
    primary: str
    replicas: tuple[str, ...]
    pooler_rw: str
    pooler_ro: str
    where: str


Opened = tuple[Callable[[], Client], Callable[[], None]]


def _pool(dsn: str, size: int, prepare: bool = True) -> ConnectionPool:
    kwargs: dict[str, object] = {"autocommit": True}
    if not prepare:
        kwargs["prepare_threshold"] = None  # PgBouncer in transaction mode
    pool = ConnectionPool(dsn, min_size=size, max_size=size, kwargs=kwargs, open=True)
    pool.wait(30)
    return pool


def _pooled(reads: ConnectionPool, writes: ConnectionPool) -> Client:
    def client(operation: Operation) -> None:
        with (reads if operation.is_read else writes).connection() as conn:
            cursor = conn.execute(operation.sql, operation.params)
            if operation.is_read:
                cursor.fetchall()

    return client


def open_primary(endpoints: Endpoints, clients: int) -> Opened:
    pool = _pool(endpoints.primary, clients)
    return (lambda: _pooled(pool, pool)), pool.close


def _two_pools(reads_dsn: str, writes_dsn: str, clients: int, prepare: bool = True) -> Opened:
    reads = _pool(reads_dsn, clients, prepare)
    writes = _pool(writes_dsn, clients, prepare)

    def close() -> None:
        reads.close()
        writes.close()

    return (lambda: _pooled(reads, writes)), close


def open_split(endpoints: Endpoints, clients: int) -> Opened:
    return _two_pools(endpoints.replicas[0], endpoints.primary, clients)


def open_poolers(endpoints: Endpoints, clients: int) -> Opened:
    return _two_pools(endpoints.pooler_ro, endpoints.pooler_rw, clients, prepare=False)


def _router(
    endpoints: Endpoints,
    clients: int,
    cache: CacheConfig | None = None,
    registry: CollectorRegistry | None = None,
) -> Router:
    config = RouterConfig(
        primary_dsn=endpoints.primary,
        replica_dsns=endpoints.replicas,
        consistency=EVENTUAL,
        primary_pool_min=clients,
        primary_pool_max=clients,
        replica_pool_min=clients,
        replica_pool_max=clients,
        cache=cache or CacheConfig(),
    )
    return Router(config, registry=registry or CollectorRegistry())


def _routed(router: Router, session_level: bool) -> Callable[[], Client]:
    def make() -> Client:
        target = router.session(READ_YOUR_WRITES) if session_level else router

        def client(operation: Operation) -> None:
            if operation.is_read:
                target.query(operation.sql, operation.params)
            else:
                target.execute(operation.sql, operation.params)

        return client

    return make


def open_router(endpoints: Endpoints, clients: int) -> Opened:
    router = _router(endpoints, clients)
    return _routed(router, False), router.close


def open_router_ryw(endpoints: Endpoints, clients: int) -> Opened:
    router = _router(endpoints, clients)
    return _routed(router, True), router.close


CACHE_TALLY = {"hits": 0.0, "misses": 0.0}


def open_router_cache(endpoints: Endpoints, clients: int) -> Opened:
    cache = CacheConfig(mode="memory", ttl_s=30, max_entries=MIX.rows * 2, by_default=True)
    registry = CollectorRegistry()
    router = _router(endpoints, clients, cache, registry)

    def close() -> None:
        router.close()
        hits = registry.get_sample_value("replicadb_router_cache_hits_total", {"layer": "memory"})
        misses = registry.get_sample_value("replicadb_router_cache_misses_total")
        CACHE_TALLY["hits"] += hits or 0.0
        CACHE_TALLY["misses"] += misses or 0.0

    return _routed(router, False), close


VARIANTS: dict[str, tuple[str, Callable[[Endpoints, int], Opened]]] = {
    "primary": ("(a) primary alone, plain psycopg_pool", open_primary),
    "split": ("plain psycopg_pool: reads on one replica, writes on the primary", open_split),
    "router": ("(b) router_lib, replicas, EVENTUAL", open_router),
    "router_ryw": ("(b) router_lib, READ_YOUR_WRITES sessions", open_router_ryw),
    "poolers": ("(c) PgBouncer rw + ro pools, plain psycopg_pool", open_poolers),
    "router_cache": ("(d) router_lib EVENTUAL + result cache", open_router_cache),
}


def measure_variants(
    endpoints: Endpoints, clients: int, seconds: float, rounds: int
) -> dict[str, dict[str, float | int]]:
    latencies: dict[str, list[float]] = {key: [] for key in VARIANTS}
    elapsed = dict.fromkeys(VARIANTS, 0.0)
    errors = dict.fromkeys(VARIANTS, 0)
    keys = list(VARIANTS)
    for round_number in range(rounds):
        order = keys[round_number % len(keys) :] + keys[: round_number % len(keys)]
        for key in order:
            make_client, close = VARIANTS[key][1](endpoints, clients)
            try:
                samples, window_s = run_threads(
                    make_client, clients, seconds, min(1.0, seconds / 4), MIX, SEED
                )
            finally:
                close()
            latencies[key] += samples.latencies_s
            elapsed[key] += window_s
            errors[key] += samples.errors
            progress(
                f"round {round_number + 1}/{rounds} {key}: "
                f"{len(samples.latencies_s) / window_s:,.0f} ops/s, {samples.errors} errors"
            )
    baseline = summarize(latencies["primary"], elapsed["primary"], errors["primary"])
    results: dict[str, dict[str, float | int]] = {}
    for key in keys:
        summary = summarize(latencies[key], elapsed[key], errors[key])
        results[key] = {
            **summary.as_dict(),
            "qps_ratio": round(summary.qps / baseline.qps, 3),
            "p50_ratio": round(summary.p50_ms / baseline.p50_ms, 3),
        }
    looked_up = CACHE_TALLY["hits"] + CACHE_TALLY["misses"]
    if looked_up:
        results["router_cache"]["cache_hit_ratio"] = round(CACHE_TALLY["hits"] / looked_up, 3)
    return results


def measure_sweep(
    endpoints: Endpoints, levels: list[int], seconds: float
) -> dict[str, list[dict[str, float | int]]]:
    sweep: dict[str, list[dict[str, float | int]]] = {"pgbouncer": [], "direct": []}
    for clients in levels:
        for path, dsn in (("pgbouncer", endpoints.pooler_rw), ("direct", endpoints.primary)):
            point: SweepPoint = asyncio.run(sweep_point(dsn, clients, seconds, MIX, SEED))
            sweep[path].append(point.as_dict())
            progress(
                f"sweep {path} {clients} clients: {point.connected} connected, "
                f"{point.connect_errors} refused, {point.summary.qps:,.0f} ops/s, "
                f"p99 {point.summary.p99_ms:.1f} ms"
            )
    return sweep


def prepare_schema(endpoints: Endpoints) -> None:
    with psycopg.connect(endpoints.primary, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS bench_items, bench_orders")
        for statement in SCHEMA:
            conn.execute(statement)
        conn.execute(FILL, (MIX.rows,))
        conn.execute("VACUUM ANALYZE bench_items")
        target = conn.execute("SELECT pg_current_wal_lsn()").fetchone()
    for dsn in endpoints.replicas:
        with psycopg.connect(dsn, autocommit=True) as conn:
            while conn.execute("SELECT pg_last_wal_replay_lsn() >= %s", target).fetchone() != (
                True,
            ):
                time.sleep(0.05)


@contextmanager
def local_endpoints() -> Iterator[Endpoints]:
    progress("starting a primary, 2 streaming replicas and 2 PgBouncers (rw, ro)")
    topology = LocalTopology(replicas=2, run_as=server_user())
    poolers: list[LocalPgBouncer] = []
    try:
        topology.start()
        poolers = [
            LocalPgBouncer(topology),
            LocalPgBouncer(
                topology,
                servers=tuple(topology.replicas),
                name="pgbouncer-ro",
                port=RO_POOLER_PORT,
            ),
        ]
        for pooler in poolers:
            pooler.start()
        yield Endpoints(
            primary=topology.dsn(topology.primary),
            replicas=tuple(topology.dsn(name) for name in topology.replicas),
            pooler_rw=poolers[0].dsn(),
            pooler_ro=poolers[1].dsn(),
            where="local processes (loopback), PostgreSQL 15, PgBouncer transaction mode",
        )
    finally:
        progress("removing the local processes")
        for pooler in poolers:
            pooler.stop()
        topology.destroy()


@contextmanager
def cluster_endpoints(namespace: str, name: str) -> Iterator[Endpoints]:
    from kubernetes import config

    from e2e import operator_support as ops

    api = config.new_client_from_config(config_file=os.environ.get("KUBECONFIG"))
    status = ops.status(api, namespace, name)
    password = ops.secret_value(api, namespace, f"{name}-app", "password")

    def dsn(host: str, port: int = 5432) -> str:
        return psycopg.conninfo.make_conninfo(
            "", host=host, port=port, user="app", password=password, dbname="app"
        )

    replicas = tuple(
        dsn(ops.pod_ip(api, namespace, entry["name"]))
        for entry in status.get("instances", [])
        if entry.get("role") == "replica"
    )
    progress(f"{namespace}/{name}: primary {status.get('primary')}, {len(replicas)} replicas")
    yield Endpoints(
        primary=dsn(ops.service_ip(api, namespace, f"{name}-rw")),
        replicas=replicas,
        pooler_rw=dsn(ops.service_ip(api, namespace, f"{name}-pooler-rw"), 6432),
        pooler_ro=dsn(ops.service_ip(api, namespace, f"{name}-pooler-ro"), 6432),
        where=f"cluster {namespace}/{name} (client on the node, Service and pod IPs)",
    )


def print_tables(
    variants: dict[str, dict[str, float | int]],
    sweep: dict[str, list[dict[str, float | int]]],
) -> None:
    columns = ("qps", "qps_ratio", "mean_ms", "p50_ms", "p95_ms", "p99_ms", "errors")
    print("\nmixed workload (90 % reads: 2 point : 1 range; 10 % writes)")
    print("  " + "variant".ljust(14) + "".join(c.rjust(11) for c in columns))
    for key, figures in variants.items():
        print("  " + key.ljust(14) + "".join(f"{figures[c]:>11}" for c in columns))
    for key, (label, _) in VARIANTS.items():
        print(f"    {key:<13} {label}")
    if "cache_hit_ratio" in variants.get("router_cache", {}):
        print(f"  cache hit ratio: {variants['router_cache']['cache_hit_ratio']}")
    print("\nconcurrency sweep (every client holds its own connection)")
    heads = ("clients", "connected", "refused", "qps", "p50_ms", "p99_ms", "errors")
    for path, points in sweep.items():
        print(f"  {path}")
        print("    " + "".join(h.rjust(11) for h in heads))
        for p in points:
            row = [p[k] for k in ("clients", "connected", "connect_errors", "qps")]
            row += [p[k] for k in ("p50_ms", "p99_ms", "errors")]
            print("    " + "".join(f"{v:>11}" for v in row))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", choices=("local", "cluster"), default="local")
    parser.add_argument("--namespace", default="replicadb-demo")
    parser.add_argument("--name", default="shop")
    parser.add_argument("--clients", type=int, default=8, help="client threads per variant")
    parser.add_argument("--seconds", type=float, default=5.0, help="measured time per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sweep", default="1,10,50,100,250,500,1000")
    parser.add_argument("--sweep-seconds", type=float, default=4.0)
    args = parser.parse_args()
    levels = [int(n) for n in args.sweep.split(",") if n]
    source = (
        local_endpoints()
        if args.target == "local"
        else cluster_endpoints(args.namespace, args.name)
    )
    with source as endpoints:
        progress(f"schema: bench_items ({MIX.rows:,} rows), bench_orders")
        prepare_schema(endpoints)
        progress(
            f"{len(VARIANTS)} variants x {args.rounds} rounds, {args.clients} clients, "
            f"{args.seconds:g} s each"
        )
        variants = measure_variants(endpoints, args.clients, args.seconds, args.rounds)
        progress(f"concurrency sweep through PgBouncer and direct: {levels}")
        sweep = measure_sweep(endpoints, levels, args.sweep_seconds)
        where = endpoints.where
    print_tables(variants, sweep)
    report = {
        "target": args.target,
        "where": where,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.node()}",
        "clients": args.clients,
        "seconds_per_round": args.seconds,
        "rounds": args.rounds,
        "mix": "90 % reads (2 point : 1 range of 20 rows; 80 % on a hot 10 %), 10 % inserts",
        "variants": variants,
        "sweep": sweep,
    }
    BENCH_DIR.mkdir(exist_ok=True)
    path = BENCH_DIR / "suite.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwritten to {path}")
    try:
        from bench.suite_chart import draw
    except ImportError:
        print("matplotlib is not installed (pip install -e '.[dev]'): no chart", file=sys.stderr)
    else:
        print(f"chart: {draw(variants, sweep, BENCH_DIR / 'suite-latency.png')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
