"""The per-database monitor loop (one Kopf daemon per ReplicatedDatabase).

Every probe interval: list the instance pods, probe each (primary first), keep role labels
and synchronous_standby_names in step, detect a failed primary and fail over, carry out a
requested switchover, and write the status when it changed meaningfully.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from typing import Any

from psycopg.conninfo import make_conninfo

from replicadb_operator.builders import names
from replicadb_operator.dataplane import instance_control
from replicadb_operator.dataplane.config_files import SUPERUSER
from replicadb_operator.dataplane.failover import failover_policy
from replicadb_operator.dataplane.failover_target import choose_failover_target
from replicadb_operator.dataplane.monitor import TopologyMonitor, TopologySnapshot
from replicadb_operator.dataplane.probe import ProbeTimeouts
from replicadb_operator.dataplane.sync_standbys import synchronous_standby_names
from replicadb_operator.kube import status as kube_status
from replicadb_operator.monitoring import failover_steps, metrics, pods, status_model
from replicadb_operator.monitoring.config_reload import ConfigReloader
from replicadb_operator.monitoring.failure_detection import PrimaryFailureDetector
from replicadb_operator.monitoring.switchover import run_switchover
from replicadb_operator.reconcile import read_password
from replicadb_operator.spec import DatabaseSpec

log = logging.getLogger(__name__)
STUCK_REPLICA_S = 3.0


class DatabaseDaemon:
    def __init__(self, namespace: str, name: str, uid: str) -> None:
        self.namespace, self.name, self.uid = namespace, name, uid
        self.monitor: TopologyMonitor | None = None
        self.zones = pods.ZoneCache()
        self.written: dict[str, Any] = {}  # what we last wrote (the watch may lag behind)
        self.last_write_at = 0.0
        self.last_phase: str | None = None
        self.blocked_reason: str | None = None
        self.detector = PrimaryFailureDetector()
        self.not_streaming_since: dict[str, float] = {}
        # Where each instance last answered a probe (its pod may since have a new address).
        self.last_seen_dsn: dict[str, str] = {}
        self.reloader = ConfigReloader()
        self._password: tuple[float, str] | None = None

    # -- helpers ---------------------------------------------------------------------------
    async def _superuser_password(self, db: DatabaseSpec) -> str:
        if self._password is None or time.monotonic() - self._password[0] > 60:
            secret = names.credentials_secret(db, "superuser")
            value = await asyncio.to_thread(read_password, db.namespace, secret)
            self._password = (time.monotonic(), value)
        return self._password[1]

    def _dsn(self, ip: str, password: str, db: DatabaseSpec) -> str:
        return make_conninfo(
            "",
            host=ip,
            port=names.PG_PORT,
            user=SUPERUSER,
            password=password,
            dbname="postgres",
            sslmode="require" if db.tls.required else "prefer",
        )

    async def write_status(self, fields: dict[str, Any]) -> None:
        await asyncio.to_thread(kube_status.patch_status, self.namespace, self.name, fields)
        self.written.update(fields)
        self.last_write_at = time.monotonic()
        metrics.STATUS_WRITES.labels(self.namespace, self.name).inc()

    async def event(self, kind: str, reason: str, message: str) -> None:
        log.info("%s/%s %s: %s", self.namespace, self.name, reason, message)
        await asyncio.to_thread(
            kube_status.post_event, self.namespace, self.name, self.uid, kind, reason, message
        )

    # -- one iteration ---------------------------------------------------------------------
    async def step(
        self, db: DatabaseSpec, status_in: Mapping[str, Any], annotations: Mapping[str, str]
    ) -> None:
        status = {**status_in, **self.written}
        target = status.get("targetPrimary")
        if not target:
            return  # the reconcile has not named a primary yet
        primary = status.get("primary") or target
        password = await self._superuser_password(db)
        pod_map = await asyncio.to_thread(pods.list_instance_pods, db.namespace, db.name)
        dsns = {
            p.name: self._dsn(p.ip, password, db)
            for p in pod_map.values()
            if p.ip and not p.deleting
        }
        if self.monitor is None:
            self.monitor = TopologyMonitor(dsns, primary, ProbeTimeouts())
        await self.monitor.set_instances(dsns)
        if self.monitor.primary != primary:
            self.monitor.set_primary(primary)
        snapshot = await self.monitor.sample()
        self._record_metrics(db, snapshot)
        for name, probe in snapshot.probes.items():
            if probe.reachable and name in dsns:
                self.last_seen_dsn[name] = dsns[name]

        if status.get("failover"):
            await self._resume_failover(db, status, snapshot, dsns, pod_map)
            return
        if not status.get("primary"):
            if snapshot.probes[primary].is_primary:
                await self.write_status({"primary": primary, "initialized": True})
                await self.event("Normal", "Initialized", f"{primary} is the primary")
        elif switch_to := annotations.get(names.ANNOTATION_SWITCHOVER):
            force = annotations.get(names.ANNOTATION_FORCE, "").lower() == "true"
            await run_switchover(self, db, snapshot, dsns, pod_map, switch_to, force)
            return
        elif await self._maybe_fail_over(
            db, snapshot, dsns, pod_map, bool(status.get("failoverBlocked"))
        ):
            return
        await self._keep_labels(db, snapshot, pod_map)
        await self._keep_sync_standbys(db, snapshot, pod_map)
        await self._restart_stuck_replicas(snapshot)
        reachable = {
            n: d
            for n, d in dsns.items()
            if snapshot.probes.get(n, None) is not None and snapshot.probes[n].reachable
        }
        if reloaded := await self.reloader.reload_where_needed(db, reachable):
            log.info("%s: configuration reloaded on %s", db.name, ", ".join(reloaded))
        await self._write_summary(db, status, snapshot, pod_map)

    # -- roles -------------------------------------------------------------------------------
    async def _keep_labels(
        self, db: DatabaseSpec, snapshot: TopologySnapshot, pod_map: dict[str, pods.InstancePod]
    ) -> None:
        for name, pod in pod_map.items():
            if pod.deleting:
                continue
            probe = snapshot.probes.get(name)
            want: str | None = pod.role_label
            if probe is not None and probe.reachable:
                if probe.is_primary and name != snapshot.primary:
                    # Writable but not the recorded primary: never let it serve; restart it
                    # so that its entrypoint rewinds it into a replica.
                    await self.event(
                        "Warning", "Fenced", f"{name} accepted writes but is not the primary"
                    )
                    dsn = self.monitor.dsn_of(name) if self.monitor else None
                    await failover_steps.fence(db, name, pod_exists=True, dsn=dsn)
                    continue
                want = names.ROLE_PRIMARY if probe.is_primary else names.ROLE_REPLICA
            elif name != snapshot.primary:
                want = None  # an unreachable replica leaves the read-only Service
            if want != pod.role_label:
                await asyncio.to_thread(pods.set_role_label, db.namespace, name, want)

    async def _keep_sync_standbys(
        self, db: DatabaseSpec, snapshot: TopologySnapshot, pod_map: dict[str, pods.InstancePod]
    ) -> None:
        primary = snapshot.probes.get(snapshot.primary)
        if primary is None or not primary.is_primary or self.monitor is None:
            return
        replicas = [n for n in pod_map if n != snapshot.primary]
        healthy = [n for n in replicas if (p := snapshot.probes.get(n)) is not None and p.streaming]
        want = synchronous_standby_names(db.replication, replicas, healthy)
        dsn = self.monitor.dsn_of(snapshot.primary)
        if want != primary.synchronous_standby_names and dsn is not None:
            await instance_control.set_synchronous_standby_names(dsn, want)
            log.info("%s: synchronous_standby_names = %r", db.name, want)

    async def _restart_stuck_replicas(self, snapshot: TopologySnapshot) -> None:
        """A replica that is up but has not streamed from a healthy primary for
        ``STUCK_REPLICA_S`` gets a new pod, whose entrypoint rewinds it if it diverged and
        points it at the current primary. Seen after repointing: a standby that stays asleep
        (no WAL receiver started, nothing logged)."""
        primary = snapshot.probes.get(snapshot.primary)
        now = time.monotonic()
        for name, probe in snapshot.probes.items():
            stuck = (
                primary is not None
                and primary.is_primary
                and name != snapshot.primary
                and probe.is_replica
                and not probe.streaming
            )
            if not stuck:
                self.not_streaming_since.pop(name, None)
                continue
            since = self.not_streaming_since.setdefault(name, now)
            if now - since >= STUCK_REPLICA_S and self.monitor is not None:
                self.not_streaming_since.pop(name, None)
                await self.event(
                    "Warning",
                    "ReplicaRestarted",
                    f"{name} has not streamed from {snapshot.primary} for {now - since:.0f} s",
                )
                # A new pod, not a container restart: seen on the cluster, a standby that
                # slept through a repoint did the same again after a restart in place.
                await asyncio.to_thread(kube_status.delete_pod, self.namespace, name, 5)

    # -- failover ----------------------------------------------------------------------------
    async def _maybe_fail_over(
        self,
        db: DatabaseSpec,
        snapshot: TopologySnapshot,
        dsns: dict[str, str],
        pod_map: dict[str, pods.InstancePod],
        blocked_in_status: bool = False,
    ) -> bool:
        reason = self.detector.verdict(db, snapshot, pod_map.get(snapshot.primary))
        if reason is None:
            if snapshot.primary_failures == 0:
                self.blocked_reason = None
                if blocked_in_status:  # the primary answers again: nothing is blocked now
                    await self.write_status({"failoverBlocked": None})
            return False
        if not db.failover.enabled:
            await self._blocked(db, "automatic failover is disabled (spec.failover.enabled)")
            return False
        policy = failover_policy(snapshot, db.replication, db.failover.max_lag_bytes)
        choice = choose_failover_target(snapshot.candidates, policy)
        if choice.target is None:
            reasons = "; ".join(f"{n}: {why}" for n, why in sorted(choice.rejected.items()))
            await self._blocked(db, f"no replica may be promoted: {choice.reason}. {reasons}")
            return False
        await self._fail_over(db, snapshot, dsns, pod_map, choice.target, reason)
        return True

    async def _blocked(self, db: DatabaseSpec, reason: str) -> None:
        if reason != self.blocked_reason:
            self.blocked_reason = reason
            await self.event("Warning", "FailoverBlocked", reason)
            await self.write_status({"failoverBlocked": reason})

    async def _fail_over(
        self,
        db: DatabaseSpec,
        snapshot: TopologySnapshot,
        dsns: dict[str, str],
        pod_map: dict[str, pods.InstancePod],
        tentative: str,
        reason: str,
    ) -> None:
        """Record, fence, then choose again among replicas that can no longer receive
        anything from the old primary, and promote."""
        started = time.monotonic()
        old = snapshot.primary
        await self.write_status(
            {
                "targetPrimary": tentative,
                "phase": "FailingOver",
                "failoverBlocked": None,
                "failover": failover_steps.failover_record(old, tentative, reason, "failover"),
            }
        )
        await self.event("Warning", "FailingOver", f"{old}: {reason}")
        old_pod = pod_map.get(old)
        await failover_steps.fence(
            db,
            old,
            pod_exists=old_pod is not None and not old_pod.deleting,
            dsn=dsns.get(old),
            last_seen_dsn=self.last_seen_dsn.get(old),
        )
        # Cut the replicas off the old primary: whatever still runs of it (a force-deleted
        # pod's container lives on for seconds) can then get no synchronous acknowledgement,
        # so it acknowledges nothing that the replica promoted below might lack.
        await failover_steps.detach_replicas({n: d for n, d in dsns.items() if n != old})
        target, lag_bytes = tentative, None
        if self.monitor is not None:
            fresh = await self.monitor.sample(primary_known_down=True)
            policy = failover_policy(fresh, db.replication, db.failover.max_lag_bytes)
            choice = choose_failover_target(fresh.candidates, policy)
            if choice.target is not None:
                target, lag_bytes = choice.target, choice.lag_bytes
        if target != tentative:
            await self.write_status(
                {
                    "targetPrimary": target,
                    "failover": failover_steps.failover_record(old, target, reason, "failover"),
                }
            )
        outcome = await failover_steps.promote_and_record(
            db, old, target, lag_bytes, dsns, self.write_status, reason, "failover", started
        )
        self.blocked_reason = None
        self.detector.reset()
        if self.monitor is not None:
            self.monitor.set_primary(outcome.new_primary)
        await self.event(
            "Normal",
            "FailedOver",
            f"{old} -> {outcome.new_primary} in {outcome.seconds * 1000:.0f} ms ({reason}; "
            f"{outcome.lag_bytes or 0} bytes of the old primary's WAL not received)",
        )

    async def _resume_failover(
        self,
        db: DatabaseSpec,
        status: Mapping[str, Any],
        snapshot: TopologySnapshot,
        dsns: dict[str, str],
        pod_map: dict[str, pods.InstancePod],
    ) -> None:
        """An operator restarted mid-failover: finish what status says was started."""
        record = status["failover"]
        old, target = record["from"], record["to"]
        log.info("%s: resuming failover %s -> %s", db.name, old, target)
        if old in pod_map and pod_map[old].role_label != names.ROLE_FENCED:
            await failover_steps.fence(
                db,
                old,
                pod_exists=not pod_map[old].deleting,
                dsn=dsns.get(old),
                last_seen_dsn=self.last_seen_dsn.get(old),
            )
        if target not in dsns:
            return  # the target has no address yet; next round
        outcome = await failover_steps.promote_and_record(
            db,
            old,
            target,
            None,
            dsns,
            self.write_status,
            record.get("reason", ""),
            record.get("kind", "failover"),
            time.monotonic(),
        )
        if self.monitor is not None:
            self.monitor.set_primary(outcome.new_primary)
        await self.event("Normal", "FailedOver", f"{target} is the primary (resumed)")

    # -- status and metrics ------------------------------------------------------------------
    async def _write_summary(
        self,
        db: DatabaseSpec,
        status: Mapping[str, Any],
        snapshot: TopologySnapshot,
        pod_map: dict[str, pods.InstancePod],
    ) -> None:
        primary_probe = snapshot.probes.get(snapshot.primary)
        sync_states = {
            p.application_name: p.sync_state
            for p in (primary_probe.replication if primary_probe else ())
        }
        instances = []
        for name in sorted(set(pod_map) | set(snapshot.probes)):
            pod = pod_map.get(name)
            zone = await asyncio.to_thread(self.zones.zone, pod.node if pod else None)
            instances.append(
                status_model.instance_entry(
                    name,
                    pod,
                    snapshot.probes.get(name),
                    snapshot.lags.get(name),
                    zone,
                    sync_states.get(name),
                )
            )
        new = status_model.summary(
            db,
            snapshot.primary,
            instances,
            status.get("conditions") or [],
            blocked=self.blocked_reason,
        )
        new["timeline"] = snapshot.primary_timeline
        since = time.monotonic() - self.last_write_at
        if status_model.needs_write(status, new, since):
            await self.write_status(new)
        if new["phase"] != self.last_phase:
            if self.last_phase is not None:
                kind = "Normal" if new["phase"] == "Healthy" else "Warning"
                await self.event(kind, new["phase"], new["conditions"][0]["message"])
            self.last_phase = new["phase"]

    def _record_metrics(self, db: DatabaseSpec, snapshot: TopologySnapshot) -> None:
        for name, probe in snapshot.probes.items():
            labels = (db.namespace, db.name, name)
            metrics.INSTANCE_UP.labels(*labels).set(1 if probe.reachable else 0)
            metrics.INSTANCE_IS_PRIMARY.labels(*labels).set(1 if probe.is_primary else 0)
            metrics.PROBE_SECONDS.labels(db.namespace, db.name).observe(probe.duration_s)
        for name, lag in snapshot.lags.items():
            if lag.replay_bytes is not None:
                metrics.LAG_BYTES.labels(db.namespace, db.name, name).set(lag.replay_bytes)
                metrics.LAG_SECONDS.labels(db.namespace, db.name, name).set(lag.seconds or 0)
        if snapshot.primary_timeline is not None:
            metrics.TIMELINE.labels(db.namespace, db.name).set(snapshot.primary_timeline)

    async def close(self) -> None:
        if self.monitor is not None:
            await self.monitor.close()
