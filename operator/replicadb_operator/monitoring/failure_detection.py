"""When the primary counts as failed: the monitor's probes, and Kubernetes' word."""

from __future__ import annotations

from replicadb_operator.dataplane.heartbeat import PRIMARY_SILENT_S
from replicadb_operator.dataplane.monitor import TopologySnapshot
from replicadb_operator.monitoring.pods import InstancePod
from replicadb_operator.spec import DatabaseSpec


class PrimaryFailureDetector:
    def __init__(self) -> None:
        self.primary_seen: tuple[str, int] | None = None  # (pod uid, restarts) while healthy
        self.incident = False  # the primary failed a probe and has not recovered since

    def reset(self) -> None:
        self.primary_seen = None
        self.incident = False

    def verdict(
        self, db: DatabaseSpec, snapshot: TopologySnapshot, pod: InstancePod | None
    ) -> str | None:
        """Why the primary counts as failed, or None. Probes alone never decide: Kubernetes
        or the replicas must agree. An incident starts with the first failed probe and lasts
        until the pod is Ready and answering again. Within it, a pod gone or not Ready for
        ``failureThreshold`` probes confirms the failure, and so does, at once, a sign that
        postgres itself died: its container not running, restarted, or the pod replaced (a
        new UID). Without the latter, the kubelet or the StatefulSet would bring the old
        primary back before the threshold, with its clients gone and its state lost. A pod
        that stays Ready (its node is lost, and so is its kubelet) is confirmed failed by
        the replicas: none has heard from the primary for PRIMARY_SILENT_S."""
        failures = snapshot.primary_failures
        healthy = failures == 0 and pod is not None and pod.ready and not pod.container_down
        if healthy:
            assert pod is not None
            self.primary_seen = (pod.uid, pod.restarts)
            self.incident = False
            return None
        seen = self.primary_seen
        died = (
            pod is not None and seen is not None and (seen[0] != pod.uid or pod.restarts > seen[1])
        )
        if failures >= 1 or died:
            # A restart between two probes hides from the probes (the second attempt on a
            # fresh connection succeeds); the restart count does not.
            self.incident = True
        if not self.incident:
            return None
        if pod is None or pod.gone:
            if failures >= db.failover.failure_threshold:
                return f"{snapshot.primary} failed {failures} probes and its pod is gone"
            return None
        if seen is not None and seen[0] != pod.uid:
            return f"{snapshot.primary}'s pod was deleted and replaced"
        if (seen is not None and pod.restarts > seen[1]) or pod.container_down:
            return f"postgres in {snapshot.primary} died (its container stopped)"
        if failures >= db.failover.failure_threshold and not pod.ready:
            return f"{snapshot.primary} failed {failures} probes and its pod is not Ready"
        if failures >= db.failover.failure_threshold and replicas_lost_primary(snapshot):
            return (
                f"{snapshot.primary} failed {failures} probes and no replica has heard from it "
                f"for {PRIMARY_SILENT_S:.0f} s (its node is down or cut off)"
            )
        return None  # unreachable from here, but Kubernetes and the replicas say it is fine


def replicas_lost_primary(snapshot: TopologySnapshot, silent_s: float = PRIMARY_SILENT_S) -> bool:
    """The replicas' own view, independent of the operator's network path: every replica
    that answers has heard nothing from the primary (not even its heartbeat) for
    ``silent_s``. A lost node's pods stay Ready in the API for the node controller's grace
    period (50 s); this is the confirmation that does not wait for it. No replica
    answering is no confirmation."""
    replicas = [
        probe
        for name, probe in snapshot.probes.items()
        if name != snapshot.primary and probe.reachable and probe.is_replica
    ]
    return bool(replicas) and not any(
        p.wal_receiver is not None and p.wal_receiver.hears_primary(silent_s) for p in replicas
    )
