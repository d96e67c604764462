"""``replicadb-fence-agent``: the instance pod's second container, beside postgres.

On a primary it (1) writes the heartbeat that lets replicas tell a live primary from a lost
one (dataplane/heartbeat.py), and (2) stops postgres when isolation.IsolationGuard says so:
cut off from the API server and from every other instance for ``ISOLATION_S``, or named
former primary by the status. On a replica it only watches for a promotion.

It talks to postgres over the pod's own socket directory, so a cut network does not cut it
off from the server it guards.
"""

from __future__ import annotations

import contextlib
import socket
import sys
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Any

import psycopg
from psycopg.conninfo import make_conninfo

from replicadb_operator.dataplane.config_files import SUPERUSER
from replicadb_operator.dataplane.heartbeat import (
    CHECK_INTERVAL_S,
    HEARTBEAT_INTERVAL_S,
    HEARTBEAT_SQL,
    ISOLATION_S,
)
from replicadb_operator.failover.steps import STOP_ITSELF
from replicadb_operator.instance.cluster_view import ClusterView, StatusReader
from replicadb_operator.instance.entrypoint import log as entrypoint_log
from replicadb_operator.instance.isolation import IsolationGuard
from replicadb_operator.instance.settings import InstanceSettings

CONTACT_TIMEOUT_S = 1.0
COMPONENT = "replicadb-fence-agent"


def log(message: str) -> None:
    entrypoint_log(message, component=COMPONENT)


def reachable(address: str, port: int, timeout_s: float) -> bool:
    try:
        with socket.create_connection((address, port), timeout=timeout_s):
            return True
    except OSError:
        return False


class FenceAgent:
    def __init__(self, settings: InstanceSettings, read_status: Callable[[], ClusterView]) -> None:
        self.settings = settings
        self.read_status = read_status
        self.guard = IsolationGuard(settings.name, ISOLATION_S)
        self.peers: dict[str, str] = {}  # other instances' addresses, from the last status
        self.pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="contact")
        self.conn: psycopg.Connection[tuple[Any, ...]] | None = None
        self.last_heartbeat = 0.0

    def _local(self) -> psycopg.Connection[tuple[Any, ...]]:
        if self.conn is None or self.conn.closed:
            self.conn = psycopg.connect(
                make_conninfo(
                    host=str(self.settings.run_dir),
                    port=self.settings.port,
                    user=SUPERUSER,
                    password=self.settings.secret("superuser-password"),
                    dbname="postgres",
                    connect_timeout=2,
                    application_name=COMPONENT,
                ),
                autocommit=True,
                options="-c statement_timeout=1000 -c synchronous_commit=local",
            )
        return self.conn

    def _is_primary(self) -> bool | None:
        """None: postgres is not up (starting, stopped, restarting)."""
        try:
            row = self._local().execute("SELECT NOT pg_is_in_recovery()").fetchone()
            return bool(row and row[0])
        except psycopg.Error:
            self._drop()
            return None

    def _heartbeat(self, now: float) -> None:
        if now - self.last_heartbeat < HEARTBEAT_INTERVAL_S:
            return
        self.last_heartbeat = now
        try:
            self._local().execute(HEARTBEAT_SQL)
        except psycopg.Error as exc:
            log(f"heartbeat failed: {exc}")
            self._drop()

    def _contact(self) -> tuple[ClusterView | None, bool]:
        """Ask the API server and every known peer at once; give them CONTACT_TIMEOUT_S."""
        api: Future[ClusterView] = self.pool.submit(self.read_status)
        peers = [
            self.pool.submit(reachable, address, self.settings.port, CONTACT_TIMEOUT_S)
            for address in self.peers.values()
        ]
        pending: list[Future[Any]] = [api, *peers]
        wait(pending, timeout=CONTACT_TIMEOUT_S + 0.1)
        view = api.result() if api.done() and api.exception() is None else None
        if view is not None:
            self.peers = {n: a for n, a in view.addresses.items() if n != self.settings.name}
        return view, any(p.done() and p.result() for p in peers)

    def _stop_postgres(self, reason: str) -> None:
        log(f"stopping postgres: {reason}")
        # The server going down under the command ends it with an error, as does one
        # already down.
        with contextlib.suppress(psycopg.Error):
            self._local().execute(STOP_ITSELF.format(mode="immediate"))
        self._drop()

    def _drop(self) -> None:
        if self.conn is not None:
            self.conn.close()
        self.conn = None

    def check(self, now: float) -> str | None:
        """One round; the reason postgres was stopped, if it was."""
        is_primary = self._is_primary()
        if not is_primary:
            self.guard.observe(now, False, None, len(self.peers), False)
            return None
        self._heartbeat(now)
        view, peer_reached = self._contact()
        reason = self.guard.observe(time.monotonic(), True, view, len(self.peers), peer_reached)
        if reason is not None:
            self._stop_postgres(reason)
        return reason

    def run(self) -> None:
        log(f"guarding {self.settings.name}: isolation bound {ISOLATION_S:.1f} s")
        while True:
            self.check(time.monotonic())
            time.sleep(CHECK_INTERVAL_S)


def main() -> int:
    settings = InstanceSettings.from_env()
    timeout_s = (CONTACT_TIMEOUT_S / 2, CONTACT_TIMEOUT_S)
    FenceAgent(settings, StatusReader(settings.namespace, settings.database, timeout_s).read).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
