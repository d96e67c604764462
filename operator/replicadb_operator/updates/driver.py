"""The roll, carried out for the monitor each round: read where the pods stand, ask
``roll.next_action``, do it (replace a pod, switch over, restart the primary in place), and
record the progress in status through the named transitions."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from functools import partial
from typing import Any

from replicadb_operator.builders import names, statefulsets
from replicadb_operator.dataplane.monitor import TopologySnapshot
from replicadb_operator.failover import decide, transitions
from replicadb_operator.failover.writer import Transition
from replicadb_operator.kube import apply as kube_apply
from replicadb_operator.kube import status as kube_status
from replicadb_operator.monitoring.pods import InstancePod
from replicadb_operator.spec import DatabaseSpec
from replicadb_operator.updates import lag_bound, progress, roll

log = logging.getLogger(__name__)
Apply = Callable[[Transition, str], Awaitable[dict[str, Any]]]
Event = Callable[[str, str, str], Awaitable[None]]
SwitchOver = Callable[[str, str], Awaitable[None]]
# A primary restarting in place that is not back within this long is a failed primary again.
PRIMARY_RESTART_TIMEOUT_S = 180.0


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _age_s(iso: str) -> float:
    try:
        return time.time() - datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0


def primary_restart(status: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The recorded in-place restart of the primary, if one stands."""
    recorded = (status.get("rollingUpdate") or {}).get("primaryRestart")
    return recorded if isinstance(recorded, Mapping) and recorded.get("pod") else None


