"""Names and labels of everything the operator creates for one database."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from replicadb_operator.spec import DatabaseSpec

PG_PORT = 5432
POSTGRES_CONTAINER = "postgres"  # beside it in the instance pod: the fence agent
POOLER_PORT = 6432
POOLER_METRICS_PORT = 9127  # the PgBouncer exporter's usual port (CloudNativePG's too)
POSTGRES_UID = 999  # the postgres user in the instance image (fixed in its Dockerfile)

LABEL_DATABASE = "replicadb.io/database"
LABEL_COMPONENT = "replicadb.io/component"
LABEL_ROLE = "replicadb.io/role"  # set on pods by the operator, never in a template
LABEL_POOL = "replicadb.io/pool"
LABEL_SET = "replicadb.io/set"
# Set on replicas by the operator: within spec.readOnly's lag bound or over it. The read-only
# Service selects only the former (a Service selector can only require labels, not exclude).
LABEL_LAG = "replicadb.io/lag"
LAG_WITHIN_BOUND = "within-bound"
LAG_OVER_BOUND = "over-bound"
ROLE_PRIMARY = "primary"
ROLE_REPLICA = "replica"
ROLE_FENCED = "fenced"
ANNOTATION_SWITCHOVER = "replicadb.io/switchover-to"
ANNOTATION_FORCE = "replicadb.io/force"
ANNOTATION_RESTART_HASH = "replicadb.io/restart-parameters-hash"
# The pod template's own hash, carried by every pod made from it: a pod whose value differs
# from the StatefulSets' runs an old template and is rolled (see updates/).
ANNOTATION_REVISION = "replicadb.io/revision"
FIELD_MANAGER = "replicadb-operator"


def common_labels(db: DatabaseSpec) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": "replicadb",
        "app.kubernetes.io/instance": db.name,
        "app.kubernetes.io/managed-by": "replicadb-operator",
        LABEL_DATABASE: db.name,
    }


def instance_selector(db: DatabaseSpec) -> dict[str, str]:
    return {LABEL_DATABASE: db.name, LABEL_COMPONENT: "instance"}


def pooler_selector(db: DatabaseSpec, pool: str) -> dict[str, str]:
    return {LABEL_DATABASE: db.name, LABEL_COMPONENT: "pooler", LABEL_POOL: pool}


def primary_set(db: DatabaseSpec) -> str:
    return f"{db.name}-primary"


def replica_set(db: DatabaseSpec) -> str:
    return f"{db.name}-replica"


def primary_pod(db: DatabaseSpec) -> str:
    return f"{primary_set(db)}-0"


def replica_pod(db: DatabaseSpec, ordinal: int) -> str:
    return f"{replica_set(db)}-{ordinal}"


def headless_service(db: DatabaseSpec) -> str:
    return f"{db.name}-instances"


def rw_service(db: DatabaseSpec) -> str:
    return f"{db.name}-rw"


def ro_service(db: DatabaseSpec) -> str:
    return f"{db.name}-ro"


def pooler(db: DatabaseSpec, pool: str) -> str:
    return f"{db.name}-pooler-{pool}"


def config_map(db: DatabaseSpec) -> str:
    return f"{db.name}-config"


def pooler_config_map(db: DatabaseSpec) -> str:
    return f"{db.name}-pooler-config"


def pooler_auth_secret(db: DatabaseSpec) -> str:
    return f"{db.name}-pooler-auth"


def credentials_secret(db: DatabaseSpec, kind: str) -> str:
    """kind: superuser | replication | app; the user's own Secret when the spec names one."""
    named = {
        "superuser": db.credentials.superuser_secret,
        "replication": db.credentials.replication_secret,
        "app": db.credentials.app_secret,
    }[kind]
    return named or f"{db.name}-{kind}"


def service_account(db: DatabaseSpec) -> str:
    return f"{db.name}-instance"


def pdb(db: DatabaseSpec) -> str:
    return f"{db.name}-instances"


def primary_pdb(db: DatabaseSpec) -> str:
    return f"{db.name}-primary"


def dns(db: DatabaseSpec, service: str) -> str:
    return f"{service}.{db.namespace}.svc"


def tls_secret(db: DatabaseSpec) -> str:
    return db.tls.secret_name or f"{db.name}-tls"


def ca_secret(db: DatabaseSpec) -> str:
    return f"{db.name}-ca"
