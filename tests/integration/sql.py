"""Tiny synchronous helpers for tests that check ground truth with plain SQL."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import psycopg


def scalar(dsn: str, query: str, params: tuple[Any, ...] | None = None) -> Any:
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(query, params).fetchone()
    return None if row is None else row[0]


def execute(dsn: str, query: str, params: tuple[Any, ...] | None = None) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(query, params)


def eventually(check: Callable[[], bool], timeout_s: float = 20.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout_s} s: {what}")
        time.sleep(0.02)


def caught_up(primary_dsn: str, replica_dsn: str) -> bool:
    target = scalar(primary_dsn, "SELECT pg_current_wal_lsn()")
    return bool(scalar(replica_dsn, "SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (target,)))
