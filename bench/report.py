"""Benchmark output: progress lines, a table on stdout, figures in .bench/NAME.json."""

from __future__ import annotations

import json
import statistics
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

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
