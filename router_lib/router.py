"""The sync router: :class:`Router` (endpoints, pools, probe, cache).

The router's own methods use its default session (:class:`router_lib.session.Session`),
which is shared by every thread of the process: read-your-writes then covers writes made by
any thread through this router (the behaviour code written against a single database
expects), and statements that leave state on the database session are refused there.
``router.session()`` gives a session of its own, e.g. per web request.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from router_lib.cache import ResultCache
from router_lib.config import RouterConfig
from router_lib.consistency import Consistency, SessionState
from router_lib.endpoints import Topology
from router_lib.health import EndpointState
from router_lib.lag_probe import LagProbe, ProbeHooks
from router_lib.metrics import DEFAULT_REGISTRY
from router_lib.pools import PoolSettings, SyncPools
from router_lib.router_core import RouterCore, source_for
from router_lib.routing_table import View
from router_lib.session import Session
from router_lib.sources import TopologySource
from router_lib.sync_execution import SyncExecutor

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry


class Router(Session):
    """Routes statements to the primary or a replica. Thread-safe; one per process is usual.

    ``source``: where endpoints come from (default: from ``config``, static DSNs or a watched
    ReplicatedDatabase). ``registry``: the Prometheus registry for the metrics (None: not
    exported).
    """

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
        self.pools = SyncPools(PoolSettings.from_config(self.config))
        self.cache = ResultCache(self.config.cache) if self.config.cache.mode != "off" else None
        self.source = source if source is not None else source_for(self.config)
        self._executor = SyncExecutor(
            self.core, self.pools, self.cache, self.source.request_refresh
        )
        super().__init__(self, self.core.default_session)
        self._probe: LagProbe | None = None
        if self.config.lag_probe_interval_s > 0:
            hooks = ProbeHooks(self._on_probe_ejected, self.source.request_refresh)
            self._probe = LagProbe(
                self.core.table, self.config.lag_probe_interval_s, hooks, self.core.metrics
            )
        self._closed = False
        self.source.start(self._on_topology)
        if self._probe is not None:
            self._probe.probe_once()  # lag known before the first BOUNDED read
            self._probe.start()

    def _on_topology(self, topology: Topology) -> None:
        change = self.core.apply(topology)
        self.pools.discard(change.retired, change.replaced_primaries)
        for state in change.added:
            self.pools.get(state)  # open in the background: the first query finds it warm

    def _on_probe_ejected(self, state: EndpointState) -> None:
        self.core.metrics.ejections.labels(state.endpoint.label).inc()
        self.pools.discard([state])

    def session(self, consistency: Consistency | None = None) -> Session:
        """A session of its own: consistency level, read-your-writes position, and the
        state its statements leave on the database session (close it when done:
        ``with router.session() as s:``)."""
        return Session(self, SessionState(consistency or self.config.consistency))

    @property
    def view(self) -> View:
        """The endpoints in use now (primary, replicas, and what is known about each)."""
        return self.core.table.view

    def wait(self, timeout_s: float = 30.0) -> None:
        """Block until the pool of every endpoint in use holds its minimum of connections
        (like psycopg_pool's ``wait``): for start-up, so that the first requests do not pay
        for the handshakes. Raises psycopg_pool.PoolTimeout after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        for state in self.view.states:
            self.pools.get(state).wait(max(0.0, deadline - time.monotonic()))

    def probe_now(self) -> None:
        """Measure lag now instead of waiting for the next probe round."""
        if self._probe is not None:
            self._probe.probe_once()

    def invalidate_tables(self, *tables: str) -> None:
        """Drop cached results that read these tables (for writes made elsewhere)."""
        if self.cache is not None:
            self.cache.invalidate_tables(tables)

    def invalidate_pattern(self, pattern: str) -> None:
        """Drop cached results that read a table whose name matches the glob ``pattern``."""
        if self.cache is not None:
            self.cache.invalidate_pattern(pattern)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.source.close()
        if self._probe is not None:
            self._probe.close()
        self.pools.close()
        if self.cache is not None:
            self.cache.close()

    def __enter__(self) -> Router:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()
