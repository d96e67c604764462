"""Services: read-write and read-only select instance pods by the role label the operator
sets, so routing follows a label flip; the headless one gives every pod a stable DNS name."""

from __future__ import annotations

from replicadb_operator.builders import names
from replicadb_operator.builders.metadata import K8sObject, metadata
from replicadb_operator.spec import DatabaseSpec


def _service(
    db: DatabaseSpec, name: str, selector: dict[str, str], port: int, headless: bool = False
) -> K8sObject:
    spec: dict[str, object] = {
        "selector": selector,
        "ports": [{"name": "postgres", "port": port, "targetPort": port, "protocol": "TCP"}],
    }
    if headless:
        spec["clusterIP"] = "None"
        # Replicas find the primary by its pod name before anything is Ready.
        spec["publishNotReadyAddresses"] = True
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(db, name),
        "spec": spec,
    }


def headless_service(db: DatabaseSpec) -> K8sObject:
    return _service(
        db, names.headless_service(db), names.instance_selector(db), names.PG_PORT, headless=True
    )


def read_write_service(db: DatabaseSpec) -> K8sObject:
    selector = {**names.instance_selector(db), names.LABEL_ROLE: names.ROLE_PRIMARY}
    return _service(db, names.rw_service(db), selector, names.PG_PORT)


def read_only_service(db: DatabaseSpec) -> K8sObject:
    """Replicas within spec.readOnly's lag bound (all of them when it is unset)."""
    selector = {
        **names.instance_selector(db),
        names.LABEL_ROLE: names.ROLE_REPLICA,
        names.LABEL_LAG: names.LAG_WITHIN_BOUND,
    }
    return _service(db, names.ro_service(db), selector, names.PG_PORT)


def pooler_service(db: DatabaseSpec, pool: str) -> K8sObject:
    """Labelled like its pods, so a ServiceMonitor can select the poolers; the ``metrics``
    port is the one it scrapes."""
    service = _service(
        db, names.pooler(db, pool), names.pooler_selector(db, pool), names.POOLER_PORT
    )
    service["metadata"]["labels"] |= names.pooler_selector(db, pool)
    if db.pooler.metrics:
        service["spec"]["ports"].append(
            {
                "name": "metrics",
                "port": names.POOLER_METRICS_PORT,
                "targetPort": names.POOLER_METRICS_PORT,
                "protocol": "TCP",
            }
        )
    return service
