"""What an ORM integration shares with the router: endpoints, routing table, lag probe.

An ORM manages its own connections (Django its DatabaseWrapper, SQLAlchemy its engines and
pools), so an integration cannot use :class:`router_lib.Router`'s pools. It still needs
everything else the router knows: who the primary is (followed through failovers), which
replicas are usable and how far each has replayed, and the classifier. A
:class:`RoutingService` is that part of the router without the pools: one per configuration
per process, shared by every connection, thread and alias that names the same database.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import fields
from typing import Any

from router_lib.config import RouterConfig
from router_lib.conninfo import ConnectionSettings
from router_lib.consistency import Consistency, parse_consistency
from router_lib.endpoints import Topology
from router_lib.errors import ConfigurationError
from router_lib.execution_base import poll_delay
from router_lib.health import EndpointState
from router_lib.lag_probe import LagProbe, ProbeHooks
from router_lib.router_core import RouterCore, source_for
from router_lib.routing import ReadChoice
from router_lib.sources import TopologySource

_CONFIG_FIELDS = frozenset(f.name for f in fields(RouterConfig))
# Keys an ORM's settings may use besides RouterConfig's own field names.
_LEVEL_KEYS = ("consistency", "max_lag_seconds", "max_lag_bytes")


def config_from_mapping(
    values: Mapping[str, Any], connection: ConnectionSettings | None = None
) -> RouterConfig:
    """A RouterConfig from an ORM's settings mapping: RouterConfig's field names, with
    ``consistency`` given as text (``"bounded"`` plus ``max_lag_seconds`` /
    ``max_lag_bytes``) or as a :class:`Consistency`, and sequences as lists."""
    unknown = set(values) - _CONFIG_FIELDS - set(_LEVEL_KEYS)
    if unknown:
        raise ConfigurationError(f"unknown replicadb settings: {', '.join(sorted(unknown))}")
    kwargs: dict[str, Any] = {key: value for key, value in values.items() if key not in _LEVEL_KEYS}
    for key in ("replica_dsns",):
        if key in kwargs:
            kwargs[key] = tuple(kwargs[key])
    if "write_functions" in kwargs:
        kwargs["write_functions"] = frozenset(kwargs["write_functions"])
    level = values.get("consistency")
    if isinstance(level, Consistency):
        kwargs["consistency"] = level
    elif level is not None:
        kwargs["consistency"] = parse_consistency(
            str(level), values.get("max_lag_seconds"), values.get("max_lag_bytes")
        )
    if connection is not None and "connection" not in kwargs:
        kwargs["connection"] = connection
    return RouterConfig(**kwargs)


class RoutingService:
    """The topology source, the routing table and the lag probe of one database.

    ``tally`` counts where statements went, by (target, reason), for tests and reports
    (the Prometheus metrics, when a registry is given, count the same)."""

    def __init__(
        self,
        config: RouterConfig,
        *,
        source: TopologySource | None = None,
        registry: Any = None,
    ) -> None:
        self.config = config
        self.core = RouterCore(config, registry)
        self.source = source if source is not None else source_for(config)
        self.tally: Counter[tuple[str, str]] = Counter()
        self._probe: LagProbe | None = None
        if config.lag_probe_interval_s > 0:
            hooks = ProbeHooks(self._on_probe_ejected, self.source.request_refresh)
            self._probe = LagProbe(
                self.core.table, config.lag_probe_interval_s, hooks, self.core.metrics
            )
        self.source.start(self._on_topology)
        if self._probe is not None:
            self._probe.probe_once()  # lag known before the first BOUNDED read
            self._probe.start()

    def _on_topology(self, topology: Topology) -> None:
        # Only the table: the ORM's connections to endpoints that left are closed where
        # they are used (a retired endpoint state), not from this thread.
        self.core.apply(topology)

    def _on_probe_ejected(self, state: EndpointState) -> None:
        # The ORM's connections to it are closed when a read next chooses among replicas
        # (an ejected replica is not chosen; its connections fail or are retired).
        self.core.metrics.ejections.labels(state.endpoint.label).inc()

    def count(self, target: str, reason: str, fallback: bool = False) -> None:
        self.tally[(target, reason)] += 1
        self.core.metrics.query(target, reason)
        if fallback:
            self.core.metrics.fallback(reason)

    def replayed(
        self,
        state: EndpointState,
        choice: ReadChoice,
        read_replay: Callable[[], int],
        pause: Callable[[float], None] = time.sleep,
    ) -> bool:
        """Has the replica replayed ``choice.required_lsn``, as ``read_replay`` reads it on
        the connection the read will use? With ``may_wait`` (read-your-writes), polled up to
        ``ryw_wait_s``, pausing with ``pause`` between polls."""
        config = self.config
        waiting_since = 0.0
        polls = 0
        while True:
            sent_at = time.monotonic()
            lsn = read_replay()
            state.note_replay(lsn, sent_at)
            if lsn >= choice.required_lsn:
                return True
            now = time.monotonic()
            if not choice.may_wait or config.ryw_wait_s <= 0:
                return False
            if not waiting_since:
                waiting_since = now
                self.core.metrics.ryw_waits.inc()
            elif now - waiting_since >= config.ryw_wait_s:
                return False
            pause(poll_delay(polls, config.ryw_poll_s))
            polls += 1

    def probe_now(self) -> None:
        if self._probe is not None:
            self._probe.probe_once()

    def close(self) -> None:
        self.source.close()
        if self._probe is not None:
            self._probe.close()


_services: dict[RouterConfig, RoutingService] = {}
_services_lock = threading.Lock()


def service_for(config: RouterConfig) -> RoutingService:
    """The process's service for this configuration (created on first use)."""
    with _services_lock:
        service = _services.get(config)
        if service is None:
            service = _services[config] = RoutingService(config)
        return service


def install_service(service: RoutingService) -> None:
    """Serve ``service.config`` with this service (e.g. one whose source is a
    :class:`router_lib.StatusSource` fed by another control plane)."""
    with _services_lock:
        previous = _services.get(service.config)
        _services[service.config] = service
    if previous is not None and previous is not service:
        previous.close()


def services() -> list[RoutingService]:
    """The services created so far (reports count where statements went)."""
    with _services_lock:
        return list(_services.values())


def close_services() -> None:
    """Stop every service's probe and source (tests; a process that exits needs not)."""
    with _services_lock:
        services = list(_services.values())
        _services.clear()
    for service in services:
        service.close()
