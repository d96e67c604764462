"""One measured rolling update on a real cluster, shared by e2e/test_rolling_update.py and
`make bench-rolling-update`.

A writer commits a row every 20 ms through router_lib (the pod of e2e/in_cluster/
failover_workload.py); the spec is patched (a new image, a restart-only parameter); this
side follows status and the instance pods through the Kubernetes API until every instance
runs the new revision and the database is settled again. Measured: the longest gap between
two successful writes, acknowledged writes missing afterwards, pods replaced in which order,
and restarts of the primary that no switchover preceded (the pod status names primary was
replaced or its postgres restarted, and it is still the primary).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kubernetes import client

from e2e import incluster, kube
from e2e import operator_support as ops
from e2e.failover_run import INSTANCE_IMAGE, start_writer, wait_settled

INSTANCE_NEXT_IMAGE = INSTANCE_IMAGE.rsplit(":", 1)[0] + ":dev-next"
INSTANCE_LABELS = "replicadb.io/component=instance"


@dataclass
class RollRun:
    what: str
    seconds: float
    write_unavailable_s_max: float
    lost_acknowledged_writes: int
    primary_restarts_without_switchover: int
    dual_primary_samples: int
    acknowledged: int
    old_primary: str
    new_primary: str
    replaced: list[str] = field(default_factory=list)  # pods, in the order they were replaced


def instance_pods(core: client.CoreV1Api, namespace: str) -> dict[str, tuple[str, int]]:
    """name -> (uid, restarts of postgres), for pods not being deleted."""
    pods = core.list_namespaced_pod(namespace, label_selector=INSTANCE_LABELS).items
    return {
        p.metadata.name: (
            p.metadata.uid,
            kube.postgres_restarts(p),
        )
        for p in pods
        if p.metadata.deletion_timestamp is None
    }


def longest_gap(times: list[float], start: float, end: float) -> float:
    """The longest time without a successful write within [start, end]."""
    inside = sorted(t for t in times if start <= t <= end)
    points = [start, *inside, end]
    return max((b - a for a, b in itertools.pairwise(points)), default=end - start)


def rolled(st: dict[str, Any], before: str | None) -> bool:
    roll = st.get("rollingUpdate") or {}
    return bool(
        roll.get("revision") not in (None, before)
        and roll.get("state") == "UpToDate"
        and not roll.get("outdatedInstances")
    )


def measure_roll(
    api: client.ApiClient,
    namespace: str,
    name: str,
    spec_patch: dict[str, Any],
    what: str,
    timeout_s: float = 400,
    say: Callable[[str], None] = print,
) -> RollRun:
    core = client.CoreV1Api(api)
    status = wait_settled(api, namespace, name)
    old = str(status["primary"])
    before = (status.get("rollingUpdate") or {}).get("revision")
    workload = start_writer(api, namespace, name)
    replaced: list[str] = []
    without_switchover = 0
    try:
        started = incluster.wall_clock()
        ops.patch_database(api, namespace, name, {"spec": spec_patch})
        say(f"{what}: spec patched; {old} is the primary")
        pods = instance_pods(core, namespace)
        primary, said = old, ""
        deadline = time.monotonic() + timeout_s
        while True:
            st = ops.status(api, namespace, name)
            now_pods = instance_pods(core, namespace)
            now_primary = str(st.get("primary") or primary)
            for pod, (uid, restarts) in now_pods.items():
                seen = pods.get(pod)
                if seen is None or seen == (uid, restarts):
                    continue
                replaced.append(pod)
                # A switchover's fence restarts the old primary too, with a plan under way.
                if pod == primary == now_primary and not st.get("failover"):
                    without_switchover += 1
                say(f"  {pod} {'replaced' if seen[0] != uid else 'restarted'}"
                    f"{' (the primary)' if pod == now_primary else ''}")  # fmt: skip
            pods = {**pods, **now_pods}
            primary = now_primary
            roll = st.get("rollingUpdate") or {}
            line = f"  {roll.get('state')}: {roll.get('message')}"
            if line != said:
                say(line)
                said = line
            if rolled(st, before):
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what}: not rolled within {timeout_s} s; status {st}")
            time.sleep(0.5)
        wait_settled(api, namespace, name, hold_s=2.0)
        finished = incluster.wall_clock()
        say(f"{what}: every instance updated after {finished - started:.1f} s")
        workload.touch("/tmp/stop-writer")
        workload.touch("/tmp/stop")
        result = workload.wait_json("/tmp/result.json", 60, "the workload's result")
    except BaseException:
        print(workload.logs()[-4000:])
        raise
    finally:
        workload.delete()
    times = [float(t) for t, _ in result["successes"]]
    return RollRun(
        what=what,
        seconds=round(finished - started, 1),
        write_unavailable_s_max=round(longest_gap(times, started, finished), 3),
        lost_acknowledged_writes=int(result["lost_acknowledged_writes"]),
        primary_restarts_without_switchover=without_switchover,
        dual_primary_samples=int(result["dual_primary_samples"]),
        acknowledged=int(result["acknowledged"]),
        old_primary=old,
        new_primary=primary,
        replaced=replaced,
    )
