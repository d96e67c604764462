"""One psycopg_pool pool per endpoint, sync and async, created on demand and retired gracefully.

Pooled connections are autocommit: a single statement is one round trip, and transactions are
opened explicitly by ``transaction()``. Each connection records when it was opened and the
replay position it has confirmed, which read-your-writes and BOUNDED use
(:func:`router_lib.health.known_replay`).

A retired pool (endpoint gone, role changed, replica ejected) is closed in the background:
closing a psycopg pool lets connections that are in use finish their work, and closes them
when they come back. An ejected replica gets a fresh pool when it is used again, so that
connections broken while it was away are not handed out one by one to failing reads.

The one exception is a primary that the source no longer names: the operator has fenced it
before naming another, so nothing in flight there can still commit durably, and a statement
waiting on it (a network cut leaves it waiting for TCP timeouts, a lock for longer) is cut
off at once: its sockets are shut down, the statement fails as one whose outcome is unknown,
and the next write goes to the new primary.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
import time
import weakref
from collections.abc import Collection
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
    # Session state on it (router_lib.carried_state: CLEAN, SETTINGS, ANYTHING...): cleaned
    # before it goes back to its pool.
    carries: int = 0
    replayed: tuple[tuple[str, str], ...] = ()  # the settings replayed on it, if REPLAYED


class AsyncRoutedConnection(psycopg.AsyncConnection[TupleRow]):
    established_at: float = 0.0
    confirmed_lsn: int = 0
    carries: int = 0
    replayed: tuple[tuple[str, str], ...] = ()


class CountedPool(ConnectionPool[RoutedConnection]):
    """Counts on the endpoint's state the callers waiting for a connection or holding one
    (statements outstanding there: least-outstanding balancing reads it). A full pool's
    waiters count too: they are the queue that tells a slow server from a fast one."""

    def __init__(self, conninfo: str, state: EndpointState, **kwargs: Any) -> None:
        self.endpoint_state = state
        super().__init__(conninfo, **kwargs)

    def getconn(self, timeout: float | None = None) -> RoutedConnection:
        self.endpoint_state.took()
        try:
            return super().getconn(timeout)
        except BaseException:
            self.endpoint_state.gave_back()
            raise

    def putconn(self, conn: RoutedConnection) -> None:
        self.endpoint_state.gave_back()
        super().putconn(conn)


class AsyncCountedPool(AsyncConnectionPool[AsyncRoutedConnection]):
    """:class:`CountedPool` for asyncio."""

    def __init__(self, conninfo: str, state: EndpointState, **kwargs: Any) -> None:
        self.endpoint_state = state
        super().__init__(conninfo, **kwargs)

    async def getconn(self, timeout: float | None = None) -> AsyncRoutedConnection:  # noqa: ASYNC109 (psycopg_pool's signature)
        self.endpoint_state.took()
        try:
            return await super().getconn(timeout)
        except BaseException:
            self.endpoint_state.gave_back()
            raise

    async def putconn(self, conn: AsyncRoutedConnection) -> None:
        self.endpoint_state.gave_back()
        await super().putconn(conn)


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


def sever(conn: psycopg.Connection[TupleRow] | psycopg.AsyncConnection[TupleRow]) -> None:
    """Shut down a connection's socket under whoever is using it (any thread): a statement
    blocked on it returns at once with the connection broken."""
    try:
        fd = conn.fileno()
    except psycopg.Error:
        return  # closed already
    try:
        with socket.socket(fileno=os.dup(fd)) as sock:
            sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


Members = weakref.WeakSet[Any]


def sever_all(members: Members) -> None:
    for conn in list(members):
        sever(conn)


class SyncPools:
    def __init__(self, settings: PoolSettings) -> None:
        self.settings = settings
        self._pools: dict[EndpointState, ConnectionPool[RoutedConnection]] = {}
        self._members: dict[EndpointState, Members] = {}
        self._lock = threading.Lock()

    def get(self, state: EndpointState) -> ConnectionPool[RoutedConnection]:
        pool = self._pools.get(state)
        if pool is None:
            with self._lock:
                pool = self._pools.get(state)
                if pool is None:
                    members = self._members[state] = weakref.WeakSet()
                    pool = self._pools[state] = self._open(state, members)
        return pool

    def _open(self, state: EndpointState, members: Members) -> ConnectionPool[RoutedConnection]:
        endpoint = state.endpoint
        min_size, max_size = self.settings.sizes(endpoint)

        def opened(conn: RoutedConnection) -> None:
            conn.established_at = time.monotonic()
            members.add(conn)

        return CountedPool(
            endpoint.conninfo,
            state,
            connection_class=RoutedConnection,
            kwargs=self.settings.connection_kwargs(endpoint),
            min_size=min_size,
            max_size=max_size,
            timeout=self.settings.timeout_s,
            configure=opened,
            name=f"router_lib:{endpoint.label}",
            num_workers=2,
            open=True,
        )

    def discard(
        self, states: list[EndpointState], sever_in_flight: Collection[EndpointState] = ()
    ) -> None:
        """Retire the pools of ``states``; those in ``sever_in_flight`` lose their
        connections at once (see the module's text), the others as they come back."""
        with self._lock:
            pools = [pool for state in states if (pool := self._pools.pop(state, None))]
            severed = [self._members.pop(state, None) for state in states]
        for state, members in zip(states, severed, strict=True):
            if members is not None and state in sever_in_flight:
                sever_all(members)
        if pools:
            threading.Thread(
                target=_close_all, args=(pools,), name="router_lib-pool-close", daemon=True
            ).start()

    def close(self) -> None:
        with self._lock:
            pools = list(self._pools.values())
            self._pools.clear()
            self._members.clear()
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
        self._members: dict[EndpointState, Members] = {}
        self._closing: set[asyncio.Task[None]] = set()

    async def get(self, state: EndpointState) -> AsyncConnectionPool[AsyncRoutedConnection]:
        pool = self._pools.get(state)
        if pool is None:
            endpoint = state.endpoint
            min_size, max_size = self.settings.sizes(endpoint)
            members: Members = weakref.WeakSet()

            async def configure(conn: AsyncRoutedConnection) -> None:
                conn.established_at = time.monotonic()
                members.add(conn)

            opened = AsyncCountedPool(
                endpoint.conninfo,
                state,
                connection_class=AsyncRoutedConnection,
                kwargs=self.settings.connection_kwargs(endpoint),
                min_size=min_size,
                max_size=max_size,
                timeout=self.settings.timeout_s,
                configure=configure,
                name=f"router_lib:{endpoint.label}",
                num_workers=2,
                open=False,
            )
            await opened.open()
            # Another task may have opened one meanwhile: keep the first, close ours.
            pool = self._pools.setdefault(state, opened)
            if pool is not opened:
                await opened.close()
            else:
                self._members[state] = members
        return pool

    def discard(
        self, states: list[EndpointState], sever_in_flight: Collection[EndpointState] = ()
    ) -> None:
        """Call from the event loop thread. As :meth:`SyncPools.discard`."""
        for state in states:
            members = self._members.pop(state, None)
            if members is not None and state in sever_in_flight:
                sever_all(members)
            pool = self._pools.pop(state, None)
            if pool is not None:
                task = asyncio.get_running_loop().create_task(_aclose(pool))
                self._closing.add(task)
                task.add_done_callback(self._closing.discard)

    async def close(self) -> None:
        pools = list(self._pools.values())
        self._pools.clear()
        self._members.clear()
        for pool in pools:
            await _aclose(pool)
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)


async def _aclose(pool: AsyncConnectionPool[AsyncRoutedConnection]) -> None:
    try:
        await pool.close(timeout=5.0)
    except Exception:
        log.exception("closing a retired pool failed")
