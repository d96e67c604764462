"""Runs in a pod on the primary's own node during a node partition (e2e/failover_run.py):
the client that is cut off together with the primary and keeps writing to it directly, as
an application pod on that node would. Writes have no statement timeout (a cancelled wait
for a synchronous standby commits locally and reports success: that would be a client
choosing to accept an unreplicated write).

  /tmp/progress.json  rewritten every 0.2 s: wall-clock times of acknowledged writes, and of
                      failed connection attempts (the server refusing: it was stopped)
  /tmp/stop           (test creates) stop and exit
Standard library and psycopg only.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import psycopg

TARGET = os.environ["TARGET"]
PASSWORD = os.environ["SUPERUSER_PASSWORD"]
TMP = Path("/tmp")

acked: list[float] = []
refused: list[float] = []


def connect() -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(
        host=TARGET, user="postgres", dbname="postgres", password=PASSWORD,
        connect_timeout=1, autocommit=True,
    )  # fmt: skip


def write() -> None:
    conn: psycopg.Connection[tuple[object, ...]] | None = None
    while not (TMP / "stop").exists():
        try:
            if conn is None or conn.closed:
                conn = connect()
                conn.execute("CREATE TABLE IF NOT EXISTS isolated_ticks (at float8)")
            conn.execute("INSERT INTO isolated_ticks VALUES (%s)", (time.time(),))
            acked.append(time.time())
        except psycopg.Error:
            refused.append(time.time())
            conn = None
            time.sleep(0.2)
        time.sleep(0.02)


def main() -> None:
    threading.Thread(target=write, daemon=True).start()
    while not (TMP / "stop").exists():
        tmp = TMP / ".progress.json"
        tmp.write_text(json.dumps({"acked": acked[-2000:], "refused": refused[-200:]}))
        tmp.replace(TMP / "progress.json")
        time.sleep(0.2)


if __name__ == "__main__":
    main()
