"""Readable tables of a ReplicatedDatabase status. Pure: status dict in, text out."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from replicadb_operator.cli.pooler_counts import PoolCounts
from replicadb_operator.monitoring.status_model import human_bytes


def table(rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


def instances_table(status: Mapping[str, Any]) -> str:
    rows = [("INSTANCE", "ROLE", "READY", "STATE", "ZONE", "TL", "RECEIVED", "REPLAYED", "LAG")]
    for inst in status.get("instances") or []:
        lag = ""
        if "lagBytes" in inst:
            lag = f"{human_bytes(int(inst['lagBytes']))} / {float(inst['lagSeconds']):.1f}s"
        position = inst.get("currentLsn", "")
        rows.append(
            (
                inst["name"] + (" *" if inst["name"] == status.get("primary") else ""),
                str(inst.get("role", "")),
                "yes" if inst.get("ready") else "no",
                str(inst.get("state", "")),
                str(inst.get("zone", "-")),
                str(inst.get("timeline", "")),
                str(inst.get("receivedLsn", position)),
                str(inst.get("replayedLsn", position)),
                lag,
            )
        )
    return table(rows)


def render_status(
    name: str,
    namespace: str,
    obj: Mapping[str, Any],
    pools: Mapping[str, PoolCounts | str] | None = None,
) -> str:
    """``pools``: each pooler's connection counts (see cli.pooler_counts), when read."""
    status = obj.get("status") or {}
    spec = obj.get("spec") or {}
    lines = [
        f"ReplicatedDatabase {namespace}/{name}: {status.get('phase', 'Unknown')}",
        f"  primary {status.get('primary') or '-'} (timeline {status.get('timeline', '-')}), "
        f"replicas ready {status.get('readyReplicas', '-')}, max lag {status.get('maxLag', '-')}",
        "",
        instances_table(status),
        "",
    ]
    endpoints = status.get("endpoints") or {}
    for key, label in (
        ("readWrite", "read-write"),
        ("readOnly", "read-only"),
        ("poolerReadWrite", "pooler rw"),
        ("poolerReadOnly", "pooler ro"),
    ):
        if key in endpoints:
            lines.append(f"  {label:<11} {endpoints[key]['host']}:{endpoints[key]['port']}")
    pooler = spec.get("pgbouncer") or {}
    lines.append(
        "  pooler      "
        + (
            f"on, {pooler.get('poolMode', 'transaction')} mode, "
            f"max {pooler.get('maxClientConnections', 1000)} clients"
            if pooler.get("enabled", True)
            else "off"
        )
    )
    for pool, counts in (pools or {}).items():
        text = counts.describe() if isinstance(counts, PoolCounts) else counts
        lines.append(f"  pooler {pool:<4} {text}")
    last = status.get("lastFailover")
    if last:
        lines.append(
            f"  last failover {last.get('time')}: {last.get('from')} -> {last.get('to')} "
            f"({last.get('kind', 'failover')}, {last.get('reason')}, "
            f"{last.get('lagBytes') or 0} bytes behind, {last.get('durationSeconds')} s)"
        )
    for condition in status.get("conditions") or []:
        if condition.get("status") == "True" and condition["type"] != "Ready":
            lines.append(f"  ! {condition['type']}: {condition.get('message', '')}")
    if status.get("failoverBlocked"):
        lines.append(f"  ! failover blocked: {status['failoverBlocked']}")
    return "\n".join(lines)


HEALTH_CODES = {"Healthy": 0, "Degraded": 1, "Creating": 2, "FailingOver": 2}


def health_code(obj: Mapping[str, Any]) -> int:
    """0 healthy, 1 degraded (still serving), 2 unavailable or unknown."""
    return HEALTH_CODES.get((obj.get("status") or {}).get("phase", ""), 2)
