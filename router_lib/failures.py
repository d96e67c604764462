"""What an error means for the request that hit it: retry elsewhere, or raise, and as what.

Shared by the sync and async routers. The rule that matters: a write is never retried unless
the server said, before anything could commit, that it refused it. A lost connection during
a write or COMMIT becomes :class:`WriteOutcomeUnknown`; a read-only refusal (25006) from the
endpoint believed to be the primary means the role is stale (nothing committed).
"""

from __future__ import annotations

import enum
from typing import Any

import psycopg
from psycopg import errors as sqlstate

# Errors after which the same read may succeed on another endpoint. 40001 on a replica is
# a recovery conflict (the standby cancelled the query to apply WAL).
_RETRY_ELSEWHERE = (sqlstate.SerializationFailure,)
# The server is going away or not accepting work: stop sending it reads for a while.
_ENDPOINT_DOWN = (
    sqlstate.AdminShutdown,  # 57P01
    sqlstate.CrashShutdown,  # 57P02
    sqlstate.CannotConnectNow,  # 57P03
    sqlstate.TooManyConnections,  # 53300
    sqlstate.ConnectionException,  # 08xxx
)


class ReadAction(enum.Enum):
    RETRY_EJECT = "endpoint_down"  # try another endpoint, stop using this one for a while
    RETRY = "recovery_conflict"  # try another endpoint
    ON_PRIMARY = "read_only_refusal"  # the statement writes after all: primary, remember it
    RAISE = "raise"


class WriteAction(enum.Enum):
    OUTCOME_UNKNOWN = "outcome_unknown"
    STALE_PRIMARY = "stale_primary"
    RAISE = "raise"


def read_action(exc: BaseException, broken: bool) -> ReadAction:
    """``broken``: the connection the read ran on is unusable now."""
    if broken or isinstance(exc, _ENDPOINT_DOWN):
        return ReadAction.RETRY_EJECT
    if isinstance(exc, _RETRY_ELSEWHERE):
        return ReadAction.RETRY
    if isinstance(exc, sqlstate.ReadOnlySqlTransaction):
        return ReadAction.ON_PRIMARY
    if isinstance(exc, psycopg.OperationalError) and exc.sqlstate is None:
        # Connection-level trouble without an SQLSTATE (the socket closed, a pool timeout).
        return ReadAction.RETRY_EJECT
    return ReadAction.RAISE


def write_action(exc: BaseException, broken: bool) -> WriteAction:
    if broken or isinstance(exc, _ENDPOINT_DOWN):
        return WriteAction.OUTCOME_UNKNOWN
    if isinstance(exc, sqlstate.ReadOnlySqlTransaction):
        return WriteAction.STALE_PRIMARY
    if isinstance(exc, psycopg.OperationalError) and exc.sqlstate is None:
        return WriteAction.OUTCOME_UNKNOWN
    return WriteAction.RAISE


def is_broken(conn: psycopg.Connection[Any] | psycopg.AsyncConnection[Any]) -> bool:
    return conn.broken or conn.closed
