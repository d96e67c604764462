"""What the sync and async routers share: classification, the routing table, sessions,
metrics, and the rules for serving a read from the cache. No I/O here.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from psycopg import sql

from router_lib.cache import CachedResult
from router_lib.classify import Classification, Classifier
from router_lib.config import RouterConfig
from router_lib.consistency import Consistency, Level, SessionState
from router_lib.endpoints import Topology, static_topology
from router_lib.errors import ConfigurationError, NoPrimaryAvailable
from router_lib.health import EndpointState
from router_lib.metrics import metrics_for
from router_lib.routing import ReadPolicy, lsn_within_bounds
from router_lib.routing_table import Change, RoutingTable
from router_lib.sources import StaticSource, TopologySource

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

log = logging.getLogger(__name__)

Row = tuple[Any, ...]
# What psycopg's execute() takes (its own alias of this name is not in every 3.x release).
Statement = str | bytes | sql.SQL | sql.Composed


def statement_text(query: Statement) -> str:
    if isinstance(query, str):
        return query
    if isinstance(query, bytes):
        return query.decode()
    return query.as_string(None)


class RouterCore:
    def __init__(self, config: RouterConfig, registry: CollectorRegistry | None) -> None:
        self.config = config
        self.classifier = Classifier(config.write_functions, config.classification_cache_size)
        self.table = RoutingTable(
            ReadPolicy(config.balancing, config.zone, config.primary_read_weight),
            config.eject_base_s,
            config.eject_max_s,
            probe_enabled=config.lag_probe_interval_s > 0,
        )
        self.metrics = metrics_for(registry)
        # The router's own state reads write positions only when a read-your-writes read
        # needs one, unless that is its default level (then every read would).
        self.default_session = SessionState(
            config.consistency,
            positions_on_demand=config.consistency.level is not Level.READ_YOUR_WRITES,
        )

    def classify(self, query: Statement, has_params: bool) -> tuple[str, Classification]:
        text = query if isinstance(query, str) else statement_text(query)
        return text, self.classifier.classify(text, has_params)

    def apply(self, topology: Topology) -> Change:
        change = self.table.apply(topology)
        self.metrics.topology_updates.inc()
        if change.primary_changed or change.added or change.retired:
            primary = topology.primary.label if topology.primary else None
            log.info(
                "topology: primary %s, replicas %s",
                primary,
                [r.label for r in topology.replicas],
            )
        return change

    def primary(self) -> EndpointState:
        state = self.table.view.primary
        if state is None:
            raise NoPrimaryAvailable("no primary is known (topology has none yet)")
        return state

    def eject(self, state: EndpointState) -> None:
        if self.table.eject(state):
            self.metrics.ejections.labels(state.endpoint.label).inc()

    # -- result cache rules -------------------------------------------------------------
    def cache_wanted(self, classification: Classification, cache: bool | None) -> bool:
        if not classification.read_only:
            return False
        return self.config.cache.by_default if cache is None else cache

    def cached_result_fresh(
        self, result: CachedResult, consistency: Consistency, session_lsn: int
    ) -> bool:
        """May this entry answer a read at this level? The entry is treated like a replica
        frozen at ``result.lsn``: the same rules, so the cache never weakens a level."""
        level = consistency.level
        if level is Level.EVENTUAL:
            return True
        if level is Level.READ_YOUR_WRITES:
            return result.lsn >= session_lsn
        if level is Level.BOUNDED:
            return result.lsn > 0 and lsn_within_bounds(
                result.lsn, consistency, self.table.history, time.monotonic()
            )
        return False  # STRONG

    def primary_read_lsn(self) -> int:
        """A position a read starting on the primary now is sure to include."""
        latest = self.table.history.latest()
        return 0 if latest is None else latest[0]


def source_for(config: RouterConfig) -> TopologySource:
    if config.kube_name is not None:
        from router_lib.kube_source import KubeStatusSource  # kubernetes loads slowly

        return KubeStatusSource.from_config(config)
    if config.primary_dsn is None and not config.replica_dsns:
        raise ConfigurationError(
            "no endpoints: set primary_dsn/replica_dsns (REPLICADB_PRIMARY_DSN, "
            "REPLICADB_REPLICA_DSNS) or kube_name (REPLICADB_NAME), or pass a source"
        )
    return StaticSource(static_topology(config.primary_dsn, config.replica_dsns, config.connection))
