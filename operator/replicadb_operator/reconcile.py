"""One idempotent reconcile per database: credentials, then every desired object, then the
target primary in status. Safe to run any number of times; in steady state it only reads.

Returns the status fields it decided, for the handler to patch (empty when none changed).
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from kubernetes.client.exceptions import ApiException

from replicadb_operator import tls_material
from replicadb_operator.builders import names, tls
from replicadb_operator.builders import secrets as secret_builders
from replicadb_operator.builders.desired import desired_objects, pooler_objects
from replicadb_operator.failover import transitions
from replicadb_operator.failover.writer import StatusWriter
from replicadb_operator.kube import apply, clients
from replicadb_operator.spec import DatabaseSpec, SpecError

log = logging.getLogger(__name__)


class WaitingForInput(RuntimeError):
    """Something the user must provide is missing (a named Secret); retried later."""


@dataclass
class ReconcileResult:
    writes: int = 0
    status: dict[str, Any] = field(default_factory=dict)


def read_password(namespace: str, secret: str) -> str:
    try:
        obj = clients.core().read_namespaced_secret(secret, namespace)
    except ApiException as exc:
        if exc.status == 404:
            raise WaitingForInput(f"Secret {namespace}/{secret} does not exist") from exc
        raise
    data = obj.data or {}
    if "password" not in data:
        raise SpecError(f"Secret {namespace}/{secret} has no 'password' key")
    return base64.b64decode(data["password"]).decode()


def ensure_credentials(db: DatabaseSpec) -> tuple[dict[str, str], int]:
    """Generated Secrets are created once and never rewritten; named ones are only read."""
    passwords: dict[str, str] = {}
    writes = 0
    named = {
        "superuser": db.credentials.superuser_secret,
        "replication": db.credentials.replication_secret,
        "app": db.credentials.app_secret,
    }
    for kind in secret_builders.KINDS:
        if not named[kind]:
            obj = secret_builders.credentials_secret(db, kind, secret_builders.new_password())
            writes += apply.create_if_absent(obj)
        passwords[kind] = read_password(db.namespace, names.credentials_secret(db, kind))
    return passwords, writes


def replica_set_size(db: DatabaseSpec, primary: str | None) -> tuple[int, str | None]:
    """Never scale away the pod that is primary: hold the replica set large enough to keep
    it, and say why, until a switchover moves the primary elsewhere."""
    prefix = names.replica_set(db) + "-"
    if primary and primary.startswith(prefix):
        ordinal = int(primary[len(prefix) :])
        if ordinal >= db.replicas:
            return ordinal + 1, (
                f"scale-down to {db.replicas} replicas waits: {primary} is the primary; "
                "switch over to another instance first"
            )
    return db.replicas, None


def _secret_data(namespace: str, name: str) -> dict[str, str] | None:
    try:
        data = clients.core().read_namespaced_secret(name, namespace).data or {}
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise
    return {k: base64.b64decode(v).decode() for k, v in data.items()}


def ensure_tls(db: DatabaseSpec) -> int:
    """The operator's CA and a server certificate, made once, unless the user names a Secret."""
    if not db.tls.enabled or db.tls.secret_name:
        return 0
    writes = 0
    if _secret_data(db.namespace, names.tls_secret(db)) is not None:
        return 0
    ca_data = _secret_data(db.namespace, names.ca_secret(db))
    if ca_data is None:
        ca = tls_material.new_ca(f"{db.name} replicadb CA")
        writes += apply.create_if_absent(tls.ca_secret(db, ca.cert_pem, ca.key_pem))
        ca_data = _secret_data(db.namespace, names.ca_secret(db)) or {}
    ca = tls_material.KeyPair(ca_data["ca.crt"], ca_data["ca.key"])
    server = tls_material.new_server_cert(ca, tls.server_dns_names(db))
    writes += apply.create_if_absent(
        tls.server_tls_secret(db, server.cert_pem, server.key_pem, ca.cert_pem)
    )
    return writes


def reconcile_database(db: DatabaseSpec, status: Mapping[str, Any]) -> ReconcileResult:
    result = ReconcileResult()
    passwords, result.writes = ensure_credentials(db)
    result.writes += ensure_tls(db)
    auth = secret_builders.pooler_auth_secret(db, passwords)
    if db.pooler.enabled:
        result.writes += apply.ensure(auth)
    else:
        for obj in [*pooler_objects(db), auth]:
            result.writes += apply.delete_if_present(obj)
    size, blocked = replica_set_size(db, status.get("primary"))
    # A new pod template goes to both StatefulSets at once; they replace no pod themselves
    # (OnDelete): the monitor rolls them, replicas first (updates/).
    for obj in desired_objects(db, size):
        result.writes += apply.ensure(obj)
    if not status.get("targetPrimary"):
        # A new database: the primary set's pod initialises it. Through the one status
        # writer, like every change of who is (meant to be) primary.
        StatusWriter(db.namespace, db.name).apply(
            partial(transitions.name_first_primary, pod=names.primary_pod(db)), "first primary"
        )
    if (status.get("scaleDownBlocked") or None) != blocked:
        result.status["scaleDownBlocked"] = blocked
    if result.writes:
        log.info("reconciled %s/%s: %d writes", db.namespace, db.name, result.writes)
    return result
