"""One measured node fault on a kind cluster, shared by e2e/test_failover.py and
`make bench-failover` (which adds these kinds where the nodes are the provider's containers).

The primary's node, through the provider (e2e/nodes.py), under the same writer and sampler
as the pod-level faults (failover_run.py), which runs on another node:
- ``node_loss``: the node's container killed (every process on it gone at once); started
  again once the new primary took a write;
- ``node_partition``: the node cut off the cluster network while everything on it runs; a
  second client on that node keeps writing to its local primary, directly: each write it
  gets acknowledged once the cut is in place counts as a dual-primary sample, and its first
  refused connection after that shows when the fence agent stopped that primary; healed
  once the new primary took a write;
- ``node_freeze``: the node paused for FREEZE_S, shorter than the detection window, then
  resumed: no failover may follow, and the outage is the longest gap between writes;
- ``node_drain``: the node drained (e2e/nodes.py ``drain``): a switchover, no failover;
  the outage is the longest gap between writes; uncordoned afterwards.
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Callable
from functools import partial
from typing import Any

from kubernetes import client
from replicadb_operator.peering import PEERING_LIFETIME_S

from e2e import incluster, kube, nodes
from e2e import operator_support as ops
from e2e.failover_run import (
    INSTANCE_IMAGE,
    PROGRESS,
    FailoverRun,
    first_write_by,
    start_writer,
    wait_new_primary,
    wait_rejoined,
    wait_settled,
)
from e2e.rolling_run import longest_gap

NODE_KINDS = ("node_loss", "node_partition", "node_freeze", "node_drain")
FREEZE_S = 3.0  # under the 5 s in which no replica hears the primary (dataplane/heartbeat.py)
QUIET_AFTER_S = 8.0  # writes watched after a freeze or drain: a late failover shows here
OPERATOR = "replicadb-operator"  # its Deployment in ops.SYSTEM


def _failed_over(before: Any, after: Any) -> int:
    return int(bool(after) and after != before and after.get("kind") == "failover")


def _address(status: dict[str, Any], name: str) -> str:
    return next(str(i["address"]) for i in status["instances"] if i["name"] == name)


class _Undo:
    """Undoes a fault once: when the measurement no longer needs it, or on any error."""

    def __init__(self) -> None:
        self._undo: Callable[[], None] | None = None

    def set(self, undo: Callable[[], None]) -> None:
        self._undo = undo

    def __call__(self) -> None:
        undo, self._undo = self._undo, None
        if undo is not None:
            undo()


class _Isolated:
    """The client on the primary's own node (node_partition)."""

    def __init__(self, api: client.ApiClient, namespace: str, name: str, node: str,
                 target: str, image: str) -> None:  # fmt: skip
        self.pod = incluster.ScriptPod(
            api, namespace, image, "isolated_writer.py", env={"TARGET": target},
            secret_env={"SUPERUSER_PASSWORD": (f"{name}-superuser", "password")}, node=node,
        )  # fmt: skip
        self.pod.wait_running()
        kube.wait_for(
            lambda: len((self.pod.read_json(PROGRESS) or {}).get("acked") or []) >= 10,
            60,
            "the client on the primary's node writing",
            interval=0.5,
        )

    def outcome(self, faulted_at: float) -> tuple[int, float | None]:
        """(writes acknowledged after the cut, seconds until its first refused connection),
        read once its node answers again."""
        progress: dict[str, Any] = {}

        def read() -> bool:
            nonlocal progress
            progress = self.pod.read_json(PROGRESS) or {}
            return bool(progress)

        kube.wait_for(read, 120, "the isolated client's record", interval=1.0)
        self.pod.touch("/tmp/stop")
        acked = [t for t in progress.get("acked") or [] if t > faulted_at]
        refused = [t for t in progress.get("refused") or [] if t > faulted_at]
        return len(acked), (min(refused) - faulted_at) if refused else None


