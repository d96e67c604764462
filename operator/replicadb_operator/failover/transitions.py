"""The named status transitions. Pure: each takes the status as last read and returns the
merge patch to send (``None`` removes a field), or raises :class:`Refused` when the status no
longer allows it (another operator got there first). Only these functions produce
``phase``, ``primary``, ``targetPrimary``, ``failover``, ``failoverBlocked``, ``initialized`` or
``rollingUpdate`` (``writer`` applies them); the summary goes through :func:`observe`, which
cannot touch them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from replicadb_operator.failover.record import Basis, FailoverRecord, Kind, Step

Status = Mapping[str, Any]
Patch = dict[str, Any]
PROTECTED = frozenset(
    {
        "phase",
        "primary",
        "targetPrimary",
        "failover",
        "failoverBlocked",
        "initialized",
        "rollingUpdate",
    }
)
PLAN_PHASES = {Kind.FAILOVER: "FailingOver", Kind.SWITCHOVER: "SwitchingOver"}


class Refused(RuntimeError):
    """The transition does not apply to this status: re-read and decide again."""


def merged(status: Status, patch: Mapping[str, Any]) -> dict[str, Any]:
    """The status after a JSON merge patch (RFC 7386), as the API server computes it."""
    out = dict(status)
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merged(out[key], value)
        elif isinstance(value, Mapping):
            out[key] = merged({}, value)
        else:
            out[key] = value
    return out


def _record(status: Status) -> FailoverRecord:
    record = FailoverRecord.from_status(status)
    if record is None:
        raise Refused("no failover or switchover is under way")
    return record


def name_first_primary(status: Status, pod: str) -> Patch:
    """A new database: the primary set's first pod initialises it."""
    if status.get("targetPrimary"):
        return {}
    return {"targetPrimary": pod, "phase": "Creating"}


def initialized(status: Status, primary: str) -> Patch:
    """The target named at creation answers as a primary: it is the primary."""
    if status.get("primary") == primary and status.get("initialized"):
        return {}
    if status.get("primary") or status.get("targetPrimary") != primary:
        raise Refused(f"{primary} is not the first target primary")
    return {"primary": primary, "initialized": True}


def begin(
    status: Status,
    kind: Kind,
    old: str,
    target: str,
    reason: str,
    now: str,
    basis: Basis = Basis.PROBES,
    old_address: str | None = None,
    old_last_lsn: str | None = None,
    lag_bytes: int | None = None,
) -> Patch:
    """Record the decision before anything irreversible: from here a restarting former
    primary rewinds and follows, and any operator finishes the plan."""
    if FailoverRecord.from_status(status) is not None:
        raise Refused("a failover or switchover is already under way")
    if status.get("primary") != old:
        raise Refused(f"{old} is no longer the recorded primary")
    if target == old:
        raise Refused("the target is the primary already")
    record = FailoverRecord(
        kind=kind,
        old=old,
        target=target,
        reason=reason,
        since=now,
        basis=basis,
        old_address=old_address,
        old_last_lsn=old_last_lsn,
        lag_bytes=lag_bytes,
    )
    return {
        "targetPrimary": target,
        "phase": PLAN_PHASES[kind],
        "failoverBlocked": None,
        "failover": record.to_status(),
    }


def step_done(status: Status, kind: Kind, step: Step, final_lsn: str | None = None) -> Patch:
    """Record one finished step; the steps before it must be recorded already."""
    record = _record(status)
    if record.kind is not kind:
        raise Refused(f"a {record.kind.value} is under way, not a {kind.value}")
    if step not in record.plan:
        raise Refused(f"{step.value} is no step of a {kind.value}")
    if record.done(step):
        return {}
    if record.next_step is not step:
        raise Refused(f"{step.value} before {record.next_step}")
    if step is Step.COMPLETE:
        raise Refused("a plan is completed by the complete transition")
    updated = replace(
        record,
        steps_done=(*record.steps_done, step),
        final_lsn=final_lsn if final_lsn is not None else record.final_lsn,
    )
    return {"failover": updated.to_status()}


