"""PgBouncer Deployments, one per pool: ``rw`` in front of the read-write Service and ``ro``
in front of the read-only one. They run from the instance image, which carries PgBouncer."""

from __future__ import annotations

from typing import Any

from replicadb_operator.builders import names
from replicadb_operator.builders.configmaps import POOLER_AUTH_DIR, POOLER_CONFIG_DIR, TLS_DIR
from replicadb_operator.builders.metadata import K8sObject, metadata
from replicadb_operator.builders.security import container_security_context, pod_security_context
from replicadb_operator.spec import DatabaseSpec

POOLS = ("rw", "ro")


def pooler_deployment(db: DatabaseSpec, pool: str) -> K8sObject:
    labels = {**names.common_labels(db), **names.pooler_selector(db, pool)}
    mounts: list[dict[str, Any]] = [
        {"name": "config", "mountPath": POOLER_CONFIG_DIR},
        {"name": "auth", "mountPath": POOLER_AUTH_DIR},
    ]
    volumes: list[dict[str, Any]] = [
        {"name": "config", "configMap": {"name": names.pooler_config_map(db)}},
        {
            "name": "auth",
            "secret": {"secretName": names.pooler_auth_secret(db), "defaultMode": 0o400},
        },
    ]
    if db.tls.enabled:
        mounts.append({"name": "tls", "mountPath": TLS_DIR})
        volumes.append(
            # Root-owned, group-readable through fsGroup: what PostgreSQL accepts for a key.
            {"name": "tls", "secret": {"secretName": names.tls_secret(db), "defaultMode": 0o440}}
        )
    tcp_probe = {"tcpSocket": {"port": names.POOLER_PORT}, "periodSeconds": 5}
    container = {
        "name": "pgbouncer",
        "image": db.pooler.image or db.postgres.image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["pgbouncer", f"{POOLER_CONFIG_DIR}/pgbouncer-{pool}.ini"],
        "ports": [{"name": "pgbouncer", "containerPort": names.POOLER_PORT}],
        "volumeMounts": mounts,
        "readinessProbe": tcp_probe,
        "livenessProbe": {**tcp_probe, "failureThreshold": 6},
        "securityContext": container_security_context(),
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata(db, names.pooler(db, pool), names.pooler_selector(db, pool)),
        "spec": {
            "replicas": db.pooler.instances,
            "selector": {"matchLabels": names.pooler_selector(db, pool)},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "securityContext": pod_security_context(),
                    "containers": [container],
                    "volumes": volumes,
                },
            },
        },
    }
