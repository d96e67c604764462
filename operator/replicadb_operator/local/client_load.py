"""Many simultaneous client connections, for proving what a pooler holds."""

from __future__ import annotations

import asyncio
import resource

import psycopg


def raise_open_file_limit(wanted: int) -> None:
    """Each client is a file descriptor; lift the soft limit up to the hard one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, wanted), hard))


async def hold_clients(
    dsn: str, clients: int, handshakes_at_once: int = 100
) -> tuple[int, list[str]]:
    """Open ``clients`` connections and hold all of them at once, then run a query on each.

    Returns how many were held together and the errors seen (empty when all went well).
    """
    raise_open_file_limit(clients + 256)
    errors: list[str] = []
    opened: list[psycopg.AsyncConnection[tuple[object, ...]]] = []
    all_open = asyncio.Event()
    gate = asyncio.Semaphore(handshakes_at_once)  # pace the handshakes, not the holding

    async def client() -> None:
        try:
            async with gate:
                conn = await psycopg.AsyncConnection.connect(
                    dsn, autocommit=True, prepare_threshold=None
                )
            opened.append(conn)
            if len(opened) == clients:
                all_open.set()
            await asyncio.wait_for(all_open.wait(), 60)
            cur = await conn.execute("SELECT 1")
            if await cur.fetchone() != (1,):
                errors.append("SELECT 1 returned something else")
        except (psycopg.Error, TimeoutError) as exc:
            errors.append(repr(exc))
            all_open.set()

    await asyncio.gather(*(client() for _ in range(clients)))
    held = len(opened)
    await asyncio.gather(*(c.close() for c in opened))
    return held, errors
