"""A database served by replicadb, as SQLAlchemy sees it: the routing service (topology,
routing table, lag probe, classifier) plus one engine per endpoint.

Writes made through the primary engine's Connection API (``with db.primary().begin()``)
are remembered process-wide, like :class:`router_lib.Router`'s default session: a routing
Session at READ_YOUR_WRITES reads data at least that new too. Writes a routing Session
makes are its own (:mod:`.session`).
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

import psycopg
from sqlalchemy import Connection, Engine, create_engine, event, exc
from sqlalchemy.engine import URL
from sqlalchemy.pool import ConnectionPoolEntry

from router_lib import classify
from router_lib.config import RouterConfig
from router_lib.consistency import SessionState
from router_lib.contrib.routing_service import RoutingService, service_for
from router_lib.contrib.sqlalchemy_routing.engines import EngineSet, sync_engine_of
from router_lib.execution_base import WRITE_POSITION_SQL
from router_lib.status_contract import parse_lsn


class RoutedDatabase:
    """``RoutedDatabase(url, config)`` for sync engines, ``RoutedDatabase(url, config,
    asyncio=True)`` for ``create_async_engine`` (``postgresql+psycopg``); ``make_engine``
    replaces ``create_engine`` (called with the endpoint's URL and the engine options).
    Keyword arguments beyond those are engine options (pool size, ``connect_args``...)."""

    def __init__(
        self,
        url: str | URL,
        config: RouterConfig | None = None,
        *,
        service: RoutingService | None = None,
        asyncio: bool = False,
        make_engine: Callable[..., Any] | None = None,
        **engine_options: Any,
    ) -> None:
        if service is None:
            service = service_for(config if config is not None else RouterConfig.from_env())
        self.service = service
        if make_engine is None and asyncio:
            from sqlalchemy.ext.asyncio import create_async_engine

            make_engine = create_async_engine
        self.engines = EngineSet(url, make_engine or create_engine, engine_options)
        # Connections a routing Session holds: their writes are that Session's own.
        self.session_connections: weakref.WeakSet[Connection] = weakref.WeakSet()
        self._writing: weakref.WeakSet[Connection] = weakref.WeakSet()
        # ids of DBAPI connections whose COMMIT may be in flight (async drivers' adapted
        # connections take no weak references)
        self._committing: set[int] = set()
        self._pending = False
        self._lock = threading.Lock()
        self._hooked: weakref.WeakSet[Engine] = weakref.WeakSet()

    @property
    def config(self) -> RouterConfig:
        return self.service.config

    @property
    def connection_writes(self) -> SessionState:
        """Read-your-writes position of writes made outside routing Sessions."""
        return self.service.core.default_session

    def primary(self) -> Any:
        """The current primary's engine (an AsyncEngine with ``asyncio=True``); raises
        :class:`router_lib.NoPrimaryAvailable` when none is known."""
        self.engines.drop_retired()
        engine = self.engines.engine(self.service.core.primary())
        sync = sync_engine_of(engine)
        if sync not in self._hooked:
            self._hooked.add(sync)
            event.listen(sync, "after_cursor_execute", self._after_execute)
            event.listen(sync, "commit", self._on_commit)
            event.listen(sync, "begin", self._commit_over)
            event.listen(sync, "checkin", self._returned)
        return engine

    def primary_sync(self) -> Engine:
        return sync_engine_of(self.primary())

    # -- writes through the Connection API --------------------------------------------
    def _after_execute(self, conn: Connection, cursor: Any, statement: str, *rest: Any) -> None:
        if conn in self.session_connections:
            return
        classification = self.service.core.classifier.classify(statement, True)
        if classification.read_only or classification.reason == classify.SESSION_STATE:
            return
        self._writing.add(conn)
        self._pending = True  # autocommit, or a later commit event says so again

    def _on_commit(self, conn: Connection) -> None:
        if conn in self._writing:
            self._writing.discard(conn)
            # Fired before COMMIT is sent: until the connection is seen doing something
            # else, a position read (by another thread) may predate the commit.
            with self._lock:
                self._committing.add(id(conn.connection.dbapi_connection))
                self._pending = True

    def _commit_over(self, conn: Connection) -> None:
        self._committing.discard(id(conn.connection.dbapi_connection))

    def _returned(self, dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
        self._committing.discard(id(dbapi_connection))

    def settle_connection_writes(self) -> None:
        """Read the commit position of Connection-API writes not yet recorded."""
        with self._lock:
            if not self._pending:
                return
            # A commit still in flight is read again at the next read.
            self._pending = bool(self._committing)
            write_position(self.primary_sync(), self.connection_writes)

    def dispose(self) -> None:
        for engine in self.engines.engines():
            sync_engine_of(engine).dispose()


def write_position(primary: Engine, state: SessionState) -> None:
    """Record the primary's WAL insert position (taken after the write committed) in
    ``state``, or mark it lost (read-your-writes then reads the primary until a later write
    records one)."""
    started = time.monotonic()
    try:
        with primary.connect() as conn:
            # Raw cursor: not one of the application's statements (no events, no tally).
            cursor = conn.connection.cursor()
            try:
                cursor.execute(WRITE_POSITION_SQL)
                row = cursor.fetchone()
            finally:
                cursor.close()
    except (exc.DBAPIError, psycopg.Error):
        state.note_write_position_lost(time.monotonic())
        return
    if row is None:
        state.note_write_position_lost(time.monotonic())
        return
    state.note_write(parse_lsn(row[0]), started)
