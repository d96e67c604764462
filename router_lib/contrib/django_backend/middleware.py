"""Read-your-writes per request: every query a request makes reads data at least as new as
the writes that request committed, through any alias served by replicadb.

Without the middleware the scope is the thread (all its connection objects): still correct,
but a request that only reads may then wait for (or read from the primary because of) a
write an earlier request made on the same thread.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from router_lib.contrib.django_backend.scope import request_scope


class ReadYourWritesMiddleware:
    """Add ``"router_lib.contrib.django_backend.middleware.ReadYourWritesMiddleware"``
    near the top of ``MIDDLEWARE``."""

    sync_capable = True
    async_capable = False  # Django adapts it; context variables follow sync_to_async

    def __init__(self, get_response: Callable[[Any], Any]) -> None:
        self.get_response = get_response

    def __call__(self, request: Any) -> Any:
        with request_scope():
            return self.get_response(request)
