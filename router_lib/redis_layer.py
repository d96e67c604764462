"""The shared cache layer in Redis, sync (redis.Redis) and async (redis.asyncio.Redis).

Layout under the configured prefix: ``r:<key>`` the entry (JSON, expiring with its TTL),
``t:<table>`` the set of entry keys that read the table, ``g:<table>`` the table's
generation counter (``g:*all*`` for invalidate-everything). Storing checks the generations
and writes the entry and its table sets in one Lua script, so an invalidation can never slip
between the check and the write; invalidation bumps the generation and deletes the entries
in one script too. One Redis (not Redis Cluster: the scripts touch keys of several slots).

A Redis that fails makes the cache miss, never the query fail. If an invalidation fails,
this process stops reading from Redis for the longest TTL it has stored with (after that
every entry that could have been stale has expired).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import Any

from router_lib.cache import ALL_TABLES, CachedResult, Generations
from router_lib.cache_codec import NotEncodable, decode_entry, encode_entry
from router_lib.extras import MissingExtra

try:
    import redis
    import redis.asyncio
except ModuleNotFoundError as exc:
    raise MissingExtra("redis", "the Redis result cache (REPLICADB_CACHE=...redis)") from exc

log = logging.getLogger(__name__)

PUT_SCRIPT = """
local n = tonumber(ARGV[3])
for i = 0, n do
  local current = redis.call('GET', KEYS[2 + i]) or '0'
  if current ~= ARGV[4 + i] then return 0 end
end
local ttl = tonumber(ARGV[2])
redis.call('SET', KEYS[1], ARGV[1], 'PX', ttl)
for i = 1, n do
  local members = KEYS[2 + n + i]
  redis.call('SADD', members, KEYS[1])
  if redis.call('PTTL', members) < ttl then redis.call('PEXPIRE', members, ttl) end
end
return 1
"""

INVALIDATE_SCRIPT = """
for i = 1, #KEYS, 2 do
  redis.call('INCR', KEYS[i])
  local members = redis.call('SMEMBERS', KEYS[i + 1])
  for _, member in ipairs(members) do redis.call('DEL', member) end
  redis.call('DEL', KEYS[i + 1])
