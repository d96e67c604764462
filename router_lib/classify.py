"""May this statement run on a replica? Decided by PostgreSQL's own parser, cached per text.

Default deny: a statement goes to a replica only when the parse proves it reads and takes no
lock: a plain SELECT (no FOR UPDATE/SHARE anywhere, no INTO, no data-modifying CTE, no call
to a function that writes or needs the primary's state), SHOW, or EXPLAIN of such a SELECT.
Everything else, including text that does not parse and strings with several statements,
goes to the primary.

Cost: pglast's Python AST costs as much as a database round trip (57-107 µs), its JSON output
3-6 µs (+~15 µs for json.loads), so the tree is inspected as plain JSON while it is decoded,
and the result is cached by statement text: applications run a bounded set of statement
texts with parameters, and a cached answer is one dict lookup.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from pglast import parser

from router_lib import session_effects
from router_lib.placeholders import to_dollar_placeholders
from router_lib.session_effects import SessionEffects

# Functions that write, lock, consume a sequence or transaction id, or only work on a primary.
BUILTIN_WRITE_FUNCTIONS = frozenset(
    {
        "nextval",
        "setval",
        "currval",
        "lastval",
        "txid_current",
        "txid_current_if_assigned",
        "pg_current_xact_id",
        "pg_current_xact_id_if_assigned",
        "pg_notify",
        "pg_current_wal_lsn",
        "pg_current_wal_insert_lsn",
        "pg_current_wal_flush_lsn",
        "set_config",
        "loread",
        "lowrite",
        "pg_switch_wal",
        "pg_create_restore_point",
        "pg_backup_start",
        "pg_backup_stop",
        "pg_start_backup",
        "pg_stop_backup",
        "pg_promote",
        "pg_reload_conf",
        "pg_rotate_logfile",
        "pg_terminate_backend",
        "pg_cancel_backend",
        "pg_create_physical_replication_slot",
        "pg_create_logical_replication_slot",
        "pg_drop_replication_slot",
        "pg_copy_physical_replication_slot",
        "pg_copy_logical_replication_slot",
        "pg_replication_slot_advance",
        "pg_logical_slot_get_changes",
        "pg_logical_slot_get_binary_changes",
        "pg_logical_emit_message",
        "pg_import_system_collations",
    }
)
# Families: advisory locks, large objects, statistics resets, remote execution, origins.
BUILTIN_WRITE_PREFIXES = (
    "pg_advisory_",
    "pg_try_advisory_",
    "lo_",
    "pg_stat_reset",
    "dblink",
    "pg_replication_origin_",
)

# Reasons are metric label values: a fixed, small set.
READ = "read"
WRITE = "write"
DDL = "ddl"
LOCKING_CLAUSE = "locking_clause"
SELECT_INTO = "select_into"
MODIFYING_CTE = "modifying_cte"
WRITE_FUNCTION = "write_function"
LOCK = "lock"
LISTEN_NOTIFY = "listen_notify"
SESSION_STATE = "session_state"
PROCEDURE = "procedure"
TRANSACTION = "transaction"
MULTI_STATEMENT = "multi_statement"
UNPARSABLE = "unparsable"
EMPTY = "empty"
LEARNED_WRITE = "learned_write"

_MODIFYING_NODES = frozenset({"InsertStmt", "UpdateStmt", "DeleteStmt", "MergeStmt"})
_TABLE_WRITES = frozenset(_MODIFYING_NODES | {"TruncateStmt", "CopyStmt"})
_READ_UTILITY = frozenset({"VariableShowStmt"})
_SESSION_NODES = frozenset(
    {
        "VariableSetStmt",
        "DiscardStmt",
        "DeclareCursorStmt",
        "FetchStmt",
        "ClosePortalStmt",
        "PrepareStmt",
        "ExecuteStmt",
        "DeallocateStmt",
    }
)
_NOTIFY_NODES = frozenset({"ListenStmt", "NotifyStmt", "UnlistenStmt"})


@dataclass(frozen=True, slots=True)
class Classification:
    read_only: bool  # True: may run on a replica
    reason: str  # why (metric label)
    tables: frozenset[str]  # relation names the statement mentions (bare names)
    # The statement may change data beyond ``tables`` (DDL, procedures, write functions):
    # a result cache must drop everything.
    invalidates_all: bool = False
    transaction_control: bool = False
    # What it leaves on the server session (None: nothing; see router_lib.session_effects).
    effects: SessionEffects | None = None


_EMPTY: frozenset[str] = frozenset()


def _function_name(call: dict[str, Any]) -> tuple[str, str]:
    """(bare name, dotted name), lower-cased: a quoted "NextVal" is treated like nextval,
    which can only send more to the primary."""
    names = call.get("funcname", ())
    parts = [part["String"]["sval"].lower() for part in names if "String" in part]
    return (parts[-1], ".".join(parts)) if parts else ("", "")


@dataclass(slots=True)
class _Findings:
    """What a statement's tree contains, noted while json.loads builds it (its object hook
    sees every JSON object once, innermost first: no second pass over the tree in Python,
    and no recursion for deep expressions). Relations appear as objects with a ``relname``,
    with or without a RangeVar key around them."""

    modifying: bool = False
    locking: bool = False
    into: bool = False
    function_names: list[tuple[str, str]] = field(default_factory=list)
    tables: set[str] = field(default_factory=set)
    set_config_calls: list[session_effects.SetConfigCall] = field(default_factory=list)
    creates_temp: bool = False

    def note(self, node: dict[str, Any]) -> dict[str, Any]:
        relname = node.get("relname")
        if isinstance(relname, str):
            self.tables.add(relname)
            if session_effects.is_temp_relation(node):
                self.creates_temp = True
        if "FuncCall" in node:
            call = node["FuncCall"]
            name = _function_name(call)
            self.function_names.append(name)
            if name[0] == "set_config":
                self.set_config_calls.append(session_effects.set_config_call(call))
        if "lockingClause" in node:
            self.locking = True
        if "intoClause" in node:
            self.into = True
        if not _MODIFYING_NODES.isdisjoint(node):
            self.modifying = True
        return node


class Classifier:
    """Classifies statement texts, remembering every answer (up to ``max_entries`` texts)."""

    def __init__(self, write_functions: Iterable[str] = (), max_entries: int = 10_000) -> None:
        self.write_functions = BUILTIN_WRITE_FUNCTIONS | {f.lower() for f in write_functions}
        self.max_entries = max_entries
        # Two maps: psycopg rewrites placeholders only when parameters are given, so the same
        # text is a different statement with and without them.
        self._with_params: dict[str, Classification] = {}
        self._without_params: dict[str, Classification] = {}

    def classify(self, text: str, has_params: bool) -> Classification:
        cache = self._with_params if has_params else self._without_params
        found = cache.get(text)
        if found is None:
            found = self._remember(cache, text, self.classify_uncached(text, has_params))
        return found

    def mark_write(self, text: str, has_params: bool) -> None:
        """A replica refused this statement as a write (25006): send it to the primary from now
        on. Only user functions not named in the configuration get here."""
        cache = self._with_params if has_params else self._without_params
        known = cache.get(text)
        tables = known.tables if known is not None else _EMPTY
        self._remember(cache, text, Classification(False, LEARNED_WRITE, tables, True))

    def _remember(
        self, cache: dict[str, Classification], text: str, value: Classification
    ) -> Classification:
        if len(cache) >= self.max_entries:
            # Dicts keep insertion order: drop the oldest texts. Reaching this bound means the
            # application builds texts with values inlined; the cache then only costs memory.
            for old in list(cache)[: max(1, self.max_entries // 10)]:
                del cache[old]
        cache[text] = value
        return value

    def classify_uncached(self, text: str, has_params: bool) -> Classification:
        found = _Findings()
        try:
            parse_text = to_dollar_placeholders(text) if has_params else text
            tree = json.loads(parser.parse_sql_json(parse_text), object_hook=found.note)
        except (ValueError, parser.ParseError):
            return Classification(False, UNPARSABLE, _EMPTY, invalidates_all=True)
        statements = tree.get("stmts", [])
        if not statements:
            return Classification(False, EMPTY, _EMPTY)
        if len(statements) > 1:
            # Findings cover every statement here: each part is judged conservatively.
            parts = [self._statement(s["stmt"], found) for s in statements]
            tables = frozenset().union(*(p.tables for p in parts))
            effects = [p.effects for p in parts if p.effects is not None]
            return Classification(
                False,
                MULTI_STATEMENT,
                tables,
                invalidates_all=any(p.invalidates_all or not p.read_only for p in parts),
                transaction_control=any(p.transaction_control for p in parts),
                effects=_union(effects),
            )
        return self._statement(statements[0]["stmt"], found)

    def _statement(self, node: dict[str, Any], found: _Findings) -> Classification:
        ((kind, body),) = node.items()
        plain = self._plain_statement(kind, body, found)
        effects = session_effects.statement_effects(
            kind, body, found.function_names, found.set_config_calls, found.creates_temp
        )
        if effects == session_effects.NONE:
            return plain
        return Classification(
            False,
            SESSION_STATE if plain.read_only else plain.reason,
            plain.tables,
            plain.invalidates_all,
            plain.transaction_control,
            effects,
        )

    def _plain_statement(self, kind: str, body: dict[str, Any], found: _Findings) -> Classification:
        tables = frozenset(found.tables)
        writes_unknown = self._calls_write_function(found.function_names)
        if kind == "SelectStmt":
            return self._select(found, tables, writes_unknown)
        if kind == "ExplainStmt":
            inner = self._statement(body["query"], found)
            if inner.read_only:
                return inner
            return Classification(False, inner.reason, tables, inner.invalidates_all)
        if kind in _READ_UTILITY:
            return Classification(True, READ, tables)
        if kind in _TABLE_WRITES:
            return Classification(False, WRITE, tables, invalidates_all=writes_unknown)
        if kind == "TransactionStmt":
            return Classification(False, TRANSACTION, tables, transaction_control=True)
        if kind == "LockStmt":
            return Classification(False, LOCK, tables)
        if kind in _NOTIFY_NODES:
            return Classification(False, LISTEN_NOTIFY, tables)
        if kind in _SESSION_NODES:
            return Classification(False, SESSION_STATE, tables, invalidates_all=writes_unknown)
        if kind in ("CallStmt", "DoStmt"):
            return Classification(False, PROCEDURE, tables, invalidates_all=True)
        # CREATE/ALTER/DROP/GRANT/VACUUM/...: anything not listed above.
        return Classification(False, DDL, tables, invalidates_all=True)

    def _select(
        self, found: _Findings, tables: frozenset[str], writes_unknown: bool
    ) -> Classification:
        if found.into:
            return Classification(False, SELECT_INTO, tables, invalidates_all=True)
        if found.modifying:
            return Classification(False, MODIFYING_CTE, tables, invalidates_all=writes_unknown)
        if found.locking:
            return Classification(False, LOCKING_CLAUSE, tables)
        if any(self._is_write_function(bare, dotted) for bare, dotted in found.function_names):
            return Classification(False, WRITE_FUNCTION, tables, invalidates_all=writes_unknown)
        return Classification(True, READ, tables)

    def _is_write_function(self, bare: str, dotted: str) -> bool:
        return (
            bare in self.write_functions
            or dotted in self.write_functions
            or bare.startswith(BUILTIN_WRITE_PREFIXES)
        )

    def _calls_write_function(self, names: list[tuple[str, str]]) -> bool:
        """A configured (user) write function may change any table."""
        return any(
            (bare in self.write_functions or dotted in self.write_functions)
            and bare not in BUILTIN_WRITE_FUNCTIONS
            for bare, dotted in names
        )


def _union(effects: list[SessionEffects]) -> SessionEffects | None:
    if not effects:
        return None
    combined = effects[0]
    for more in effects[1:]:
        combined = combined | more
    return combined