def retarget(status: Status, target: str, lag_bytes: int | None) -> Patch:
    """A better target after fencing (positions stopped moving): only before promotion."""
    record = _record(status)
    if record.done(Step.PROMOTE):
        raise Refused(f"{record.target} is promoted already")
    if target == record.old:
        raise Refused("the old primary cannot be the target")
    if target == record.target and lag_bytes == record.lag_bytes:
        return {}
    updated = replace(record, target=target, lag_bytes=lag_bytes)
    return {"targetPrimary": target, "failover": updated.to_status()}


def complete(status: Status, now: str, duration_s: float) -> Patch:
    """The target is the primary; the plan is over and remembered in lastFailover."""
    record = _record(status)
    missing = [s for s in record.plan if s is not Step.COMPLETE and not record.done(s)]
    if missing:
        raise Refused("steps not done: " + ", ".join(s.value for s in missing))
    return {
        "primary": record.target,
        "targetPrimary": record.target,
        "failover": None,
        "failoverBlocked": None,
        "lastFailover": {
            "time": now,
            "from": record.old,
            "to": record.target,
            "reason": record.reason,
            "kind": record.kind.value,
            "basis": record.basis.value,
            "lagBytes": record.lag_bytes,
            "durationSeconds": round(duration_s, 3),
        },
    }


def block(status: Status, reason: str) -> Patch:
    """The primary failed and nobody may be promoted: say why."""
    if FailoverRecord.from_status(status) is not None:
        raise Refused("a failover or switchover is under way")
    if status.get("failoverBlocked") == reason:
        return {}
    return {"failoverBlocked": reason}


def unblock(status: Status) -> Patch:
    return {"failoverBlocked": None} if status.get("failoverBlocked") else {}


def observe(status: Status, summary: Mapping[str, Any]) -> Patch:
    """What the monitor saw (instances, lag, conditions, the phase it implies). It never
    names the primary; while a plan is under way the phase says so."""
    patch = {k: v for k, v in summary.items() if k not in PROTECTED}
    record = FailoverRecord.from_status(status)
    phase = PLAN_PHASES[record.kind] if record is not None else summary.get("phase")
    if phase is not None and phase != status.get("phase"):
        patch["phase"] = phase
    return {k: v for k, v in patch.items() if status.get(k) != v}


def roll_observed(status: Status, progress: Mapping[str, Any]) -> Patch:
    """Where a roll stands (``status.rollingUpdate``: revision, pods on it and not, state);
    a recorded in-place restart of the primary is left as it is."""
    current = status.get("rollingUpdate") or {}
    changed = {k: v for k, v in progress.items() if k != "primaryRestart" and current.get(k) != v}
    return {"rollingUpdate": changed} if changed else {}


def primary_restart_begun(status: Status, pod: str, uid: str, now: str) -> Patch:
    """Recorded before the primary's pod is deleted (``primaryUpdateMethod: restart``): while
    it stands, the primary being down is a planned restart, not a failure, and a new
    operator deletes the pod again if it still runs under ``uid``."""
    if FailoverRecord.from_status(status) is not None:
        raise Refused("a failover or switchover is under way")
    if status.get("primary") != pod:
        raise Refused(f"{pod} is no longer the primary")
    recorded = (status.get("rollingUpdate") or {}).get("primaryRestart") or {}
    if recorded.get("pod") == pod and recorded.get("uid") == uid:
        return {}
    return {"rollingUpdate": {"primaryRestart": {"pod": pod, "uid": uid, "since": now}}}


def primary_restart_over(status: Status) -> Patch:
    """The primary is back (or the restart took too long, and failover rules apply again)."""
    if not (status.get("rollingUpdate") or {}).get("primaryRestart"):
        return {}
    return {"rollingUpdate": {"primaryRestart": None}}


def spec_invalid(status: Status, message: str) -> Patch:
    patch: Patch = {"phase": "Invalid", "invalidSpec": message}
    return {k: v for k, v in patch.items() if status.get(k) != v}


def waiting_for_input(status: Status, message: str) -> Patch:
    del message  # said in the handler's error; status only shows the phase
    return {} if status.get("phase") == "Waiting" else {"phase": "Waiting"}
