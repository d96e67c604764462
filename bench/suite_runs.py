"""How the suite drives load: client threads for the variants, asyncio clients for the sweep.

Every client runs the same seeded :class:`MixedWorkload`; only what it sends the statements
through differs. Operations are timed one by one; a warm-up before the measured window fills
pools, prepared statements and caches, and only operations that start and end inside the
window count.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import psycopg
from replicadb_operator.local.client_load import raise_open_file_limit

from bench.workload import Mix, MixedWorkload, Operation, Summary, summarize

Client = Callable[[Operation], None]


@dataclass
class Window:
    started: float = 0.0
    ended: float = 0.0

    @property
    def seconds(self) -> float:
        return self.ended - self.started


@dataclass
class Samples:
    latencies_s: list[float]
    errors: int = 0


def run_threads(
    make_client: Callable[[], Client],
    clients: int,
    seconds: float,
    warmup_s: float,
    mix: Mix,
    seed: int,
) -> tuple[Samples, float]:
    """``clients`` threads, each with its own client; returns the samples and the window."""
    stop = threading.Event()
    window = Window(started=float("inf"), ended=float("inf"))
    per_thread: list[list[tuple[float, float]]] = [[] for _ in range(clients)]
    errors: list[list[float]] = [[] for _ in range(clients)]
    ready = threading.Barrier(clients + 1)

    def worker(index: int) -> None:
        client = make_client()
        workload = MixedWorkload(mix, seed + index)
        timings, failed = per_thread[index], errors[index]
        clock = time.perf_counter
        ready.wait()
        while not stop.is_set():
            operation = workload.next()
            started = clock()
            try:
                client(operation)
            except psycopg.Error:
                failed.append(started)
                continue
            timings.append((started, clock() - started))

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(clients)]
    for thread in threads:
        thread.start()
    ready.wait()
    time.sleep(warmup_s)
    window.started = time.perf_counter()
    time.sleep(seconds)
    window.ended = time.perf_counter()
    stop.set()
    for thread in threads:
        thread.join(30)
    inside = [
        duration
        for timings in per_thread
        for started, duration in timings
        if started >= window.started and started + duration <= window.ended
    ]
    failed = sum(window.started <= t <= window.ended for times in errors for t in times)
    return Samples(inside, failed), window.seconds


@dataclass(frozen=True)
class SweepPoint:
    clients: int
    connected: int
    connect_errors: int
    summary: Summary

    def as_dict(self) -> dict[str, float | int]:
        return {
            "clients": self.clients,
            "connected": self.connected,
            "connect_errors": self.connect_errors,
            **self.summary.as_dict(),
        }


async def sweep_point(
    dsn: str,
    clients: int,
    seconds: float,
    mix: Mix,
    seed: int,
    handshakes_at_once: int = 50,
) -> SweepPoint:
    """``clients`` connections held at once, each running the workload on its own
    connection for ``seconds``; connections the server refuses are counted, not retried."""
    raise_open_file_limit(clients + 256)
    gate = asyncio.Semaphore(handshakes_at_once)
    connections: list[psycopg.AsyncConnection[tuple[object, ...]]] = []
    refused = 0

    async def connect() -> None:
        nonlocal refused
        async with gate:
            try:
                conn = await psycopg.AsyncConnection.connect(
                    dsn, autocommit=True, prepare_threshold=None
                )
            except psycopg.OperationalError:
                refused += 1
                return
        connections.append(conn)

    await asyncio.gather(*(connect() for _ in range(clients)))
    window = Window()
    timings: list[float] = []
    failed = 0
    stop = asyncio.Event()

    async def client(conn: psycopg.AsyncConnection[tuple[object, ...]], index: int) -> None:
        nonlocal failed
        workload = MixedWorkload(mix, seed + index)
        clock = time.perf_counter
        while not stop.is_set():
            operation = workload.next()
            started = clock()
            try:
                cursor = await conn.execute(operation.sql, operation.params)
                if operation.is_read:
                    await cursor.fetchall()
            except psycopg.Error:
                failed += 1
                await asyncio.sleep(0.01)
                continue
            if started >= window.started and window.ended == 0.0:
                timings.append(clock() - started)

    window.started = float("inf")
    tasks = [asyncio.create_task(client(c, i)) for i, c in enumerate(connections)]
    await asyncio.sleep(min(1.0, seconds / 4))  # warm-up
    window.started = time.perf_counter()
    await asyncio.sleep(seconds)
    window.ended = time.perf_counter()
    stop.set()
    await asyncio.gather(*tasks)
    await asyncio.gather(*(c.close() for c in connections))
    return SweepPoint(
        clients, len(connections), refused, summarize(timings, window.seconds, failed)
    )
