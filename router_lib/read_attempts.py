"""Bookkeeping for one read across retries: endpoints to avoid, failures so far, and whether
read-your-writes gave up waiting and wants the primary. Shared by the sync and async routers.
"""

from __future__ import annotations

from router_lib.consistency import Consistency, Level
from router_lib.errors import NoEndpointAvailable
from router_lib.health import EndpointState
from router_lib.routing import FALLBACK_RYW, ReadChoice
from router_lib.routing_table import RoutingTable


class ReadAttempts:
    __slots__ = ("exclude", "failures", "last_error", "limit", "primary_reason")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.exclude: list[EndpointState] = []
        self.failures = 0
        self.last_error: BaseException | None = None
        self.primary_reason: str | None = None

    def choose(self, table: RoutingTable, consistency: Consistency, session_lsn: int) -> ReadChoice:
        if self.primary_reason is not None:
            choice = table.primary_choice(self.primary_reason, self.exclude)
        else:
            choice = table.choose_read(consistency, session_lsn, self.exclude)
        if choice is None:
            raise NoEndpointAvailable("no endpoint can serve this read") from self.last_error
        return choice

    def failed(self, state: EndpointState, exc: BaseException) -> None:
        """Count a failure on ``state``; raises once the attempts are used up."""
        self.failures += 1
        self.last_error = exc
        self.exclude.append(state)
        if self.failures >= self.limit:
            raise NoEndpointAvailable(
                f"read failed on {self.failures} attempts (last on {state.endpoint.label})"
            ) from exc

    def not_fresh(self, choice: ReadChoice, consistency: Consistency) -> None:
        """The chosen replica had not replayed far enough (read-your-writes wait over, or a
        BOUNDED replica that restarted): the primary, or the next replica."""
        if consistency.level is Level.READ_YOUR_WRITES:
            self.primary_reason = FALLBACK_RYW
        else:
            self.exclude.append(choice.state)
