"""Object metadata shared by every builder: name, namespace, labels, owner reference."""

from __future__ import annotations

from typing import Any

from replicadb_operator import crd
from replicadb_operator.builders import names
from replicadb_operator.spec import DatabaseSpec

K8sObject = dict[str, Any]


def owner_reference(db: DatabaseSpec) -> dict[str, Any]:
    """Deleting the ReplicatedDatabase deletes everything that carries this."""
    return {
        "apiVersion": f"{crd.GROUP}/{crd.VERSION}",
        "kind": crd.KIND,
        "name": db.name,
        "uid": db.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def metadata(
    db: DatabaseSpec, name: str, extra_labels: dict[str, str] | None = None
) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": db.namespace,
        "labels": {**names.common_labels(db), **(extra_labels or {})},
        "ownerReferences": [owner_reference(db)],
    }
