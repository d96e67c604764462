"""Optional result cache: an in-process TTL/LRU layer, optionally backed by Redis.

Keys are SHA-256 of the normalized statement and the parameters. The statement is normalized
through the parser (the JSON tree without source positions: whitespace, comments and keyword
case do not matter, every literal and identifier does), once per statement text.

Invalidation: a write through the router drops every entry that read a table the write names
(known from the parse), and statements whose effects are unknown (DDL, procedures,
configured write functions) drop everything. ``invalidate_tables`` and ``invalidate_pattern``
(a glob over table names) cover writes made elsewhere. A reader that was already running when
an invalidation happened must not store its (possibly older) rows afterwards: entries are
stored only if the generation counters of their tables did not move since before the read.

Each entry also records a WAL position its rows are known to include; the router serves an
entry only when that position satisfies the caller's consistency level (see the README), so
the cache never weakens a guarantee. STRONG reads never use it.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pglast import parser

from router_lib.cache_codec import Row, encode_params
from router_lib.config import CacheConfig
from router_lib.placeholders import to_dollar_placeholders

if TYPE_CHECKING:
    from router_lib.redis_layer import AsyncRedisLayer, RedisLayer

ALL_TABLES = "*all*"  # generation bumped by invalidate-everything and pattern invalidations
_POSITION_KEYS = frozenset({"location", "stmt_location", "stmt_len"})


@dataclass(frozen=True, slots=True)
class CachedResult:
    rows: list[Row]
    lsn: int  # the rows include everything up to this WAL position (0: unknown)
    stored_at: float  # wall-clock seconds


Generations = tuple[int, ...]
LayerGenerations = tuple[Generations | None, Generations | None]  # (memory, redis)
Params = Sequence[Any] | Mapping[str, Any] | None


def _strip_positions(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _strip_positions(v) for k, v in node.items() if k not in _POSITION_KEYS}
    if isinstance(node, list):
        return [_strip_positions(v) for v in node]
    return node


class StatementDigests:
    """Normalized-statement digests, remembered per statement text."""

    def __init__(self, max_entries: int = 10_000) -> None:
        self.max_entries = max_entries
        self._known: dict[tuple[str, bool], str] = {}

    def digest(self, text: str, has_params: bool) -> str:
        key = (text, has_params)
        found = self._known.get(key)
        if found is None:
            parse_text = to_dollar_placeholders(text) if has_params else text
            tree = _strip_positions(json.loads(parser.parse_sql_json(parse_text)))
            canonical = json.dumps(tree, sort_keys=True, separators=(",", ":"))
            found = hashlib.sha256(canonical.encode()).hexdigest()
            if len(self._known) >= self.max_entries:
                self._known.clear()
            self._known[key] = found
        return found


def result_key(digest: str, params: Params) -> str:
    return hashlib.sha256(f"{digest}\0{encode_params(params)}".encode()).hexdigest()


@dataclass(slots=True)
class _Entry:
    result: CachedResult
    expires_at: float  # monotonic
    tables: frozenset[str]


class MemoryLayer:
    """TTL + LRU, with a table index for invalidation. Thread-safe (one short lock)."""

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._by_table: dict[str, set[str]] = {}
        self._generations: dict[str, int] = {}
        self._lock = threading.Lock()

    def get(self, key: str) -> CachedResult | None:
        now = time.monotonic()
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            if entry.expires_at <= now:
                self._remove(key)
                return None
            self._entries.move_to_end(key)
            return entry.result

    def generations(self, tables: Iterable[str]) -> Generations:
        gens = self._generations
        return (gens.get(ALL_TABLES, 0), *(gens.get(t, 0) for t in sorted(tables)))

    def put(
        self,
        key: str,
        result: CachedResult,
        tables: frozenset[str],
        ttl_s: float,
        generations: Generations,
    ) -> bool:
        with self._lock:
            if self.generations(tables) != generations:
                return False  # invalidated while the rows were being read
            if key in self._entries:
                self._remove(key)
            self._entries[key] = _Entry(result, time.monotonic() + ttl_s, tables)
            for table in tables:
                self._by_table.setdefault(table, set()).add(key)
            while len(self._entries) > self.max_entries:
                self._remove(next(iter(self._entries)))
            return True

    def _remove(self, key: str) -> None:
        entry = self._entries.pop(key, None)
        if entry is None:
            return
        for table in entry.tables:
            keys = self._by_table.get(table)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._by_table[table]

    def invalidate_tables(self, tables: Iterable[str]) -> None:
        with self._lock:
            for table in tables:
                self._generations[table] = self._generations.get(table, 0) + 1
                for key in list(self._by_table.get(table, ())):
                    self._remove(key)

    def invalidate_pattern(self, pattern: str) -> None:
        with self._lock:
            matching = [t for t in self._by_table if fnmatch.fnmatchcase(t, pattern)]
            # Tables read by in-flight readers are not in the index yet: refuse every store
            # that began before now.
            self._bump(ALL_TABLES)
        self.invalidate_tables(matching)

    def clear(self) -> None:
        with self._lock:
            self._bump(ALL_TABLES)
            self._entries.clear()
            self._by_table.clear()

    def _bump(self, table: str) -> None:
        self._generations[table] = self._generations.get(table, 0) + 1

    def __len__(self) -> int:
        return len(self._entries)


class ResultCache:
    """The layers the configuration asks for, behind one interface (sync)."""

    def __init__(self, config: CacheConfig) -> None:
        self.config = config
        self.digests = StatementDigests()
        self.memory = MemoryLayer(config.max_entries) if config.memory else None
        self.redis: RedisLayer | None = None
        if config.redis:
            from router_lib.redis_layer import RedisLayer  # redis is an optional dependency

            assert config.redis_url is not None
            self.redis = RedisLayer(config.redis_url, config.prefix)

    def key(self, text: str, has_params: bool, params: Params) -> str | None:
        """None when the statement or the parameters cannot be keyed (then it is not cached)."""
        try:
            return result_key(self.digests.digest(text, has_params), params)
        except (ValueError, TypeError, parser.ParseError):
            return None

    def lookup(self, key: str) -> tuple[CachedResult, str] | None:
        if self.memory is not None:
            found = self.memory.get(key)
            if found is not None:
                return found, "memory"
        if self.redis is not None:
            found = self.redis.get(key)
            if found is not None:
                return found, "redis"
        return None

    def generations(self, tables: frozenset[str]) -> LayerGenerations:
        return (
            None if self.memory is None else self.memory.generations(tables),
            None if self.redis is None else self.redis.generations(tables),
        )

    def store(
        self,
        key: str,
        result: CachedResult,
        tables: frozenset[str],
        ttl_s: float,
        generations: LayerGenerations,
    ) -> None:
        memory_gens, redis_gens = generations
        if self.memory is not None and memory_gens is not None:
            self.memory.put(key, result, tables, ttl_s, memory_gens)
        if self.redis is not None and redis_gens is not None:
            self.redis.put(key, result, tables, ttl_s, redis_gens)

    def invalidate_tables(self, tables: Iterable[str]) -> None:
        tables = list(tables)
        if self.memory is not None:
            self.memory.invalidate_tables(tables)
        if self.redis is not None:
            self.redis.invalidate_tables(tables)

    def invalidate_pattern(self, pattern: str) -> None:
        if self.memory is not None:
            self.memory.invalidate_pattern(pattern)
        if self.redis is not None:
            self.redis.invalidate_pattern(pattern)

    def clear(self) -> None:
        if self.memory is not None:
            self.memory.clear()
        if self.redis is not None:
            self.redis.clear()

    def close(self) -> None:
        if self.redis is not None:
            self.redis.close()


class AsyncResultCache:
    """The async twin of :class:`ResultCache` (the in-process layer is shared code)."""

    def __init__(self, config: CacheConfig) -> None:
        self.config = config
        self.digests = StatementDigests()
        self.memory = MemoryLayer(config.max_entries) if config.memory else None
        self.redis: AsyncRedisLayer | None = None
        if config.redis:
            from router_lib.redis_layer import AsyncRedisLayer

            assert config.redis_url is not None
            self.redis = AsyncRedisLayer(config.redis_url, config.prefix)

    def key(self, text: str, has_params: bool, params: Params) -> str | None:
        try:
            return result_key(self.digests.digest(text, has_params), params)
        except (ValueError, TypeError, parser.ParseError):
            return None

    async def lookup(self, key: str) -> tuple[CachedResult, str] | None:
        if self.memory is not None:
            found = self.memory.get(key)
            if found is not None:
                return found, "memory"
        if self.redis is not None:
            found = await self.redis.get(key)
            if found is not None:
                return found, "redis"
        return None

    async def generations(self, tables: frozenset[str]) -> LayerGenerations:
        return (
            None if self.memory is None else self.memory.generations(tables),
            None if self.redis is None else await self.redis.generations(tables),
        )

    async def store(
        self,
        key: str,
        result: CachedResult,
        tables: frozenset[str],
        ttl_s: float,
        generations: LayerGenerations,
    ) -> None:
        memory_gens, redis_gens = generations
        if self.memory is not None and memory_gens is not None:
            self.memory.put(key, result, tables, ttl_s, memory_gens)
        if self.redis is not None and redis_gens is not None:
            await self.redis.put(key, result, tables, ttl_s, redis_gens)

    async def invalidate_tables(self, tables: Iterable[str]) -> None:
        tables = list(tables)
        if self.memory is not None:
            self.memory.invalidate_tables(tables)
        if self.redis is not None:
            await self.redis.invalidate_tables(tables)

    async def invalidate_pattern(self, pattern: str) -> None:
        if self.memory is not None:
            self.memory.invalidate_pattern(pattern)
        if self.redis is not None:
            await self.redis.invalidate_pattern(pattern)

    async def clear(self) -> None:
        if self.memory is not None:
            self.memory.clear()
        if self.redis is not None:
            await self.redis.clear()

    async def close(self) -> None:
        if self.redis is not None:
            await self.redis.close()
