"""The database backend: ``ENGINE = "router_lib.contrib.django_backend"``.

Django's PostgreSQL backend with one change of where statements run. The wrapper's own
connection (``self.connection``) goes to the primary router_lib currently knows, and
everything Django does with it is unchanged: transactions, savepoints, ``atomic()``,
``select_for_update()``, ``CONN_MAX_AGE``, health checks, ``init_connection_state``. Its
cursor (:class:`~router_lib.contrib.django_backend.cursor.RoutingCursor`) sends a statement
that only reads, run outside any transaction, to a replica fresh enough for the consistency
level (:mod:`router_lib.contrib.django_backend.replicas`).

Read-your-writes needs the commit position of the connection's writes. It is read lazily
(``pg_current_wal_insert_lsn()`` on the primary connection, before the next read at that
level), so requests that only write pay nothing, and never inside a transaction, where
a query would start a new one.
"""

from __future__ import annotations

import time
from typing import Any

import psycopg
from django.db.backends.postgresql.base import DatabaseWrapper as PostgresWrapper
from psycopg import pq

from router_lib import classify
from router_lib.classify import Classification
from router_lib.config import RouterConfig
from router_lib.conninfo import ConnectionSettings
from router_lib.consistency import Consistency, SessionState
from router_lib.contrib.django_backend import scope
from router_lib.contrib.django_backend.cursor import RoutingCursor
from router_lib.contrib.django_backend.replicas import ReplicaReads, endpoint_params
from router_lib.contrib.routing_service import RoutingService, config_from_mapping, service_for
from router_lib.execution_base import WRITE_POSITION_SQL
from router_lib.health import EndpointState
from router_lib.status_contract import parse_lsn

SETTINGS_KEY = "REPLICADB"


def config_for(settings_dict: dict[str, Any]) -> RouterConfig:
    """The router configuration of a DATABASES entry: its ``REPLICADB`` mapping (RouterConfig
    field names), credentials from USER/PASSWORD for the lag probe; REPLICADB_* variables
    when the entry has no such mapping."""
    values = settings_dict.get(SETTINGS_KEY)
    if values is None:
        return RouterConfig.from_env()
    # The probe connects to "postgres", as Django itself does for database-less work: NAME
    # changes under the test runner, and the service is shared across those changes.
    probe = ConnectionSettings(
        user=settings_dict.get("USER") or None,
        password=settings_dict.get("PASSWORD") or None,
        dbname="postgres",
    )
    return config_from_mapping(values, probe)


