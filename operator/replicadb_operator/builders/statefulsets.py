"""The primary StatefulSet (one pod) and the replica StatefulSet (spec.replicas pods).

Which pod is primary is a label the operator sets on pods, never part of these templates:
after a failover the primary may well be a pod of the replica set, and a restarted former
primary must come back as whatever the status says, not as what its set was named.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from replicadb_operator.builders import names
from replicadb_operator.builders.configmaps import TLS_DIR, restart_parameters_hash
from replicadb_operator.builders.metadata import K8sObject, metadata
from replicadb_operator.builders.security import container_security_context, pod_security_context
from replicadb_operator.spec import DatabaseSpec

DATA_DIR = "/var/lib/postgresql/data"
PGDATA = f"{DATA_DIR}/pgdata"
CONFIG_DIR = "/etc/replicadb/config"
SECRETS_DIR = "/etc/replicadb/secrets"
RUN_DIR = "/run/replicadb"


def _env(db: DatabaseSpec) -> list[dict[str, Any]]:
    def field(path: str) -> dict[str, Any]:
        return {"valueFrom": {"fieldRef": {"fieldPath": path}}}

    return [
        {"name": "POD_NAME", **field("metadata.name")},
        {"name": "POD_NAMESPACE", **field("metadata.namespace")},
        {"name": "RDB_NAME", "value": db.name},
        {"name": "PGDATA", "value": PGDATA},
        {"name": "RDB_CONFIG_DIR", "value": CONFIG_DIR},
        {"name": "RDB_SECRETS_DIR", "value": SECRETS_DIR},
        {"name": "RDB_RUN_DIR", "value": RUN_DIR},
        {"name": "RDB_PEER_DOMAIN", "value": names.dns(db, names.headless_service(db))},
        {"name": "RDB_APP_USER", "value": db.credentials.app_user},
        {"name": "RDB_APP_DATABASE", "value": db.credentials.app_database},
        {"name": "RDB_SSLMODE", "value": "require" if db.tls.required else "prefer"},
    ]


def _secrets_volume(db: DatabaseSpec) -> dict[str, Any]:
    """The three passwords as files named as the entrypoint expects them."""
    sources = [
        {
            "secret": {
                "name": names.credentials_secret(db, kind),
                "items": [{"key": "password", "path": f"{kind}-password"}],
            }
        }
        for kind in ("superuser", "replication", "app")
    ]
    return {"name": "secrets", "projected": {"sources": sources, "defaultMode": 0o400}}


def _probe(period: int, failures: int) -> dict[str, object]:
    return {
        "exec": {"command": ["pg_isready", "-q", "-h", RUN_DIR, "-p", str(names.PG_PORT)]},
        "periodSeconds": period,
        "timeoutSeconds": 3,
        "failureThreshold": failures,
    }


def _affinity(db: DatabaseSpec) -> dict[str, Any]:
    if db.placement.anti_affinity == "none":
        return {}
    term: dict[str, Any] = {
        "labelSelector": {"matchLabels": names.instance_selector(db)},
        "topologyKey": "kubernetes.io/hostname",
    }
    anti: dict[str, Any]
    if db.placement.anti_affinity == "required":
        anti = {"requiredDuringSchedulingIgnoredDuringExecution": [term]}
    else:
        anti = {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 100, "podAffinityTerm": term}
            ]
        }
    return {"podAntiAffinity": anti}


def _spread(db: DatabaseSpec) -> list[dict[str, Any]]:
    if not db.placement.zone_spread:
        return []
    return [
        {
            "maxSkew": db.placement.max_skew,
            "topologyKey": db.placement.zone_topology_key,
            "whenUnsatisfiable": db.placement.when_unsatisfiable,
            "labelSelector": {"matchLabels": names.instance_selector(db)},
        }
    ]


def pod_template(db: DatabaseSpec) -> dict[str, Any]:
    """The instance pod template of both StatefulSets, with its own hash as the
    ``replicadb.io/revision`` annotation."""
    template = _pod_template(db)
    template["metadata"]["annotations"][names.ANNOTATION_REVISION] = _hash(template)
    return template


def revision(db: DatabaseSpec) -> str:
    """What a pod made from the spec's template carries: any change of image, resources,
    restart-only parameters (through their hash) or anything else in the template is a
    new revision, and the operator rolls the pods to it."""
    return str(pod_template(db)["metadata"]["annotations"][names.ANNOTATION_REVISION])


def _hash(template: dict[str, Any]) -> str:
    text = json.dumps(template, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _pod_template(db: DatabaseSpec) -> dict[str, Any]:
    volumes: list[dict[str, Any]] = [
        {"name": "config", "configMap": {"name": names.config_map(db)}},
        _secrets_volume(db),
        {"name": "run", "emptyDir": {"medium": "Memory", "sizeLimit": "16Mi"}},
        {"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": "256Mi"}},
    ]
    mounts: list[dict[str, Any]] = [
        {"name": "data", "mountPath": DATA_DIR},
        {"name": "config", "mountPath": CONFIG_DIR},
        {"name": "secrets", "mountPath": SECRETS_DIR},
        {"name": "run", "mountPath": RUN_DIR},
        {"name": "shm", "mountPath": "/dev/shm"},
    ]
    if db.tls.enabled:
        volumes.append(
            # Root-owned, group-readable through fsGroup: what PostgreSQL accepts for a key.
            {"name": "tls", "secret": {"secretName": names.tls_secret(db), "defaultMode": 0o440}}
        )
        mounts.append({"name": "tls", "mountPath": TLS_DIR})
    container: dict[str, Any] = {
        "name": names.POSTGRES_CONTAINER,
        "image": db.postgres.image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["replicadb-instance"],
        "env": _env(db),
        "ports": [{"name": "postgres", "containerPort": names.PG_PORT}],
        "volumeMounts": mounts,
        # Readiness is reachability over the pod network, as Services and clients see it: a
        # primary cut off the network must turn NotReady, which confirms a failover. The
        # startup probe has already checked that PostgreSQL accepts connections.
        # One refused or unanswered connect within a second marks the pod not Ready: that is
        # the Kubernetes confirmation a failover waits for when a primary is cut off.
        "readinessProbe": {
            "tcpSocket": {"port": names.PG_PORT},
            "periodSeconds": 1,
            "timeoutSeconds": 1,
            "failureThreshold": 1,
        },
        "livenessProbe": _probe(period=10, failures=6),
        # A base backup of a large database takes as long as it takes (up to an hour here).
        "startupProbe": _probe(period=2, failures=1800),
        "securityContext": container_security_context(),
    }
    if db.postgres.resources:
        container["resources"] = dict(db.postgres.resources)
    spec: dict[str, Any] = {
        "serviceAccountName": names.service_account(db),
        "securityContext": pod_security_context(),
        # Immediate shutdown would make every restart a crash recovery; fast is enough.
        "terminationGracePeriodSeconds": 30,
        "containers": [container, _fence_agent(db, mounts)],
        "volumes": volumes,
    }
    if affinity := _affinity(db):
        spec["affinity"] = affinity
    if spread := _spread(db):
        spec["topologySpreadConstraints"] = spread
    if db.placement.node_selector:
        spec["nodeSelector"] = dict(db.placement.node_selector)
    if db.placement.tolerations:
        spec["tolerations"] = [dict(t) for t in db.placement.tolerations]
    return {
        "metadata": {
            "labels": {**names.common_labels(db), **names.instance_selector(db)},
            # Parameters that need a restart live in the ConfigMap; their hash here makes a
            # change of them a change of the template, and so a roll.
            "annotations": {
                names.ANNOTATION_RESTART_HASH: restart_parameters_hash(db),
                # kubectl exec/logs without -c
                "kubectl.kubernetes.io/default-container": names.POSTGRES_CONTAINER,
            },
        },
        "spec": spec,
    }


def _fence_agent(db: DatabaseSpec, mounts: list[dict[str, Any]]) -> dict[str, Any]:
    """Beside postgres, on the pod's socket directory: the primary's heartbeat, and the stop
    of a primary cut off from the API server and every peer (instance/fence_agent.py)."""
    shared = {"secrets", "run"}
    return {
        "name": "fence-agent",
        "image": db.postgres.image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["replicadb-fence-agent"],
        "env": _env(db),
        "volumeMounts": [m for m in mounts if m["name"] in shared],
        "resources": {
            "requests": {"cpu": "10m", "memory": "48Mi"},
            "limits": {"memory": "128Mi"},
        },
        "securityContext": container_security_context(),
    }


def _claim(db: DatabaseSpec) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": db.postgres.storage.size}},
    }
    if db.postgres.storage.storage_class:
        spec["storageClassName"] = db.postgres.storage.storage_class
    return {"metadata": {"name": "data"}, "spec": spec}


def statefulset(db: DatabaseSpec, set_name: str, replicas: int) -> K8sObject:
    selector = {**names.instance_selector(db), names.LABEL_SET: set_name}
    template = pod_template(db)
    template["metadata"]["labels"][names.LABEL_SET] = set_name
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": metadata(db, set_name, names.instance_selector(db)),
        "spec": {
            "serviceName": names.headless_service(db),
            "replicas": replicas,
            "podManagementPolicy": "Parallel",
            "selector": {"matchLabels": selector},
            "template": template,
            "volumeClaimTemplates": [_claim(db)],
            "persistentVolumeClaimRetentionPolicy": {
                "whenDeleted": "Delete",
                # A replica scaled away and back must clone afresh, not resume from stale data.
                "whenScaled": "Delete",
            },
            # The operator replaces the pods itself, replicas first, then a switchover (see
            # updates/): the StatefulSet controller would restart the primary with them.
            "updateStrategy": {"type": "OnDelete"},
        },
    }


def primary_statefulset(db: DatabaseSpec) -> K8sObject:
    return statefulset(db, names.primary_set(db), 1)


def replica_statefulset(db: DatabaseSpec, replicas: int | None = None) -> K8sObject:
    return statefulset(db, names.replica_set(db), db.replicas if replicas is None else replicas)
