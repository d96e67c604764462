"""Draining the primary's node (pure): switch over first, then let the pod go.

``kubectl drain`` cordons the node, then evicts its pods. The primary's own
PodDisruptionBudget (builders/disruption.py) refuses the eviction of whichever pod is
labelled primary, so the drain retries; meanwhile the monitor sees the primary's node
unschedulable and switches over to the replica on a schedulable node that lags least. Once
the old primary is a replica its label no longer matches, and the next eviction goes
through: the drain costs a switchover's write pause, and loses nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Set

from replicadb_operator.dataplane.monitor import TopologySnapshot
from replicadb_operator.failover import decide
from replicadb_operator.monitoring.pods import InstancePod
from replicadb_operator.spec import DatabaseSpec


def drain_target(
    db: DatabaseSpec,
    snapshot: TopologySnapshot,
    pod_map: Mapping[str, InstancePod],
    cordoned: Set[str],
) -> str | None:
    """The replica to switch over to because the primary's node is cordoned, or None (the
    node is schedulable, or no replica elsewhere may take over yet)."""
    primary = pod_map.get(snapshot.primary)
    if primary is None or primary.node is None or primary.node not in cordoned:
        return None
    eligible = [
        name
        for name, pod in pod_map.items()
        if name != snapshot.primary
        and pod.ready
        and not pod.gone
        and pod.node not in cordoned
        and decide.switchover_refusal(db, snapshot, name, force=False) is None
    ]

    def lag(name: str) -> int:
        known = snapshot.lags.get(name)
        return (known.replay_bytes or 0) if known is not None else 0

    return min(eligible, key=lambda n: (lag(n), n), default=None)
