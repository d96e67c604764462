"""The client side of the scaling benchmark: one process of client threads per job.

Application servers are separate processes (each with its own GIL), so the clients run in
several processes, which open their connections (SCRAM handshakes take a while on servers
held to a small CPU budget) and start sending, then wait for each other before the measured
window, so that the windows overlap. Each
reports what it completed inside the window and the CPU it used there, so the benchmark can
show that the clients were not the bottleneck.
"""

from __future__ import annotations

import itertools
import math
import os
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool

from bench.workload import Mix, MixedWorkload, Operation
from router_lib.balancing import Strategy, least_outstanding
from router_lib.config import CacheConfig, RouterConfig
from router_lib.consistency import EVENTUAL
from router_lib.router import Router
from router_lib.routing import primary_takes

MIX = Mix()
# Threads that share a process' steady inserts: one alone would fall behind its schedule
# whenever an insert waits longer than the interval (a primary busy with reads).
WRITERS = 4
READS_ONLY = Mix(read_share=1.0)
WRITES_ONLY = Mix(read_share=0.0)
VARIANTS = ("plain", "router", "pooler", "router_cache")
READY_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class ClientJob:
    variant: str
    primary: str
    replicas: tuple[str, ...]  # where reads may go (none: the primary takes them)
    pooler_ro: str  # the read-only PgBouncer in front of the same replicas
    threads: int
    seed: int
    ready: Any  # a multiprocessing.Manager Barrier for the run's processes
    warmup_s: float
    seconds: float
    primary_read_weight: float = 0.0  # the primary's share of reads, against 1.0 a replica
    join_group: str | None = None  # cgroup.procs of the clients' group, if any
    # 0: the closed mix, each thread's operations 10 % inserts, so writes grow with reads.
    # > 0: the threads only read, and WRITERS more threads insert at this rate (this
    # process' share), as an application's writes do: set by its users, not by its reads.
    writes_per_s: float = 0.0
    balancing: Strategy = Strategy.ROUND_ROBIN  # how plain pools and the router place reads
    # Connections per server in this process (0: one per thread). Sized to the server, as a
    # deployment sizes its pools: more threads than connections wait in the client's pool,
    # not as runnable backends on a server held to its CPU budget.
    connections: int = 0


@dataclass(frozen=True)
class ClientResult:
    reads: int
    writes: int
    errors: int
    cpu_s: float  # this process' CPU time inside the window


Send = Callable[[Operation], None]


def open_pool(stack: ExitStack, dsn: str, size: int, prepare: bool = True) -> ConnectionPool:
    kwargs: dict[str, object] = {"autocommit": True}
    if not prepare:
        kwargs["prepare_threshold"] = None  # PgBouncer in transaction mode
    pool = ConnectionPool(dsn, min_size=size, max_size=size, kwargs=kwargs, open=True)
    stack.callback(pool.close)
    pool.wait(30)
    return pool


def pooled(
    reads: list[ConnectionPool],
    writes: ConnectionPool,
    primary_weight: float = 0.0,
    balancing: Strategy = Strategy.ROUND_ROBIN,
) -> Callable[[], Send]:
    """Reads placed by the router's rules, so that both place reads alike: round robin over
    ``reads`` with the primary taking its share, or least outstanding over ``reads`` and
    the primary (weighed ``primary_weight``) by what each has in flight."""
    turns = itertools.count()
    shared = primary_weight > 0 and writes not in reads
    candidates = [*reads, writes] if shared else reads
    weights = [1.0] * len(reads) + ([primary_weight] if shared else [])
    in_flight = [0] * len(candidates)  # writes included: the primary's pool is shared
    lock = threading.Lock()

    def take(index: int) -> None:
        with lock:
            in_flight[index] += 1

    def give_back(index: int) -> None:
        with lock:
            in_flight[index] -= 1

    def choose(turn: int) -> int:
        if balancing is Strategy.LEAST_OUTSTANDING:
            return least_outstanding(in_flight, weights, turn)
        if shared and primary_takes(turn, len(reads), primary_weight):
            return len(reads)
        return turn % len(reads)

    primary = len(reads) if shared else -1  # writes counted only where reads go too

    def make() -> Send:
        def send(operation: Operation) -> None:
            index = choose(next(turns)) if operation.is_read else primary
            pool = candidates[index] if index >= 0 else writes
            if index >= 0:
                take(index)
            try:
                with pool.connection() as conn:
                    cur = conn.execute(operation.sql, operation.params)
                    if operation.is_read:
                        cur.fetchall()
            finally:
                if index >= 0:
                    give_back(index)

        return send

    return make


