"""Everything one database needs, in the order to apply it (dependencies first)."""

from __future__ import annotations

from replicadb_operator.builders import configmaps, disruption, pooler, rbac, services, statefulsets
from replicadb_operator.builders.metadata import K8sObject
from replicadb_operator.spec import DatabaseSpec


def desired_objects(db: DatabaseSpec, replica_set_size: int | None = None) -> list[K8sObject]:
    """Secrets are not here: they hold generated passwords and are created once, apart.
    ``replica_set_size`` overrides spec.replicas while a scale-down waits (see reconcile).
    Both StatefulSets take a new pod template at once: they update no pod themselves
    (``OnDelete``); the operator rolls the pods (see updates/)."""
    objects = [
        rbac.instance_service_account(db),
        rbac.instance_role(db),
        rbac.instance_role_binding(db),
        configmaps.instance_config(db),
        services.headless_service(db),
        services.read_write_service(db),
        services.read_only_service(db),
        statefulsets.primary_statefulset(db),
        statefulsets.replica_statefulset(db, replica_set_size),
        disruption.instances_pdb(db),
        disruption.primary_pdb(db),
    ]
    if db.pooler.enabled:
        objects += pooler_objects(db)
    return objects


def pooler_objects(db: DatabaseSpec) -> list[K8sObject]:
    objects = [configmaps.pooler_config(db)]
    for pool in pooler.POOLS:
        objects.append(pooler.pooler_deployment(db, pool))
        objects.append(services.pooler_service(db, pool))
    return objects
