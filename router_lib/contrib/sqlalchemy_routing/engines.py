"""One SQLAlchemy engine per endpoint, following the topology.

The application gives one URL (driver, credentials, database, connect arguments); each
endpoint router_lib knows gets an engine of that URL with only the address replaced, so
pool settings, dialect options and events the application configures apply everywhere.
An engine belongs to an :class:`~router_lib.health.EndpointState`: when the source stops
naming that endpoint (failover, a replica removed) the state is retired and its engine
disposed, so a connection to a former primary is never checked out again.

Replay proof lives on the pooled DBAPI connection (the pool entry's ``info``): when the
server connection was opened, and the highest replay position confirmed on it. That is
router_lib's :class:`~router_lib.health.ReplayAware`, kept where SQLAlchemy keeps
per-connection state, so it survives check-in and check-out and dies with the connection.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from psycopg.conninfo import conninfo_to_dict
from sqlalchemy import Connection, Engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.pool import ConnectionPoolEntry

from router_lib.health import EndpointState

_ESTABLISHED = "replicadb_established_at"
_CONFIRMED = "replicadb_confirmed_lsn"


class PooledReplay:
    """:class:`router_lib.health.ReplayAware` over a checked-out connection's pool entry."""

    __slots__ = ("_info",)

    def __init__(self, connection: Connection) -> None:
        self._info: dict[Any, Any] = connection.info

    @property
    def established_at(self) -> float:
        value: float = self._info.get(_ESTABLISHED, 0.0)
        return value

    @established_at.setter
    def established_at(self, value: float) -> None:
        self._info[_ESTABLISHED] = value

    @property
    def confirmed_lsn(self) -> int:
        value: int = self._info.get(_CONFIRMED, 0)
        return value

    @confirmed_lsn.setter
    def confirmed_lsn(self, value: int) -> None:
        self._info[_CONFIRMED] = value

    def confirm(self, lsn: int) -> None:
        self._info[_CONFIRMED] = max(self.confirmed_lsn, lsn)


def _on_connect(dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
    # Taken once the server connection exists: a probe observation made later holds for it
    # (router_lib.health.known_replay).
    record.info[_ESTABLISHED] = time.monotonic()
    record.info[_CONFIRMED] = 0


def endpoint_url(url: URL, conninfo: str) -> URL:
    """The application's URL with the endpoint's address (host and port only: who connects,
    to which database and how, is the application's)."""
    values = conninfo_to_dict(conninfo)
    port = values.get("port")
    query = {k: v for k, v in url.query.items() if k not in ("host", "hostaddr", "port")}
    return url.set(
        host=str(values.get("host") or ""), port=int(port) if port else None, query=query
    )


class EngineSet:
    """Engines by endpoint, created on first use. ``make_engine`` builds one from a URL:
    ``sqlalchemy.create_engine`` or, for asyncio, ``create_async_engine`` (the set then
    holds async engines and :meth:`sync_engine` gives what a Session's get_bind returns)."""

    def __init__(self, url: str | URL, make_engine: Any, engine_options: dict[str, Any]) -> None:
        self.url = make_url(url)
        self._make_engine = make_engine
        self._options = engine_options
        self._engines: dict[EndpointState, Any] = {}
        self._lock = threading.Lock()

    def engine(self, state: EndpointState) -> Any:
        """The (sync or async) engine of an endpoint."""
        engine = self._engines.get(state)
        if engine is not None:
            return engine
        with self._lock:
            engine = self._engines.get(state)
            if engine is None:
                self._drop_retired()
                url = endpoint_url(self.url, state.endpoint.conninfo)
                engine = self._make_engine(url, **self._options)
                event.listen(sync_engine_of(engine), "connect", _on_connect)
                self._engines[state] = engine
        return engine

    def adopt(self, state: EndpointState, engine: Any) -> None:
        """Serve ``state`` with an engine the application built itself (one it already
        uses for that endpoint, with its own listeners). Disposed like the others once the
        endpoint is retired."""
        with self._lock:
            event.listen(sync_engine_of(engine), "connect", _on_connect)
            self._engines[state] = engine

    def sync_engine(self, state: EndpointState) -> Engine:
        return sync_engine_of(self.engine(state))

    def _drop_retired(self) -> None:
        for state in [s for s in self._engines if s.retired]:
            # Checked-in connections close now; a checked-out one (a transaction still
            # running on the former primary) is closed when returned, never reused.
            sync_engine_of(self._engines.pop(state)).dispose(close=True)

    def drop_retired(self) -> None:
        if any(s.retired for s in self._engines):
            with self._lock:
                self._drop_retired()

    def engines(self) -> list[Any]:
        with self._lock:
            return list(self._engines.values())

    def owns(self, engine: Engine) -> EndpointState | None:
        for state, candidate in list(self._engines.items()):
            if sync_engine_of(candidate) is engine:
                return state
        return None


def sync_engine_of(engine: Any) -> Engine:
    sync: Engine = getattr(engine, "sync_engine", engine)
    return sync
