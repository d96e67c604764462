"""Where topologies come from: a fixed configuration, or ReplicatedDatabase status objects.

A source calls the router back with each new :class:`Topology` (from any thread) and can be
asked for a refresh when the router suspects its view is stale (a read-only refusal from the
primary, a probe that finds roles swapped). :class:`StatusSource` turns status objects into
topologies; the Kubernetes watcher (:mod:`router_lib.kube_source`) feeds it, and so can a
test or any other control plane.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from router_lib.conninfo import ConnectionSettings
from router_lib.endpoints import Topology, Via, topology_from_status

TopologyCallback = Callable[[Topology], None]


class TopologySource(Protocol):
    def start(self, on_topology: TopologyCallback) -> None: ...

    def request_refresh(self) -> None: ...

    def close(self) -> None: ...


class StaticSource:
    """Fixed endpoints: nothing to refresh (a failover needs a configuration change)."""

    def __init__(self, topology: Topology) -> None:
        self.topology = topology

    def start(self, on_topology: TopologyCallback) -> None:
        on_topology(self.topology)

    def request_refresh(self) -> None:
        pass

    def close(self) -> None:
        pass


class StatusSource:
    """Topologies from ReplicatedDatabase ``status`` objects given to :meth:`publish`."""

    def __init__(
        self,
        settings: ConnectionSettings,
        via: Via = Via.INSTANCE,
        on_refresh_request: Callable[[], None] | None = None,
    ) -> None:
        self.settings = settings
        self.via = via
        self.on_refresh_request = on_refresh_request
        self.refresh_requests = 0
        self._callback: TopologyCallback | None = None
        self._latest: Topology | None = None
        self._lock = threading.Lock()

    def publish(self, status: Mapping[str, Any]) -> Topology:
        topology = topology_from_status(status, self.settings, self.via)
        with self._lock:
            unchanged = topology == self._latest
            self._latest = topology
            callback = self._callback
        if callback is not None and not unchanged:
            callback(topology)
        return topology

    def start(self, on_topology: TopologyCallback) -> None:
        with self._lock:
            self._callback = on_topology
            latest = self._latest
        if latest is not None:
            on_topology(latest)

    def request_refresh(self) -> None:
        self.refresh_requests += 1
        if self.on_refresh_request is not None:
            self.on_refresh_request()

    def close(self) -> None:
        with self._lock:
            self._callback = None
