"""The client side of the scaling benchmark: one process of client threads per job.

Application servers are separate processes (each with its own GIL), so the clients run in
several processes that start their measured window at the same wall-clock instant. Each
reports what it completed inside the window and the CPU it used there, so the benchmark can
show that the clients were not the bottleneck.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass

import psycopg
from psycopg_pool import ConnectionPool

from bench.workload import Mix, MixedWorkload, Operation
from router_lib.config import CacheConfig, RouterConfig
from router_lib.consistency import EVENTUAL
from router_lib.router import Router

MIX = Mix()
VARIANTS = ("plain", "router", "pooler", "router_cache")


@dataclass(frozen=True)
class ClientJob:
    variant: str
    primary: str
    replicas: tuple[str, ...]  # where reads may go (none: the primary takes them)
    pooler_ro: str  # the read-only PgBouncer in front of the same replicas
    threads: int
    seed: int
    start_at: float  # time.time() when the measured window opens
    seconds: float


@dataclass(frozen=True)
class ClientResult:
    reads: int
    writes: int
    errors: int
    cpu_s: float  # this process' CPU time inside the window


Send = Callable[[Operation], None]


def _pool(stack: ExitStack, dsn: str, size: int, prepare: bool = True) -> ConnectionPool:
    kwargs: dict[str, object] = {"autocommit": True}
    if not prepare:
        kwargs["prepare_threshold"] = None  # PgBouncer in transaction mode
    pool = ConnectionPool(dsn, min_size=size, max_size=size, kwargs=kwargs, open=True)
    stack.callback(pool.close)
    pool.wait(30)
    return pool


def _pooled(reads: list[ConnectionPool], writes: ConnectionPool) -> Callable[[], Send]:
    turns = itertools.count()

    def make() -> Send:
        def send(operation: Operation) -> None:
            if operation.is_read:
                with reads[next(turns) % len(reads)].connection() as conn:
                    conn.execute(operation.sql, operation.params).fetchall()
            else:
                with writes.connection() as conn:
                    conn.execute(operation.sql, operation.params)

        return send

    return make


def _routed(router: Router) -> Callable[[], Send]:
    def make() -> Send:
        def send(operation: Operation) -> None:
            if operation.is_read:
                router.query(operation.sql, operation.params)
            else:
                router.execute(operation.sql, operation.params)

        return send

    return make


def open_variant(stack: ExitStack, job: ClientJob) -> Callable[[], Send]:
    size = job.threads
    if job.variant == "plain":
        writes = _pool(stack, job.primary, size)
        reads = [_pool(stack, dsn, size) for dsn in job.replicas] or [writes]
        return _pooled(reads, writes)
    if job.variant == "pooler":
        return _pooled([_pool(stack, job.pooler_ro, size, prepare=False)], _pool(
            stack, job.primary, size
        ))  # fmt: skip
    cache = (
        CacheConfig(mode="memory", ttl_s=30, max_entries=MIX.rows * 2, by_default=True)
        if job.variant == "router_cache"
        else CacheConfig()
    )
    router = Router(
        RouterConfig(
            primary_dsn=job.primary,
            replica_dsns=job.replicas,
            consistency=EVENTUAL,
            primary_pool_min=size,
            primary_pool_max=size,
            replica_pool_min=size,
            replica_pool_max=size,
            cache=cache,
        )
    )
    stack.callback(router.close)
    return _routed(router)


def run_job(job: ClientJob) -> ClientResult:
    """Open the variant, run until the window closes, count what fell inside it."""
    counts = [[0, 0, 0] for _ in range(job.threads)]  # reads, writes, errors per thread
    window_end = job.start_at + job.seconds
    with ExitStack() as stack:
        make = open_variant(stack, job)

        def worker(index: int) -> None:
            send, workload, mine = make(), MixedWorkload(MIX, job.seed + index), counts[index]
            now = time.time
            while (started := now()) < window_end:
                operation = workload.next()
                try:
                    send(operation)
                except psycopg.Error:
                    if started >= job.start_at:
                        mine[2] += 1
                    continue
                if started >= job.start_at and now() <= window_end:
                    mine[0 if operation.is_read else 1] += 1

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(job.threads)]
        for thread in threads:
            thread.start()
        time.sleep(max(0.0, job.start_at - time.time()))
        cpu_started = time.process_time()
        time.sleep(max(0.0, window_end - time.time()))
        cpu_s = time.process_time() - cpu_started
        for thread in threads:
            thread.join()
    return ClientResult(
        reads=sum(c[0] for c in counts),
        writes=sum(c[1] for c in counts),
        errors=sum(c[2] for c in counts),
        cpu_s=cpu_s,
    )
