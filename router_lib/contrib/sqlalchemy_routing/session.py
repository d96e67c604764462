"""The routing Session: where each statement of a SQLAlchemy Session runs.

``Session.get_bind`` is SQLAlchemy's own hook for choosing an engine per statement (its
"horizontal sharding" and primary/replica recipes use it). Here it decides with
router_lib's classifier and routing table:

- flushes, ``session.connection()`` and statements that write or lock (DML, FOR UPDATE,
  nextval, write functions...) run on the primary; after one, the rest of the Session's
  transaction runs there too (it must see its own uncommitted writes), as it does after a
  statement that leaves session state (SET, temp tables...);
- a transaction begun explicitly (``session.begin()``) runs on the primary, as router_lib
  runs explicit transactions;
- other reads run on a replica fresh enough for the consistency level (the Session's, or
  ``execution_options(replicadb_consistency=...)`` on the statement or the execute call),
  proven on the connection the Session will use (:mod:`.reads`);
- read-your-writes per Session and per thread of execution (:mod:`.context_writes`):
  after a commit that wrote, the commit position is read lazily
  (``pg_current_wal_insert_lsn()``, before the next read at that level), so a Session that
  only writes pays nothing; a read sees what this Session committed, what any Session
  committed in the same thread or task, and writes made outside Sessions.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection, Engine, event
from sqlalchemy.orm import ORMExecuteState, Session, SessionTransaction
from sqlalchemy.orm.session import SessionTransactionOrigin

from router_lib import classify
from router_lib.consistency import LSN_UNKNOWN, Consistency, Level, SessionState
from router_lib.contrib.sqlalchemy_routing.context_writes import context_writes
from router_lib.contrib.sqlalchemy_routing.database import RoutedDatabase, write_position
from router_lib.contrib.sqlalchemy_routing.reads import choose_read_engine
from router_lib.execution_base import PRIMARY_TARGET

CONSISTENCY_OPTION = "replicadb_consistency"


class RoutingSession(Session):
    """``RoutingSession(replicadb=db)``, or ``sessionmaker(class_=RoutingSession,
    replicadb=db)``; for asyncio ``AsyncSession(sync_session_class=RoutingSession,
    replicadb=db)`` with ``db`` built with ``asyncio=True``. ``consistency`` overrides the
    configured level for this Session. A Session given an explicit bind (an Engine or a
    Connection) with no ``replicadb`` is a plain Session."""

    def __init__(
        self,
        bind: Any = None,
        *,
        replicadb: RoutedDatabase | None = None,
        consistency: Consistency | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(bind=bind, **kwargs)
        self.replicadb = replicadb
        self.consistency = consistency or (replicadb.config.consistency if replicadb else None)
        self.written = SessionState(self.consistency or Consistency(Level.READ_YOUR_WRITES))
        self._wrote_in_transaction = False
        self._pinned = False  # session state on the primary connection: reads stay there
        self._position_pending = False

    # -- the routing decision -----------------------------------------------------------
    def get_bind(
        self,
        mapper: Any = None,
        *,
        clause: Any = None,
        bind: Any = None,
        **kw: Any,
    ) -> Engine | Connection:
        db = self.replicadb
        if db is None or bind is not None:
            return super().get_bind(mapper, clause=clause, bind=bind, **kw)
        level: Consistency | None = kw.pop(CONSISTENCY_OPTION, None)
        primary = db.primary_sync()
        if clause is None:
            # A flush, or session.connection(): the caller may write.
            return self._on_primary(primary, classify.WRITE)
        if self._wrote_in_transaction or self._pinned or self._explicit_transaction():
            db.service.count(PRIMARY_TARGET, classify.TRANSACTION)
            return primary
        classification = self._classify(primary, clause)
        if not classification.read_only:
            return self._on_primary(primary, classification.reason)
        if level is None:
            options: Mapping[str, Any] = getattr(clause, "get_execution_options", dict)()
            level = options.get(CONSISTENCY_OPTION) or self.consistency
        assert level is not None  # the Session's default, set when replicadb is
        session_lsn = self._read_position(level, primary)
        engine = choose_read_engine(db, level, session_lsn, self._checkout)
        return primary if engine is None else engine

    def _on_primary(self, primary: Engine, reason: str) -> Engine:
        assert self.replicadb is not None
        self.replicadb.service.count(PRIMARY_TARGET, reason)
        if reason == classify.SESSION_STATE:
            # A SET, temp table, LISTEN...: the replicas' connections do not have it.
            self._pinned = True
        else:
            self._wrote_in_transaction = True
        return primary

    def _explicit_transaction(self) -> bool:
        transaction = self.get_transaction()
        return transaction is not None and transaction.origin is SessionTransactionOrigin.BEGIN

    def _classify(self, primary: Engine, clause: Any) -> classify.Classification:
        assert self.replicadb is not None
        core = self.replicadb.service.core
        try:
            text = str(clause.compile(dialect=primary.dialect))
        except Exception:  # whatever cannot be compiled here runs on the primary
            return _UNKNOWN
        return core.classifier.classify(text, True)

    def _checkout(self, engine: Engine) -> Connection:
        connection = self.connection(bind_arguments={"bind": engine})
        return connection

    def _read_position(self, level: Consistency, primary: Engine) -> int:
        """The position a read-your-writes read must see: this Session's last commit, the
        last commit of any Session in this thread or task, and writes made outside Sessions
        through the primary engine."""
        if level.level is not Level.READ_YOUR_WRITES:
            return 0
        assert self.replicadb is not None
        here = context_writes(self.replicadb)
        if here.pending:
            # A position read now is past every commit finished so far, this Session's too.
            here.pending = self._position_pending = False
            write_position(primary, here.state)
        elif self._position_pending:
            self._position_pending = False
            write_position(primary, self.written)
        self.replicadb.settle_connection_writes()
        positions = (
            self.replicadb.connection_writes.write_lsn,
            self.written.write_lsn,
            here.state.write_lsn,
        )
        if LSN_UNKNOWN in positions:
            return LSN_UNKNOWN
        return max(positions)


_UNKNOWN = classify.Classification(False, classify.UNPARSABLE, frozenset(), invalidates_all=True)


# -- Session life cycle --------------------------------------------------------------------
@event.listens_for(RoutingSession, "do_orm_execute")
def _consistency_from_options(state: ORMExecuteState) -> None:
    # Options given to session.execute() reach get_bind only through bind_arguments.
    level = state.execution_options.get(CONSISTENCY_OPTION)
    if level is not None:
        state.bind_arguments[CONSISTENCY_OPTION] = level


@event.listens_for(RoutingSession, "after_begin")
def _own_connection(session: Session, transaction: SessionTransaction, conn: Connection) -> None:
    if isinstance(session, RoutingSession) and session.replicadb is not None:
        session.replicadb.session_connections.add(conn)


@event.listens_for(RoutingSession, "after_commit")
def _committed(session: Session) -> None:
    if isinstance(session, RoutingSession) and session._wrote_in_transaction:
        session._position_pending = True
        if session.replicadb is not None:
            context_writes(session.replicadb).pending = True


@event.listens_for(RoutingSession, "after_transaction_end")
def _transaction_over(session: Session, transaction: SessionTransaction) -> None:
    if isinstance(session, RoutingSession) and transaction.parent is None:
        # The Session's connections go back to their pools: the next transaction starts
        # free to read anywhere.
        session._wrote_in_transaction = session._pinned = False
