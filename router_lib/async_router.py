"""The asyncio router: :class:`AsyncRouter` and :class:`AsyncSession`, twins of the sync ones.

Same decisions (:mod:`router_lib.router_core`, :mod:`router_lib.routing`), async pools and
probe. Open it inside the event loop that will use it (``async with AsyncRouter(...)`` or
``await AsyncRouter.connect(...)``). Topology updates may arrive from the Kubernetes watcher
thread: they are applied at once (the routing table is thread-safe) and the pools of
retired endpoints are closed on the loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from psycopg import IsolationLevel

from router_lib.async_execution import AsyncExecutor
from router_lib.cache import AsyncResultCache, Params
from router_lib.config import RouterConfig
from router_lib.consistency import Consistency, SessionState
from router_lib.endpoints import Topology
from router_lib.errors import TransactionControlNotAllowed
from router_lib.health import EndpointState
from router_lib.lag_probe import AsyncLagProbe, ProbeHooks
from router_lib.metrics import DEFAULT_REGISTRY
from router_lib.pools import AsyncPools, PoolSettings
from router_lib.router_core import RouterCore, Row, Statement, source_for
from router_lib.routing_table import View
from router_lib.sources import TopologySource
from router_lib.transaction import AsyncTransaction

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry


class AsyncSession:
    """Statements with this session's consistency level and read-your-writes position."""

    _executor: AsyncExecutor

    def __init__(self, router: AsyncRouter, state: SessionState) -> None:
        self._executor = router._executor
        self._core = router.core
        self.state = state

    @property
    def consistency(self) -> Consistency:
        return self.state.consistency

    @consistency.setter
    def consistency(self, value: Consistency) -> None:
        self.state.consistency = value

    @property
    def write_lsn(self) -> int:
        return self.state.write_lsn

    async def _run(
        self,
        query: Statement,
        params: Params,
        consistency: Consistency | None,
        cache: bool | None,
    ) -> tuple[list[Row], int]:
        text, classification = self._core.classify(query, params is not None)
        if classification.read_only:
            return await self._executor.read(
                query,
                params,
                text,
                consistency or self.state.consistency,
                self.state,
                classification,
                cache,
            )
        if classification.transaction_control:
            raise TransactionControlNotAllowed("use transaction() instead of BEGIN/COMMIT")
        return await self._executor.write(query, params, self.state, classification)

    async def query(
        self,
        query: Statement,
        params: Params = None,
        *,
        consistency: Consistency | None = None,
        cache: bool | None = None,
    ) -> list[Row]:
        """See :meth:`router_lib.router.Session.query`."""
        return (await self._run(query, params, consistency, cache))[0]

    async def query_one(
        self,
        query: Statement,
        params: Params = None,
        *,
        consistency: Consistency | None = None,
        cache: bool | None = None,
    ) -> Row | None:
        rows = (await self._run(query, params, consistency, cache))[0]
        return rows[0] if rows else None

    async def execute(
        self, query: Statement, params: Params = None, *, consistency: Consistency | None = None
    ) -> int:
        return (await self._run(query, params, consistency, False))[1]

    @asynccontextmanager
    async def transaction(
        self,
        read_only: bool = False,
        *,
        consistency: Consistency | None = None,
        isolation_level: IsolationLevel | None = None,
    ) -> AsyncIterator[AsyncTransaction]:
        """See :meth:`router_lib.router.Session.transaction`."""
        executor = self._executor
        if read_only:
            level = consistency or self.state.consistency
            async with executor.read_only_transaction(level, self.state, isolation_level) as tx:
                yield tx
        else:
            async with executor.read_write_transaction(self.state, isolation_level) as tx:
                yield tx


class AsyncRouter(AsyncSession):
    def __init__(
        self,
        config: RouterConfig | None = None,
        *,
        source: TopologySource | None = None,
        registry: CollectorRegistry | None = DEFAULT_REGISTRY,
    ) -> None:
        self.config = config if config is not None else RouterConfig.from_env()
        self.core = RouterCore(self.config, registry)
        self.pools = AsyncPools(PoolSettings.from_config(self.config))
        self.cache = (
            AsyncResultCache(self.config.cache) if self.config.cache.mode != "off" else None
        )
        self.source = source if source is not None else source_for(self.config)
        self._executor = AsyncExecutor(
            self.core, self.pools, self.cache, self.source.request_refresh
        )
        super().__init__(self, self.core.default_session)
        self._probe: AsyncLagProbe | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._opened = False

    @classmethod
    async def connect(
        cls,
        config: RouterConfig | None = None,
        *,
        source: TopologySource | None = None,
        registry: CollectorRegistry | None = DEFAULT_REGISTRY,
    ) -> AsyncRouter:
        router = cls(config, source=source, registry=registry)
        await router.open()
        return router

    async def open(self) -> None:
        if self._opened:
            return
        self._opened = True
        self._loop = asyncio.get_running_loop()
        # A Kubernetes source reads the object before returning: keep that off the loop.
        await asyncio.to_thread(self.source.start, self._on_topology)
        if self.config.lag_probe_interval_s > 0:
            hooks = ProbeHooks(self._on_probe_ejected, self.source.request_refresh)
            self._probe = AsyncLagProbe(
                self.core.table, self.config.lag_probe_interval_s, hooks, self.core.metrics
            )
            await self._probe.probe_once()
            self._probe.start()

    def _on_topology(self, topology: Topology) -> None:
        change = self.core.apply(topology)
        if change.retired and self._loop is not None:
            if _in_loop_thread(self._loop):
                self.pools.discard(change.retired, change.replaced_primaries)
            else:
                self._loop.call_soon_threadsafe(
                    self.pools.discard, change.retired, change.replaced_primaries
                )

    def _on_probe_ejected(self, state: EndpointState) -> None:
        self.core.metrics.ejections.labels(state.endpoint.label).inc()
        self.pools.discard([state])

    def session(self, consistency: Consistency | None = None) -> AsyncSession:
        return AsyncSession(self, SessionState(consistency or self.config.consistency))

    @property
    def view(self) -> View:
        return self.core.table.view

    async def probe_now(self) -> None:
        if self._probe is not None:
            await self._probe.probe_once()

    async def invalidate_tables(self, *tables: str) -> None:
        if self.cache is not None:
            await self.cache.invalidate_tables(tables)

    async def invalidate_pattern(self, pattern: str) -> None:
        if self.cache is not None:
            await self.cache.invalidate_pattern(pattern)

    async def close(self) -> None:
        if not self._opened:
            return
        self._opened = False
        self.source.close()
        if self._probe is not None:
            await self._probe.close()
        await self.pools.close()
        if self.cache is not None:
            await self.cache.close()

    async def __aenter__(self) -> AsyncRouter:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.close()


def _in_loop_thread(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:  # a plain thread (the Kubernetes watcher, asyncio.to_thread)
        return False
