"""Django connections to replicas, and reads run on them.

Each replica endpoint gets a :class:`ReplicaConnection`: Django's own PostgreSQL wrapper with
the application's settings (so ``init_connection_state`` sets the time zone and role, the
adapters and cursor class are Django's, health checks and ``CONN_MAX_AGE`` apply) and only
the address replaced. Reads take the routing decision, the replay proof and the retry rules
from router_lib (:mod:`router_lib.routing`, :func:`router_lib.health.known_replay`,
:mod:`router_lib.failures`); only the I/O is Django's.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

import psycopg
from django.db import Error as DjangoError
from django.db.backends.postgresql.base import DatabaseWrapper as PostgresWrapper
from psycopg.conninfo import conninfo_to_dict

from router_lib.consistency import Consistency, SessionState
from router_lib.contrib.routing_service import RoutingService
from router_lib.endpoints import Endpoint, Role
from router_lib.execution_base import REPLAY_SQL
from router_lib.failures import ReadAction, is_broken, read_action
from router_lib.health import EndpointState, known_replay
from router_lib.read_attempts import ReadAttempts
from router_lib.routing import ReadChoice
from router_lib.status_contract import parse_lsn

# Django's settings say who connects and to which database; the endpoint says where.
_FROM_DJANGO_ONLY = ("host", "hostaddr", "port")


def endpoint_params(django_params: dict[str, Any], endpoint: Endpoint) -> dict[str, Any]:
    """Django's connection parameters with the endpoint's address (and the endpoint's
    timeouts, keepalives and TLS settings where Django's OPTIONS say nothing)."""
    params: dict[str, Any] = dict(conninfo_to_dict(endpoint.conninfo))
    params.update((k, v) for k, v in django_params.items() if k not in _FROM_DJANGO_ONLY)
    return params


class ReplicaConnection(PostgresWrapper):
    """One replica endpoint as a Django connection owned by a routed DatabaseWrapper."""

    def __init__(self, settings_dict: dict[str, Any], alias: str, state: EndpointState) -> None:
        super().__init__(settings_dict, alias)
        self.endpoint_state = state
        # router_lib.health.ReplayAware: when the server connection was opened, and the
        # replay position confirmed on it.
        self.established_at = 0.0
        self.confirmed_lsn = 0

    def get_connection_params(self) -> dict[str, Any]:
        return endpoint_params(super().get_connection_params(), self.endpoint_state.endpoint)

    def get_new_connection(self, conn_params: dict[str, Any]) -> Any:
        connection = super().get_new_connection(conn_params)
        # Taken once the connection exists: a probe observation made later holds for it
        # (router_lib.health.known_replay).
        self.established_at = time.monotonic()
        self.confirmed_lsn = 0
        return connection

    def validate_thread_sharing(self) -> None:
        """The owning wrapper validates its own thread sharing; this one follows it."""

    def open_cursor(self) -> Any:
        """A plain (Django-configured) psycopg cursor, after Django's health check."""
        self.close_if_health_check_failed()
        self.ensure_connection()
        return self.create_cursor()

    def broken(self) -> bool:
        return self.connection is None or is_broken(self.connection)

    def discard(self) -> None:
        with contextlib.suppress(DjangoError, psycopg.Error):
            self.close()


class ReplicaReads:
    """The replica side of one routed Django connection."""

    def __init__(self, owner: PostgresWrapper, service: RoutingService) -> None:
        self._owner = owner
        self._service = service
        self._links: dict[EndpointState, ReplicaConnection] = {}

    def _link(self, state: EndpointState) -> ReplicaConnection:
        link = self._links.get(state)
        if link is None:
            alias = f"{self._owner.alias}@{state.endpoint.name}"
            link = self._links[state] = ReplicaConnection(self._owner.settings_dict, alias, state)
        return link

    def _drop_retired(self) -> None:
        for state in [s for s in self._links if s.retired]:
            self._links.pop(state).discard()

    def run(
        self,
        query: Any,
        params: Any,
        text: str,
        consistency: Consistency,
        session: SessionState,
    ) -> Any | None:
        """Run a read on a replica fresh enough for ``consistency``: the psycopg cursor that
        holds its result, or None when the primary must serve it (STRONG, no replica
        fresh enough, or the replica refused it as a write)."""
        if self._links:
            self._drop_retired()
        service = self._service
        attempts = ReadAttempts(service.config.read_attempts)
        while True:
            choice = attempts.choose(service.core.table, consistency, session.write_lsn)
            state = choice.state
            if state.endpoint.role is Role.PRIMARY:
                service.count(state.target, choice.reason, choice.fallback)
                return None
            link = self._link(state)
            connected = link.connection is not None
            try:
                cursor = link.open_cursor()
                behind = choice.required_lsn and known_replay(link, state) < choice.required_lsn
                if behind and not self._replayed(link, state, choice):
                    attempts.not_fresh(choice, consistency)
                    continue
                cursor.execute(query, params)
            except (psycopg.Error, DjangoError) as exc:
                if not connected and choice.required_lsn > state.replay_lsn:
                    # Could not connect to a replica not known to be fresh enough: it may
                    # lack the database itself (just created on the primary, a test
                    # database...). Not fresh, rather than down; the probe ejects a replica
                    # that is really down.
                    link.discard()
                    attempts.not_fresh(choice, consistency)
                    continue
                cause = exc if isinstance(exc, psycopg.Error) else exc.__cause__
                action = read_action(cause or exc, link.broken())
                if action is ReadAction.RAISE:
                    raise
                if action is ReadAction.ON_PRIMARY:
                    # A function that writes and is not configured: primary from now on.
                    service.core.classifier.mark_write(text, params is not None)
                    return None
                service.core.metrics.read_retries.labels(action.value).inc()
                if action is ReadAction.RETRY_EJECT:
                    service.core.eject(state)
                    link.discard()
                attempts.failed(state, exc)
                continue
            service.count(state.target, choice.reason, choice.fallback)
            return cursor

    def _replayed(self, link: ReplicaConnection, state: EndpointState, choice: ReadChoice) -> bool:
        """Has the replica replayed ``choice.required_lsn``? Asked on the connection the
        read will use; with ``may_wait`` (read-your-writes), polled up to ``ryw_wait_s``."""

        def read_replay() -> int:
            with link.connection.cursor() as cursor:  # raw: not one of the app's queries
                row = cursor.execute(REPLAY_SQL).fetchone()
            lsn = parse_lsn(row[0]) if row is not None and row[0] else 0
            link.confirmed_lsn = max(link.confirmed_lsn, lsn)
            return lsn

        return self._service.replayed(state, choice, read_replay)

    def close_if_unusable_or_obsolete(self) -> None:
        for link in self._links.values():
            link.close_if_unusable_or_obsolete()

    def close(self) -> None:
        for link in self._links.values():
            link.discard()

    def forget(self) -> None:
        """Close and rebuild on next use (settings such as the time zone changed)."""
        self.close()
        self._links.clear()
