"""What an error means for the request that hit it."""

from __future__ import annotations

import psycopg
import pytest
from psycopg import errors as sqlstate

from router_lib.errors import NoPrimaryAvailable, RouterError, StalePrimary, WriteOutcomeUnknown
from router_lib.failures import ReadAction, WriteAction, read_action, write_action


@pytest.mark.parametrize(
    ("exc", "broken", "action"),
    [
        (sqlstate.SerializationFailure("conflict with recovery"), False, ReadAction.RETRY),
        (sqlstate.AdminShutdown("terminating"), True, ReadAction.RETRY_EJECT),
        (sqlstate.CannotConnectNow("starting up"), False, ReadAction.RETRY_EJECT),
        (psycopg.OperationalError("server closed the connection"), True, ReadAction.RETRY_EJECT),
        (psycopg.OperationalError("pool timeout"), False, ReadAction.RETRY_EJECT),
        (sqlstate.ReadOnlySqlTransaction("read-only"), False, ReadAction.ON_PRIMARY),
        (sqlstate.UndefinedTable("no such table"), False, ReadAction.RAISE),
        (sqlstate.QueryCanceled("statement timeout"), False, ReadAction.RAISE),
    ],
)
def test_read_errors(exc: psycopg.Error, broken: bool, action: ReadAction) -> None:
    assert read_action(exc, broken) is action


@pytest.mark.parametrize(
    ("exc", "broken", "action"),
    [
        (
            psycopg.OperationalError("server closed the connection"),
            True,
            WriteAction.OUTCOME_UNKNOWN,
        ),
        (sqlstate.AdminShutdown("terminating"), False, WriteAction.OUTCOME_UNKNOWN),
        (psycopg.OperationalError("consuming input failed"), False, WriteAction.OUTCOME_UNKNOWN),
        (sqlstate.ReadOnlySqlTransaction("read-only"), False, WriteAction.STALE_PRIMARY),
        (sqlstate.UniqueViolation("duplicate key"), False, WriteAction.RAISE),
        (sqlstate.SerializationFailure("could not serialize"), False, WriteAction.RAISE),
        (sqlstate.QueryCanceled("statement timeout"), False, WriteAction.RAISE),
    ],
)
def test_write_errors_never_hide_a_possible_commit(
    exc: psycopg.Error, broken: bool, action: WriteAction
) -> None:
    assert write_action(exc, broken) is action


def test_router_errors_sit_in_psycopgs_hierarchy() -> None:
    for cls in (WriteOutcomeUnknown, NoPrimaryAvailable, StalePrimary):
        assert issubclass(cls, RouterError)
        assert issubclass(cls, psycopg.OperationalError)
    assert WriteOutcomeUnknown("lost", "pg-0").endpoint == "pg-0"
