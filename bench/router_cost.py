"""The router's own cost: router_lib against plain psycopg pools that place every statement
where the router does (reads round-robin over the same replicas, writes on the primary).

Sync: 8 client threads in this process. Async: 8 tasks on one event loop. Each pair runs in
interleaved rounds (the order flips every round), and the ratio is taken over the summed
windows, so that machine drift falls on both sides alike.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack, ExitStack

from psycopg_pool import AsyncConnectionPool

from bench import scaling_clients
from bench.report import progress
from bench.suite_runs import run_threads
from bench.workload import Mix, MixedWorkload, Operation
from router_lib.async_router import AsyncRouter
from router_lib.balancing import Strategy
from router_lib.config import RouterConfig
from router_lib.consistency import EVENTUAL
from router_lib.router import Router

MIX = Mix()
SEED = 20261204
CLIENTS = 8
AsyncClient = Callable[[Operation], Awaitable[None]]


def _config(primary: str, replicas: tuple[str, ...]) -> RouterConfig:
    return RouterConfig(
        primary_dsn=primary,
        replica_dsns=replicas,
        consistency=EVENTUAL,
        balancing=Strategy.ROUND_ROBIN,  # the plain pools' placement: the comparison is fair
        primary_pool_min=CLIENTS,
        primary_pool_max=CLIENTS,
        replica_pool_min=CLIENTS,
        replica_pool_max=CLIENTS,
    )


def _sync_round(primary: str, replicas: tuple[str, ...], routed: bool, seconds: float) -> float:
    with ExitStack() as stack:
        if routed:
            router = Router(_config(primary, replicas))
            stack.callback(router.close)
            router.wait()
            make = scaling_clients.routed(router)
        else:
            writes = scaling_clients.open_pool(stack, primary, CLIENTS)
            reads = [scaling_clients.open_pool(stack, dsn, CLIENTS) for dsn in replicas]
            make = scaling_clients.pooled(reads, writes)
        samples, window = run_threads(make, CLIENTS, seconds, min(1.0, seconds / 3), MIX, SEED)
    return len(samples.latencies_s) / window


async def _run_tasks(send: AsyncClient, seconds: float, warmup_s: float) -> float:
    started, ended = time.perf_counter() + warmup_s, time.perf_counter() + warmup_s + seconds
    done = [0]

    async def task(index: int) -> None:
        workload = MixedWorkload(MIX, SEED + index)
        while (now := time.perf_counter()) < ended:
            await send(workload.next())
            if now >= started and time.perf_counter() <= ended:
                done[0] += 1

    await asyncio.gather(*(task(i) for i in range(CLIENTS)))
    return done[0] / seconds


async def _async_round(
    primary: str, replicas: tuple[str, ...], routed: bool, seconds: float
) -> float:
    async with AsyncExitStack() as stack:
        send: AsyncClient
        if routed:
            router = AsyncRouter(_config(primary, replicas))
            await router.open()
            stack.push_async_callback(router.close)
            await router.wait()

            async def send(op: Operation) -> None:
                if op.is_read:
                    await router.query(op.sql, op.params)
                else:
                    await router.execute(op.sql, op.params)
        else:
            pools = []
            for dsn in (primary, *replicas):
                pool = AsyncConnectionPool(
                    dsn, min_size=CLIENTS, max_size=CLIENTS, kwargs={"autocommit": True},
                    open=False,
                )  # fmt: skip
                await pool.open(wait=True, timeout=30)
                stack.push_async_callback(pool.close)
                pools.append(pool)
            writes, reads = pools[0], pools[1:]
            turns = itertools.count()

            async def send(op: Operation) -> None:
                if op.is_read:
                    async with reads[next(turns) % len(reads)].connection() as conn:
                        await (await conn.execute(op.sql, op.params)).fetchall()
                else:
                    async with writes.connection() as conn:
                        await conn.execute(op.sql, op.params)

        return await _run_tasks(send, seconds, min(1.0, seconds / 3))


def _interleaved(name: str, run: Callable[[bool], float], rounds: int) -> dict[str, float]:
    qps: dict[bool, list[float]] = {False: [], True: []}
    for number in range(rounds):
        for routed in (False, True) if number % 2 == 0 else (True, False):
            qps[routed].append(run(routed))
            progress(f"{name} round {number + 1}/{rounds} {'router' if routed else 'plain'}: "
                     f"{qps[routed][-1]:.0f} ops/s")  # fmt: skip
    plain, router = sum(qps[False]) / rounds, sum(qps[True]) / rounds
    return {"plain_qps": round(plain, 1), "router_qps": round(router, 1),
            "ratio": round(router / plain, 3)}  # fmt: skip


def measure_router_cost(
    primary: str, replicas: tuple[str, ...], seconds: float, rounds: int
) -> dict[str, object]:
    sync = _interleaved(
        "sync 8 threads", lambda routed: _sync_round(primary, replicas, routed, seconds), rounds
    )
    run_async = asyncio.run  # one loop per round, like an application's
    asynchronous = _interleaved(
        "async 8 tasks",
        lambda routed: run_async(_async_round(primary, replicas, routed, seconds)),
        rounds,
    )
    return {
        "router_split_ratio": sync["ratio"],
        "async_router_split_ratio": asynchronous["ratio"],
        "router_cost": {"sync": sync, "async": asynchronous, "clients": CLIENTS},
    }
