"""Runs routed statements on the sync pools: reads with retries and replay checks, writes
with their commit position, transactions, and the result cache around reads.

The decisions are made elsewhere (:mod:`router_lib.routing`, :mod:`router_lib.failures`);
this module is the I/O that carries them out. :mod:`router_lib.async_execution` is its twin.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import psycopg
from psycopg import IsolationLevel
from psycopg_pool import ConnectionPool

from router_lib import classify, routing
from router_lib.cache import CachedResult, Params, ResultCache
from router_lib.classify import Classification
from router_lib.consistency import Consistency, Level, SessionState
from router_lib.endpoints import Role
from router_lib.errors import NoPrimaryAvailable, StalePrimary
from router_lib.execution_base import (
    PRIMARY_TARGET,
    REPLAY_SQL,
    WRITE_POSITION_SQL,
    ExecutorBase,
    poll_delay,
    returns_rows,
)
from router_lib.failures import ReadAction, WriteAction, is_broken, read_action, write_action
from router_lib.health import EndpointState, known_replay
from router_lib.pools import RoutedConnection, SyncPools
from router_lib.read_attempts import ReadAttempts
from router_lib.router_core import RouterCore, Row, Statement
from router_lib.routing import ReadChoice
from router_lib.status_contract import parse_lsn
from router_lib.transaction import Transaction

Pool = ConnectionPool[RoutedConnection]


class SyncExecutor(ExecutorBase):
    def __init__(
        self,
        core: RouterCore,
        pools: SyncPools,
        cache: ResultCache | None,
        request_refresh: Callable[[], None],
    ) -> None:
        super().__init__(core, pools, request_refresh)
        self.pools = pools
        self.cache = cache

    # -- reads ------------------------------------------------------------------------------
    def read(
        self,
        query: Statement,
        params: Params,
        text: str,
        consistency: Consistency,
        session: SessionState,
        classification: Classification,
        cache: bool | None,
    ) -> tuple[list[Row], int]:
        if (
            self.cache is not None
            and consistency.level is not Level.STRONG
            and self.core.cache_wanted(classification, cache)
        ):
            return self._cached_read(query, params, text, consistency, session, classification)
        # The common case first, with nothing allocated for retries: an endpoint that needs
        # no replay check, and a query that works. Anything else goes through the general
        # loop (_read), which starts over from the routing decision.
        attempts: ReadAttempts | None = None
        choice = self.core.table.choose_read(consistency, session.write_lsn)
        if choice is not None and not choice.required_lsn:
            pool = self.pools.get(choice.state)
            try:
                conn = pool.getconn()
            except psycopg.OperationalError as exc:  # PoolTimeout: could not connect
                attempts = ReadAttempts(self.core.config.read_attempts)
                self._read_failed(choice.state, ReadAction.RETRY_EJECT, exc, attempts)
            else:
                try:
                    cur = conn.execute(query, params)
                    rows = cur.fetchall()
                except psycopg.Error as exc:
                    attempts = ReadAttempts(self.core.config.read_attempts)
                    learned = self._read_error(exc, choice, pool, conn, attempts, text, params)
                    if learned is not None:
                        return self.write(query, params, session, learned)
                else:
                    pool.putconn(conn)
                    self._tally(choice.state.target, choice.reason)
                    if choice.fallback:
                        self.core.metrics.fallback(choice.reason)
                    return rows, cur.rowcount
        rows, rowcount, _ = self._read(query, params, text, consistency, session, False, attempts)
        return rows, rowcount

    def _cached_read(
        self,
        query: Statement,
        params: Params,
        text: str,
        consistency: Consistency,
        session: SessionState,
        classification: Classification,
    ) -> tuple[list[Row], int]:
        cache = self.cache
        assert cache is not None
        metrics = self.core.metrics
        key = cache.key(text, params is not None, params)
        if key is None:
            rows, rowcount, _ = self._read(query, params, text, consistency, session, False)
            return rows, rowcount
        hit = cache.lookup(key)
        if hit is not None and self.core.cached_result_fresh(
            hit[0], consistency, session.write_lsn
        ):
            metrics.cache_hits.labels(hit[1]).inc()
            return list(hit[0].rows), len(hit[0].rows)
        metrics.cache_misses.inc()
        generations = cache.generations(classification.tables)
        rows, rowcount, lsn = self._read(query, params, text, consistency, session, True)
        if lsn >= 0:
            result = CachedResult(rows, lsn, time.time())
            cache.store(key, result, classification.tables, cache.config.ttl_s, generations)
        return list(rows), rowcount

    def _read(
        self,
        query: Statement,
        params: Params,
        text: str,
        consistency: Consistency,
        session: SessionState,
        want_lsn: bool,
        attempts: ReadAttempts | None = None,
    ) -> tuple[list[Row], int, int]:
        """(rows, rowcount, a WAL position the rows include: 0 unknown, -1 not cacheable)."""
        attempts = attempts or ReadAttempts(self.core.config.read_attempts)
        while True:
            choice, pool, conn = self._acquire(consistency, session, attempts)
            try:
                lsn = self._position_before_read(conn, choice.state) if want_lsn else 0
                cur = conn.execute(query, params)
                rows = cur.fetchall()
            except psycopg.Error as exc:
                learned = self._read_error(exc, choice, pool, conn, attempts, text, params)
                if learned is not None:
                    return (*self.write(query, params, session, learned), -1)
                continue
            pool.putconn(conn)
            self._count(choice)
            return rows, cur.rowcount, lsn

    def _read_error(
        self,
        exc: psycopg.Error,
        choice: ReadChoice,
        pool: Pool,
        conn: RoutedConnection,
        attempts: ReadAttempts,
        text: str,
        params: Params,
    ) -> Classification | None:
        """Return the connection and decide: raise, retry elsewhere (None), or run the
        statement as a write (its new classification returned)."""
        broken = is_broken(conn)
        pool.putconn(conn)
        action = read_action(exc, broken)
        if action is ReadAction.ON_PRIMARY and choice.state.endpoint.role is Role.REPLICA:
            return self._learn_write(text, params is not None)
        self._read_failed(choice.state, action, exc, attempts)
        return None

    def _acquire(
        self, consistency: Consistency, session: SessionState, attempts: ReadAttempts
    ) -> tuple[ReadChoice, Pool, RoutedConnection]:
        """A connection to an endpoint that can serve the read, its replay checked."""
        while True:
            choice = attempts.choose(self.core.table, consistency, session.write_lsn)
            state = choice.state
            pool = self.pools.get(state)
            try:
                conn = pool.getconn()
            except psycopg.OperationalError as exc:  # PoolTimeout: could not connect
                self._read_failed(state, ReadAction.RETRY_EJECT, exc, attempts)
                continue
            if choice.required_lsn and known_replay(conn, state) < choice.required_lsn:
                try:
                    reached = self._await_replay(conn, state, choice)
                except psycopg.Error as exc:
                    broken = is_broken(conn)
                    pool.putconn(conn)
                    self._read_failed(state, read_action(exc, broken), exc, attempts)
                    continue
                if not reached:
                    pool.putconn(conn)
                    attempts.not_fresh(choice, consistency)
                    continue
            return choice, pool, conn

    def _await_replay(
        self, conn: RoutedConnection, state: EndpointState, choice: ReadChoice
    ) -> bool:
        """Ask the replica how far it has replayed; with ``may_wait``, poll until it reaches
        the required position or the read-your-writes bound passes."""
        config = self.core.config
        metrics = self.core.metrics
        waiting_since = 0.0
        polls = 0
        while True:
            sent_at = time.monotonic()
            row = conn.execute(REPLAY_SQL).fetchone()
            lsn = parse_lsn(row[0]) if row is not None and row[0] else 0
            if lsn > conn.confirmed_lsn:
                conn.confirmed_lsn = lsn
            state.note_replay(lsn, sent_at)
            now = time.monotonic()
            if lsn >= choice.required_lsn:
                if waiting_since:
                    metrics.ryw_wait_seconds.observe(now - waiting_since)
                return True
            if not choice.may_wait or config.ryw_wait_s <= 0:
                return False
            if not waiting_since:
                waiting_since = now
                metrics.ryw_waits.inc()
            elif now - waiting_since >= config.ryw_wait_s:
                metrics.ryw_wait_seconds.observe(now - waiting_since)
                return False
            time.sleep(poll_delay(polls, config.ryw_poll_s))
            polls += 1

    # -- writes -----------------------------------------------------------------------------
    def write(
        self,
        query: Statement,
        params: Params,
        session: SessionState,
        classification: Classification,
    ) -> tuple[list[Row], int]:
        retried = False
        while True:
            state = self.core.primary()
            pool = self.pools.get(state)
            try:
                conn = pool.getconn()
            except psycopg.OperationalError as exc:  # nothing was sent
                self._endpoint_down(state)
                if not retried and self._await_new_primary(state):
                    retried = True
                    continue
                raise NoPrimaryAvailable(
                    f"primary {state.endpoint.label} unreachable; nothing was sent"
                ) from exc
            refused: psycopg.Error | None = None
            try:
                try:
                    cur = conn.execute(query, params)
                    rows = cur.fetchall() if returns_rows(cur) else []
                    rowcount = cur.rowcount
                except psycopg.Error as exc:
                    action = write_action(exc, is_broken(conn))
                    if action is WriteAction.OUTCOME_UNKNOWN:
                        self._invalidate(classification.tables, classification.invalidates_all)
                        raise self._outcome_unknown(state, exc) from exc
                    if action is not WriteAction.STALE_PRIMARY:
                        raise  # the server refused it: nothing committed
                    refused = exc
                else:
                    self._note_commit(conn, session)
            finally:
                pool.putconn(conn)
            if refused is None:
                break
            # Read-only refusal: the statement did not commit anywhere, so retrying on the
            # new primary (if the source names one soon) is safe.
            self.request_refresh()
            if not retried and self._await_new_primary(state):
                retried = True
                continue
            raise StalePrimary(
                f"{state.endpoint.label} refused a write as read-only; nothing was committed"
            ) from refused
        self.core.metrics.query(PRIMARY_TARGET, classification.reason)
        self._invalidate(classification.tables, classification.invalidates_all)
        return rows, rowcount

    def _note_commit(self, conn: RoutedConnection, session: SessionState) -> None:
        started = time.monotonic()
        try:
            row = conn.execute(WRITE_POSITION_SQL).fetchone()
        except psycopg.Error:
            session.note_write_position_lost(time.monotonic())
            return
        if row is not None and row[0]:
            session.note_write(parse_lsn(row[0]), started)

    def _await_new_primary(self, old: EndpointState) -> bool:
        """Wait (up to failover_wait_s) for the source to name a different primary."""
        table = self.core.table
        deadline = time.monotonic() + self.core.config.failover_wait_s
        while True:
            version = table.view.version
            if self._new_primary_named(old):
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            table.wait_for_change(version, remaining)

    def _invalidate(self, tables: frozenset[str] | set[str], everything: bool) -> None:
        if self.cache is None:
            return
        if everything:
            self.cache.clear()
        elif tables:
            self.cache.invalidate_tables(tables)

    # -- transactions -----------------------------------------------------------------------
    @contextmanager
    def read_write_transaction(
        self, session: SessionState, isolation_level: IsolationLevel | None
    ) -> Iterator[Transaction]:
        state = self.core.primary()
        pool = self.pools.get(state)
        try:
            conn = pool.getconn()
        except psycopg.OperationalError as exc:
            self._endpoint_down(state)
            raise NoPrimaryAvailable(
                f"primary {state.endpoint.label} unreachable; nothing was sent"
            ) from exc
        tx = Transaction(conn, self.core, read_only=False)
        committing = False
        try:
            conn.isolation_level = isolation_level
            try:
                with conn.transaction():
                    yield tx
                    committing = True
            except psycopg.Error as exc:
                broken = is_broken(conn)
                if committing and write_action(exc, broken) is WriteAction.OUTCOME_UNKNOWN:
                    self._invalidate(tx.tables, tx.invalidates_all or not tx.tables)
                    raise self._outcome_unknown(state, exc) from exc
                if write_action(exc, broken) is WriteAction.STALE_PRIMARY:
                    self.request_refresh()
                    raise StalePrimary(
                        f"{state.endpoint.label} is read-only; the transaction did not commit"
                    ) from exc
                if broken:  # lost before COMMIT was sent: nothing committed
                    self._endpoint_down(state)
                raise
            if tx.wrote:
                self._note_commit(conn, session)
        finally:
            if not is_broken(conn):
                conn.isolation_level = None
            pool.putconn(conn)
        self.core.metrics.query(PRIMARY_TARGET, classify.TRANSACTION)
        if tx.wrote:
            self._invalidate(tx.tables, tx.invalidates_all)

    @contextmanager
    def read_only_transaction(
        self,
        consistency: Consistency,
        session: SessionState,
        isolation_level: IsolationLevel | None,
    ) -> Iterator[Transaction]:
        attempts = ReadAttempts(self.core.config.read_attempts)
        choice, pool, conn = self._acquire(consistency, session, attempts)
        try:
            conn.read_only = True
            conn.isolation_level = isolation_level
            with conn.transaction():
                yield Transaction(conn, self.core, read_only=True)
        except psycopg.Error:
            if is_broken(conn) and choice.state.endpoint.role is Role.REPLICA:
                self._endpoint_down(choice.state)
            raise
        finally:
            if not is_broken(conn):
                conn.read_only = None
                conn.isolation_level = None
            pool.putconn(conn)
        self.core.metrics.query(choice.state.target, routing.READ_ONLY_TRANSACTION)