class RollDriver:
    def __init__(self, namespace: str, apply: Apply, event: Event) -> None:
        self.namespace = namespace
        self.apply, self.event = apply, event
        self.unhealthy_since: dict[str, float] = {}

    # -- the primary restarting in place -----------------------------------------------
    async def follow_primary_restart(
        self,
        status: Mapping[str, Any],
        snapshot: TopologySnapshot,
        pod_map: Mapping[str, InstancePod],
    ) -> bool:
        """While the recorded restart lasts (True), the primary being down is no failure.
        Idempotent: a pod still running under the recorded uid is deleted (again)."""
        recorded = primary_restart(status)
        if recorded is None:
            return False
        name = str(recorded["pod"])
        pod = pod_map.get(name)
        probe = snapshot.probes.get(name)
        if pod is not None and pod.uid == recorded.get("uid") and not pod.deleting:
            await asyncio.to_thread(kube_status.delete_pod, self.namespace, name, None)
            return True
        back = pod is not None and pod.uid != recorded.get("uid") and pod.ready
        if back and probe is not None and probe.is_primary:
            await self.apply(transitions.primary_restart_over, "primary restarted")
            await self.event("Normal", "PrimaryRestarted", f"{name} is back as the primary")
            return False
        if _age_s(str(recorded.get("since") or "")) > PRIMARY_RESTART_TIMEOUT_S:
            await self.apply(transitions.primary_restart_over, "primary restart timed out")
            await self.event("Warning", "PrimaryRestartTimedOut",
                             f"{name} is not back after {PRIMARY_RESTART_TIMEOUT_S:.0f} s: "
                             "failover rules apply again")  # fmt: skip
            return False
        return True

    # -- one round of the roll -----------------------------------------------------------
    def members(
        self, db: DatabaseSpec, snapshot: TopologySnapshot, pod_map: Mapping[str, InstancePod]
    ) -> list[roll.Member]:
        now = time.monotonic()
        out = []
        for name, pod in sorted(pod_map.items()):
            probe = snapshot.probes.get(name)
            lag = snapshot.lags.get(name)
            is_primary = name == snapshot.primary
            answers = pod.ready and probe is not None and probe.reachable
            if is_primary:
                healthy = answers and probe is not None and probe.is_primary
            else:
                healthy = (answers and probe is not None and probe.streaming
                           and lag_bound.caught_up(db, lag))  # fmt: skip
            since = self.unhealthy_since.setdefault(name, now) if not healthy else now
            if healthy:
                self.unhealthy_since.pop(name, None)
            out.append(
                roll.Member(
                    name=name,
                    revision=pod.revision,
                    is_primary=is_primary,
                    healthy=healthy,
                    deleting=pod.deleting,
                    unhealthy_s=now - since,
                    lag_bytes=lag.replay_bytes if lag is not None else None,
                )
            )
        return out

    async def _templates_pending(self, db: DatabaseSpec, revision: str) -> str | None:
        """Why the StatefulSets would not yet make a pod of ``revision``, or None: a pod
        replaced before would come back on the old template."""
        for desired in (statefulsets.primary_statefulset(db), statefulsets.replica_statefulset(db)):
            live = await asyncio.to_thread(kube_apply.read, desired)
            name = desired["metadata"]["name"]
            if live is None:
                return f"StatefulSet {name} does not exist yet"
            annotations = live["spec"]["template"]["metadata"].get("annotations") or {}
            observed = (live.get("status") or {}).get("observedGeneration")
            if annotations.get(names.ANNOTATION_REVISION) != revision or (
                observed is not None and observed < live["metadata"].get("generation", 0)
            ):
                return f"StatefulSet {name} has not taken the new template yet"
        return None

    async def step(
        self,
        db: DatabaseSpec,
        status: Mapping[str, Any],
        snapshot: TopologySnapshot,
        pod_map: Mapping[str, InstancePod],
        switch_over: SwitchOver,
    ) -> dict[str, Any]:
        """One round; returns ``status.rollingUpdate`` as it now stands."""
        revision = statefulsets.revision(db)
        members = self.members(db, snapshot, pod_map)
        action = roll.next_action(revision, members, db.replicas + 1, db.updates)
        if action.verb is not roll.Verb.NOTHING and (
            pending := await self._templates_pending(db, revision)
        ):
            action = roll.Action(roll.Verb.NOTHING, roll.State.WAITING, pending)
        if action.verb is roll.Verb.SWITCH_OVER and action.pod is not None:
            refusal = decide.switchover_refusal(db, snapshot, action.pod, force=False)
            if refusal is not None:
                action = roll.Action(roll.Verb.NOTHING, roll.State.WAITING, refusal)
        before = dict(status.get("rollingUpdate") or {})
        after = progress.rolling_update_status(revision, members, action)
        await self._announce(before, after)
        written = await self.apply(partial(transitions.roll_observed, progress=after), "roll")
        await self._carry_out(action, pod_map, switch_over)
        return dict(written.get("rollingUpdate") or after)

    async def _announce(self, before: Mapping[str, Any], after: Mapping[str, Any]) -> None:
        """Events once per change of state, decided from status (so once across operators)."""
        if progress.roll_started(before, after):
            await self.event("Normal", "RollingUpdate",
                             f"rolling to revision {after['revision']}: "
                             f"{', '.join(after['outdatedInstances'])} to update")  # fmt: skip
        if progress.roll_finished(before, after):
            await self.event("Normal", "RollingUpdateDone",
                             f"every instance runs revision {after['revision']}")  # fmt: skip
        waiting = roll.State.WAITING_FOR_SWITCHOVER.value
        if after.get("state") == waiting and before.get("state") != waiting:
            await self.event("Normal", "WaitingForSwitchover", str(after.get("message")))

    async def _carry_out(
        self, action: roll.Action, pod_map: Mapping[str, InstancePod], switch_over: SwitchOver
    ) -> None:
        if action.pod is None or action.verb is roll.Verb.NOTHING:
            return
        log.info("%s: roll: %s", self.namespace, action.why)
        if action.verb is roll.Verb.RESTART_REPLICA:
            await self.event("Normal", "RestartingReplica", action.why)
            # The pod's own grace period: the image stops postgres with a fast shutdown.
            await asyncio.to_thread(kube_status.delete_pod, self.namespace, action.pod, None)
            self.unhealthy_since.pop(action.pod, None)
        elif action.verb is roll.Verb.SWITCH_OVER:
            await switch_over(action.pod, "rolling update: the primary runs an old revision")
        elif action.verb is roll.Verb.RESTART_PRIMARY:
            pod = pod_map[action.pod]
            await self.apply(
                partial(transitions.primary_restart_begun, pod=action.pod, uid=pod.uid,
                        now=_now()), "primary restart")  # fmt: skip
            await self.event("Normal", "RestartingPrimary", action.why)
            await asyncio.to_thread(kube_status.delete_pod, self.namespace, action.pod, None)