def routed(router: Router) -> Callable[[], Send]:
    def make() -> Send:
        def send(operation: Operation) -> None:
            if operation.is_read:
                router.query(operation.sql, operation.params)
            else:
                router.execute(operation.sql, operation.params)

        return send

    return make


def open_variant(stack: ExitStack, job: ClientJob) -> Callable[[], Send]:
    size = job.connections or job.threads + (WRITERS if job.writes_per_s > 0 else 0)
    if job.variant == "plain":
        writes = open_pool(stack, job.primary, size)
        if not job.replicas:
            return pooled([writes], writes)
        reads = [open_pool(stack, dsn, size) for dsn in job.replicas]
        return pooled(reads, writes, job.primary_read_weight, job.balancing)
    if job.variant == "pooler":
        reads = [open_pool(stack, job.pooler_ro, size, prepare=False)]
        return pooled(reads, open_pool(stack, job.primary, size))
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
            primary_read_weight=job.primary_read_weight,
            balancing=job.balancing,
            primary_pool_min=size,
            primary_pool_max=size,
            replica_pool_min=size,
            replica_pool_max=size,
            cache=cache,
        )
    )
    stack.callback(router.close)
    router.wait()
    return routed(router)


def run_job(job: ClientJob) -> ClientResult:
    """Open the variant and start sending (warm-up); when every process of the run is ready
    (``job.ready``, a barrier shared by them), measure a window of ``job.seconds`` after
    ``job.warmup_s`` and count what fell inside it."""
    writers = WRITERS if job.writes_per_s > 0 else 0
    # reads, writes, errors per thread (the steady writers last)
    counts = [[0, 0, 0] for _ in range(job.threads + writers)]
    window = [math.inf, math.inf]  # set once every process is ready
    stop = threading.Event()
    if job.join_group is not None:
        Path(job.join_group).write_text(str(os.getpid()))
    with ExitStack() as stack:
        make = open_variant(stack, job)

        def worker(index: int) -> None:
            mix = READS_ONLY if writers else MIX
            send, workload, mine = make(), MixedWorkload(mix, job.seed + index), counts[index]
            now = time.time
            while not stop.is_set():
                started = now()
                operation = workload.next()
                try:
                    send(operation)
                except psycopg.Error:
                    if window[0] <= started <= window[1]:
                        mine[2] += 1
                    continue
                if started >= window[0] and now() <= window[1]:
                    mine[0 if operation.is_read else 1] += 1

        def writer(index: int) -> None:
            """Inserts on a fixed schedule (a late insert is sent at once, not skipped)."""
            send, mine = make(), counts[index]
            workload = MixedWorkload(WRITES_ONLY, job.seed + index)
            interval = writers / job.writes_per_s
            due = time.monotonic() + interval * (index - job.threads) / writers
            while not stop.wait(max(0.0, due - time.monotonic())):
                due += interval
                started = time.time()
                try:
                    send(workload.next())
                except psycopg.Error:
                    mine[2] += window[0] <= started <= window[1]
                    continue
                mine[1] += started >= window[0] and time.time() <= window[1]

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(job.threads)]
        threads += [
            threading.Thread(target=writer, args=(job.threads + i,)) for i in range(writers)
        ]
        for thread in threads:
            thread.start()
        job.ready.wait(READY_TIMEOUT_S)
        window[1] = time.time() + job.warmup_s + job.seconds
        window[0] = window[1] - job.seconds
        time.sleep(job.warmup_s)
        cpu_started = time.process_time()
        time.sleep(max(0.0, window[1] - time.time()))
        cpu_s = time.process_time() - cpu_started
        stop.set()
        for thread in threads:
            thread.join()
    return ClientResult(
        reads=sum(c[0] for c in counts),
        writes=sum(c[1] for c in counts),
        errors=sum(c[2] for c in counts),
        cpu_s=cpu_s,
    )
