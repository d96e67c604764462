"""The cursor Django gets from a routed connection: each statement run outside a
transaction goes where router_lib's classifier and routing decision say; everything else runs
on the primary connection, exactly as with Django's own backend.

Django reads results through the cursor that ran the statement (``fetchone``,
``fetchmany``, ``description``, ``rowcount``), so the routing cursor delegates those to
whichever underlying cursor ran the last statement.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import errors as sqlstate

from router_lib import classify
from router_lib.consistency import Level
from router_lib.endpoints import Role
from router_lib.failures import is_broken

if TYPE_CHECKING:
    from router_lib.contrib.django_backend.base import DatabaseWrapper

PRIMARY_TARGET = Role.PRIMARY.value


class RoutingCursor:
    def __init__(self, db: DatabaseWrapper, primary: Any) -> None:
        self._db = db
        self._primary = primary
        self._current: Any = primary
        self._replica: Any = None

    def execute(self, query: Any, params: Any = None) -> Any:
        db = self._db
        service = db.replicadb
        text, classification = service.core.classify(query, params is not None)
        if classification.read_only and db.may_route_reads():
            level = db.read_level()
            session = db.read_session()
            if level.level is Level.READ_YOUR_WRITES:
                db.settle_write_position()
            replica = db.replica_reads.run(query, params, text, level, session)
            if replica is not None:
                self._close_replica()
                self._replica = self._current = replica
                return self
            # The primary serves it; the replica may have taught the classifier it writes.
            classification = service.core.classifier.classify(text, params is not None)
        elif classification.read_only:
            service.count(PRIMARY_TARGET, db.primary_read_reason())
        self._current = self._primary
        try:
            self._primary.execute(query, params)
        except psycopg.Error as exc:
            # A read-only primary or a lost one: ask the source who the primary is now.
            if isinstance(exc, sqlstate.ReadOnlySqlTransaction) or is_broken(
                self._primary.connection
            ):
                service.source.request_refresh()
            raise
        if not classification.read_only:
            db.note_primary_statement(classification)
        return self

    def executemany(self, query: Any, params_seq: Any) -> Any:
        # Batches of writes: the primary, recorded like any write.
        db = self._db
        self._current = self._primary
        self._primary.executemany(query, params_seq)
        db.note_primary_statement(db.replicadb.core.classify(query, True)[1])
        return self

    def callproc(self, name: Any, args: Any = None) -> Any:
        # A function call may write (its volatility is unknown here): the primary.
        self._current = self._primary
        result = self._primary.callproc(name, args)
        self._db.note_primary_statement(_CALL)
        return result

    def copy(self, statement: Any, *args: Any, **kwargs: Any) -> Any:
        self._current = self._primary
        self._db.note_primary_statement(_CALL)
        return self._primary.copy(statement, *args, **kwargs)

    def fetchone(self) -> Any:
        return self._current.fetchone()

    def fetchmany(self, size: int = 0) -> Any:
        return self._current.fetchmany(size) if size else self._current.fetchmany()

    def fetchall(self) -> Any:
        return self._current.fetchall()

    def __iter__(self) -> Iterator[Any]:
        return iter(self._current)

    @property
    def description(self) -> Any:
        return self._current.description

    @property
    def rowcount(self) -> int:
        rowcount: int = self._current.rowcount
        return rowcount

    def _close_replica(self) -> None:
        if self._replica is not None:
            self._replica.close()
            self._replica = None

    def close(self) -> None:
        self._close_replica()
        self._primary.close()

    def __enter__(self) -> RoutingCursor:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __getattr__(self, name: str) -> Any:
        # Anything else Django or an application reads (statusmessage, connection, ...).
        return getattr(self._current, name)


# What callproc and COPY count as: writes of unknown tables.
_CALL = classify.Classification(False, classify.PROCEDURE, frozenset(), invalidates_all=True)
