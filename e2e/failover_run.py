"""One measured failover on a real cluster, shared by the e2e test and `make bench-failover`.

A writer commits rows through router_lib (endpoints from the ReplicatedDatabase status) at a
steady rate; a sampler asks every instance every 100 ms whether it accepts writes; a fault is
injected into the primary. Measured: time from the fault to the first successful write,
acknowledged writes missing on the new primary, samples in which two instances accepted
writes, and time until the former primary streams again as a replica.

Writer and sampler run in a pod (e2e/in_cluster/failover_workload.py), where instance
addresses are reachable on any cluster; this side injects the fault and reads the status
through the Kubernetes API.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any

from kubernetes import client

from e2e import faults, incluster, kube
from e2e import operator_support as ops

INSTANCE_IMAGE = os.environ.get("REPLICADB_INSTANCE_IMAGE", "localhost/replicadb/instance:dev")
PROGRESS = "/tmp/progress.json"


@dataclass
class FailoverRun:
    kind: str
    old_primary: str
    new_primary: str
    rto_s: float
    lost_acknowledged_writes: int
    dual_primary_samples: int
    rejoin_s: float  # from the fault to the former primary streaming as a replica
    rejoin_after_failover_s: float  # from the new primary's first write to the same
    acknowledged: int
    statuses_seen: list[str] = field(default_factory=list)
    failovers: int = 1  # a node freeze or drain must cause none
    refused_after_s: float | None = None  # node_partition: the isolated primary stopped
    operator_on_node: bool = False  # the acting operator went down with the primary's node


def wait_settled(
    api: client.ApiClient, namespace: str, name: str, hold_s: float = 3.0, timeout_s: float = 300
) -> dict[str, Any]:
    """Healthy, with every replica streaming, for ``hold_s`` in a row: a fault injected while
    the last failover's former primary is still rejoining measures something else."""
    settled_since: float | None = None
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        st = ops.status(api, namespace, name)
        replicas = [i for i in st.get("instances") or [] if i["name"] != st.get("primary")]
        ok = st.get("phase") == "Healthy" and all(i.get("state") == "streaming" for i in replicas)
        if not ok:
            settled_since = None
        elif settled_since is None:
            settled_since = time.monotonic()
        elif time.monotonic() - settled_since >= hold_s:
            return st
        time.sleep(0.5)
    raise TimeoutError(f"{name} did not settle within {timeout_s} s")


def start_writer(
    api: client.ApiClient,
    namespace: str,
    name: str,
    image: str = INSTANCE_IMAGE,
    avoid_node: str | None = None,
) -> incluster.ScriptPod:
    """The writer and dual-primary sampler pod (in_cluster/failover_workload.py), once it has
    20 acknowledged writes: an outage is measured from a working state. The caller deletes it.
    ``avoid_node``: a node about to fail, which must not take the writer with it."""
    workload = incluster.ScriptPod(
        api,
        namespace,
        image,
        "failover_workload.py",
        env={"RDB_NAME": name, "RDB_NAMESPACE": namespace},
        secret_env={
            "SUPERUSER_PASSWORD": (f"{name}-superuser", "password"),
            "APP_PASSWORD": (f"{name}-app", "password"),
        },
        avoid_node=avoid_node,
    )
    try:
        workload.wait_running()
        kube.wait_for(
            lambda: ((workload.read_json(PROGRESS) or {}).get("acknowledged") or 0) >= 20,
            120,
            "the workload pod writing",
            interval=0.5,
        )
    except BaseException:
        print(workload.logs()[-4000:])
        workload.delete()
        raise
    return workload


def measure_failover(
    api: client.ApiClient,
    namespace: str,
    name: str,
    kind: str,
    timeout_s: float = 120,
    image: str = INSTANCE_IMAGE,
) -> FailoverRun:
    core = client.CoreV1Api(api)
    status = wait_settled(api, namespace, name)
    old = str(status["primary"])
    workload = start_writer(api, namespace, name, image)
    seen: list[str] = []
    try:
        faulted_at = incluster.wall_clock()
        faults.inject(core, namespace, old, kind)
        new, address = wait_new_primary(api, namespace, name, old, kind, timeout_s, seen)
        first = first_write_by(workload, address, faulted_at, timeout_s, new)
        workload.touch("/tmp/stop-writer")
        rejoined_at = wait_rejoined(api, namespace, name, old, timeout_s)
        workload.touch("/tmp/stop")
        result = workload.wait_json("/tmp/result.json", 60, "the workload's result")
    except BaseException:
        print(workload.logs()[-4000:])
        raise
    finally:
        workload.delete()
    return FailoverRun(
        kind=kind,
        old_primary=old,
        new_primary=new,
        rto_s=first - faulted_at,
        lost_acknowledged_writes=int(result["lost_acknowledged_writes"]),
        dual_primary_samples=int(result["dual_primary_samples"]),
        rejoin_s=rejoined_at - faulted_at,
        rejoin_after_failover_s=rejoined_at - first,
        acknowledged=int(result["acknowledged"]),
        statuses_seen=seen,
    )


def first_write_by(
    workload: incluster.ScriptPod, address: str, after: float, timeout_s: float, who: str
) -> float:
    """When the writer's first write acknowledged by ``address`` after ``after`` was: the
    end of an outage."""
    first: float | None = None

    def acknowledged() -> bool:
        nonlocal first
        times = (workload.read_json(PROGRESS) or {}).get("times_by_server", {})
        first = next((t for t in times.get(address, []) if t > after), None)
        return first is not None

    kube.wait_for(acknowledged, timeout_s, f"a write acknowledged by {who}", 0.5)
    assert first is not None
    return first


def wait_new_primary(
    api: client.ApiClient,
    namespace: str,
    name: str,
    old: str,
    kind: str,
    timeout_s: float,
    seen: list[str],
) -> tuple[str, str]:
    """(name, address) of the primary the status names once it is not ``old``."""
    found: tuple[str, str] | None = None

    def promoted() -> bool:
        nonlocal found
        st = ops.status(api, namespace, name)
        seen.append(f"{st.get('phase')}:{st.get('primary')}:{st.get('readyReplicas')}")
        primary = st.get("primary")
        if not primary or primary == old:
            return False
        address = next(
            (i.get("address") for i in st.get("instances") or [] if i["name"] == primary), None
        )
        if address:
            found = (str(primary), str(address))
        return found is not None

    try:
        kube.wait_for(promoted, timeout_s, f"{kind}: a new primary in status", interval=0.2)
    except TimeoutError as exc:
        raise TimeoutError(f"{exc}; statuses {seen[-5:]}\n" + ops.operator_log_tail(api)) from None
    assert found is not None
    return found


def wait_rejoined(
    api: client.ApiClient, namespace: str, name: str, old: str, timeout_s: float
) -> float:
    def rejoined() -> bool:
        instances: list[dict[str, Any]] = ops.status(api, namespace, name).get("instances") or []
        entry = next((i for i in instances if i["name"] == old), None)
        return bool(entry and entry.get("role") == "replica" and entry.get("state") == "streaming")

    kube.wait_for(rejoined, timeout_s, f"{old} streaming again as a replica", interval=0.5)
    return incluster.wall_clock()
