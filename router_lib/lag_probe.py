"""The router's own lag measurement: the primary's WAL position, then each replica's replay.

The operator's status carries lag too, but it is written at a bounded rate; BOUNDED reads and
read-your-writes need positions that are fresh and exact, so the router asks for itself, on
one kept connection per endpoint (a new connection costs ~2.5 ms, a query on a kept one
~0.1 ms). The primary is probed first, so a replica probed after it can only look fresher
than it was at the primary's sample time, never spuriously staler.

The probe also re-admits ejected replicas (a successful probe is what ends an ejection once
its back-off has passed) and notices stale roles: a primary in recovery or a replica out of
it asks the endpoint source for a refresh. The sync router runs :class:`LagProbe` in a
thread, the async one :class:`AsyncLagProbe` as a task; both record through the same
functions.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg

from router_lib.endpoints import Via
from router_lib.health import EndpointState
from router_lib.metrics import RouterMetrics
from router_lib.routing_table import RoutingTable
from router_lib.status_contract import parse_lsn

log = logging.getLogger(__name__)

PRIMARY_SQL = (
    "SELECT pg_is_in_recovery(), "
    "CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_current_wal_lsn()::text END"
)
REPLICA_SQL = "SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn()::text"
_PROBE_KWARGS: dict[str, Any] = {
    "autocommit": True,
    "prepare_threshold": None,
    "application_name": "router_lib-probe",
}


def _probe_kwargs(state: EndpointState) -> dict[str, Any]:
    if state.endpoint.via is Via.POOLER:
        return _PROBE_KWARGS  # PgBouncer refuses the "options" startup parameter
    return {**_PROBE_KWARGS, "options": "-c statement_timeout=2000"}


@dataclass(frozen=True)
class ProbeHooks:
    """What the router does about probe findings: drop the pool of a replica the probe
    ejected, ask the endpoint source for a refresh when roles look stale."""

    on_ejected: Callable[[EndpointState], None]
    on_refresh_needed: Callable[[], None]


def record_success(
    table: RoutingTable,
    state: EndpointState,
    row: tuple[Any, ...] | None,
    sent_at: float,
    is_primary: bool,
    metrics: RouterMetrics,
) -> bool:
    """Record one probe answer; True when the topology looks stale (refresh needed)."""
    in_recovery, lsn_text = row if row is not None else (None, None)
    state.probed_at = sent_at
    state.in_recovery = None if in_recovery is None else bool(in_recovery)
    if is_primary:
        if in_recovery or lsn_text is None:
            return True
        table.history.record(parse_lsn(lsn_text), sent_at)
        return False
    if not in_recovery:
        state.forget_replay()  # promoted (or misconfigured): not a replica to read from
        return True
    lsn = parse_lsn(lsn_text) if lsn_text else 0
    state.note_replay(lsn, sent_at)
    state.probe_succeeded()
    latest = table.history.latest()
    if latest is not None:
        metrics.replica_lag_bytes.labels(state.endpoint.label).set(max(0, latest[0] - lsn))
    return False


def record_failure(table: RoutingTable, state: EndpointState, is_primary: bool) -> bool:
    """Returns True when the replica was in use and is now ejected."""
    state.in_recovery = None
    return not is_primary and table.eject(state)


class LagProbe:
    def __init__(
        self, table: RoutingTable, interval_s: float, hooks: ProbeHooks, metrics: RouterMetrics
    ) -> None:
        self.table = table
        self.interval_s = interval_s
        self.hooks = hooks
        self.metrics = metrics
        self._conns: dict[EndpointState, psycopg.Connection[tuple[Any, ...]]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="router_lib-lag-probe", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.probe_once()
            except Exception:  # the probe must outlive any single surprise
                log.exception("lag probe round failed")
            self._stop.wait(self.interval_s)

    def probe_once(self) -> None:
        view = self.table.view
        refresh = False
        if view.primary is not None:
            refresh |= self._probe(view.primary, True)
        for state in view.replicas:
            refresh |= self._probe(state, False)
        for state in set(self._conns) - set(view.states):
            self._drop(state)
        if refresh:
            self.hooks.on_refresh_needed()

    def _probe(self, state: EndpointState, is_primary: bool) -> bool:
        try:
            conn = self._conns.get(state)
            if conn is None:
                conn = self._conns[state] = psycopg.connect(
                    state.endpoint.conninfo, **_probe_kwargs(state)
                )
            sent_at = time.monotonic()
            row = conn.execute(PRIMARY_SQL if is_primary else REPLICA_SQL).fetchone()
        except psycopg.Error:
            self._drop(state)
            if record_failure(self.table, state, is_primary):
                self.hooks.on_ejected(state)
            return is_primary
        return record_success(self.table, state, row, sent_at, is_primary, self.metrics)

    def _drop(self, state: EndpointState) -> None:
        conn = self._conns.pop(state, None)
        if conn is not None:
            with contextlib.suppress(psycopg.Error):
                conn.close()

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        for state in list(self._conns):
            self._drop(state)


class AsyncLagProbe:
    def __init__(
        self, table: RoutingTable, interval_s: float, hooks: ProbeHooks, metrics: RouterMetrics
    ) -> None:
        self.table = table
        self.interval_s = interval_s
        self.hooks = hooks
        self.metrics = metrics
        self._conns: dict[EndpointState, psycopg.AsyncConnection[tuple[Any, ...]]] = {}
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            try:
                await self.probe_once()
            except Exception:
                log.exception("lag probe round failed")
            await asyncio.sleep(self.interval_s)

    async def probe_once(self) -> None:
        view = self.table.view
        refresh = False
        if view.primary is not None:
            refresh |= await self._probe(view.primary, True)
        for state in view.replicas:
            refresh |= await self._probe(state, False)
        for state in set(self._conns) - set(view.states):
            await self._drop(state)
        if refresh:
            self.hooks.on_refresh_needed()

    async def _probe(self, state: EndpointState, is_primary: bool) -> bool:
        try:
            conn = self._conns.get(state)
            if conn is None:
                conn = self._conns[state] = await psycopg.AsyncConnection.connect(
                    state.endpoint.conninfo, **_probe_kwargs(state)
                )
            sent_at = time.monotonic()
            cur = await conn.execute(PRIMARY_SQL if is_primary else REPLICA_SQL)
            row = await cur.fetchone()
        except psycopg.Error:
            await self._drop(state)
            if record_failure(self.table, state, is_primary):
                self.hooks.on_ejected(state)
            return is_primary
        return record_success(self.table, state, row, sent_at, is_primary, self.metrics)

    async def _drop(self, state: EndpointState) -> None:
        conn = self._conns.pop(state, None)
        if conn is not None:
            with contextlib.suppress(psycopg.Error):
                await conn.close()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for state in list(self._conns):
            await self._drop(state)
