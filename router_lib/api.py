"""Drop-in module-level API for code that was written against a single database.

``router_lib.query(sql, params)`` and ``with router_lib.transaction() as tx:`` use one router
per process, configured from ``REPLICADB_*`` environment variables on first use (or by
:func:`configure`). Its default consistency is read-your-writes across the whole process,
so code that reads what it has just written keeps working when reads move to replicas.
"""

from __future__ import annotations

import atexit
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from psycopg import IsolationLevel

from router_lib.cache import Params
from router_lib.config import RouterConfig
from router_lib.consistency import Consistency
from router_lib.router import Router
from router_lib.router_core import Row, Statement
from router_lib.session import Session
from router_lib.transaction import Transaction

_router: Router | None = None
_lock = threading.Lock()


def configure(config: RouterConfig | None = None) -> Router:
    """(Re)create the process router from ``config`` (default: the environment)."""
    global _router
    with _lock:
        old, _router = _router, Router(config)
        router = _router
    if old is not None:
        old.close()
    return router


def get_router() -> Router:
    global _router
    router = _router
    if router is None:
        with _lock:
            if _router is None:
                _router = Router()
                atexit.register(close)
            router = _router
    return router


def query(
    query: Statement,
    params: Params = None,
    *,
    consistency: Consistency | None = None,
    cache: bool | None = None,
) -> list[Row]:
    """Rows of a statement, run where it may run (see :meth:`Session.query`)."""
    return get_router().query(query, params, consistency=consistency, cache=cache)


def query_one(
    query: Statement,
    params: Params = None,
    *,
    consistency: Consistency | None = None,
    cache: bool | None = None,
) -> Row | None:
    return get_router().query_one(query, params, consistency=consistency, cache=cache)


def execute(query: Statement, params: Params = None) -> int:
    """Row count of a statement (writes go to the primary)."""
    return get_router().execute(query, params)


@contextmanager
def transaction(
    read_only: bool = False,
    *,
    consistency: Consistency | None = None,
    isolation_level: IsolationLevel | None = None,
) -> Iterator[Transaction]:
    with get_router().transaction(
        read_only, consistency=consistency, isolation_level=isolation_level
    ) as tx:
        yield tx


def session(consistency: Consistency | None = None) -> Session:
    return get_router().session(consistency)


def close() -> None:
    """Close the process router (pools, probe, watcher); the next call opens a new one."""
    global _router
    with _lock:
        router, _router = _router, None
    if router is not None:
        router.close()
