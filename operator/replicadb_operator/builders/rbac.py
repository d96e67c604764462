"""The instance pods' identity: they may read their own ReplicatedDatabase (to learn who
the primary is), and nothing else."""

from __future__ import annotations

from replicadb_operator import crd
from replicadb_operator.builders import names
from replicadb_operator.builders.metadata import K8sObject, metadata
from replicadb_operator.spec import DatabaseSpec


def instance_service_account(db: DatabaseSpec) -> K8sObject:
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": metadata(db, names.service_account(db)),
    }


def instance_role(db: DatabaseSpec) -> K8sObject:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": metadata(db, names.service_account(db)),
        "rules": [
            {
                "apiGroups": [crd.GROUP],
                "resources": [crd.PLURAL],
                "resourceNames": [db.name],
                "verbs": ["get"],
            }
        ],
    }


def instance_role_binding(db: DatabaseSpec) -> K8sObject:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": metadata(db, names.service_account(db)),
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "Role",
            "name": names.service_account(db),
        },
        "subjects": [
            {"kind": "ServiceAccount", "name": names.service_account(db), "namespace": db.namespace}
        ],
    }