def measure_node_fault(
    api: client.ApiClient,
    namespace: str,
    name: str,
    kind: str,
    provider: nodes.NodeProvider,
    timeout_s: float = 180,
    image: str = INSTANCE_IMAGE,
) -> FailoverRun:
    core = client.CoreV1Api(api)
    kube.wait_for(
        lambda: _operators_standing_by(api), timeout_s, "every operator replica up and peering"
    )
    status = wait_settled(api, namespace, name)
    old = str(status["primary"])
    before = status.get("lastFailover")
    node = str(core.read_namespaced_pod(old, namespace).spec.node_name)
    acting = ops.acting_operator(api)
    operator_on_node = core.read_namespaced_pod(acting, ops.SYSTEM).spec.node_name == node
    workload = start_writer(api, namespace, name, image, avoid_node=node)
    isolated: _Isolated | None = None
    undo = _Undo()  # the fault is undone whatever happens
    seen: list[str] = []
    try:
        if kind == "node_partition":
            isolated = _Isolated(api, namespace, name, node, _address(status, old), image)
        faulted_at = cut_at = incluster.wall_clock()
        if kind == "node_loss":
            undo.set(partial(provider.start, node))
            provider.kill(node)
        elif kind == "node_partition":
            undo.set(partial(provider.heal, node))
            provider.partition(node)
            cut_at = incluster.wall_clock()  # the client on the node is judged from here
        elif kind == "node_freeze":
            undo.set(partial(provider.unpause, node))
            provider.pause(node)
            time.sleep(FREEZE_S)  # the fault's own length, not a wait for a condition
        elif kind == "node_drain":
            undo.set(partial(nodes.cordon, core, node, False))
            nodes.drain(core, node, timeout_s)
        else:
            raise ValueError(f"unknown node fault {kind!r}; one of {NODE_KINDS}")
        if kind in ("node_loss", "node_partition"):
            new, address = wait_new_primary(api, namespace, name, old, kind, timeout_s, seen)
            first = first_write_by(workload, address, faulted_at, timeout_s, new)
            rto = first - faulted_at
            undo()
        else:
            if kind == "node_freeze":
                undo()
            ended = incluster.wall_clock()
            kube.wait_for(
                lambda: (
                    incluster.wall_clock() - ended >= QUIET_AFTER_S
                    and _writes_since(workload, ended + QUIET_AFTER_S - 1.0)
                ),
                timeout_s,
                f"{kind}: writes going on after it",
                interval=0.5,
            )
            rto = longest_gap(_all_writes(workload), faulted_at, incluster.wall_clock())
            first = faulted_at + rto
            undo()
        workload.touch("/tmp/stop-writer")
        after = ops.status(api, namespace, name)
        if after.get("primary") == old:
            rejoined_at = first  # never left
        else:
            rejoined_at = wait_rejoined(api, namespace, name, old, timeout_s)
        workload.touch("/tmp/stop")
        result = workload.wait_json("/tmp/result.json", 60, "the workload's result")
        isolated_acks, refused_after = isolated.outcome(cut_at) if isolated else (0, None)
    except BaseException:
        print(workload.logs()[-4000:])
        raise
    finally:
        undo()
        workload.delete()
        if isolated is not None:
            isolated.pod.delete()
    return FailoverRun(
        kind=kind,
        old_primary=old,
        new_primary=str(after.get("primary")),
        rto_s=rto,
        lost_acknowledged_writes=int(result["lost_acknowledged_writes"]),
        dual_primary_samples=int(result["dual_primary_samples"]) + isolated_acks,
        rejoin_s=rejoined_at - faulted_at,
        rejoin_after_failover_s=rejoined_at - first,
        acknowledged=int(result["acknowledged"]),
        statuses_seen=seen,
        failovers=_failed_over(before, after.get("lastFailover")),
        refused_after_s=refused_after,
        operator_on_node=operator_on_node,
    )


def _operators_standing_by(api: client.ApiClient) -> bool:
    """Both operator replicas Ready and keeping their peering records fresh: the previous
    node fault took one down with its node, and the kubelet restarts it with a growing
    back-off; a fault before it is back measures that back-off, not a takeover (seen:
    23 s instead of 10 s for five node losses in a row)."""
    deployment = client.AppsV1Api(api).read_namespaced_deployment(OPERATOR, ops.SYSTEM)
    pods = client.CoreV1Api(api).list_namespaced_pod(ops.SYSTEM, label_selector=ops.SELECTOR)
    ready = [
        p.metadata.name
        for p in pods.items
        if p.metadata.deletion_timestamp is None
        and any(c.type == "Ready" and c.status == "True" for c in p.status.conditions or [])
    ]
    peering = ops.custom(api).get_cluster_custom_object(
        "kopf.dev", "v1", "clusterkopfpeerings", ops.PEERING
    )
    now = datetime.datetime.now(datetime.UTC)
    fresh = {
        identity
        for identity, info in (peering.get("status") or {}).items()
        if info
        and (now - datetime.datetime.fromisoformat(info["lastseen"])).total_seconds()
        < float(info.get("lifetime", PEERING_LIFETIME_S))
    }
    return len(ready) == deployment.spec.replicas and set(ready) <= fresh


def _all_writes(workload: incluster.ScriptPod) -> list[float]:
    times = (workload.read_json(PROGRESS) or {}).get("times_by_server", {})
    return [t for server_times in times.values() for t in server_times]


def _writes_since(workload: incluster.ScriptPod, since: float) -> bool:
    return any(t >= since for t in _all_writes(workload))
