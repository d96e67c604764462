"""One psycopg_pool pool per endpoint, sync and async, created on demand and retired gracefully.

Pooled connections are autocommit: a single statement is one round trip, and transactions are
opened explicitly by ``transaction()``. Each connection records when it was opened and the
replay position it has confirmed, which read-your-writes and BOUNDED use
(:func:`router_lib.health.known_replay`).

A retired pool (endpoint gone, role changed, replica ejected) is closed in the background:
closing a psycopg pool lets connections that are in use finish their work, and closes them
when they come back. An ejected replica gets a fresh pool when it is used again, so that
connections broken while it was away are not handed out one by one to failing reads.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.rows import TupleRow
from psycopg_pool import AsyncConnectionPool, ConnectionPool

from router_lib.config import RouterConfig
from router_lib.endpoints import Endpoint, Role, Via
from router_lib.health import EndpointState

log = logging.getLogger(__name__)


class RoutedConnection(psycopg.Connection[TupleRow]):
    established_at: float = 0.0
    confirmed_lsn: int = 0


class AsyncRoutedConnection(psycopg.AsyncConnection[TupleRow]):
    established_at: float = 0.0
    confirmed_lsn: int = 0


@dataclass(frozen=True, slots=True)
class PoolSettings:
    primary_min: int = 1
    primary_max: int = 10
    replica_min: int = 1
    replica_max: int = 10
    timeout_s: float = 5.0
    prepare_threshold: int | None = 5
    statement_timeout_ms: int | None = None

    @classmethod
    def from_config(cls, config: RouterConfig) -> PoolSettings:
        return cls(
            config.primary_pool_min,
            config.primary_pool_max,
            config.replica_pool_min,
            config.replica_pool_max,
            config.pool_timeout_s,
            config.prepare_threshold,
            config.statement_timeout_ms,
        )

    def sizes(self, endpoint: Endpoint) -> tuple[int, int]:
        if endpoint.role is Role.PRIMARY:
            return self.primary_min, self.primary_max
        return self.replica_min, self.replica_max

    def connection_kwargs(self, endpoint: Endpoint) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "autocommit": True,
            # PgBouncer in transaction mode cannot carry protocol-level prepared statements.
            "prepare_threshold": None if endpoint.via is Via.POOLER else self.prepare_threshold,
        }
        # PgBouncer refuses the "options" startup parameter unless told to ignore it.
        if self.statement_timeout_ms is not None and endpoint.via is not Via.POOLER:
            kwargs["options"] = f"-c statement_timeout={int(self.statement_timeout_ms)}"
        return kwargs


def _opened(conn: RoutedConnection) -> None:
    conn.established_at = time.monotonic()


async def _aopened(conn: AsyncRoutedConnection) -> None:
    conn.established_at = time.monotonic()


class SyncPools:
    def __init__(self, settings: PoolSettings) -> None:
        self.settings = settings
        self._pools: dict[EndpointState, ConnectionPool[RoutedConnection]] = {}
        self._lock = threading.Lock()

    def get(self, state: EndpointState) -> ConnectionPool[RoutedConnection]:
        pool = self._pools.get(state)
        if pool is None:
            with self._lock:
                pool = self._pools.get(state)
                if pool is None:
                    pool = self._pools[state] = self._open(state.endpoint)
        return pool

    def _open(self, endpoint: Endpoint) -> ConnectionPool[RoutedConnection]:
        min_size, max_size = self.settings.sizes(endpoint)
        return ConnectionPool(
            endpoint.conninfo,
            connection_class=RoutedConnection,
            kwargs=self.settings.connection_kwargs(endpoint),
            min_size=min_size,
            max_size=max_size,
            timeout=self.settings.timeout_s,
            configure=_opened,
            name=f"router_lib:{endpoint.label}",
            num_workers=2,
            open=True,
        )

    def discard(self, states: list[EndpointState]) -> None:
        with self._lock:
            pools = [pool for state in states if (pool := self._pools.pop(state, None))]
        if pools:
            threading.Thread(
                target=_close_all, args=(pools,), name="router_lib-pool-close", daemon=True
            ).start()

    def close(self) -> None:
        with self._lock:
            pools = list(self._pools.values())
            self._pools.clear()
        _close_all(pools)


def _close_all(pools: list[ConnectionPool[RoutedConnection]]) -> None:
    for pool in pools:
        try:
            pool.close(timeout=5.0)
        except Exception:  # closing is best effort; a failure must not kill the caller
            log.exception("closing a retired pool failed")


class AsyncPools:
    def __init__(self, settings: PoolSettings) -> None:
        self.settings = settings
        self._pools: dict[EndpointState, AsyncConnectionPool[AsyncRoutedConnection]] = {}
        self._closing: set[asyncio.Task[None]] = set()

    async def get(self, state: EndpointState) -> AsyncConnectionPool[AsyncRoutedConnection]:
        pool = self._pools.get(state)
        if pool is None:
            endpoint = state.endpoint
            min_size, max_size = self.settings.sizes(endpoint)
            opened = AsyncConnectionPool(
                endpoint.conninfo,
                connection_class=AsyncRoutedConnection,
                kwargs=self.settings.connection_kwargs(endpoint),
                min_size=min_size,
                max_size=max_size,
                timeout=self.settings.timeout_s,
                configure=_aopened,
                name=f"router_lib:{endpoint.label}",
                num_workers=2,
                open=False,
            )
            await opened.open()
            # Another task may have opened one meanwhile: keep the first, close ours.
            pool = self._pools.setdefault(state, opened)
            if pool is not opened:
                await opened.close()
        return pool

    def discard(self, states: list[EndpointState]) -> None:
        """Call from the event loop thread."""
        for state in states:
            pool = self._pools.pop(state, None)
            if pool is not None:
                task = asyncio.get_running_loop().create_task(_aclose(pool))
                self._closing.add(task)
                task.add_done_callback(self._closing.discard)

    async def close(self) -> None:
        pools = list(self._pools.values())
        self._pools.clear()
        for pool in pools:
            await _aclose(pool)
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)


async def _aclose(pool: AsyncConnectionPool[AsyncRoutedConnection]) -> None:
    try:
        await pool.close(timeout=5.0)
    except Exception:
        log.exception("closing a retired pool failed")
