"""The async twin of :mod:`router_lib.sync_execution`: the same steps, on async pools.

Kept parallel to the sync module so that a fix in one is easy to carry to the other (the
sync one adds an allocation-free first attempt for the common read, which the benchmark
holds to 5 % of a round trip); the shared, non-waiting parts live in
:mod:`router_lib.execution_base`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import psycopg
from psycopg import IsolationLevel
from psycopg_pool import AsyncConnectionPool

from router_lib import classify, routing
from router_lib.cache import AsyncResultCache, CachedResult, Params
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
from router_lib.pools import AsyncPools, AsyncRoutedConnection
from router_lib.read_attempts import ReadAttempts
from router_lib.router_core import RouterCore, Row, Statement
from router_lib.routing import ReadChoice
from router_lib.status_contract import parse_lsn
from router_lib.transaction import AsyncTransaction

Pool = AsyncConnectionPool[AsyncRoutedConnection]


class AsyncExecutor(ExecutorBase):
    def __init__(
        self,
        core: RouterCore,
        pools: AsyncPools,
        cache: AsyncResultCache | None,
        request_refresh: Callable[[], None],
    ) -> None:
        super().__init__(core, pools, request_refresh)
        self.pools = pools
        self.cache = cache

    # -- reads ------------------------------------------------------------------------------
    async def read(
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
            return await self._cached_read(
                query, params, text, consistency, session, classification
            )
        rows, rowcount, _ = await self._read(query, params, text, consistency, session, False)
        return rows, rowcount

    async def _cached_read(
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
            rows, rowcount, _ = await self._read(query, params, text, consistency, session, False)
            return rows, rowcount
        hit = await cache.lookup(key)
        if hit is not None and self.core.cached_result_fresh(
            hit[0], consistency, session.write_lsn
        ):
            metrics.cache_hits.labels(hit[1]).inc()
            return list(hit[0].rows), len(hit[0].rows)
        metrics.cache_misses.inc()
        generations = await cache.generations(classification.tables)
        rows, rowcount, lsn = await self._read(query, params, text, consistency, session, True)
        if lsn >= 0:
            result = CachedResult(rows, lsn, time.time())
            await cache.store(key, result, classification.tables, cache.config.ttl_s, generations)
        return list(rows), rowcount

    async def _read(
        self,
        query: Statement,
        params: Params,
        text: str,
        consistency: Consistency,
        session: SessionState,
        want_lsn: bool,
    ) -> tuple[list[Row], int, int]:
        """(rows, rowcount, a WAL position the rows include: 0 unknown, -1 not cacheable)."""
        attempts = ReadAttempts(self.core.config.read_attempts)
        while True:
            choice, pool, conn = await self._acquire(consistency, session, attempts)
            state = choice.state
            try:
                lsn = self._position_before_read(conn, state) if want_lsn else 0
                cur = await conn.execute(query, params)
                rows = await cur.fetchall()
                rowcount = cur.rowcount
            except psycopg.Error as exc:
                broken = is_broken(conn)
                await pool.putconn(conn)
                action = read_action(exc, broken)
                if action is ReadAction.ON_PRIMARY and state.endpoint.role is Role.REPLICA:
                    learned = self._learn_write(text, params is not None)
                    rows, rowcount = await self.write(query, params, session, learned)
                    return rows, rowcount, -1
                self._read_failed(state, action, exc, attempts)
                continue
            await pool.putconn(conn)
            self._count(choice)
            return rows, rowcount, lsn

    async def _acquire(
        self, consistency: Consistency, session: SessionState, attempts: ReadAttempts
    ) -> tuple[ReadChoice, Pool, AsyncRoutedConnection]:
        """A connection to an endpoint that can serve the read, its replay checked."""
        while True:
            choice = attempts.choose(self.core.table, consistency, session.write_lsn)
            state = choice.state
            pool = await self.pools.get(state)
            try:
                conn = await pool.getconn()
            except psycopg.OperationalError as exc:  # PoolTimeout: could not connect
                self._read_failed(state, ReadAction.RETRY_EJECT, exc, attempts)
                continue
            if choice.required_lsn and known_replay(conn, state) < choice.required_lsn:
                try:
                    reached = await self._await_replay(conn, state, choice)
                except psycopg.Error as exc:
                    broken = is_broken(conn)
                    await pool.putconn(conn)
                    self._read_failed(state, read_action(exc, broken), exc, attempts)
                    continue
                if not reached:
                    await pool.putconn(conn)
                    attempts.not_fresh(choice, consistency)
                    continue
            return choice, pool, conn

    async def _await_replay(
        self, conn: AsyncRoutedConnection, state: EndpointState, choice: ReadChoice
    ) -> bool:
        """Ask the replica how far it has replayed; with ``may_wait``, poll until it reaches
        the required position or the read-your-writes bound passes."""
        config = self.core.config
        metrics = self.core.metrics
        waiting_since = 0.0
        polls = 0
        while True:
            sent_at = time.monotonic()
            row = await (await conn.execute(REPLAY_SQL)).fetchone()
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
            await asyncio.sleep(poll_delay(polls, config.ryw_poll_s))
            polls += 1

    # -- writes -----------------------------------------------------------------------------
    async def write(
        self,
        query: Statement,
        params: Params,
        session: SessionState,
        classification: Classification,
    ) -> tuple[list[Row], int]:
        retried = False
        while True:
            state = self.core.primary()
            pool = await self.pools.get(state)
            try:
                conn = await pool.getconn()
            except psycopg.OperationalError as exc:  # nothing was sent
                self._endpoint_down(state)
                if not retried and await self._await_new_primary(state):
                    retried = True
                    continue
                raise NoPrimaryAvailable(
                    f"primary {state.endpoint.label} unreachable; nothing was sent"
                ) from exc
            refused: psycopg.Error | None = None
            try:
                try:
                    cur = await conn.execute(query, params)
                    rows = await cur.fetchall() if returns_rows(cur) else []
                    rowcount = cur.rowcount
                except psycopg.Error as exc:
                    action = write_action(exc, is_broken(conn))
                    if action is WriteAction.OUTCOME_UNKNOWN:
                        await self._invalidate(
                            classification.tables, classification.invalidates_all
                        )
                        raise self._outcome_unknown(state, exc) from exc
                    if action is not WriteAction.STALE_PRIMARY:
                        raise  # the server refused it: nothing committed
                    refused = exc
                else:
                    await self._note_commit(conn, session)
            finally:
                await pool.putconn(conn)
            if refused is None:
                break
            # Read-only refusal: the statement did not commit anywhere, so retrying on the
            # new primary (if the source names one soon) is safe.
            self.request_refresh()
            if not retried and await self._await_new_primary(state):
                retried = True
                continue
            raise StalePrimary(
                f"{state.endpoint.label} refused a write as read-only; nothing was committed"
            ) from refused
        self.core.metrics.query(PRIMARY_TARGET, classification.reason)
        await self._invalidate(classification.tables, classification.invalidates_all)
        return rows, rowcount

    async def _note_commit(self, conn: AsyncRoutedConnection, session: SessionState) -> None:
        started = time.monotonic()
        try:
            row = await (await conn.execute(WRITE_POSITION_SQL)).fetchone()
        except psycopg.Error:
            session.note_write_position_lost(time.monotonic())
            return
        if row is not None and row[0]:
            session.note_write(parse_lsn(row[0]), started)

    async def _await_new_primary(self, old: EndpointState) -> bool:
        """Wait (up to failover_wait_s) for the source to name a different primary."""
        deadline = time.monotonic() + self.core.config.failover_wait_s
        while True:
            if self._new_primary_named(old):
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            # Topology changes arrive from a thread: poll rather than block the loop.
            await asyncio.sleep(min(0.01, remaining))

    async def _invalidate(self, tables: frozenset[str] | set[str], everything: bool) -> None:
        if self.cache is None:
            return
        if everything:
            await self.cache.clear()
        elif tables:
            await self.cache.invalidate_tables(tables)

    # -- transactions -----------------------------------------------------------------------
    @asynccontextmanager
    async def read_write_transaction(
        self, session: SessionState, isolation_level: IsolationLevel | None
    ) -> AsyncIterator[AsyncTransaction]:
        state = self.core.primary()
        pool = await self.pools.get(state)
        try:
            conn = await pool.getconn()
        except psycopg.OperationalError as exc:
            self._endpoint_down(state)
            raise NoPrimaryAvailable(
                f"primary {state.endpoint.label} unreachable; nothing was sent"
            ) from exc
        tx = AsyncTransaction(conn, self.core, read_only=False)
        committing = False
        try:
            await conn.set_isolation_level(isolation_level)
            try:
                async with conn.transaction():
                    yield tx
                    committing = True
            except psycopg.Error as exc:
                broken = is_broken(conn)
                if committing and write_action(exc, broken) is WriteAction.OUTCOME_UNKNOWN:
                    await self._invalidate(tx.tables, tx.invalidates_all or not tx.tables)
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
                await self._note_commit(conn, session)
        finally:
            if not is_broken(conn):
                await conn.set_isolation_level(None)
            await pool.putconn(conn)
        self.core.metrics.query(PRIMARY_TARGET, classify.TRANSACTION)
        if tx.wrote:
            await self._invalidate(tx.tables, tx.invalidates_all)

    @asynccontextmanager
    async def read_only_transaction(
        self,
        consistency: Consistency,
        session: SessionState,
        isolation_level: IsolationLevel | None,
    ) -> AsyncIterator[AsyncTransaction]:
        attempts = ReadAttempts(self.core.config.read_attempts)
        choice, pool, conn = await self._acquire(consistency, session, attempts)
        try:
            await conn.set_read_only(True)
            await conn.set_isolation_level(isolation_level)
            async with conn.transaction():
                yield AsyncTransaction(conn, self.core, read_only=True)
        except psycopg.Error:
            if is_broken(conn) and choice.state.endpoint.role is Role.REPLICA:
                self._endpoint_down(choice.state)
            raise
        finally:
            if not is_broken(conn):
                await conn.set_read_only(None)
                await conn.set_isolation_level(None)
            await pool.putconn(conn)
        self.core.metrics.query(choice.state.target, routing.READ_ONLY_TRANSACTION)
