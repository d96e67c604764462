"""The errors router_lib raises on its own, all on psycopg's DB-API hierarchy.

Applications already catch ``psycopg.OperationalError`` for "the database was not reachable";
the router's own failures are subclasses of it, so existing handlers keep working, and the
subclasses tell what matters for a retry decision: whether a write may have committed.
Errors the server reports (constraint violations, syntax errors...) are raised unchanged.
"""

from __future__ import annotations

import psycopg


class RouterError(psycopg.OperationalError):
    """Base class of the errors raised by router_lib itself."""


class WriteOutcomeUnknown(RouterError):
    """The connection to the primary was lost while a write or a COMMIT was in flight.

    The write may or may not have committed; router_lib never retries it. Check the data (or
    make the write idempotent) before trying again. Nothing is raised with this type when the
    statement never left the client.
    """

    def __init__(self, message: str, endpoint: str) -> None:
        super().__init__(message)
        self.endpoint = endpoint


class NoEndpointAvailable(RouterError):
    """No endpoint could serve the request. Nothing was committed."""


class NoPrimaryAvailable(NoEndpointAvailable):
    """No primary is known, or the known one could not be reached before anything was sent.

    Nothing was committed; retrying later is safe.
    """


class StalePrimary(RouterError):
    """The endpoint known as the primary refused a write as read-only (SQLSTATE 25006).

    Either it is no longer the primary (a failover the router has not seen yet) or the role or
    database is configured read-only. The statement did not commit; a topology refresh has been
    requested, and retrying is safe.
    """


class TransactionControlNotAllowed(psycopg.ProgrammingError):
    """BEGIN/COMMIT/ROLLBACK sent as a statement: with pooled connections each call may run on
    a different connection, so use ``transaction()`` instead."""


class ConfigurationError(psycopg.ProgrammingError):
    """The router configuration (code or environment) is invalid."""


class SessionStateNotAllowed(psycopg.ProgrammingError):
    """A statement that leaves state on its database session (SET, SET ROLE, a temp table,
    PREPARE, LISTEN, a session advisory lock...) was sent outside a session.

    The router's own methods and the module functions share pooled connections between all
    callers: the state would reach whoever borrows the connection next. Nothing was sent;
    run it in ``router.session()`` (or ``router_lib.session()``), where it holds for the
    session's later statements and nobody else's.
    """


class SessionStateLost(RouterError):
    """The connection that held this session's state (temp tables, prepared statements,
    LISTEN, held cursors, session advisory locks) broke, e.g. in a failover: that state is
    gone. The session refuses further statements; open a new session and recreate it.
    Settings (SET, SET ROLE) are not lost: they are replayed on any connection."""
