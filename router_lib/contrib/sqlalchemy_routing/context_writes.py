"""Read-your-writes across Sessions in one thread of execution (a thread, or an asyncio
task: a ``ContextVar``).

Code written against one database expects what one Session committed to be visible to the
next Session the same code opens or already holds, as it is on a single server: a request
that saves through one Session and reads back through another, or SQLAlchemy's own
``test_concurrent_commit_persistent``. A Session's own commits alone do not give that. Each
context keeps, per RoutedDatabase, whether a Session committed a write in it since the last
read-your-writes read, and the commit position read for it then.
"""

from __future__ import annotations

import weakref
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from router_lib.consistency import Consistency, Level, SessionState

if TYPE_CHECKING:
    from router_lib.contrib.sqlalchemy_routing.database import RoutedDatabase


@dataclass
class ContextWrites:
    state: SessionState = field(
        default_factory=lambda: SessionState(Consistency(Level.READ_YOUR_WRITES))
    )
    pending: bool = False  # a write committed here whose position was not read yet


_WRITES: ContextVar[weakref.WeakKeyDictionary[RoutedDatabase, ContextWrites] | None] = ContextVar(
    "replicadb_context_writes", default=None
)


def context_writes(database: RoutedDatabase) -> ContextWrites:
    table = _WRITES.get()
    if table is None:
        table = weakref.WeakKeyDictionary()
        _WRITES.set(table)
    entry = table.get(database)
    if entry is None:
        entry = table[database] = ContextWrites()
    return entry
