"""The per-database monitor loop (one Kopf daemon per ReplicatedDatabase).

Every probe interval: read the status (the record of who is primary and of any plan under
way), list the instance pods, probe each (primary first), finish a recorded failover or
switchover, start one when the primary failed or a switchover is asked for, keep role labels
and synchronous_standby_names in step, and write what it saw. Nothing that decides a
failover lives only here: the monitor starts from status (see ``failover.recorded``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from functools import partial
from typing import Any

from psycopg.conninfo import conninfo_to_dict, make_conninfo

from replicadb_operator.builders import names
from replicadb_operator.dataplane import instance_control
from replicadb_operator.dataplane.config_files import SUPERUSER
from replicadb_operator.dataplane.lsn import format_lsn
from replicadb_operator.dataplane.monitor import TopologyMonitor, TopologySnapshot
from replicadb_operator.dataplane.probe import ProbeTimeouts
from replicadb_operator.dataplane.sync_standbys import (
    confirming_standbys,
    required_sync_standbys,
    synchronous_standby_names,
)
from replicadb_operator.failover import crash_points, decide, plan, steps, transitions
from replicadb_operator.failover.record import Basis, FailoverRecord, Kind, Step
from replicadb_operator.failover.recorded import RecordedTopology
from replicadb_operator.failover.writer import StatusWriter, Transition
from replicadb_operator.kube import status as kube_status
from replicadb_operator.monitoring import drain, metrics, pods, status_model
from replicadb_operator.monitoring.config_reload import ConfigReloader
from replicadb_operator.monitoring.failure_detection import PrimaryFailureDetector
from replicadb_operator.reconcile import read_password
from replicadb_operator.spec import DatabaseSpec
from replicadb_operator.updates import lag_bound
from replicadb_operator.updates.driver import RollDriver, primary_restart

log = logging.getLogger(__name__)
STUCK_REPLICA_S = 3.0


def _iso_now() -> str:
    """Milliseconds: a failover's duration is measured from the recorded decision."""
    return (
        time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
        + f".{int(time.time() * 1000) % 1000:03d}Z"
    )


