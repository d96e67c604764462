"""What the operator has decided, as the instance reads it from the ReplicatedDatabase status:
who is meant to be primary, who is primary now, and whether the cluster was ever initialised.

The CR status is the single record of who the primary is; the pod never decides it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from replicadb_operator.spec import parse_spec

GROUP = "replicadb.io"
VERSION = "v1alpha1"
PLURAL = "replicateddatabases"


@dataclass(frozen=True)
class ClusterView:
    target_primary: str | None
    current_primary: str | None
    initialized: bool
    # How long the operator needs to notice a primary gone: probes x (threshold + 1) + 1 s.
    failure_detection_s: float = 0.0
    # Instance name -> the pod address it last answered at (status.instances[].address).
    addresses: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_status(cls, status: Mapping[str, Any] | None) -> ClusterView:
        status = status or {}
        return cls(
            target_primary=status.get("targetPrimary") or None,
            current_primary=status.get("primary") or None,
            initialized=bool(status.get("initialized")),
            addresses={
                str(i["name"]): str(i["address"])
                for i in status.get("instances") or []
                if isinstance(i, Mapping) and i.get("name") and i.get("address")
            },
        )

    @classmethod
    def from_object(cls, obj: Mapping[str, Any]) -> ClusterView:
        view = cls.from_status(obj.get("status"))
        meta = obj.get("metadata") or {}
        db = parse_spec(meta.get("name", ""), meta.get("namespace", ""), obj.get("spec") or {})
        detection = db.monitoring.probe_interval_s * (db.failover.failure_threshold + 1)
        return replace(view, failure_detection_s=detection + 1.0)


class StatusReader:
    """Reads the ReplicatedDatabase status through the Kubernetes API (in-cluster
    credentials), each read bounded by ``timeout_s`` (connect, read).

    Bounded: a pod started on a node that just came back may send its first packets to the
    API's Service address before kube-proxy has its rules there; those connections never
    recover (the kernel retries the same flow for 2 minutes, seen on kind). A fresh attempt
    a second later goes through."""

    def __init__(self, namespace: str, name: str, timeout_s: tuple[float, float] = (3, 10)) -> None:
        from kubernetes import client, config

        config.load_incluster_config()
        self._api = client.CustomObjectsApi()
        self._namespace, self._name, self._timeout_s = namespace, name, timeout_s

    def read(self) -> ClusterView:
        obj = self._api.get_namespaced_custom_object(
            GROUP, VERSION, self._namespace, PLURAL, self._name, _request_timeout=self._timeout_s
        )
        return ClusterView.from_object(obj)


def read_cluster_view(namespace: str, name: str) -> ClusterView:
    """One read of the status."""
    return StatusReader(namespace, name).read()


def wait_for_target(
    read: Callable[[], ClusterView],
    log: Callable[[str], None],
    instance: str,
    poll_s: float = 1.0,
    timeout_s: float = 600.0,
) -> ClusterView:
    """Wait until the operator has named a target primary (it does before pods start), and
    while it is failing over away from this very instance (it is still recorded as primary
    but no longer the target): there is nobody to follow yet, and starting as a primary is
    exactly what must not happen."""
    deadline = time.monotonic() + timeout_s
    said = ""
    while True:
        try:
            view = read()
            leaving = view.current_primary == instance and view.target_primary != instance
            if view.target_primary and not leaving:
                return view
            message = (
                "waiting: a failover away from this instance is under way"
                if leaving
                else "waiting for the operator to name a primary"
            )
        except Exception as exc:  # the API may be unreachable for a while at startup
            message = f"cannot read the ReplicatedDatabase status yet: {exc}"
        if message != said:  # once per change, not once per poll
            log(message)
            said = message
        if time.monotonic() > deadline:
            raise TimeoutError("no target primary in the ReplicatedDatabase status")
        time.sleep(poll_s)
