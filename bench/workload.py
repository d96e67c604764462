"""The benchmark suite's mixed workload and its latency summary (pure; no I/O).

A shop's traffic, in one seeded stream: 90 % reads of the catalogue (two point reads for each
range read), 10 % writes (orders inserted). Keys are skewed like real traffic: 80 % of reads
go to a hot tenth of the catalogue. The same seed gives every variant the same stream.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

POINT_READ = "SELECT id, name, price FROM bench_items WHERE id = %s"
RANGE_READ = "SELECT id, name, price FROM bench_items WHERE id BETWEEN %s AND %s ORDER BY id"
WRITE = "INSERT INTO bench_orders (item_id, qty) VALUES (%s, %s)"
RANGE_SPAN = 20

SCHEMA = (
    "CREATE TABLE bench_items (id int PRIMARY KEY, name text NOT NULL, price numeric NOT NULL)",
    "CREATE TABLE bench_orders (id bigserial PRIMARY KEY, item_id int NOT NULL, qty int NOT NULL,"
    " placed_at timestamptz NOT NULL DEFAULT now())",
)
FILL = (
    "INSERT INTO bench_items SELECT g, 'item ' || g, (g %% 97) + 0.99 FROM generate_series(1, %s) g"
)


class Kind(Enum):
    POINT = "point"
    RANGE = "range"
    WRITE = "write"


@dataclass(frozen=True, slots=True)
class Operation:
    kind: Kind
    sql: str
    params: tuple[int, ...]

    @property
    def is_read(self) -> bool:
        return self.kind is not Kind.WRITE


@dataclass(frozen=True, slots=True)
class Mix:
    rows: int = 10_000
    read_share: float = 0.9
    range_share_of_reads: float = 1 / 3
    hot_share: float = 0.8  # of reads that go to the hot keys
    hot_fraction: float = 0.1  # of the catalogue that is hot


class MixedWorkload:
    """An endless, reproducible stream of operations."""

    def __init__(self, mix: Mix, seed: int) -> None:
        self.mix = mix
        self.random = random.Random(seed)
        self.hot_keys = max(1, int(mix.rows * mix.hot_fraction))

    def _key(self, last: int) -> int:
        if self.random.random() < self.mix.hot_share:
            return self.random.randint(1, min(self.hot_keys, last))
        return self.random.randint(1, last)

    def next(self) -> Operation:
        mix = self.mix
        if self.random.random() >= mix.read_share:
            item = self.random.randint(1, mix.rows)
            return Operation(Kind.WRITE, WRITE, (item, self.random.randint(1, 5)))
        if self.random.random() < mix.range_share_of_reads:
            start = self._key(mix.rows - RANGE_SPAN + 1)
            return Operation(Kind.RANGE, RANGE_READ, (start, start + RANGE_SPAN - 1))
        return Operation(Kind.POINT, POINT_READ, (self._key(mix.rows),))


@dataclass(frozen=True, slots=True)
class Summary:
    operations: int
    errors: int
    qps: float
    mean_ms: float
    p50_ms: float
    p95_ms: float
    p99_ms: float

    def as_dict(self) -> dict[str, float | int]:
        return {
            "operations": self.operations,
            "errors": self.errors,
            "qps": round(self.qps, 1),
            "mean_ms": round(self.mean_ms, 3),
            "p50_ms": round(self.p50_ms, 3),
            "p95_ms": round(self.p95_ms, 3),
            "p99_ms": round(self.p99_ms, 3),
        }


def percentile(ordered: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of values sorted ascending (nan when there are none)."""
    if not ordered:
        return math.nan
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def summarize(latencies_s: Sequence[float], elapsed_s: float, errors: int) -> Summary:
    ordered = sorted(latencies_s)
    count = len(ordered)
    mean = sum(ordered) / count if count else math.nan
    return Summary(
        operations=count,
        errors=errors,
        qps=count / elapsed_s if elapsed_s > 0 else math.nan,
        mean_ms=mean * 1e3,
        p50_ms=percentile(ordered, 0.50) * 1e3,
        p95_ms=percentile(ordered, 0.95) * 1e3,
        p99_ms=percentile(ordered, 0.99) * 1e3,
    )
