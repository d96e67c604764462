"""Benchmark output: progress lines, a table on stdout, figures in .bench/NAME.json."""

from __future__ import annotations

import json
import statistics
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

BENCH_DIR = Path(".bench")


def progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


def maximum(values: Sequence[float]) -> float:
    return float(max(values)) if values else float("nan")


def write_report(name: str, figures: Mapping[str, float | int], notes: Mapping[str, str]) -> Path:
    """Print ``figures`` as a table and write them to .bench/NAME.json."""
    width = max(len(key) for key in figures)
    print(f"\n{name}")
    for key, value in figures.items():
        shown = f"{value:.3f}" if isinstance(value, float) else str(value)
        note = notes.get(key, "")
        print(f"  {key:<{width}}  {shown:>12}  {note}")
    BENCH_DIR.mkdir(exist_ok=True)
    path = BENCH_DIR / f"{name}.json"
    path.write_text(json.dumps(dict(figures), indent=2) + "\n")
    print(f"\nwritten to {path}")
    return path


def write_rows(
    name: str, title: str, label: str, rows: Mapping[str, Mapping[str, Any]], keys: Sequence[str]
) -> Path:
    """Print one row per case (``label`` heads their column), the figures ``keys`` name, and
    write every row whole to .bench/NAME.json."""
    first = max(len(label), *(len(row) for row in rows)) + 2
    width = max(len(key) for key in keys) + 2
    print(f"\n{title}")
    print("  " + label.ljust(first) + "".join(key.rjust(width) for key in keys))
    for row, figures in rows.items():
        print("  " + row.ljust(first) + "".join(str(figures.get(k, "")).rjust(width) for k in keys))
    BENCH_DIR.mkdir(exist_ok=True)
    path = BENCH_DIR / f"{name}.json"
    path.write_text(json.dumps(rows, indent=2) + "\n")
    print(f"\nwritten to {path}")
    return path
