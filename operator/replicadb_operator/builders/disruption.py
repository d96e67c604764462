"""PodDisruptionBudgets: what voluntary evictions (node drains) may take.

- Replicas (``<name>-instances``, the pods labelled replica): one at a time, so a drain
  never takes two replicas of three, nor, with the next rule, the primary and its only
  synchronous standby together.
- The primary (``<name>-primary``): never. Whichever pod is labelled primary cannot be
  evicted; draining its node waits until the monitor has switched over away from it
  (monitoring/drain.py), and then evicts it as a replica.
The two never select the same pod: the eviction API refuses to evict a pod that more than
one budget selects (seen on kind: "matches multiple PodDisruptionBudgets").
"""

from __future__ import annotations

from replicadb_operator.builders import names
from replicadb_operator.builders.metadata import K8sObject, metadata
from replicadb_operator.spec import DatabaseSpec


def _budget(db: DatabaseSpec, name: str, max_unavailable: int, role: str) -> K8sObject:
    selector = {**names.instance_selector(db), names.LABEL_ROLE: role}
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": metadata(db, name),
        "spec": {"maxUnavailable": max_unavailable, "selector": {"matchLabels": selector}},
    }


def instances_pdb(db: DatabaseSpec) -> K8sObject:
    return _budget(db, names.pdb(db), 1, names.ROLE_REPLICA)


def primary_pdb(db: DatabaseSpec) -> K8sObject:
    return _budget(db, names.primary_pdb(db), 0, names.ROLE_PRIMARY)
