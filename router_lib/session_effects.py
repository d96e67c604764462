"""What a statement does to its database session, decided from the parse.

A pooled connection is shared by every caller of a router, so state a statement leaves on
its server session (a setting, a role, a temp table, a prepared statement...) must either
follow the caller's session to whichever connection its next statement uses, or keep that
session on one connection. Two kinds, chosen by whether PostgreSQL lets the state move:

- settings (``SET``/``RESET``, ``SET ROLE``, ``SET SESSION AUTHORIZATION``, ``SET SESSION
  CHARACTERISTICS``, ``set_config(..., false)``): read back from the server after the
  statement and replayed with ``set_config`` onto any connection, replicas included;
- state that cannot move (temp tables, ``PREPARE``, ``LISTEN``, ``DECLARE ... WITH HOLD``,
  session advisory locks, ``LOAD``): the session is pinned to one primary connection.

Transaction-scoped forms (``SET LOCAL``, ``set_config(..., true)``, ``SET TRANSACTION``,
``pg_advisory_xact_lock``, ``ON COMMIT DROP`` temp tables, cursors without ``WITH HOLD``)
leave nothing behind and have no effect here. Pure: no I/O.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

# Pin reasons: metric label values (replicadb_router_session_pins_total{reason}).
TEMP_TABLE = "temp_table"
PREPARED_STATEMENT = "prepared_statement"
LISTEN = "listen"
HELD_CURSOR = "held_cursor"
ADVISORY_LOCK = "advisory_lock"
LOAD = "load"
# A set_config whose parameter name is computed: its value cannot be read back by name.
OPAQUE_SETTING = "opaque_setting"

SESSION_LOCK_FUNCTIONS = frozenset(
    {
        "pg_advisory_lock",
        "pg_advisory_lock_shared",
        "pg_try_advisory_lock",
        "pg_try_advisory_lock_shared",
    }
)
UNLOCK_FUNCTIONS = frozenset(
    {"pg_advisory_unlock", "pg_advisory_unlock_shared", "pg_advisory_unlock_all"}
)
_CURSOR_OPT_HOLD = 0x0020  # PostgreSQL's parsenodes.h

# A set_config call: (parameter name, is_local). The name is a literal, the 1-based number
# of a $n parameter, or None when computed; is_local None when not a constant.
SetConfigCall = tuple[str | int | None, bool | None]


@dataclass(frozen=True, slots=True)
class SessionEffects:
    """What one statement text does to the session state (several statements: the union)."""

    settings: bool = False  # may change settings: read them back afterwards
    # Custom (dotted) names it may set, which pg_settings does not list: literal, or the
    # 1-based number of the parameter that holds the name.
    setting_names: tuple[str | int, ...] = ()
    pins: frozenset[str] = frozenset()  # state that stays on the connection, by reason
    uses_pinned: bool = False  # needs state made earlier (EXECUTE, FETCH, MOVE)
    may_release: bool = False  # may drop pinned state: check what is left afterwards
    discard_all: bool = False  # DISCARD ALL: nothing is left

    def __or__(self, other: SessionEffects) -> SessionEffects:
        return SessionEffects(
            self.settings or other.settings,
            self.setting_names + other.setting_names,
            self.pins | other.pins,
            self.uses_pinned or other.uses_pinned,
            self.may_release or other.may_release,
            self.discard_all or other.discard_all,
        )


NONE = SessionEffects()


class StateRule(enum.Enum):
    """What a transaction may leave on its connection's session."""

    REFUSE = "refuse"  # outside a session: the connection is shared with other callers
    SETTINGS_ONLY = "settings_only"  # a session's read-only transaction on a replica
    SESSION = "session"  # a session's transaction on the primary: anything


def custom_names(effects: SessionEffects, params: Any) -> tuple[str, ...] | None:
    """The custom setting names a statement with these parameters may set (None: unknown)."""
    return resolve_setting_names(effects.setting_names, params) if effects.setting_names else ()


