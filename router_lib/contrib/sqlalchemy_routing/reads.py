"""Choosing the connection a read runs on: router_lib's routing decision and retry rules,
with the replay proof made on the very connection the Session will run the statement on.

The proof is router_lib's: :func:`router_lib.health.known_replay` from the lag probe's
observations and what this pooled connection confirmed before; else
``pg_last_wal_replay_lsn()`` asked on it, polled up to ``ryw_wait_s`` for
read-your-writes. At READ COMMITTED (PostgreSQL's default) the read that follows takes its
snapshot after that answer, so it sees at least the replayed position.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import psycopg
from sqlalchemy import Connection, Engine, exc
from sqlalchemy.util.concurrency import await_only, in_greenlet

from router_lib.consistency import Consistency
from router_lib.contrib.sqlalchemy_routing.database import RoutedDatabase
from router_lib.contrib.sqlalchemy_routing.engines import PooledReplay
from router_lib.endpoints import Role
from router_lib.execution_base import REPLAY_SQL
from router_lib.failures import ReadAction, read_action
from router_lib.health import EndpointState, known_replay
from router_lib.read_attempts import ReadAttempts
from router_lib.routing import ReadChoice
from router_lib.status_contract import parse_lsn

# Check out (or reuse) the Session's connection for an engine.
Checkout = Callable[[Engine], Connection]


def choose_read_engine(
    db: RoutedDatabase, consistency: Consistency, session_lsn: int, checkout: Checkout
) -> Engine | None:
    """A replica engine whose connection in this Session has replayed what
    ``consistency`` needs (the connection is checked out already), or None when the
    primary must serve the read."""
    service = db.service
    attempts = ReadAttempts(service.config.read_attempts)
    while True:
        choice = attempts.choose(service.core.table, consistency, session_lsn)
        state = choice.state
        if state.endpoint.role is Role.PRIMARY:
            service.count(state.target, choice.reason, choice.fallback)
            return None
        engine = db.engines.sync_engine(state)
        try:
            conn = checkout(engine)
            replay = PooledReplay(conn)
            behind = choice.required_lsn and known_replay(replay, state) < choice.required_lsn
            if behind and not _replayed(db, conn, replay, state, choice):
                attempts.not_fresh(choice, consistency)
                continue
        except (exc.DBAPIError, psycopg.Error) as error:
            cause = getattr(error, "orig", None) or error
            action = read_action(cause, _broken(error))
            if action is ReadAction.RAISE:
                raise
            service.core.metrics.read_retries.labels(action.value).inc()
            if action is ReadAction.RETRY_EJECT:
                service.core.eject(state)
            attempts.failed(state, error)
            continue
        service.count(state.target, choice.reason, choice.fallback)
        return engine


def _broken(error: BaseException) -> bool:
    return bool(getattr(error, "connection_invalidated", False)) or isinstance(
        getattr(error, "orig", None), psycopg.OperationalError
    )


def _replay_position(conn: Connection) -> int:
    # Raw cursor on the Session's connection: not one of the application's statements.
    cursor = conn.connection.cursor()
    try:
        cursor.execute(REPLAY_SQL)
        row = cursor.fetchone()
    finally:
        cursor.close()
    return parse_lsn(row[0]) if row is not None and row[0] else 0


def _pause(seconds: float) -> None:
    if in_greenlet():  # an AsyncSession: yield to the event loop while waiting
        await_only(asyncio.sleep(seconds))
    else:
        time.sleep(seconds)


def _replayed(
    db: RoutedDatabase,
    conn: Connection,
    replay: PooledReplay,
    state: EndpointState,
    choice: ReadChoice,
) -> bool:
    """Has the replica replayed ``choice.required_lsn``, as seen on ``conn``? With
    ``may_wait`` (read-your-writes), polled up to ``ryw_wait_s``."""

    def read_replay() -> int:
        lsn = _replay_position(conn)
        replay.confirm(lsn)
        return lsn

    return db.service.replayed(state, choice, read_replay, _pause)