class DatabaseWrapper(PostgresWrapper):
    def __init__(self, settings_dict: dict[str, Any], alias: str = "default") -> None:
        super().__init__(settings_dict, alias)
        self._service: RoutingService | None = None
        self._reads: ReplicaReads | None = None
        self._primary_state: EndpointState | None = None
        # The primary connection that holds session state (SET, temp tables...): while it
        # is the current one, reads stay on it.
        self._pinned_connection: Any = None
        self._transaction_wrote = False
        # A session whose write committed and whose position is not read yet.
        self._pending: tuple[scope.RequestScope, SessionState] | None = None

    # -- router_lib ---------------------------------------------------------------------
    @property
    def replicadb(self) -> RoutingService:
        if self._service is None:
            self._service = service_for(config_for(self.settings_dict))
        return self._service

    @property
    def replica_reads(self) -> ReplicaReads:
        if self._reads is None:
            self._reads = ReplicaReads(self, self.replicadb)
        return self._reads

    def read_level(self) -> Consistency:
        return scope.current_level() or self.replicadb.config.consistency

    def read_session(self) -> SessionState:
        return self._scoped_session()[1]

    def _scoped_session(self) -> tuple[scope.RequestScope, SessionState]:
        service = self.replicadb
        current = scope.current_scope()
        return current, current.state(service, service.config.consistency)

    def may_route_reads(self) -> bool:
        """Outside any transaction, in autocommit, with no session state on the primary
        connection (a SET or a temp table the replica's connection does not have)."""
        return (
            not self.in_atomic_block
            and self.connection is not self._pinned_connection
            and self._idle()
        )

    def _idle(self) -> bool:
        conn = self.connection
        return (
            conn is not None
            and not conn.closed
            and not conn.broken
            and conn.autocommit
            and conn.info.transaction_status == pq.TransactionStatus.IDLE
        )

    def primary_read_reason(self) -> str:
        if self.connection is not None and self.connection is self._pinned_connection:
            return classify.SESSION_STATE
        return classify.TRANSACTION

    def note_primary_statement(self, classification: Classification) -> None:
        """After a statement that is not a plain read ran on the primary connection."""
        self.replicadb.count("primary", classification.reason)
        if classification.effects is not None:
            self._pinned_connection = self.connection
        if classification.reason == classify.SESSION_STATE:
            return  # changes the session, not the data
        conn = self.connection
        if conn is not None and conn.info.transaction_status == pq.TransactionStatus.IDLE:
            self._pending = self._scoped_session()  # autocommit: committed already
        else:
            self._transaction_wrote = True

    def settle_write_position(self) -> None:
        """Record the commit position of a write not yet recorded, for read-your-writes.
        Called only where a query on the primary connection starts no transaction."""
        if self._pending is None:
            return
        pending = self._pending[1]
        self._pending = None
        started = time.monotonic()
        try:
            with self.connection.cursor() as cursor:  # raw: not one of the app's queries
                row = cursor.execute(WRITE_POSITION_SQL).fetchone()
        except psycopg.Error:
            # Committed, position unknown: the primary serves this session's reads until a
            # later write records one.
            pending.note_write_position_lost(time.monotonic())
            return
        pending.note_write(parse_lsn(row[0]), started)

    # -- Django's connection life cycle --------------------------------------------------
    def get_connection_params(self) -> dict[str, Any]:
        state = self.replicadb.core.primary()  # raises NoPrimaryAvailable (OperationalError)
        self._primary_state = state
        return endpoint_params(super().get_connection_params(), state.endpoint)

    def _primary_replaced(self) -> bool:
        state = self._primary_state
        return state is not None and state.retired and not self.in_atomic_block

    def ensure_connection(self) -> None:
        # Failover: a connection to a primary the source no longer names is closed between
        # transactions, and the next one goes to the new primary.
        if self.connection is not None and self._primary_replaced():
            self.close()
        super().ensure_connection()

    def create_cursor(self, name: str | None = None) -> Any:
        cursor = super().create_cursor(name)
        if name is not None:
            return cursor  # server-side cursors (QuerySet.iterator()) live on the primary
        return RoutingCursor(self, cursor)

    def _commit(self) -> None:
        try:
            super()._commit()
        finally:
            if self._transaction_wrote:
                self._transaction_wrote = False
                self._pending = self._scoped_session()

    def _rollback(self) -> None:
        try:
            super()._rollback()
        finally:
            self._transaction_wrote = False

    def close(self) -> None:
        # A write whose position was not read yet, by a scope that goes on (a thread's, or
        # a request that closes a connection itself): read it while the connection is here.
        if self._pending is not None and not self._pending[0].closed and self._idle():
            self.settle_write_position()
        self._pending = None
        try:
            super().close()
        finally:
            if self._reads is not None:
                self._reads.close()

    def close_if_unusable_or_obsolete(self) -> None:
        super().close_if_unusable_or_obsolete()
        if self.connection is not None and self._primary_replaced():
            self.close()
        if self._reads is not None:
            self._reads.close_if_unusable_or_obsolete()

    def ensure_timezone(self) -> bool:
        changed: bool = super().ensure_timezone()
        if self._reads is not None:
            self._reads.forget()  # rebuilt with the new time zone on next use
        return changed
