"""Status patches and Events for a ReplicatedDatabase."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from kubernetes.client.exceptions import ApiException

from replicadb_operator import crd
from replicadb_operator.kube import clients

log = logging.getLogger(__name__)


def read_object(namespace: str, name: str) -> dict[str, Any]:
    obj = clients.custom().get_namespaced_custom_object(
        crd.GROUP, crd.VERSION, namespace, crd.PLURAL, name
    )
    return dict(obj)


def patch_status(namespace: str, name: str, fields: dict[str, Any]) -> None:
    """Merge-patch ``status`` (a None value removes a field)."""
    clients.custom().patch_namespaced_custom_object_status(
        crd.GROUP, crd.VERSION, namespace, crd.PLURAL, name, {"status": fields}
    )


def annotate(namespace: str, name: str, annotations: dict[str, str | None]) -> None:
    """Merge-patch annotations (None removes one)."""
    clients.custom().patch_namespaced_custom_object(
        crd.GROUP,
        crd.VERSION,
        namespace,
        crd.PLURAL,
        name,
        {"metadata": {"annotations": annotations}},
    )


def post_event(namespace: str, name: str, uid: str, kind: str, reason: str, message: str) -> None:
    """kind: Normal or Warning. Events are best effort: a failure is logged, not raised."""
    stamp = datetime.now(UTC)
    body = {
        "metadata": {"generateName": f"{name}.", "namespace": namespace},
        "involvedObject": {
            "apiVersion": f"{crd.GROUP}/{crd.VERSION}",
            "kind": crd.KIND,
            "name": name,
            "namespace": namespace,
            "uid": uid,
        },
        "type": kind,
        "reason": reason,
        "message": message[:1000],
        "source": {"component": "replicadb-operator"},
        "firstTimestamp": stamp.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "lastTimestamp": stamp.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "count": 1,
    }
    try:
        clients.core().create_namespaced_event(namespace, body)
    except ApiException as exc:
        log.warning("could not post event %s: %s", reason, exc.reason)


def delete_pod(namespace: str, pod: str, grace_seconds: int | None = 0) -> bool:
    try:
        clients.core().delete_namespaced_pod(pod, namespace, grace_period_seconds=grace_seconds)
    except ApiException as exc:
        if exc.status == 404:
            return False
        raise
    return True
