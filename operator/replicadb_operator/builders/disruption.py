"""A PodDisruptionBudget: voluntary evictions (node drains) take one instance at a time."""

from __future__ import annotations

from replicadb_operator.builders import names
from replicadb_operator.builders.metadata import K8sObject, metadata
from replicadb_operator.spec import DatabaseSpec


def instances_pdb(db: DatabaseSpec) -> K8sObject:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": metadata(db, names.pdb(db)),
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": names.instance_selector(db)}},
    }
