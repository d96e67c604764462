"""The sync router: :class:`Router` (endpoints, pools, probe, cache) and :class:`Session`.

A session carries a consistency level and the commit position of its last write. The
router's own methods use its default session, which is shared by every thread of the
process: read-your-writes then covers writes made by any thread through this router (the
behaviour code written against a single database expects). ``router.session()`` gives a
narrower one, e.g. per web request.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from psycopg import IsolationLevel

from router_lib.cache import Params, ResultCache
from router_lib.config import RouterConfig
from router_lib.consistency import Consistency, SessionState
from router_lib.endpoints import Topology
from router_lib.errors import TransactionControlNotAllowed
from router_lib.health import EndpointState
from router_lib.lag_probe import LagProbe, ProbeHooks
from router_lib.metrics import DEFAULT_REGISTRY
from router_lib.pools import PoolSettings, SyncPools
from router_lib.router_core import RouterCore, Row, Statement, source_for, statement_text
from router_lib.routing_table import View
from router_lib.sources import TopologySource
from router_lib.sync_execution import SyncExecutor
from router_lib.transaction import Transaction

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

log = logging.getLogger(__name__)

_TRANSACTION_HINT = "use transaction() instead of BEGIN/COMMIT statements"


class Session:
    """Statements with this session's consistency level and read-your-writes position."""

    _executor: SyncExecutor

    def __init__(self, router: Router, state: SessionState) -> None:
        self._router = router
        self._executor = router._executor
        self._core = router.core
        self._classify = router.core.classifier.classify
        self.state = state

    @property
    def consistency(self) -> Consistency:
        return self.state.consistency

    @consistency.setter
    def consistency(self, value: Consistency) -> None:
        self.state.consistency = value

    @property
    def write_lsn(self) -> int:
        """Commit position of this session's last write (0: none yet)."""
        return self.state.write_lsn

    def _run(
        self,
        query: Statement,
        params: Params,
        consistency: Consistency | None,
        cache: bool | None,
    ) -> tuple[list[Row], int]:
        text, classification = self._core.classify(query, params is not None)
        if classification.read_only:
            return self._executor.read(
                query,
                params,
                text,
                consistency or self.state.consistency,
                self.state,
                classification,
                cache,
            )
        if classification.transaction_control:
            raise TransactionControlNotAllowed(_TRANSACTION_HINT)
        return self._executor.write(query, params, self.state, classification)

    def query(
        self,
        query: Statement,
        params: Params = None,
        *,
        consistency: Consistency | None = None,
        cache: bool | None = None,
    ) -> list[Row]:
        """Run a statement where it may run; returns its rows ([] when it returns none).

        Reads go to a replica that satisfies ``consistency`` (default: the session's),
        everything else to the primary. ``cache``: use the result cache for this read
        (default: the configuration's ``cache.by_default``).
        """
        # _run, inlined for reads: this is the call the benchmark holds to 5 % of a round trip.
        text = query if type(query) is str else statement_text(query)
        classification = self._classify(text, params is not None)
        if classification.read_only:
            level = consistency or self.state.consistency
            return self._executor.read(
                query, params, text, level, self.state, classification, cache
            )[0]
        return self._run(query, params, consistency, cache)[0]

    def query_one(
        self,
        query: Statement,
        params: Params = None,
        *,
        consistency: Consistency | None = None,
        cache: bool | None = None,
    ) -> Row | None:
        rows = self._run(query, params, consistency, cache)[0]
        return rows[0] if rows else None

    def execute(
        self, query: Statement, params: Params = None, *, consistency: Consistency | None = None
    ) -> int:
        """Run a statement; returns the number of rows it affected or returned."""
        return self._run(query, params, consistency, False)[1]

    @contextmanager
    def transaction(
        self,
        read_only: bool = False,
        *,
        consistency: Consistency | None = None,
        isolation_level: IsolationLevel | None = None,
    ) -> Iterator[Transaction]:
        """A transaction on one connection: on the primary, or (``read_only=True``) on a
        replica chosen for ``consistency`` and opened with BEGIN READ ONLY. Commits when the
        block ends, rolls back when it raises."""
        executor = self._executor
        if read_only:
            level = consistency or self.state.consistency
            with executor.read_only_transaction(level, self.state, isolation_level) as tx:
                yield tx
        else:
            with executor.read_write_transaction(self.state, isolation_level) as tx:
                yield tx


class Router(Session):
    """Routes statements to the primary or a replica. Thread-safe; one per process is usual.

    ``source``: where endpoints come from (default: from ``config``, static DSNs or a watched
    ReplicatedDatabase). ``registry``: the Prometheus registry for the metrics (None: not
    exported).
    """

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
        """A session of its own (consistency level and read-your-writes position)."""
        return Session(self, SessionState(consistency or self.config.consistency))

    @property
    def view(self) -> View:
        """The endpoints in use now (primary, replicas, and what is known about each)."""
        return self.core.table.view

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
