"""The suite's chart: latency percentiles per variant, and the PgBouncer sweep (PNG)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

PERCENTILES = ("p50_ms", "p95_ms", "p99_ms")


def draw(
    variants: dict[str, dict[str, float | int]],
    sweep: dict[str, list[dict[str, float | int]]],
    path: Path,
) -> Path:
    figure, (bars, lines) = plt.subplots(1, 2, figsize=(13, 5))
    names = list(variants)
    width = 0.8 / len(PERCENTILES)
    for offset, key in enumerate(PERCENTILES):
        positions = [i + (offset - 1) * width for i in range(len(names))]
        bars.bar(positions, [float(variants[n][key]) for n in names], width, label=key[:3])
    bars.set_xticks(range(len(names)), names, rotation=15)
    bars.set_ylabel("latency per operation (ms)")
    bars.set_title("mixed workload, 90 % reads / 10 % writes")
    bars.legend()
    for path_name, points in sweep.items():
        clients = [int(p["clients"]) for p in points if int(p["operations"]) > 0]
        for key, style in (("p50_ms", "-"), ("p99_ms", "--")):
            values = [float(p[key]) for p in points if int(p["operations"]) > 0]
            lines.plot(clients, values, style, marker="o", label=f"{path_name} {key[:3]}")
    lines.set_xscale("log")
    lines.set_yscale("log")
    lines.set_xlabel("clients, each holding a connection")
    lines.set_ylabel("latency per operation (ms)")
    lines.set_title("concurrency sweep (direct stops at max_connections)")
    lines.legend()
    figure.tight_layout()
    path.parent.mkdir(exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path