def statement_effects(
    kind: str,
    body: dict[str, Any],
    function_names: list[tuple[str, str]],
    set_config_calls: list[SetConfigCall],
    creates_temp: bool,
) -> SessionEffects:
    """Effects of one top-level statement; the lists cover every function the text calls
    and ``creates_temp`` any relation it names as temporary (``CREATE TEMP ...``,
    ``INTO TEMP``, ``pg_temp.x``)."""
    effects = _utility_effects(kind, body)
    if creates_temp and not _drops_on_commit(kind, body):
        effects = effects | SessionEffects(pins=frozenset({TEMP_TABLE}))
    bare = {name for name, _ in function_names}
    if not SESSION_LOCK_FUNCTIONS.isdisjoint(bare):
        effects = effects | SessionEffects(pins=frozenset({ADVISORY_LOCK}))
    if not UNLOCK_FUNCTIONS.isdisjoint(bare):
        effects = effects | SessionEffects(may_release=True)
    for name, local in set_config_calls:
        if local is True:
            continue
        if name is None:
            effects = effects | SessionEffects(settings=True, pins=frozenset({OPAQUE_SETTING}))
        elif isinstance(name, int) or "." in name:
            effects = effects | SessionEffects(settings=True, setting_names=(name,))
        else:
            effects = effects | SessionEffects(settings=True)
    return effects


def _utility_effects(kind: str, body: dict[str, Any]) -> SessionEffects:
    if kind == "VariableSetStmt":
        name = str(body.get("name", ""))
        if body.get("is_local") or name.startswith("TRANSACTION"):
            return NONE  # SET LOCAL, SET TRANSACTION [SNAPSHOT]: this transaction only
        custom = (name,) if "." in name else ()
        return SessionEffects(settings=True, setting_names=custom)
    if kind == "DiscardStmt":
        target = body.get("target")
        if target == "DISCARD_ALL":
            return SessionEffects(settings=True, discard_all=True, may_release=True)
        return SessionEffects(may_release=target == "DISCARD_TEMP")
    if kind == "DeclareCursorStmt":
        held = int(body.get("options", 0)) & _CURSOR_OPT_HOLD
        return SessionEffects(pins=frozenset({HELD_CURSOR})) if held else NONE
    if kind == "PrepareStmt":
        return SessionEffects(pins=frozenset({PREPARED_STATEMENT}))
    if kind == "ListenStmt":
        return SessionEffects(pins=frozenset({LISTEN}))
    if kind == "LoadStmt":
        return SessionEffects(pins=frozenset({LOAD}))
    if kind in ("ExecuteStmt", "FetchStmt"):
        return SessionEffects(uses_pinned=True)
    if kind in ("DeallocateStmt", "UnlistenStmt", "ClosePortalStmt", "DropStmt"):
        return SessionEffects(may_release=True)
    return NONE


def _drops_on_commit(kind: str, body: dict[str, Any]) -> bool:
    """A temp table created ``ON COMMIT DROP`` is gone when its transaction ends."""
    if kind == "CreateStmt":
        return body.get("oncommit") == "ONCOMMIT_DROP"
    into = body.get("into") if kind == "CreateTableAsStmt" else body.get("intoClause")
    return isinstance(into, dict) and into.get("onCommit") == "ONCOMMIT_DROP"


def set_config_call(call: dict[str, Any]) -> SetConfigCall:
    """The parameter name and scope of a ``set_config(name, value, is_local)`` call node."""
    args = call.get("args", [])
    name: str | int | None = None
    local: bool | None = None
    if args:
        first = args[0]
        if "A_Const" in first and "sval" in first["A_Const"]:
            name = str(first["A_Const"]["sval"].get("sval", ""))
        elif "ParamRef" in first:
            name = int(first["ParamRef"]["number"])
    if len(args) > 2 and "A_Const" in args[2] and "boolval" in args[2]["A_Const"]:
        # pglast writes false as an empty object, true as {"boolval": true}
        local = bool(args[2]["A_Const"]["boolval"].get("boolval", False))
    return name, local


def is_temp_relation(node: dict[str, Any]) -> bool:
    """A relation node (RangeVar) that names a temporary relation."""
    return node.get("relpersistence") == "t" or node.get("schemaname") == "pg_temp"


def resolve_setting_names(names: tuple[str | int, ...], params: Any) -> tuple[str, ...] | None:
    """The custom setting names a statement may set, with ``$n`` references looked up in
    its positional parameters. None when a name cannot be known (named parameters: the
    parse numbers them by first use, which a dict does not say)."""
    resolved: list[str] = []
    for name in names:
        if isinstance(name, str):
            resolved.append(name)
            continue
        if isinstance(params, dict):
            return None
        try:
            value = params[name - 1]
        except (IndexError, TypeError):
            return None
        if not isinstance(value, str):
            return None
        resolved.append(value)
    return tuple(resolved)
