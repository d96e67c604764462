"""The scaling benchmark's chart: read throughput against the number of replicas (PNG)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

SERIES = (
    ("read_qps", "plain pools"),
    ("router_read_qps", "router_lib EVENTUAL"),
    ("pooler_read_qps", "PgBouncer read-only pooler"),
    ("steady_writes_read_qps", "plain pools, steady inserts"),
)


def draw(report: Mapping[str, object], path: Path) -> Path:
    figure, axes = plt.subplots(figsize=(7, 5))
    base = report["read_qps"]
    assert isinstance(base, dict)
    counts = sorted(int(n) for n in base)
    for key, label in SERIES:
        qps = report[key]
        assert isinstance(qps, dict)
        axes.plot(counts, [float(qps[str(n)]) for n in counts], marker="o", label=label)
    ideal = [float(base["0"]) * (n + 1) * 0.8 for n in counts]
    axes.plot(counts, ideal, ":", color="grey", label="goal: 0.8 x (N+1) x primary alone")
    cached = report.get("with_cache")
    if isinstance(cached, (int, float)):
        axes.plot([counts[-1]], [float(cached)], "*", markersize=12, label="router + result cache")
    axes.set_xticks(counts)
    axes.set_xlabel("replicas taking reads (0: the primary alone)")
    axes.set_ylabel("reads per second")
    axes.set_title(f"read scaling, {report['cpu_per_instance']} CPU per instance")
    axes.legend()
    figure.tight_layout()
    path.parent.mkdir(exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path