class DatabaseDaemon:
    def __init__(self, namespace: str, name: str, uid: str) -> None:
        self.namespace, self.name, self.uid = namespace, name, uid
        self.writer = StatusWriter(namespace, name)
        self.monitor: TopologyMonitor | None = None
        self.zones = pods.ZoneCache()
        self.last_write_at = 0.0
        self.last_phase: str | None = None
        self.detector = PrimaryFailureDetector()
        self.not_streaming_since: dict[str, float] = {}
        # Where each instance last answered (a replaced pod's old container may still serve
        # there); status' instance addresses stand in for it after a restart.
        self.last_answered: dict[str, str] = {}
        self.reloader = ConfigReloader()
        self.roller = RollDriver(namespace, self.apply, self.event)
        self._password: tuple[float, str] | None = None
        metrics.start_database(namespace, name)

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

    async def apply(self, transition: Transition, what: str = "") -> dict[str, Any]:
        """Every status write goes through the one writer (see failover.writer)."""
        status = await asyncio.to_thread(self.writer.apply, transition, what)
        self.last_write_at = time.monotonic()
        metrics.STATUS_WRITES.labels(self.namespace, self.name).inc()
        return status

    async def event(self, kind: str, reason: str, message: str) -> None:
        log.info("%s/%s %s: %s", self.namespace, self.name, reason, message)
        await asyncio.to_thread(
            kube_status.post_event, self.namespace, self.name, self.uid, kind, reason, message
        )

    # -- one iteration ---------------------------------------------------------------------
    async def step(self, db: DatabaseSpec, annotations: Mapping[str, str]) -> None:
        status = await asyncio.to_thread(self.writer.refresh)
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
        recorded = RecordedTopology.from_status(status)
        recorded.seed(self.monitor)  # a no-op once this monitor saw the primary itself
        await self.monitor.set_instances(dsns)
        if self.monitor.primary != primary:
            self.monitor.set_primary(primary)
        snapshot = await self.monitor.sample()
        self._record_metrics(db, snapshot)
        for name, probe in snapshot.probes.items():
            if probe.reachable and name in dsns:
                self.last_answered[name] = str(conninfo_to_dict(dsns[name]).get("host"))

        record = FailoverRecord.from_status(status)
        if record is not None:
            await self._run_plan(db, record, dsns, pod_map)
            return
        if not status.get("primary"):
            if snapshot.probes[primary].is_primary:
                await self.apply(partial(transitions.initialized, primary=primary), "init")
                await self.event("Normal", "Initialized", f"{primary} is the primary")
        elif switch_to := annotations.get(names.ANNOTATION_SWITCHOVER):
            force = annotations.get(names.ANNOTATION_FORCE, "").lower() == "true"
            await self._switchover(db, status, snapshot, dsns, pod_map, switch_to, force)
            return
        elif primary_restart(status) is not None:
            # Restarting in place (primaryUpdateMethod: restart): down is no failure.
            if not await self.roller.follow_primary_restart(status, snapshot, pod_map):
                self.detector.reset()  # back under a new pod: judge it afresh
        elif await self._maybe_fail_over(
            db, status, snapshot, dsns, pod_map, recorded
        ) or await self._leave_drained_node(db, snapshot, dsns, pod_map):
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
        rolling: dict[str, Any] = {}
        if status.get("primary"):
            switch = partial(self._roll_switchover, db, snapshot, dsns, pod_map)
            try:
                rolling = await self.roller.step(db, status, snapshot, pod_map, switch)
            except transitions.Refused as exc:  # status moved on: decide again next round
                log.info("%s: roll step refused (%s)", db.name, exc)
                return
            after = self.writer.status
            if FailoverRecord.from_status(after) is not None or after.get("primary") != primary:
                return  # the roll switched over: this round's probes are of the old topology
        await self._write_summary(db, self.writer.status, snapshot, pod_map, rolling)

    # -- failover and switchover: decided here, carried out by failover.plan ---------------
    async def _run_plan(
        self,
        db: DatabaseSpec,
        record: FailoverRecord,
        dsns: dict[str, str],
        pod_map: dict[str, pods.InstancePod],
    ) -> None:
        assert self.monitor is not None
        ctx = plan.PlanContext(db, dsns, pod_map, self.monitor, self.apply, self.event)
        try:
            if await plan.run(ctx, record) is None:
                self.detector.reset()
        except transitions.Refused as exc:  # another writer moved status on: next round
            log.info("%s: plan step refused (%s); deciding again", db.name, exc)

    def _old_address(self, old: str, recorded: RecordedTopology) -> str | None:
        return self.last_answered.get(old) or recorded.addresses.get(old)

    async def _begin(
        self, kind: Kind, old: str, target: str, reason: str, basis: Basis, address: str | None,
        last_lsn: str | None, lag_bytes: int | None,
    ) -> bool:  # fmt: skip
        try:
            await self.apply(
                partial(transitions.begin, kind=kind, old=old, target=target, reason=reason,
                        now=_iso_now(), basis=basis, old_address=address,
                        old_last_lsn=last_lsn, lag_bytes=lag_bytes),
                f"begin {kind}",
            )  # fmt: skip
        except transitions.Refused as exc:
            log.info("%s: not starting a %s: %s", self.name, kind, exc)
            return False
        crash_points.after_step(kind, Step.DECIDE)
        return True

    async def _maybe_fail_over(
        self,
        db: DatabaseSpec,
        status: Mapping[str, Any],
        snapshot: TopologySnapshot,
        dsns: dict[str, str],
        pod_map: dict[str, pods.InstancePod],
        recorded: RecordedTopology,
    ) -> bool:
        reason = self.detector.verdict(db, snapshot, pod_map.get(snapshot.primary))
        blocked = metrics.FAILOVER_BLOCKED.labels(self.namespace, self.name)
        if reason is None:
            if snapshot.primary_failures == 0 and status.get("failoverBlocked"):
                await self.apply(transitions.unblock, "unblock")  # it answers again
            blocked.set(0)  # nothing to replace
            return False
        decision = decide.failover_target(db, snapshot)
        if decision.target is None:
            if status.get("failoverBlocked") != decision.why:
                await self.event("Warning", "FailoverBlocked", decision.why)
                await self.apply(partial(transitions.block, reason=decision.why), "block")
            blocked.set(1)
            return False
        blocked.set(0)
        assert self.monitor is not None
        basis = Basis.PROBES if self.monitor.primary_seen_alive else Basis.RECORDED
        old = snapshot.primary
        begun = await self._begin(
            Kind.FAILOVER, old, decision.target, reason, basis,
            self._old_address(old, recorded), decision.old_last_lsn, decision.lag_bytes,
        )  # fmt: skip
        if not begun:
            return True
        await self.event("Warning", "FailingOver", f"{old}: {reason}; target {decision.target}")
        if basis is Basis.RECORDED:
            await self.event(
                "Warning",
                "DecidedOnRecordedPositions",
                f"this operator never saw {old} alive: {decision.target} was chosen on the "
                "sync states and positions recorded in status by an earlier operator",
            )
        await self._run_plan(db, self._record(), dsns, pod_map)
        return True

    def _record(self) -> FailoverRecord:
        record = FailoverRecord.from_status(self.writer.status)
        assert record is not None
        return record

    async def _switchover(
        self,
        db: DatabaseSpec,
        status: Mapping[str, Any],
        snapshot: TopologySnapshot,
        dsns: dict[str, str],
        pod_map: dict[str, pods.InstancePod],
        target: str,
        force: bool,
    ) -> None:
        """Planned, zero-loss: recorded as a switchover, carried out by the same plan."""
        old = snapshot.primary
        refusal = None if target == old else decide.switchover_refusal(db, snapshot, target, force)
        begun = False
        if refusal is not None:
            await self.event("Warning", "SwitchoverRefused", refusal)
        elif target != old:
            begun = await self._begin_switchover(snapshot, target, "switchover requested")
        # The request is recorded (or refused): the annotation has done its job.
        await asyncio.to_thread(
            kube_status.annotate,
            db.namespace,
            db.name,
            {names.ANNOTATION_SWITCHOVER: None, names.ANNOTATION_FORCE: None},
        )
        if begun:
            await self._run_plan(db, self._record(), dsns, pod_map)

    async def _begin_switchover(self, snapshot: TopologySnapshot, target: str, reason: str) -> bool:
        """Record a switchover from the current primary to ``target`` (decided on probes)."""
        old, last = snapshot.primary, snapshot.last_primary_lsn
        return await self._begin(
            Kind.SWITCHOVER, old, target, reason, Basis.PROBES, self.last_answered.get(old),
            format_lsn(last) if last is not None else None, 0,
        )  # fmt: skip

    async def _roll_switchover(
        self,
        db: DatabaseSpec,
        snapshot: TopologySnapshot,
        dsns: dict[str, str],
        pod_map: dict[str, pods.InstancePod],
        target: str,
        reason: str,
    ) -> None:
        """The roll's switchover: the same recorded plan as one the user asks for."""
        if await self._begin_switchover(snapshot, target, reason):
            await self.event("Normal", "SwitchingOver", f"{snapshot.primary} -> {target}: {reason}")
            await self._run_plan(db, self._record(), dsns, pod_map)

    async def _leave_drained_node(
        self,
        db: DatabaseSpec,
        snapshot: TopologySnapshot,
        dsns: dict[str, str],
        pod_map: dict[str, pods.InstancePod],
    ) -> bool:
        """The primary's node is being drained: switch over before its pod is evicted (its
        PodDisruptionBudget holds the eviction until it is no longer primary)."""
        primary = pod_map.get(snapshot.primary)
        node = primary.node if primary is not None else None
        if (
            node is None
            or not snapshot.primary_probe.is_primary
            or not await asyncio.to_thread(pods.node_cordoned, node)
        ):
            return False
        others = {p.node for p in pod_map.values() if p.node is not None} - {node}
        cordoned = {node} | {n for n in others if await asyncio.to_thread(pods.node_cordoned, n)}
        target = drain.drain_target(db, snapshot, pod_map, cordoned)
        if target is None:
            return False
        await self._roll_switchover(
            db, snapshot, dsns, pod_map, target, f"node {node} of {snapshot.primary} is drained"
        )
        return True

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
                    await asyncio.to_thread(
                        pods.set_role_label, db.namespace, name, names.ROLE_FENCED
                    )
                    await steps.stop_postgres(self.monitor.dsn_of(name) if self.monitor else None)
                    continue
                want = names.ROLE_PRIMARY if probe.is_primary else names.ROLE_REPLICA
            elif name != snapshot.primary:
                want = None  # an unreachable replica leaves the read-only Service
            labels: dict[str, str | None] = {}
            if want != pod.role_label:
                labels[names.LABEL_ROLE] = want
            if want == names.ROLE_REPLICA:
                # Over spec.readOnly's lag bound: out of the read-only Service until caught up.
                lag = lag_bound.lag_label(db, snapshot.lags.get(name))
                if lag != pod.lag_label:
                    labels[names.LABEL_LAG] = lag
            if labels:
                await asyncio.to_thread(pods.set_labels, db.namespace, name, labels)

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

    # -- status and metrics ------------------------------------------------------------------
    async def _write_summary(
        self,
        db: DatabaseSpec,
        status: Mapping[str, Any],
        snapshot: TopologySnapshot,
        pod_map: dict[str, pods.InstancePod],
        rolling: Mapping[str, Any],
    ) -> None:
        primary_probe = snapshot.probes.get(snapshot.primary)
        primary_answers = primary_probe is not None and primary_probe.is_primary
        # While the primary does not answer, status keeps what it last said (sync states, its
        # position): a status written without them left the next operator nothing to decide
        # on, and it refused every standby as "not a synchronous standby" (issue 12).
        sync_states = (
            {p.application_name: p.sync_state for p in primary_probe.replication}
            if primary_probe is not None and primary_answers
            else snapshot.sync_states
        )
        instances = []
        known_timelines = {c.name: c.timeline for c in snapshot.candidates}
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
                    snapshot.last_primary_lsn if name == snapshot.primary else None,
                    known_timelines.get(name),
                )
            )
        new = status_model.summary(
            db,
            snapshot.primary,
            instances,
            status.get("conditions") or [],
            failing_over=None,
            blocked=status.get("failoverBlocked"),
            rolling=rolling,
        )
        new["timeline"] = snapshot.primary_timeline
        since = time.monotonic() - self.last_write_at
        if status_model.needs_write(status, new, since):
            await self.apply(partial(transitions.observe, summary=new), "observe")
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
        for name, probe in snapshot.probes.items():
            labels = (db.namespace, db.name, name)
            if name == snapshot.primary:
                metrics.forget_series(metrics.REPLICA_STREAMING, *labels)
            else:  # an unreachable replica streams nothing we know of
                metrics.REPLICA_STREAMING.labels(*labels).set(1 if probe.streaming else 0)
        primary = snapshot.probes.get(snapshot.primary)
        if primary is not None and primary.is_primary:
            confirming = confirming_standbys(primary.replication)
            metrics.SYNC_STANDBYS.labels(db.namespace, db.name).set(confirming)
        required = required_sync_standbys(db.replication)
        metrics.SYNC_STANDBYS_REQUIRED.labels(db.namespace, db.name).set(required)

    async def close(self) -> None:
        if self.monitor is not None:
            await self.monitor.close()
