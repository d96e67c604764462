"""The in-process result cache, its keys, its codec, and when an entry may answer a read."""

from __future__ import annotations

import datetime as dt
import decimal
import time
import uuid

import pytest
from prometheus_client import CollectorRegistry

from router_lib.cache import CachedResult, MemoryLayer, StatementDigests, result_key
from router_lib.cache_codec import NotEncodable, decode_entry, encode_entry, encode_params
from router_lib.config import RouterConfig
from router_lib.consistency import BOUNDED, EVENTUAL, READ_YOUR_WRITES, STRONG
from router_lib.router_core import RouterCore


def entry(rows: list[tuple[object, ...]] | None = None, lsn: int = 0) -> CachedResult:
    return CachedResult(rows or [(1,)], lsn, time.time())


def test_keys_ignore_layout_and_comments_but_not_literals_or_parameters() -> None:
    digests = StatementDigests()
    a = digests.digest("SELECT id FROM items WHERE id = %s", True)
    b = digests.digest("select id\n  from items -- c\n where id = %s", True)
    assert a == b
    assert digests.digest("SELECT id FROM items WHERE id = 1", False) != digests.digest(
        "SELECT id FROM items WHERE id = 2", False
    )
    assert result_key(a, (1,)) != result_key(a, (2,))
    assert result_key(a, (1,)) != result_key(a, ("1",))
    assert result_key(a, (1,)) != result_key(a, (1.0,))
    assert result_key(a, (True,)) != result_key(a, (1,))
    assert result_key(a, {"x": 1, "y": 2}) == result_key(a, {"y": 2, "x": 1})
    assert len(result_key(a, None)) == 64  # SHA-256, hex


def test_memory_layer_expires_entries() -> None:
    layer = MemoryLayer(max_entries=10)
    gens = layer.generations({"items"})
    assert layer.put("k", entry(), frozenset({"items"}), 0.05, gens)
    assert layer.get("k") is not None
    time.sleep(0.06)
    assert layer.get("k") is None


def test_memory_layer_evicts_the_least_recently_used() -> None:
    layer = MemoryLayer(max_entries=2)
    gens = layer.generations(())
    layer.put("a", entry(), frozenset(), 60, gens)
    layer.put("b", entry(), frozenset(), 60, gens)
    assert layer.get("a") is not None  # a is now more recent than b
    layer.put("c", entry(), frozenset(), 60, gens)
    assert layer.get("b") is None
    assert layer.get("a") is not None
    assert layer.get("c") is not None


def test_invalidation_drops_entries_of_the_table_only() -> None:
    layer = MemoryLayer(max_entries=10)
    layer.put("items", entry(), frozenset({"items"}), 60, layer.generations({"items"}))
    layer.put(
        "both", entry(), frozenset({"items", "audit"}), 60, layer.generations({"items", "audit"})
    )
    layer.put("audit", entry(), frozenset({"audit"}), 60, layer.generations({"audit"}))
    layer.invalidate_tables(["items"])
    assert layer.get("items") is None
    assert layer.get("both") is None
    assert layer.get("audit") is not None


def test_a_reader_that_started_before_an_invalidation_cannot_store() -> None:
    layer = MemoryLayer(max_entries=10)
    before = layer.generations({"items"})
    layer.invalidate_tables(["items"])  # a write committed while the read was running
    assert not layer.put("k", entry(), frozenset({"items"}), 60, before)
    assert layer.get("k") is None


def test_pattern_invalidation_uses_table_name_globs() -> None:
    layer = MemoryLayer(max_entries=10)
    for table in ("tenant_1_orders", "tenant_2_orders", "products"):
        layer.put(table, entry(), frozenset({table}), 60, layer.generations({table}))
    in_flight = layer.generations({"tenant_3_orders"})
    layer.invalidate_pattern("tenant_*_orders")
    assert layer.get("tenant_1_orders") is None
    assert layer.get("tenant_2_orders") is None
    assert layer.get("products") is not None
    # A read of a matching table that was in flight must not store afterwards either.
    assert not layer.put("t3", entry(), frozenset({"tenant_3_orders"}), 60, in_flight)


def test_codec_round_trips_the_types_psycopg_returns() -> None:
    row = (
        1,
        2.5,
        "text",
        None,
        True,
        decimal.Decimal("1.10"),
        dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC),
        dt.date(2026, 1, 2),
        dt.time(3, 4),
        dt.timedelta(days=1, seconds=2, microseconds=3),
        uuid.UUID(int=7),
        b"\x00\xff",
        [1, 2, 3],
        {"json": ["value"]},
    )
    rows, lsn, stored_at = decode_entry(encode_entry([row], 42, 1.5))
    assert rows == [row]
    assert lsn == 42
    assert stored_at == 1.5
    with pytest.raises(NotEncodable):
        encode_entry([(object(),)], 0, 0.0)
    assert encode_params([decimal.Decimal("1.0")]) != encode_params([decimal.Decimal("1.00")])


@pytest.fixture
def core() -> RouterCore:
    return RouterCore(RouterConfig(primary_dsn="host=p"), CollectorRegistry())


def test_cached_entries_answer_only_reads_their_position_satisfies(core: RouterCore) -> None:
    old, fresh = entry(lsn=100), entry(lsn=500)
    assert core.cached_result_fresh(old, EVENTUAL, session_lsn=400)
    assert not core.cached_result_fresh(old, READ_YOUR_WRITES, session_lsn=400)
    assert core.cached_result_fresh(fresh, READ_YOUR_WRITES, session_lsn=400)
    assert core.cached_result_fresh(entry(lsn=0), READ_YOUR_WRITES, session_lsn=0)
    assert not core.cached_result_fresh(fresh, STRONG, session_lsn=0)
    history = core.table.history
    now = time.monotonic()
    history.record(100, now - 10)
    history.record(500, now - 0.5)
    assert core.cached_result_fresh(fresh, BOUNDED(max_lag_seconds=2), 0)
    assert not core.cached_result_fresh(old, BOUNDED(max_lag_seconds=2), 0)
    assert not core.cached_result_fresh(entry(lsn=0), BOUNDED(max_lag_seconds=60), 0)
