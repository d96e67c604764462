"""Planned switchover: zero data loss, on request (annotation or `kubectl replicadb`)."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from replicadb_operator.builders import names
from replicadb_operator.dataplane import instance_control
from replicadb_operator.dataplane.monitor import TopologySnapshot
from replicadb_operator.kube import status as kube_status
from replicadb_operator.monitoring import failover_steps, pods
from replicadb_operator.spec import DatabaseSpec

if TYPE_CHECKING:
    from replicadb_operator.monitoring.daemon import DatabaseDaemon

log = logging.getLogger(__name__)


async def run_switchover(
    daemon: DatabaseDaemon,
    db: DatabaseSpec,
    snapshot: TopologySnapshot,
    dsns: dict[str, str],
    pod_map: dict[str, pods.InstancePod],
    target: str,
    force: bool,
) -> None:
    """Planned, zero-loss: fence the primary, let it shut down cleanly (a fast shutdown
    sends all its WAL to the standbys), wait until the target replayed all of it, promote."""

    async def done() -> None:
        await asyncio.to_thread(
            kube_status.annotate,
            db.namespace,
            db.name,
            {names.ANNOTATION_SWITCHOVER: None, names.ANNOTATION_FORCE: None},
        )

    old = snapshot.primary
    if target == old:
        await done()
        return
    probe = snapshot.probes.get(target)
    lag = snapshot.lags.get(target)
    if probe is None or not probe.is_replica:
        await daemon.event("Warning", "SwitchoverRefused", f"{target} is not a healthy replica")
        await done()
        return
    if not force and lag is not None and (lag.replay_bytes or 0) > db.failover.max_lag_bytes:
        await daemon.event(
            "Warning",
            "SwitchoverRefused",
            f"{target} is {lag.replay_bytes} bytes behind, more than "
            f"spec.failover.maxLagBytes; annotate {names.ANNOTATION_FORCE}=true to force",
        )
        await done()
        return
    started = time.monotonic()
    final_lsn = snapshot.last_primary_lsn
    old_dsn = dsns.get(old)
    await daemon.write_status(
        {
            "targetPrimary": target,
            "phase": "SwitchingOver",
            "failover": failover_steps.failover_record(
                old, target, "switchover requested", "switchover"
            ),
        }
    )
    await asyncio.to_thread(pods.set_role_label, db.namespace, old, names.ROLE_FENCED)
    if old_dsn is not None:
        # No new writes; what was written so far is what the target must have.
        try:
            await instance_control.alter_system(old_dsn, {"default_transaction_read_only": "on"})
            async with instance_control.admin_connection(old_dsn) as conn:
                await conn.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE backend_type = 'client backend' AND pid <> pg_backend_pid() "
                    "AND application_name NOT LIKE 'replicadb-%'"
                )
            final_lsn = await instance_control.current_wal_lsn(old_dsn)
        except Exception as exc:  # the old primary died meanwhile: a failover's rules
            log.warning("switchover: old primary unreachable: %s", exc)
    if final_lsn is not None:
        await failover_steps.wait_for_switchover_catch_up(dsns[target], final_lsn)
    await asyncio.to_thread(kube_status.delete_pod, db.namespace, old, 30)
    outcome = await failover_steps.promote_and_record(
        db,
        old,
        target,
        0,
        dsns,
        daemon.write_status,
        "switchover requested",
        "switchover",
        started,
    )
    await done()
    if daemon.monitor is not None:
        daemon.monitor.set_primary(outcome.new_primary)
    await daemon.event("Normal", "SwitchedOver", f"{old} -> {target} in {outcome.seconds:.2f} s")
