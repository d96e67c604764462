"""The PostgreSQL half of a failover: choose, fence, promote, repoint, re-list standbys.

Fencing and naming the new primary anywhere else (Kubernetes labels, the CR status, a
router's endpoint list) belong to the caller, passed in as ``fence``. Every step can be
repeated: promoting a primary is a no-op, repointing to the same conninfo changes nothing.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

from replicadb_operator.dataplane import instance_control
from replicadb_operator.dataplane.failover_target import (
    FailoverChoice,
    FailoverPolicy,
    choose_failover_target,
)
from replicadb_operator.dataplane.monitor import TopologyMonitor, TopologySnapshot
from replicadb_operator.dataplane.sync_standbys import (
    SyncSettings,
    sync_requirement,
    synchronous_standby_names,
)

# Defaults shared by the CRD and the benchmarks: kill-to-first-write is bounded by about
# interval x threshold plus a few tens of milliseconds of promotion.
DEFAULT_PROBE_INTERVAL_S = 1.0
DEFAULT_FAILURE_THRESHOLD = 2

Fence = Callable[[str], Awaitable[None]]
FollowerConninfo = Callable[[str, str], str]  # (new primary, follower) -> primary_conninfo


class FailoverRefused(RuntimeError):
    def __init__(self, choice: FailoverChoice) -> None:
        details = "; ".join(f"{name}: {why}" for name, why in sorted(choice.rejected.items()))
        super().__init__(f"no replica may be promoted: {choice.reason}. {details}".strip())
        self.choice = choice


@dataclass(frozen=True)
class FailoverResult:
    old_primary: str
    new_primary: str
    lag_bytes: int | None  # WAL of the old primary's last known position the new one lacks
    promote_s: float
    total_s: float
    repointed: tuple[str, ...]
    repoint_errors: dict[str, str] = field(default_factory=dict)


def failover_policy(
    snapshot: TopologySnapshot,
    sync: SyncSettings,
    max_lag_bytes: int | None,
    force: bool = False,
) -> FailoverPolicy:
    replicas = [c.name for c in snapshot.candidates]
    return FailoverPolicy(
        primary_timeline=snapshot.primary_timeline,
        last_primary_lsn=snapshot.last_primary_lsn,
        max_lag_bytes=max_lag_bytes,
        # The requirement in force while the primary was alive: all replicas listed.
        synchronous=sync_requirement(sync, replicas, replicas),
        force=force,
    )


async def execute_failover(
    snapshot: TopologySnapshot,
    policy: FailoverPolicy,
    dsns: Mapping[str, str],
    fence: Fence,
    follower_conninfo: FollowerConninfo,
    sync: SyncSettings,
) -> FailoverResult:
    """Choose the target by the rules of failover_target, then :func:`promote_target`."""
    started = time.monotonic()
    choice = choose_failover_target(snapshot.candidates, policy)
    if choice.target is None:
        raise FailoverRefused(choice)
    return await promote_target(
        snapshot.primary,
        choice.target,
        choice.lag_bytes,
        dsns,
        fence,
        follower_conninfo,
        sync,
        started,
    )


async def promote_target(
    old: str,
    new: str,
    lag_bytes: int | None,
    dsns: Mapping[str, str],
    fence: Fence,
    follower_conninfo: FollowerConninfo,
    sync: SyncSettings,
    started: float | None = None,
) -> FailoverResult:
    """Fence ``old``, promote ``new`` (a no-op when it already is primary), repoint every
    other instance in ``dsns`` to it and re-list the synchronous standbys."""
    started = time.monotonic() if started is None else started
    await fence(old)
    promote_s = await instance_control.promote(dsns[new])
    followers = [name for name in dsns if name not in (old, new)]
    results = await asyncio.gather(
        *(instance_control.repoint_replica(dsns[f], follower_conninfo(new, f)) for f in followers),
        return_exceptions=True,
    )
    errors = {f: repr(r) for f, r in zip(followers, results, strict=True) if r is not None}
    standbys = [name for name in dsns if name != new]
    healthy = [f for f in followers if f not in errors]
    await instance_control.set_synchronous_standby_names(
        dsns[new], synchronous_standby_names(sync, standbys, healthy)
    )
    return FailoverResult(
        old_primary=old,
        new_primary=new,
        lag_bytes=lag_bytes,
        promote_s=promote_s,
        total_s=time.monotonic() - started,
        repointed=tuple(f for f in followers if f not in errors),
        repoint_errors=errors,
    )


async def wait_for_primary_failure(
    monitor: TopologyMonitor,
    interval_s: float = DEFAULT_PROBE_INTERVAL_S,
    threshold: int = DEFAULT_FAILURE_THRESHOLD,
) -> TopologySnapshot:
    """Sample every ``interval_s`` until ``threshold`` consecutive primary probes failed.

    This is failure detection with the data plane alone; the operator adds Kubernetes'
    confirmation (pod not ready or gone) before it acts on the verdict.
    """
    while True:
        started = time.monotonic()
        snapshot = await monitor.sample()
        if snapshot.primary_failures >= threshold:
            return snapshot
        await asyncio.sleep(max(0.0, interval_s - (time.monotonic() - started)))
