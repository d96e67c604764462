"""The asyncio router: :class:`AsyncRouter` and :class:`AsyncSession`, twins of the sync ones.

Same decisions (:mod:`router_lib.router_core`, :mod:`router_lib.routing`), async pools and
probe. Open it inside the event loop that will use it (``async with AsyncRouter(...)`` or
``await AsyncRouter.connect(...)``). Topology updates may arrive from the Kubernetes watcher
thread: they are applied at once (the routing table is thread-safe) and the pools of
retired endpoints are closed on the loop.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from router_lib.async_execution import AsyncExecutor
from router_lib.async_session import AsyncSession
from router_lib.cache import AsyncResultCache
from router_lib.config import RouterConfig
from router_lib.consistency import Consistency, SessionState
from router_lib.endpoints import Topology
from router_lib.health import EndpointState
from router_lib.lag_probe import AsyncLagProbe, ProbeHooks
from router_lib.metrics import DEFAULT_REGISTRY
from router_lib.pools import AsyncPools, PoolSettings
from router_lib.router_core import RouterCore, source_for
from router_lib.routing_table import View
from router_lib.sources import TopologySource

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry


class AsyncRouter(AsyncSession):
    """The asyncio twin of :class:`router_lib.router.Router`."""

    _keeps_state = False

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

    async def wait(self, timeout_s: float = 30.0) -> None:
        """Wait until the pool of every endpoint in use holds its minimum of connections
        (like psycopg_pool's ``wait``). Raises psycopg_pool.PoolTimeout after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        for state in self.view.states:
            pool = await self.pools.get(state)
            await pool.wait(max(0.0, deadline - time.monotonic()))

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
