"""The ReplicatedDatabase status, computed from probes and pods. Pure.

Status is written only when it changes meaningfully (roles, readiness, phase, conditions,
primary); positions and lag alone are written at most every ``VOLATILE_WRITE_INTERVAL_S``.
The instance entries and endpoints are router_lib's input: their shape is
:mod:`router_lib.status_contract`, which both sides import.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from replicadb_operator.builders import names
from replicadb_operator.dataplane.lag import ReplicaLag
from replicadb_operator.dataplane.lsn import Lsn
from replicadb_operator.dataplane.probe import ProbeResult
from replicadb_operator.monitoring.pods import InstancePod
from replicadb_operator.spec import DatabaseSpec
from router_lib.status_contract import (
    ROLE_PRIMARY,
    ROLE_REPLICA,
    ROLE_UNKNOWN,
    InstanceEntry,
    RoutingStatus,
    ServiceAddress,
    StatusEndpoints,
    format_lsn,
)

VOLATILE_WRITE_INTERVAL_S = 5.0
VOLATILE_INSTANCE_KEYS = frozenset(
    {"currentLsn", "receivedLsn", "replayedLsn", "lagBytes", "lagSeconds"}
)
VOLATILE_TOP_KEYS = frozenset({"maxLag", "maxLagBytes", "maxLagSeconds", "lastProbeTime"})


def human_bytes(count: int) -> str:
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _role(probe: ProbeResult | None) -> str:
    if probe is None or not probe.reachable:
        return ROLE_UNKNOWN
    return ROLE_PRIMARY if probe.is_primary else ROLE_REPLICA


def _state(probe: ProbeResult | None, pod: InstancePod | None) -> str:
    if pod is None:
        return "missing"
    if probe is None or not probe.reachable:
        return "starting" if pod.phase == "Pending" else "down"
    if probe.is_primary:
        return "primary"
    if probe.replay_paused:
        return "replay-paused"
    return probe.wal_receiver.status if probe.wal_receiver else "not-streaming"


def instance_entry(
    name: str,
    pod: InstancePod | None,
    probe: ProbeResult | None,
    lag: ReplicaLag | None,
    zone: str | None,
    sync_state: str | None,
    last_known_lsn: Lsn | None = None,
    known_timeline: int | None = None,
) -> InstanceEntry:
    """One ``status.instances`` entry; what is not known is left out, never null.

    ``last_known_lsn``: for the primary, its last known write position, kept in its entry
    while it does not answer; with the standbys' last known sync states it is all that an
    operator starting now can decide a failover on (see ``failover.recorded``).
    ``known_timeline``: a replica's timeline as the monitor knows it (the highest it saw it
    stream on); a probe of a replica whose WAL receiver is down says only its last
    checkpoint's, which lags a failover until the next restartpoint."""
    entry = InstanceEntry(
        name=name,
        role=_role(probe),
        port=names.PG_PORT,
        ready=bool(pod and pod.ready and probe and probe.reachable),
        state=_state(probe, pod),
    )
    if pod is not None:
        if pod.ip is not None:
            entry["address"] = pod.ip
        if pod.node is not None:
            entry["node"] = pod.node
    if zone is not None:
        entry["zone"] = zone
    if probe is not None and probe.reachable:
        timelines = [t for t in (probe.timeline, known_timeline) if t is not None]
        if timelines:
            entry["timeline"] = max(timelines)
        if probe.current_lsn is not None:
            entry["currentLsn"] = format_lsn(probe.current_lsn)
        if probe.receive_lsn is not None:
            # WAL the replica holds: right after a restart pg_last_wal_receive_lsn() restarts
            # at the segment streaming resumed from, below what was already replayed.
            held = max(probe.receive_lsn, probe.replay_lsn or probe.receive_lsn)
            entry["receivedLsn"] = format_lsn(held)
        if probe.replay_lsn is not None:
            entry["replayedLsn"] = format_lsn(probe.replay_lsn)
    if "currentLsn" not in entry and last_known_lsn is not None:
        entry["currentLsn"] = format_lsn(last_known_lsn)
    if lag is not None and lag.replay_bytes is not None:
        entry["lagBytes"] = lag.replay_bytes
        entry["lagSeconds"] = round(lag.seconds or 0.0, 3)
    if sync_state:
        entry["syncState"] = sync_state
    return entry


def condition(
    previous: Sequence[Mapping[str, Any]], kind: str, ok: bool, reason: str, message: str
) -> dict[str, Any]:
    """A condition that keeps its lastTransitionTime while its status does not change."""
    status = "True" if ok else "False"
    before = next((c for c in previous if c.get("type") == kind), None)
    since = before.get("lastTransitionTime") if before and before.get("status") == status else None
    return {
        "type": kind,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": since or now_iso(),
    }


