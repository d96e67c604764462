"""The router's current endpoints, replaced as one value when the topology changes.

Readers take ``table.view`` once per request and use that snapshot throughout, so a refresh in
another thread never shows them half a topology. Endpoints whose identity (name, role,
conninfo) is unchanged keep their state object, hence their pools and replay knowledge;
the others are retired: new requests stop choosing them at once, and their pools close
after the connections in use come back, so in-flight work finishes where it started.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections.abc import Container
from dataclasses import dataclass, field

from router_lib import routing
from router_lib.consistency import Consistency
from router_lib.endpoints import Endpoint, Topology
from router_lib.health import EndpointState, PrimaryHistory
from router_lib.routing import ReadChoice, ReadPolicy


@dataclass(frozen=True, slots=True)
class View:
    primary: EndpointState | None
    replicas: tuple[EndpointState, ...]
    version: int

    @property
    def states(self) -> tuple[EndpointState, ...]:
        return self.replicas if self.primary is None else (self.primary, *self.replicas)


@dataclass(frozen=True, slots=True)
class Change:
    added: list[EndpointState]
    retired: list[EndpointState]
    primary_changed: bool
    # The former primary, when the source now names another instance as primary (the
    # operator fenced it first): what is in flight there is cut off (see pools.py).
    replaced_primaries: list[EndpointState] = field(default_factory=list)


def _distinct(topology: Topology) -> list[Endpoint]:
    """Replicas listed once each, and never the primary itself."""
    seen = {topology.primary.identity} if topology.primary else set()
    replicas = []
    for endpoint in topology.replicas:
        if endpoint.identity not in seen:
            seen.add(endpoint.identity)
            replicas.append(endpoint)
    return replicas


class RoutingTable:
    def __init__(
        self,
        policy: ReadPolicy,
        eject_base_s: float = 1.0,
        eject_max_s: float = 30.0,
        probe_enabled: bool = True,
    ) -> None:
        self.policy = policy
        self.eject_base_s = eject_base_s
        self.eject_max_s = eject_max_s
        self.probe_enabled = probe_enabled
        self.view = View(None, (), 0)
        self.history = PrimaryHistory()
        self._ticks = itertools.count()
        self._changed = threading.Condition()

    def apply(self, topology: Topology) -> Change:
        with self._changed:
            old = self.view
            known = {state.endpoint.identity: state for state in old.states}
            added: list[EndpointState] = []

            def state_for(endpoint: Endpoint) -> EndpointState:
                state = known.pop(endpoint.identity, None)
                if state is None:
                    state = EndpointState(endpoint)
                    added.append(state)
                else:
                    state.endpoint = endpoint  # readiness, zone and status lag may change
                return state

            primary = state_for(topology.primary) if topology.primary else None
            replicas = tuple(state_for(endpoint) for endpoint in _distinct(topology))
            retired = list(known.values())
            for state in retired:
                state.retired = True
            primary_changed = old.primary is not primary
            if primary_changed:
                self.history.clear()
            self.view = View(primary, replicas, old.version + 1)
            self._changed.notify_all()
        replaced = []
        if (
            old.primary is not None
            and old.primary.retired
            and primary is not None
            and primary.endpoint.name != old.primary.endpoint.name
        ):
            replaced.append(old.primary)
        return Change(added, retired, primary_changed, replaced)

    def choose_read(
        self,
        consistency: Consistency,
        session_lsn: int,
        exclude: Container[EndpointState] = (),
    ) -> ReadChoice | None:
        view = self.view
        return routing.choose_read(
            view.primary,
            view.replicas,
            consistency,
            session_lsn,
            self.history,
            self.policy,
            time.monotonic(),
            next(self._ticks),
            exclude,
        )

    def primary_choice(
        self, reason: str, exclude: Container[EndpointState] = ()
    ) -> ReadChoice | None:
        """The primary as a read's fallback (read-your-writes wait exhausted)."""
        return routing.primary_fallback(self.view.primary, reason, exclude)

    def eject(self, state: EndpointState) -> bool:
        """A replica failed a connection or a query: stop choosing it for a while and, when
        the probe runs, until it answers again. True when it was in use until now."""
        return state.eject(
            time.monotonic(), self.eject_base_s, self.eject_max_s, self.probe_enabled
        )

    async def wait_for_change_async(self, version: int, timeout_s: float) -> bool:
        """:meth:`wait_for_change` for the event loop: changes arrive from a thread, so poll
        every 10 ms rather than block the loop."""
        deadline = time.monotonic() + timeout_s
        while self.view.version == version:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            await asyncio.sleep(min(0.01, remaining))
        return True

    def wait_for_change(self, version: int, timeout_s: float) -> bool:
        """Block until the view is newer than ``version``; False on timeout."""
        with self._changed:
            return self._changed.wait_for(lambda: self.view.version != version, timeout_s)
