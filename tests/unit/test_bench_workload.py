"""The suite's workload stream and latency summary (pure)."""

from __future__ import annotations

import math
from collections import Counter

from bench.workload import RANGE_SPAN, Kind, Mix, MixedWorkload, percentile, summarize

MIX = Mix(rows=1_000)


def stream(seed: int, count: int) -> list[tuple[Kind, tuple[int, ...]]]:
    workload = MixedWorkload(MIX, seed)
    return [(op.kind, op.params) for op in (workload.next() for _ in range(count))]


def test_same_seed_same_stream_other_seed_other_stream() -> None:
    assert stream(7, 500) == stream(7, 500)
    assert stream(7, 500) != stream(8, 500)


def test_shares_are_those_the_suite_states() -> None:
    kinds = Counter(kind for kind, _ in stream(1, 20_000))
    assert abs(kinds[Kind.WRITE] / 20_000 - 0.10) < 0.01
    assert abs(kinds[Kind.RANGE] / (kinds[Kind.RANGE] + kinds[Kind.POINT]) - 1 / 3) < 0.02


def test_keys_stay_in_the_catalogue_and_reads_favour_the_hot_tenth() -> None:
    operations = stream(2, 20_000)
    points = [params[0] for kind, params in operations if kind is Kind.POINT]
    ranges = [params for kind, params in operations if kind is Kind.RANGE]
    assert all(1 <= key <= MIX.rows for key in points)
    assert all(lo >= 1 and hi == lo + RANGE_SPAN - 1 <= MIX.rows for lo, hi in ranges)
    hot = sum(key <= MIX.rows // 10 for key in points) / len(points)
    assert 0.78 < hot < 0.86  # 80 % aimed at the hot keys, plus the cold draws that land there


def test_only_writes_write() -> None:
    workload = MixedWorkload(MIX, 3)
    for _ in range(2_000):
        op = workload.next()
        assert op.sql.lstrip().upper().startswith("INSERT") == (not op.is_read)


def test_percentiles_are_nearest_rank() -> None:
    values = [float(n) for n in range(1, 101)]
    assert percentile(values, 0.50) == 50.0
    assert percentile(values, 0.99) == 99.0
    assert percentile([3.0], 0.95) == 3.0
    assert math.isnan(percentile([], 0.5))


def test_summary_in_milliseconds_and_operations_per_second() -> None:
    summary = summarize([0.001, 0.003, 0.002, 0.010], elapsed_s=2.0, errors=1)
    assert summary.operations == 4
    assert summary.errors == 1
    assert summary.qps == 2.0
    assert math.isclose(summary.mean_ms, 4.0)
    assert math.isclose(summary.p50_ms, 2.0)
    assert math.isclose(summary.p99_ms, 10.0)
