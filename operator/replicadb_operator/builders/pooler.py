"""PgBouncer Deployments, one per pool: ``rw`` in front of the read-write Service and ``ro``
in front of the read-only one. They run from the instance image, which carries PgBouncer and
the PgBouncer exporter that runs beside it (``spec.pgbouncer.metrics``)."""

from __future__ import annotations

from typing import Any

from replicadb_operator.builders import names
from replicadb_operator.builders.configmaps import (
    POOLER_AUTH_DIR,
    POOLER_CONFIG_DIR,
    POOLER_EXPORTER_CONFIG,
    TLS_DIR,
)
from replicadb_operator.builders.metadata import K8sObject, metadata
from replicadb_operator.builders.security import container_security_context, pod_security_context
from replicadb_operator.spec import DatabaseSpec

POOLS = ("rw", "ro")
# prometheus-pgbouncer-exporter, in its own virtualenv in the instance image (see
# operator/instance.Dockerfile for why this exporter).
EXPORTER_COMMAND = "/opt/pgbouncer-exporter/bin/pgbouncer-exporter"


def exporter_container(db: DatabaseSpec, image: str) -> dict[str, Any]:
    """Reads SHOW STATS/POOLS/DATABASES/CONFIG from the PgBouncer beside it as the superuser,
    who is PgBouncer's stats user already; the password comes from the same Secret the
    PgBouncer container's auth file is made from, so the pod holds nothing new."""
    return {
        "name": "metrics",
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": [EXPORTER_COMMAND, "--config", f"{POOLER_CONFIG_DIR}/{POOLER_EXPORTER_CONFIG}"],
        "env": [
            {
                "name": "PGPASSWORD",
                "valueFrom": {
                    "secretKeyRef": {
                        "name": names.credentials_secret(db, "superuser"),
                        "key": "password",
                    }
                },
            }
        ],
        "ports": [{"name": "metrics", "containerPort": names.POOLER_METRICS_PORT}],
        "volumeMounts": [{"name": "config", "mountPath": POOLER_CONFIG_DIR}],
        # A TCP probe: an HTTP one would make the exporter query PgBouncer on every probe.
        "readinessProbe": {
            "tcpSocket": {"port": names.POOLER_METRICS_PORT},
            "periodSeconds": 10,
        },
        "securityContext": container_security_context(),
    }


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
    image = db.pooler.image or db.postgres.image
    container = {
        "name": "pgbouncer",
        "image": image,
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
                    "containers": [container]
                    + ([exporter_container(db, image)] if db.pooler.metrics else []),
                    "volumes": volumes,
                },
            },
        },
    }
