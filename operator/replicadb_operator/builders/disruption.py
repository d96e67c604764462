"""PodDisruptionBudgets: what voluntary evictions (node drains) may take.

- Instances: one at a time, so a drain never takes the primary and its only synchronous
  standby together, nor two replicas of three.
- The primary: never. Whichever pod is labelled primary cannot be evicted; draining its node
  waits until the monitor has switched over away from it (monitoring/drain.py), and then
  evicts it as a replica.
"""

from __future__ import annotations

from replicadb_operator.builders import names
from replicadb_operator.builders.metadata import K8sObject, metadata
from replicadb_operator.spec import DatabaseSpec


def _budget(db: DatabaseSpec, name: str, max_unavailable: int, role: str | None) -> K8sObject:
    selector = names.instance_selector(db)
    if role is not None:
        selector = {**selector, names.LABEL_ROLE: role}
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": metadata(db, name),
        "spec": {"maxUnavailable": max_unavailable, "selector": {"matchLabels": selector}},
    }


def instances_pdb(db: DatabaseSpec) -> K8sObject:
    return _budget(db, names.pdb(db), 1, None)


def primary_pdb(db: DatabaseSpec) -> K8sObject:
    return _budget(db, names.primary_pdb(db), 0, names.ROLE_PRIMARY)
