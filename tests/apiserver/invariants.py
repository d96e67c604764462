"""What must hold at every moment of a failover or switchover, measured from outside:

- ``WritableSampler``: every 50 ms, asks every instance whether it accepts writes (not in
  recovery and not read-only); a sample with two such instances is a dual-primary sample.
- ``AckedWriter``: commits numbered rows to whichever instance status names as primary, in
  synchronous mode, and remembers each commit the server acknowledged; afterwards every one
  of them must be on the new primary.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable

import psycopg

SAMPLE_S = 0.05
WRITE_S = 0.02
PRIMARY_REREAD_S = 0.2  # how often the writer asks status who is primary (a client's watch)
WRITABLE_SQL = (
    "SELECT NOT pg_is_in_recovery() AND current_setting('default_transaction_read_only') = 'off'"
)


class WritableSampler(threading.Thread):
    def __init__(self, dsns: dict[str, str]) -> None:
        super().__init__(daemon=True, name="writable-sampler")
        self.dsns = dsns
        self.samples = 0
        self.dual: list[list[str]] = []
        self._halt = threading.Event()
        self._conns: dict[str, psycopg.Connection[tuple[object, ...]]] = {}

    def _writable(self, name: str) -> bool:
        conn = self._conns.get(name)
        try:
            if conn is None or conn.closed:
                conn = psycopg.connect(self.dsns[name], autocommit=True, connect_timeout=1)
                self._conns[name] = conn
            row = conn.execute(WRITABLE_SQL).fetchone()
            return bool(row and row[0])
        except psycopg.Error:
            self._conns.pop(name, None)
            return False

    def run(self) -> None:
        while not self._halt.is_set():
            writable = [name for name in self.dsns if self._writable(name)]
            self.samples += 1
            if len(writable) > 1:
                self.dual.append(writable)
            self._halt.wait(SAMPLE_S)
        for conn in self._conns.values():
            with contextlib.suppress(psycopg.Error):
                conn.close()

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=10)


class AckedWriter(threading.Thread):
    """``primary()`` names the instance to write to (status' primary, as a client sees it)."""

    def __init__(self, dsns: dict[str, str], primary: Callable[[], str | None]) -> None:
        super().__init__(daemon=True, name="acked-writer")
        self.dsns, self.primary = dsns, primary
        self.acked: list[int] = []
        self.failed = 0
        self._next = 1
        self._halt = threading.Event()

    def run(self) -> None:
        conn: psycopg.Connection[tuple[object, ...]] | None = None
        target: str | None = None
        named: str | None = None
        named_at = 0.0
        while not self._halt.is_set():
            try:
                if time.monotonic() - named_at > PRIMARY_REREAD_S or conn is None:
                    named, named_at = self.primary(), time.monotonic()
                now = named
                if conn is None or conn.closed or now != target:
                    if conn is not None:
                        conn.close()
                    target, conn = now, None
                    if target is None:
                        raise psycopg.OperationalError("no primary named")
                    conn = psycopg.connect(self.dsns[target], autocommit=True, connect_timeout=1)
                n = self._next
                self._next += 1
                conn.execute("INSERT INTO acked (id) VALUES (%s)", (n,))
                self.acked.append(n)  # the commit returned: acknowledged
            except psycopg.Error:
                self.failed += 1
                conn = None
                self._halt.wait(0.1)
            except Exception:  # status unreadable for a moment
                self._halt.wait(0.1)
            self._halt.wait(WRITE_S)

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=15)

    def lost(self, dsn: str, timeout_s: float = 10.0) -> list[int]:
        """Acknowledged ids missing on ``dsn`` (the new primary)."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                with psycopg.connect(dsn, autocommit=True, connect_timeout=2) as conn:
                    present = {int(str(r[0])) for r in conn.execute("SELECT id FROM acked")}
                return [n for n in self.acked if n not in present]
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
