"""What the sync and async executors share: reacting to a failed read, counting where a
statement went, and building the error for a write whose outcome is unknown. No I/O waits
here (pool retirement is scheduled, not awaited), so both twins can call it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import psycopg
from psycopg import pq

from router_lib.classify import Classification
from router_lib.endpoints import Role
from router_lib.errors import SessionStateNotAllowed, WriteOutcomeUnknown
from router_lib.failures import ReadAction
from router_lib.health import EndpointState, ReplayAware, known_replay
from router_lib.read_attempts import ReadAttempts
from router_lib.router_core import RouterCore
from router_lib.routing import ReadChoice

REPLAY_SQL = "SELECT pg_last_wal_replay_lsn()::text"
# After COMMIT returned, on the same connection: at or past the commit record, also with
# synchronous_commit=off (the insert position, not the flushed one).
WRITE_POSITION_SQL = "SELECT pg_current_wal_insert_lsn()::text"
PRIMARY_TARGET = Role.PRIMARY.value


def session_state_refused(text: str) -> SessionStateNotAllowed:
    """The error for a statement that would leave state on a shared pooled connection."""
    shown = " ".join(text.split())
    shown = shown if len(shown) <= 60 else shown[:57] + "..."
    return SessionStateNotAllowed(
        f"{shown!r} leaves state on the database session (a setting, role, temp table, "
        "prepared statement, LISTEN, held cursor or session lock); outside a session it "
        "would reach other callers of this router. Nothing was sent: run it in a session "
        "(with router.session() as s: s.execute(...)), where it holds for the session's "
        "later statements and nobody else's"
    )


def poll_delay(polls_so_far: int, longest_s: float) -> float:
    """Read-your-writes polling: replay on a healthy replica usually catches up within a
    millisecond, so start at 0.1 ms and double up to ``longest_s``, rather than always
    sleeping the longest interval."""
    return min(longest_s, 0.0001 * float(2**polls_so_far))


def returns_rows(cur: psycopg.Cursor[Any] | psycopg.AsyncCursor[Any]) -> bool:
    """Did the statement produce rows? (Not ``cur.description``: it builds column objects,
    ~7 µs, a tenth of a query's round trip.) Reads always do: only writes ask this."""
    result = cur.pgresult
    return result is not None and result.status == pq.ExecStatus.TUPLES_OK


class Discards(Protocol):
    def discard(self, states: list[EndpointState]) -> None: ...


class ExecutorBase:
    def __init__(
        self, core: RouterCore, pools: Discards, request_refresh: Callable[[], None]
    ) -> None:
        self.core = core
        self._discards = pools
        self.request_refresh = request_refresh
        self._tally = core.metrics.queries.add  # bound once: it is called for every query

    def _position_before_read(self, conn: ReplayAware, state: EndpointState) -> int:
        """A WAL position the result of a read starting now on ``conn`` will include."""
        if state.endpoint.role is Role.REPLICA:
            return known_replay(conn, state)
        return self.core.primary_read_lsn()

    def _read_failed(
        self,
        state: EndpointState,
        action: ReadAction,
        exc: psycopg.Error,
        attempts: ReadAttempts,
    ) -> None:
        """Raise ``exc`` if no retry can help; else record the failure (raising once the
        attempts are used up) so that the caller tries the next endpoint."""
        if action is ReadAction.RAISE:
            raise exc
        if action is ReadAction.ON_PRIMARY and state.endpoint.role is Role.PRIMARY:
            self.request_refresh()  # the "primary" is read-only: stale role
        self.core.metrics.read_retries.labels(action.value).inc()
        if action is ReadAction.RETRY_EJECT:
            self._endpoint_down(state)
        attempts.failed(state, exc)

    def _learn_write(self, text: str, has_params: bool) -> Classification:
        """A replica refused the statement as a write (25006): it calls a function that
        writes and is not named in the configuration. Send that text to the primary from
        now on; the replica refused it, so nothing was written there."""
        self.core.classifier.mark_write(text, has_params)
        return self.core.classifier.classify(text, has_params)

    def _endpoint_down(self, state: EndpointState) -> None:
        if state.endpoint.role is Role.REPLICA:
            self.core.eject(state)
        else:
            self.request_refresh()
        # Its other pooled connections are most likely broken too: start afresh next time.
        self._discards.discard([state])

    def _count(self, choice: ReadChoice) -> None:
        metrics = self.core.metrics
        metrics.query(choice.state.target, choice.reason)
        if choice.fallback:
            metrics.fallback(choice.reason)

    def _outcome_unknown(self, state: EndpointState, exc: psycopg.Error) -> WriteOutcomeUnknown:
        self.core.metrics.write_outcome_unknown.inc()
        self._endpoint_down(state)
        return WriteOutcomeUnknown(
            f"connection to the primary {state.endpoint.label} failed while a write was in "
            f"flight ({exc}); it may or may not have committed, and was not retried",
            state.endpoint.label,
        )

    def _new_primary_named(self, old: EndpointState) -> bool:
        primary = self.core.table.view.primary
        return primary is not None and primary is not old
