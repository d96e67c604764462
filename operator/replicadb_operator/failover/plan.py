"""The plan, top to bottom. A failover: decide (recorded by ``begin``), fence, promote,
repoint, relabel, complete. A switchover: decide, demote, catch-up, fence, promote, repoint,
relabel, complete. ``run`` carries out the first step whose completion status does not
record, records it, and goes on; a new operator calls it with what status says and finishes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any

from replicadb_operator.builders import names
from replicadb_operator.dataplane import instance_control
from replicadb_operator.dataplane.failover import failover_policy
from replicadb_operator.dataplane.failover_target import choose_failover_target
from replicadb_operator.dataplane.lsn import format_lsn, parse_optional_lsn
from replicadb_operator.dataplane.monitor import TopologyMonitor
from replicadb_operator.dataplane.sync_standbys import synchronous_standby_names
from replicadb_operator.failover import crash_points, steps, transitions
from replicadb_operator.failover.record import FailoverRecord, Kind, Step
from replicadb_operator.failover.writer import Transition
from replicadb_operator.kube import status as kube_status
from replicadb_operator.monitoring import metrics, pods
from replicadb_operator.spec import DatabaseSpec

log = logging.getLogger(__name__)
Status = dict[str, Any]
Apply = Callable[[Transition, str], Awaitable[Status]]
Event = Callable[[str, str, str], Awaitable[None]]
FENCE_CONFIRM_S = 5.0
CATCH_UP_TIMEOUT_S = 60.0


@dataclass
class PlanContext:
    """What one round of the monitor knows: the spec, the pods and where each answers now,
    the monitor (for a fresh choice after fencing), and how to write status and Events."""

    db: DatabaseSpec
    dsns: dict[str, str]  # instance -> DSN at its pod's current address
    pod_map: dict[str, pods.InstancePod]
    monitor: TopologyMonitor
    apply: Apply
    event: Event


async def run(ctx: PlanContext, record: FailoverRecord) -> FailoverRecord | None:
    """Carry out every step not recorded as done; returns None once the plan completed."""
    current: FailoverRecord | None = record
    while current is not None and (step := current.next_step) is not None:
        log.info("%s: %s step %s (%s -> %s)", ctx.db.name, current.kind, step, current.old,
                 current.target)  # fmt: skip
        status = await STEPS[step](ctx, current)
        crash_points.after_step(current.kind, step)
        current = FailoverRecord.from_status(status)
    return current


async def _done(
    ctx: PlanContext, record: FailoverRecord, step: Step, final_lsn: str | None = None
) -> Status:
    done = partial(transitions.step_done, kind=record.kind, step=step, final_lsn=final_lsn)
    return await ctx.apply(done, f"step {step}")


def _old_dsns(ctx: PlanContext, record: FailoverRecord) -> list[str]:
    """Every address the old primary may answer at: its pod's now, and where it last
    answered when the decision was taken (a replaced pod's old container lives on there)."""
    out = []
    current = ctx.dsns.get(record.old)
    if current is not None:
        out.append(current)
    template = current or next(iter(ctx.dsns.values()), None)
    if record.old_address and template is not None:
        recorded = steps.at_address(template, record.old_address)
        if recorded not in out:
            out.append(recorded)
    return out


async def demote(ctx: PlanContext, record: FailoverRecord) -> Status:
    """Switchover: out of the read-write Service, read-only, and its final position noted."""
    await _label(ctx, record.old, names.ROLE_FENCED)
    dsn = ctx.dsns.get(record.old)
    final = None
    if dsn is not None:
        try:
            final = format_lsn(await steps.demote(dsn))
        except Exception as exc:  # it died meanwhile: its last known position must do
            log.warning("%s: could not demote %s: %s", ctx.db.name, record.old, exc)
    return await _done(ctx, record, Step.DEMOTE, final_lsn=final or record.old_last_lsn)


async def catch_up(ctx: PlanContext, record: FailoverRecord) -> Status:
    """Switchover: the target has replayed all the old primary wrote: zero data loss."""
    final = parse_optional_lsn(record.final_lsn or None)
    if final is not None:
        await instance_control.wait_for_replay(
            ctx.dsns[record.target], final, timeout_s=CATCH_UP_TIMEOUT_S
        )
    return await _done(ctx, record, Step.CATCH_UP)


async def fence(ctx: PlanContext, record: FailoverRecord) -> Status:
    """Stop the old primary and confirm that it accepts no writes at any address it may
    answer at; never take a label, or a deletion, as proof. A switchover shuts it down
    cleanly; a failover stops it at once, and deletes its pod when it could not: silence is
    no proof either (a primary cut off the network answers nobody and keeps running; its pod
    must be replaced for it to come back as a replica)."""
    await _label(ctx, record.old, names.ROLE_FENCED)
    old = _old_dsns(ctx, record)
    mode = "fast" if record.kind is Kind.SWITCHOVER else "immediate"
    stopping = asyncio.gather(*(steps.stop_postgres(dsn, mode) for dsn in old))
    if record.kind is Kind.SWITCHOVER:
        # Followers cut off while they still stream: one whose WAL receiver is down (its
        # primary shut down) when it is repointed can sleep through the change; seen below
        # the cluster when the operator died between stopping the old primary and repointing.
        await steps.detach_replicas({n: d for n, d in ctx.dsns.items() if n not in
                                     (record.old, record.target)})  # fmt: skip
        stopped = await stopping
    else:
        # Every replica is cut off the old primary while it is being stopped, not after:
        # whatever still runs there gets no synchronous acknowledgement from then on, and the
        # failover does not wait for the stop attempts to time out first (a primary cut off
        # the network answers nobody). _choose_again detaches again, after a resume.
        others = {n: d for n, d in ctx.dsns.items() if n != record.old}
        stopped, _ = await asyncio.gather(stopping, steps.detach_replicas(others))
    pod = ctx.pod_map.get(record.old)
    pod_dsn = ctx.dsns.get(record.old)
    stopped_in_pod = pod_dsn is not None and stopped[old.index(pod_dsn)]
    if pod is not None and not pod.deleting and not stopped_in_pod:
        log.info("%s: %s could not be stopped from inside: deleting its pod", ctx.db.name,
                 record.old)  # fmt: skip
        await _delete_pod(ctx, record.old)
    if not await steps.wait_no_writes(old, FENCE_CONFIRM_S):
        if pod is not None and not pod.deleting and stopped_in_pod:
            await _delete_pod(ctx, record.old)
        await asyncio.gather(*(steps.stop_postgres(dsn, "immediate") for dsn in old))
        if not await steps.wait_no_writes(old, FENCE_CONFIRM_S):
            await ctx.event("Warning", "FenceNotConfirmed", f"{record.old} still accepts writes")
            raise steps.NotConfirmed(f"{record.old} still accepts writes")
    if record.kind is Kind.FAILOVER:
        return await _choose_again(ctx, record)
    return await _done(ctx, record, Step.FENCE)


async def _delete_pod(ctx: PlanContext, pod: str) -> None:
    """Grace 0: the pod object goes at once and its StatefulSet makes a new one, whose
    entrypoint rewinds the data and follows the target; the old container is killed."""
    await asyncio.to_thread(kube_status.delete_pod, ctx.db.namespace, pod, 0)


async def _choose_again(ctx: PlanContext, record: FailoverRecord) -> Status:
    """Replicas cut off the old primary no longer move: the best of them now may differ from
    the one chosen while it was failing. Then the fence is recorded."""
    others = {n: d for n, d in ctx.dsns.items() if n != record.old}
    await steps.detach_replicas(others)
    fresh = await ctx.monitor.sample(primary_known_down=True)
    policy = failover_policy(fresh, ctx.db.replication, ctx.db.failover.max_lag_bytes)
    choice = choose_failover_target(fresh.candidates, policy)
    if choice.target is not None and choice.target != record.target:
        await ctx.apply(partial(transitions.retarget, target=choice.target,
                                lag_bytes=choice.lag_bytes), "retarget")  # fmt: skip
    return await _done(ctx, record, Step.FENCE)


async def promote(ctx: PlanContext, record: FailoverRecord) -> Status:
    await instance_control.promote(ctx.dsns[record.target])
    return await _done(ctx, record, Step.PROMOTE)


def _followers(ctx: PlanContext, record: FailoverRecord) -> list[str]:
    return [n for n in ctx.dsns if n not in (record.old, record.target)]


async def repoint(ctx: PlanContext, record: FailoverRecord) -> Status:
    """Followers stream from the target; its synchronous standbys are listed. A follower
    that cannot be reached now is restarted later by the monitor (its entrypoint follows)."""
    followers = _followers(ctx, record)
    conninfo = steps.follower_conninfo(ctx.db, steps.addresses_of(ctx.dsns))
    results = await asyncio.gather(
        *(instance_control.repoint_replica(ctx.dsns[f], conninfo(record.target, f))
          for f in followers),
        return_exceptions=True,
    )  # fmt: skip
    healthy = [f for f, r in zip(followers, results, strict=True) if r is None]
    standbys = [n for n in ctx.pod_map if n != record.target]
    await instance_control.set_synchronous_standby_names(
        ctx.dsns[record.target],
        synchronous_standby_names(ctx.db.replication, standbys, healthy),
    )
    return await _done(ctx, record, Step.REPOINT)


async def relabel(ctx: PlanContext, record: FailoverRecord) -> Status:
    """The read-write Service (and pooler) follows the label to the target."""
    await _label(ctx, record.target, names.ROLE_PRIMARY)
    for follower in _followers(ctx, record):
        await _label(ctx, follower, names.ROLE_REPLICA)
    return await _done(ctx, record, Step.RELABEL)


async def complete(ctx: PlanContext, record: FailoverRecord) -> Status:
    seconds = max(0.0, time.time() - _epoch(record.since))
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    status = await ctx.apply(partial(transitions.complete, now=now, duration_s=seconds),
                             "complete")  # fmt: skip
    ctx.monitor.set_primary(record.target)
    metrics.FAILOVERS.labels(ctx.db.namespace, ctx.db.name, record.kind.value).inc()
    metrics.LAST_FAILOVER_SECONDS.labels(ctx.db.namespace, ctx.db.name).set(seconds)
    verb = "FailedOver" if record.kind is Kind.FAILOVER else "SwitchedOver"
    await ctx.event("Normal", verb, f"{record.old} -> {record.target} in {seconds:.2f} s "
                    f"({record.reason})")  # fmt: skip
    return status


def _epoch(iso: str) -> float:
    try:
        return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return time.time()


async def _label(ctx: PlanContext, pod: str, role: str) -> None:
    existing = ctx.pod_map.get(pod)
    if existing is None or existing.deleting or existing.role_label == role:
        return
    await asyncio.to_thread(pods.set_role_label, ctx.db.namespace, pod, role)


STEPS: dict[Step, Callable[[PlanContext, FailoverRecord], Awaitable[Status]]] = {
    Step.DEMOTE: demote,
    Step.CATCH_UP: catch_up,
    Step.FENCE: fence,
    Step.PROMOTE: promote,
    Step.REPOINT: repoint,
    Step.RELABEL: relabel,
    Step.COMPLETE: complete,
}