def endpoints(db: DatabaseSpec) -> StatusEndpoints:
    def service(name: str, port: int) -> ServiceAddress:
        return ServiceAddress(host=names.dns(db, name), port=port)

    out = StatusEndpoints(
        readWrite=service(names.rw_service(db), names.PG_PORT),
        readOnly=service(names.ro_service(db), names.PG_PORT),
    )
    if db.pooler.enabled:
        out["poolerReadWrite"] = service(names.pooler(db, "rw"), names.POOLER_PORT)
        out["poolerReadOnly"] = service(names.pooler(db, "ro"), names.POOLER_PORT)
    return out


def summary(
    db: DatabaseSpec,
    primary: str | None,
    instances: Sequence[InstanceEntry],
    previous_conditions: Sequence[Mapping[str, Any]],
    failing_over: str | None = None,
    blocked: str | None = None,
    rolling: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Top-level fields: who is primary, how many replicas are ready, the largest lag, the
    phase and the conditions. ``rolling``: ``status.rollingUpdate`` as the roll left it."""
    replicas = [i for i in instances if i["name"] != primary]
    ready_replicas = [i for i in replicas if i.get("ready") and i.get("role") == ROLE_REPLICA]
    primary_entry = next((i for i in instances if i["name"] == primary), None)
    primary_ok = bool(
        primary_entry and primary_entry.get("ready") and primary_entry.get("role") == ROLE_PRIMARY
    )
    lag_bytes = [int(i["lagBytes"]) for i in ready_replicas if "lagBytes" in i]
    lag_seconds = [float(i["lagSeconds"]) for i in ready_replicas if "lagSeconds" in i]
    max_bytes = max(lag_bytes, default=0)
    max_seconds = max(lag_seconds, default=0.0)
    lagging = [
        i["name"] for i in ready_replicas if i.get("lagBytes", 0) > db.failover.max_lag_bytes
    ]
    all_ready = primary_ok and len(ready_replicas) == db.replicas

    if failing_over:
        phase = "FailingOver"
    elif primary is None or (primary_entry is None and not replicas):
        phase = "Creating"
    elif not primary_ok:
        phase = "PrimaryUnavailable"
    elif all_ready:
        phase = "Healthy"
    else:
        phase = "Degraded"
    conditions = [
        condition(
            previous_conditions,
            "Ready",
            all_ready,
            "AllInstancesReady" if all_ready else "InstancesNotReady",
            f"primary {'ready' if primary_ok else 'not ready'}, "
            f"{len(ready_replicas)}/{db.replicas} replicas ready",
        ),
        condition(
            previous_conditions,
            "Degraded",
            not all_ready,
            "InstancesNotReady" if not all_ready else "AllInstancesReady",
            ", ".join(
                f"{i['name']}: {i.get('state', '')}" for i in instances if not i.get("ready")
            ),
        ),
        condition(
            previous_conditions,
            "ReplicaLagging",
            bool(lagging),
            "LagAboveFailoverLimit" if lagging else "LagWithinLimit",
            (
                f"{', '.join(lagging)} behind by more than {db.failover.max_lag_bytes} bytes"
                if lagging
                else ""
            ),
        ),
        condition(
            previous_conditions,
            "FailingOver",
            bool(failing_over or blocked),
            "FailingOver" if failing_over else ("FailoverBlocked" if blocked else "Stable"),
            failing_over or blocked or "",
        ),
    ]
    if rolling:
        state = str(rolling.get("state") or "UpToDate")
        conditions.append(
            condition(
                previous_conditions,
                "Updating",
                state != "UpToDate",
                state,
                str(rolling.get("message") or ""),
            )
        )
    routing = RoutingStatus(primary=primary, instances=list(instances), endpoints=endpoints(db))
    return {
        "phase": phase,
        "readyReplicas": f"{len(ready_replicas)}/{db.replicas}",
        "maxLagBytes": max_bytes,
        "maxLagSeconds": round(max_seconds, 3),
        "maxLag": f"{human_bytes(max_bytes)}, {max_seconds:.1f}s",
        **routing,
        "conditions": conditions,
    }


def _stable(status: Mapping[str, Any]) -> dict[str, Any]:
    """The status without what moves all the time."""
    out = {k: v for k, v in status.items() if k not in VOLATILE_TOP_KEYS}
    out["instances"] = [
        {k: v for k, v in i.items() if k not in VOLATILE_INSTANCE_KEYS}
        for i in status.get("instances") or []
    ]
    return out


def needs_write(old: Mapping[str, Any], new: Mapping[str, Any], seconds_since_write: float) -> bool:
    """Write now when anything stable changed; volatile figures at a bounded rate."""
    keys = set(new)
    old_view = {k: old.get(k) for k in keys}
    if _stable(old_view) != _stable(new):
        return True
    return old_view != dict(new) and seconds_since_write >= VOLATILE_WRITE_INTERVAL_S