end
return 1
"""


class RedisKeys:
    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def entry(self, key: str) -> str:
        return f"{self.prefix}r:{key}"

    def members(self, table: str) -> str:
        return f"{self.prefix}t:{table}"

    def generation(self, table: str) -> str:
        return f"{self.prefix}g:{table}"

    def table_of(self, members_key: bytes | str) -> str:
        text = members_key.decode() if isinstance(members_key, bytes) else members_key
        return text[len(self.prefix) + 2 :]

    def put_call(
        self, key: str, payload: bytes, tables: frozenset[str], ttl_s: float, gens: Generations
    ) -> tuple[list[str], list[Any]]:
        ordered = sorted(tables)
        keys = [
            self.entry(key),
            self.generation(ALL_TABLES),
            *(self.generation(t) for t in ordered),
            *(self.members(t) for t in ordered),
        ]
        args: list[Any] = [payload, max(1, int(ttl_s * 1000)), len(ordered), *map(str, gens)]
        return keys, args

    def invalidate_keys(self, tables: Iterable[str]) -> list[str]:
        keys: list[str] = []
        for table in tables:
            keys += [self.generation(table), self.members(table)]
        return keys

    def generation_keys(self, tables: Iterable[str]) -> list[str]:
        return [self.generation(ALL_TABLES), *(self.generation(t) for t in sorted(tables))]


def _generations(values: list[Any]) -> Generations:
    return tuple(int(v) if v is not None else 0 for v in values)


class _Health:
    """Tracks the longest TTL stored and whether Redis must be bypassed after a failed
    invalidation."""

    def __init__(self) -> None:
        self.longest_ttl_s = 0.0
        self.bypass_until = 0.0

    def readable(self) -> bool:
        return time.monotonic() >= self.bypass_until

    def invalidation_failed(self, exc: Exception) -> None:
        log.error("cache invalidation in Redis failed (%s); bypassing Redis reads", exc)
        self.bypass_until = time.monotonic() + self.longest_ttl_s


class RedisLayer:
    def __init__(self, url: str, prefix: str) -> None:
        self.client: redis.Redis = redis.Redis.from_url(url, socket_timeout=1.0)
        self.keys = RedisKeys(prefix)
        self.health = _Health()
        self._put = self.client.register_script(PUT_SCRIPT)
        self._invalidate = self.client.register_script(INVALIDATE_SCRIPT)

    def get(self, key: str) -> CachedResult | None:
        if not self.health.readable():
            return None
        try:
            data = self.client.get(self.keys.entry(key))
        except redis.RedisError as exc:
            log.warning("cache read from Redis failed: %s", exc)
            return None
        if data is None:
            return None
        rows, lsn, stored_at = decode_entry(data)
        return CachedResult(rows, lsn, stored_at)

    def generations(self, tables: Iterable[str]) -> Generations | None:
        try:
            return _generations(self.client.mget(self.keys.generation_keys(tables)))
        except redis.RedisError:
            return None

    def put(
        self,
        key: str,
        result: CachedResult,
        tables: frozenset[str],
        ttl_s: float,
        generations: Generations,
    ) -> bool:
        try:
            payload = encode_entry(result.rows, result.lsn, result.stored_at)
        except NotEncodable:
            return False
        self.health.longest_ttl_s = max(self.health.longest_ttl_s, ttl_s)
        keys, args = self.keys.put_call(key, payload, tables, ttl_s, generations)
        try:
            return bool(self._put(keys=keys, args=args))
        except redis.RedisError as exc:
            log.warning("cache write to Redis failed: %s", exc)
            return False

    def invalidate_tables(self, tables: Iterable[str]) -> None:
        keys = self.keys.invalidate_keys(tables)
        if keys:
            try:
                self._invalidate(keys=keys)
            except redis.RedisError as exc:
                self.health.invalidation_failed(exc)

    def invalidate_pattern(self, pattern: str) -> None:
        self._invalidate_matching(self.keys.members(pattern))

    def clear(self) -> None:
        self._invalidate_matching(self.keys.members("*"))

    def _invalidate_matching(self, match: str) -> None:
        try:
            tables = {self.keys.table_of(k) for k in self.client.scan_iter(match=match, count=500)}
        except redis.RedisError as exc:
            self.health.invalidation_failed(exc)
            return
        self.invalidate_tables([ALL_TABLES, *tables])

    def close(self) -> None:
        self.client.close()


class AsyncRedisLayer:
    def __init__(self, url: str, prefix: str) -> None:
        self.client: redis.asyncio.Redis = redis.asyncio.Redis.from_url(url, socket_timeout=1.0)
        self.keys = RedisKeys(prefix)
        self.health = _Health()
        self._put = self.client.register_script(PUT_SCRIPT)
        self._invalidate = self.client.register_script(INVALIDATE_SCRIPT)

    async def get(self, key: str) -> CachedResult | None:
        if not self.health.readable():
            return None
        try:
            data = await self.client.get(self.keys.entry(key))
        except redis.RedisError as exc:
            log.warning("cache read from Redis failed: %s", exc)
            return None
        if data is None:
            return None
        rows, lsn, stored_at = decode_entry(data)
        return CachedResult(rows, lsn, stored_at)

    async def generations(self, tables: Iterable[str]) -> Generations | None:
        try:
            return _generations(await self.client.mget(self.keys.generation_keys(tables)))
        except redis.RedisError:
            return None

    async def put(
        self,
        key: str,
        result: CachedResult,
        tables: frozenset[str],
        ttl_s: float,
        generations: Generations,
    ) -> bool:
        try:
            payload = encode_entry(result.rows, result.lsn, result.stored_at)
        except NotEncodable:
            return False
        self.health.longest_ttl_s = max(self.health.longest_ttl_s, ttl_s)
        keys, args = self.keys.put_call(key, payload, tables, ttl_s, generations)
        try:
            return bool(await self._put(keys=keys, args=args))
        except redis.RedisError as exc:
            log.warning("cache write to Redis failed: %s", exc)
            return False

    async def invalidate_tables(self, tables: Iterable[str]) -> None:
        keys = self.keys.invalidate_keys(tables)
        if keys:
            try:
                await self._invalidate(keys=keys)
            except redis.RedisError as exc:
                self.health.invalidation_failed(exc)

    async def invalidate_pattern(self, pattern: str) -> None:
        await self._invalidate_matching(self.keys.members(pattern))

    async def clear(self) -> None:
        await self._invalidate_matching(self.keys.members("*"))

    async def _invalidate_matching(self, match: str) -> None:
        try:
            tables = {
                self.keys.table_of(k) async for k in self.client.scan_iter(match=match, count=500)
            }
        except redis.RedisError as exc:
            self.health.invalidation_failed(exc)
            return
        await self.invalidate_tables([ALL_TABLES, *tables])

    async def close(self) -> None:
        await self.client.aclose()
