"""What Kubernetes says about the instance pods (I/O): address, readiness, node, zone."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from kubernetes.client.exceptions import ApiException

from replicadb_operator.builders import names
from replicadb_operator.kube import clients

ZONE_LABEL = "topology.kubernetes.io/zone"


@dataclass(frozen=True)
class InstancePod:
    name: str
    ip: str | None
    ready: bool
    phase: str
    node: str | None
    role_label: str | None
    deleting: bool
    uid: str = ""
    restarts: int = 0  # restarts of the postgres container (a killed postgres counts one)
    container_down: bool = False  # the postgres container is not running right now
    revision: str | None = None  # the pod template it was made from (updates/)
    lag_label: str | None = None  # within or over spec.readOnly's lag bound

    @property
    def gone(self) -> bool:
        return self.deleting or self.phase in ("Failed", "Succeeded") or self.ip is None


def _ready(pod: Any) -> bool:
    for condition in pod.status.conditions or []:
        if condition.type == "Ready":
            return bool(condition.status == "True")
    return False


def _postgres_statuses(pod: Any) -> list[Any]:
    """The postgres container's status (the fence agent beside it restarting is no failure
    of the instance)."""
    return [c for c in pod.status.container_statuses or [] if c.name == names.POSTGRES_CONTAINER]


def list_instance_pods(namespace: str, database: str) -> dict[str, InstancePod]:
    selector = ",".join(
        f"{k}={v}"
        for k, v in {names.LABEL_DATABASE: database, names.LABEL_COMPONENT: "instance"}.items()
    )
    pods = clients.core().list_namespaced_pod(namespace, label_selector=selector).items
    return {
        pod.metadata.name: InstancePod(
            name=pod.metadata.name,
            ip=pod.status.pod_ip,
            ready=_ready(pod),
            phase=pod.status.phase or "",
            node=pod.spec.node_name,
            role_label=(pod.metadata.labels or {}).get(names.LABEL_ROLE),
            deleting=pod.metadata.deletion_timestamp is not None,
            uid=pod.metadata.uid or "",
            restarts=sum(c.restart_count or 0 for c in _postgres_statuses(pod)),
            container_down=any(
                c.state is not None and c.state.running is None for c in _postgres_statuses(pod)
            ),
            revision=(pod.metadata.annotations or {}).get(names.ANNOTATION_REVISION),
            lag_label=(pod.metadata.labels or {}).get(names.LABEL_LAG),
        )
        for pod in pods
    }


class ZoneCache:
    """Node zones change rarely; read each node at most once a minute."""

    def __init__(self, ttl_s: float = 60.0) -> None:
        self._ttl = ttl_s
        self._zones: dict[str, tuple[float, str | None]] = {}

    def zone(self, node: str | None) -> str | None:
        if node is None:
            return None
        cached = self._zones.get(node)
        if cached is not None and time.monotonic() - cached[0] < self._ttl:
            return cached[1]
        try:
            labels = clients.core().read_node(node).metadata.labels or {}
            zone = labels.get(ZONE_LABEL)
        except ApiException:
            zone = None
        self._zones[node] = (time.monotonic(), zone)
        return zone


def node_cordoned(node: str | None) -> bool:
    """Unschedulable: ``kubectl cordon``, the first thing ``kubectl drain`` does."""
    if node is None:
        return False
    try:
        return bool(clients.core().read_node(node).spec.unschedulable)
    except ApiException:
        return False


def set_role_label(namespace: str, pod: str, role: str | None) -> None:
    """Role labels decide which Service a pod is in; None removes it (out of both)."""
    set_labels(namespace, pod, {names.LABEL_ROLE: role})


def set_labels(namespace: str, pod: str, labels: dict[str, str | None]) -> None:
    """Merge-patch labels (None removes one): role and lag labels go in one write."""
    clients.core().patch_namespaced_pod(pod, namespace, {"metadata": {"labels": labels}})
