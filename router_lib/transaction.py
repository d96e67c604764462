"""The object ``transaction()`` yields: statements on one connection, inside BEGIN/COMMIT.

Statements sent through it are classified only to learn which tables the transaction wrote
(for cache invalidation) and whether it wrote at all (for read-your-writes); they all run on
the transaction's connection. The raw connection is available for cursors, COPY and
savepoints; using it makes the router assume the transaction may have written anything.
"""

from __future__ import annotations

from typing import Any

from router_lib.cache import Params
from router_lib.errors import SessionStateNotAllowed, TransactionControlNotAllowed
from router_lib.execution_base import returns_rows, session_state_refused
from router_lib.pools import AsyncRoutedConnection, RoutedConnection
from router_lib.router_core import RouterCore, Row, Statement
from router_lib.session_effects import SessionEffects, StateRule, custom_names


class _Writes:
    """What the statements of a transaction did: tables written (cache, read-your-writes)
    and session state left behind (settled by the executor when the block ends)."""

    def __init__(self, core: RouterCore, read_only: bool, state_rule: StateRule) -> None:
        self._core = core
        self.read_only = read_only
        self.state_rule = state_rule
        self.wrote = False
        self.tables: set[str] = set()
        self.invalidates_all = False
        self.effects: SessionEffects | None = None
        self.custom_names: set[str] = set()
        self.opaque_names = False
        self.raw_used = False

    def _note(self, query: Statement, params: Params) -> None:
        text, classification = self._core.classify(query, params is not None)
        if classification.transaction_control:
            raise TransactionControlNotAllowed(
                "transaction control inside transaction(): leave the block to commit, raise "
                "to roll back, use the connection's transaction() for savepoints"
            )
        effects = classification.effects
        if effects is not None:
            self._note_state(text, effects, params)
        if not classification.read_only:
            self.wrote = True
            self.tables |= classification.tables
            self.invalidates_all |= classification.invalidates_all

    def _note_state(self, text: str, effects: SessionEffects, params: Params) -> None:
        if self.state_rule is StateRule.REFUSE:
            raise session_state_refused(text)
        names = custom_names(effects, params)
        if self.state_rule is StateRule.SETTINGS_ONLY and (effects.pins or names is None):
            raise SessionStateNotAllowed(
                f"{text[:60]!r} leaves state that cannot follow the session, in a read-only "
                "transaction on a replica: run it outside that transaction"
            )
        if names is None:
            self.opaque_names = True
        else:
            self.custom_names.update(names)
        self.effects = effects if self.effects is None else self.effects | effects

    def _raw_used(self) -> None:
        self.raw_used = True
        if not self.read_only:
            self.wrote = True
            self.invalidates_all = True


class Transaction(_Writes):
    def __init__(
        self, conn: RoutedConnection, core: RouterCore, read_only: bool, state_rule: StateRule
    ) -> None:
        super().__init__(core, read_only, state_rule)
        self._conn = conn

    @property
    def connection(self) -> RoutedConnection:
        """The underlying psycopg connection (in the transaction)."""
        self._raw_used()
        return self._conn

    def execute(self, query: Statement, params: Params = None) -> int:
        """Run a statement; returns the row count."""
        self._note(query, params)
        return self._conn.execute(query, params).rowcount

    def query(self, query: Statement, params: Params = None) -> list[Row]:
        self._note(query, params)
        cur = self._conn.execute(query, params)
        return cur.fetchall() if returns_rows(cur) else []

    def query_one(self, query: Statement, params: Params = None) -> Row | None:
        self._note(query, params)
        return self._conn.execute(query, params).fetchone()


class AsyncTransaction(_Writes):
    def __init__(
        self,
        conn: AsyncRoutedConnection,
        core: RouterCore,
        read_only: bool,
        state_rule: StateRule,
    ) -> None:
        super().__init__(core, read_only, state_rule)
        self._conn = conn

    @property
    def connection(self) -> AsyncRoutedConnection:
        self._raw_used()
        return self._conn

    async def execute(self, query: Statement, params: Params = None) -> int:
        self._note(query, params)
        return (await self._conn.execute(query, params)).rowcount

    async def query(self, query: Statement, params: Params = None) -> list[Row]:
        self._note(query, params)
        cur = await self._conn.execute(query, params)
        return await cur.fetchall() if returns_rows(cur) else []

    async def query_one(self, query: Statement, params: Params = None) -> Row | None:
        self._note(query, params)
        cur = await self._conn.execute(query, params)
        result: tuple[Any, ...] | None = await cur.fetchone()
        return result
