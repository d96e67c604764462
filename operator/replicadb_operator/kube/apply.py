"""Idempotent apply: read the live object, compare, and only when the desired fields differ
send a server-side apply with our field manager. In steady state a reconcile therefore makes
read calls only; the apply itself is idempotent when it is sent."""

from __future__ import annotations

import base64
import logging
from typing import Any

from kubernetes.client.exceptions import ApiException

from replicadb_operator.builders.names import FIELD_MANAGER
from replicadb_operator.kube import clients

log = logging.getLogger(__name__)


def is_subset(desired: Any, live: Any) -> bool:
    """Every field we set has the value we want; fields the API server added are ignored."""
    if isinstance(desired, dict):
        return isinstance(live, dict) and all(
            is_subset(value, live.get(key)) for key, value in desired.items()
        )
    if isinstance(desired, list):
        return (
            isinstance(live, list)
            and len(desired) == len(live)
            and all(is_subset(d, x) for d, x in zip(desired, live, strict=True))
        )
    if isinstance(desired, bool) or isinstance(live, bool):
        return desired is live
    if isinstance(desired, int | float) and isinstance(live, int | float):
        return float(desired) == float(live)
    return bool(desired == live)


def _comparable(desired: dict[str, Any]) -> dict[str, Any]:
    """Secrets come back with ``data`` (base64), never ``stringData``."""
    if desired.get("kind") != "Secret" or "stringData" not in desired:
        return desired
    out = {k: v for k, v in desired.items() if k != "stringData"}
    out["data"] = {
        k: base64.b64encode(v.encode()).decode() for k, v in desired["stringData"].items()
    }
    return out


def _resource(obj: dict[str, Any]) -> Any:
    return clients.dynamic().resources.get(api_version=obj["apiVersion"], kind=obj["kind"])


def read(obj: dict[str, Any]) -> dict[str, Any] | None:
    meta = obj["metadata"]
    try:
        live = _resource(obj).get(name=meta["name"], namespace=meta.get("namespace"))
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise
    return dict(live.to_dict())


def ensure(obj: dict[str, Any]) -> bool:
    """Make the cluster hold ``obj``; True when a write was needed."""
    live = read(obj)
    if live is not None and is_subset(_comparable(obj), live):
        return False
    meta = obj["metadata"]
    _resource(obj).server_side_apply(
        body=obj,
        name=meta["name"],
        namespace=meta.get("namespace"),
        field_manager=FIELD_MANAGER,
        force_conflicts=True,
    )
    log.info("applied %s %s/%s", obj["kind"], meta.get("namespace"), meta["name"])
    return True


def create_if_absent(obj: dict[str, Any]) -> bool:
    """For objects that must never be overwritten (generated passwords)."""
    if read(obj) is not None:
        return False
    meta = obj["metadata"]
    try:
        _resource(obj).create(body=obj, namespace=meta.get("namespace"))
    except ApiException as exc:
        if exc.status == 409:  # another operator replica won the race
            return False
        raise
    return True


def delete_if_present(obj: dict[str, Any]) -> bool:
    """For objects the spec no longer wants (the pooler switched off)."""
    if read(obj) is None:
        return False
    meta = obj["metadata"]
    try:
        _resource(obj).delete(name=meta["name"], namespace=meta.get("namespace"))
    except ApiException as exc:
        if exc.status == 404:
            return False
        raise
    log.info("deleted %s %s/%s", obj["kind"], meta.get("namespace"), meta["name"])
    return True
