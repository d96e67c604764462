"""Who a statement belongs to: the consistency level asked for around it, and the request
whose read-your-writes position it must respect.

Both are context variables, not attributes of the connection: Django's connection objects
are per thread (or per async context) and outlive requests, while an override must cover
exactly the ``with`` block and a request's writes must not slow down the next request on the
same thread. No Django import here: the module is usable before settings are configured.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from router_lib.consistency import Consistency, SessionState

_level: contextvars.ContextVar[Consistency | None] = contextvars.ContextVar(
    "replicadb_django_consistency", default=None
)


class RequestScope:
    """Read-your-writes positions of one request, one per routing service (aliases that
    name the same database share it)."""

    __slots__ = ("_states", "closed")

    def __init__(self) -> None:
        self._states: dict[object, SessionState] = {}
        self.closed = False  # the request is over: its positions are needed no more

    def state(self, key: object, default_level: Consistency) -> SessionState:
        state = self._states.get(key)
        if state is None:
            state = self._states[key] = SessionState(default_level)
        return state


_request: contextvars.ContextVar[RequestScope | None] = contextvars.ContextVar(
    "replicadb_django_request", default=None
)


@contextmanager
def consistency(level: Consistency) -> Iterator[None]:
    """Reads evaluated inside the block use ``level`` (EVENTUAL, BOUNDED(...), STRONG or
    READ_YOUR_WRITES) instead of the database's configured one. QuerySets are lazy:
    evaluate them inside the block (``list(qs)``, ``qs.get()``, ``qs.count()``)."""
    token = _level.set(level)
    try:
        yield
    finally:
        _level.reset(token)


def current_level() -> Consistency | None:
    return _level.get()


@contextmanager
def request_scope() -> Iterator[RequestScope]:
    """Everything inside is one request for read-your-writes (the middleware uses it; so
    can a task or management command that wants the same guarantee)."""
    scope = RequestScope()
    token = _request.set(scope)
    try:
        yield scope
    finally:
        scope.closed = True
        _request.reset(token)


# Outside a request scope, read-your-writes covers the thread: every connection object of a
# thread (aliases, and the database-less one Django opens to create databases) shares it.
_threads = threading.local()


def current_scope() -> RequestScope:
    scope = _request.get()
    if scope is None:
        scope = getattr(_threads, "scope", None)
        if scope is None:
            scope = _threads.scope = RequestScope()
    return scope
