"""The server-session state a router session carries, and the SQL that moves and clears it.

Settings are known by reading them back from the server after a statement that may change
them (``pg_settings`` rows whose source is the session, plus the role, the session
authorization and the custom names the statement set), so whatever form set them (``SET``,
``SET TIME ZONE``, ``set_config``, a multi-statement string) they replay as plain
``set_config(name, value, false)`` calls, in one round trip, on the next connection the
session uses. State that cannot move pins the session to one primary connection.

A connection that carried anything is cleaned before it goes back to its pool:
``RESET SESSION AUTHORIZATION; RESET ALL`` after settings (it keeps psycopg's prepared
statements), ``DISCARD ALL`` after anything else, and closed after ``LOAD``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from router_lib.session_effects import (
    ADVISORY_LOCK,
    HELD_CURSOR,
    LISTEN,
    LOAD,
    OPAQUE_SETTING,
    PREPARED_STATEMENT,
    TEMP_TABLE,
)

# RoutedConnection.carries: what a connection holds beyond a fresh one.
CLEAN = 0
REPLAYED = 1  # a session's settings, replayed on it (RoutedConnection.replayed): reset those
SETTINGS = 2  # settings changed by the statements themselves: reset them all
ANYTHING = 3  # pinned state, or raw access: reset everything
UNRESETTABLE = 4  # LOAD: a library stays loaded in the backend; close it

RESET_SETTINGS_SQL = "RESET SESSION AUTHORIZATION; RESET ALL"
RESET_ALL_SQL = "DISCARD ALL"
_SPECIAL_RESETS = {
    "role": "RESET ROLE",
    "session_authorization": "RESET SESSION AUTHORIZATION",
}
_named_resets: dict[tuple[str, ...], str] = {}


def reset_sql(carries: int, replayed: tuple[tuple[str, str], ...]) -> str:
    """What returns a connection to the state of a fresh one. Replayed settings are reset
    by name: cheaper than RESET ALL, which visits every parameter (30 µs against 10 µs a
    statement, measured here)."""
    if carries >= ANYTHING:
        return RESET_ALL_SQL
    if carries > REPLAYED or not replayed:
        return RESET_SETTINGS_SQL
    names = tuple(name for name, _ in replayed)
    text = _named_resets.get(names)
    if text is None:
        parts = [
            _SPECIAL_RESETS.get(name)
            or "RESET " + ".".join('"' + part.replace('"', '""') + '"' for part in name.split("."))
            for name in names
        ]
        text = _named_resets[names] = "; ".join(parts)
    return text


# Settings the session changed. role and session_authorization are not in pg_settings (they
# are not shown by SHOW ALL), nor are custom ("app.user") parameters: asked for by name.
READ_SETTINGS_SQL = (
    "SELECT name, setting FROM pg_settings WHERE source = 'session'"
    " AND name NOT LIKE 'transaction\\_%%'"
    " UNION ALL SELECT 'session_authorization', current_setting('session_authorization')"
    " UNION ALL SELECT 'role', current_setting('role')"
    " UNION ALL SELECT n, current_setting(n, true) FROM unnest(%s::text[]) AS n"
)

# What is still on a pinned connection, by pin reason (LOAD cannot be undone: not asked).
PINNED_STATE_SQL = (
    "SELECT EXISTS (SELECT 1 FROM pg_class WHERE relnamespace = pg_my_temp_schema()),"
    " EXISTS (SELECT 1 FROM pg_prepared_statements WHERE from_sql),"
    " EXISTS (SELECT 1 FROM pg_listening_channels()),"
    " EXISTS (SELECT 1 FROM pg_cursors WHERE is_holdable),"
    " EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory'"
    " AND pid = pg_backend_pid())"
)
PINNED_STATE_REASONS = (TEMP_TABLE, PREPARED_STATEMENT, LISTEN, HELD_CURSOR, ADVISORY_LOCK)

_ORDER_LAST = ("session_authorization", "role")
_replay_texts: dict[int, str] = {}


def replay_sql(count: int) -> str:
    """One statement setting ``count`` parameters, left to right (one text per count, so
    psycopg can prepare it)."""
    text = _replay_texts.get(count)
    if text is None:
        calls = ", ".join(["set_config(%s, %s, false)"] * count)
        text = _replay_texts[count] = f"SELECT {calls}"
    return text


def settings_from_rows(
    rows: Sequence[tuple[Any, ...]], login_user: str
) -> tuple[tuple[str, str], ...]:
    """The (name, value) pairs to replay, from READ_SETTINGS_SQL's rows. Ordinary settings
    first (set as the login user, who set them), then the session authorization (when it
    differs from the login user), then the role (when one is set): setting the session
    authorization resets the role."""
    plain: list[tuple[str, str]] = []
    last: dict[str, str] = {}
    for name, value in rows:
        if value is None:
            continue  # a custom name that is not defined
        if name == "session_authorization":
            if value != login_user:
                last[name] = value
        elif name == "role":
            if value != "none":
                last[name] = value
        else:
            plain.append((str(name), str(value)))
    return (*plain, *((name, last[name]) for name in _ORDER_LAST if name in last))


def replay_params(settings: tuple[tuple[str, str], ...]) -> list[str]:
    return [part for pair in settings for part in pair]


class CarriedState:
    """One session's state: settings to replay, and the pinned connection if any.

    ``pinned`` is the connection (sync or async) the session is pinned to, with its pool
    and endpoint; the executor sets and clears it. Not shared between threads: a session
    is used by one caller at a time, as a psycopg connection is.
    """

    __slots__ = ("custom_names", "lost", "pin_reasons", "pinned", "settings")

    def __init__(self) -> None:
        self.settings: tuple[tuple[str, str], ...] = ()
        self.custom_names: set[str] = set()  # custom settings ever set: read back by name
        self.pin_reasons: set[str] = set()
        self.pinned: Any = None  # (connection, pool, endpoint state) while pinned
        self.lost: str | None = None  # why the pinned state was lost

    @property
    def empty(self) -> bool:
        """Nothing to carry: the session can take the plain paths again."""
        return not self.settings and self.pinned is None and self.lost is None

    def remaining_reasons(self, present: Sequence[bool], discarded: bool) -> set[str]:
        """Pin reasons still true after a statement that may have released some
        (``present``: PINNED_STATE_SQL's row; ``discarded``: it was DISCARD ALL). A loaded
        library never goes away; a setting with a computed name only with DISCARD ALL."""
        left = {r for r, there in zip(PINNED_STATE_REASONS, present, strict=True) if there}
        if LOAD in self.pin_reasons:
            left.add(LOAD)
        if OPAQUE_SETTING in self.pin_reasons and not discarded:
            left.add(OPAQUE_SETTING)
        return left
