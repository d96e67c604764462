"""TLS Secrets (the operator's CA and the server certificate) and the names it must cover."""

from __future__ import annotations

from replicadb_operator.builders import names
from replicadb_operator.builders.metadata import K8sObject, metadata
from replicadb_operator.spec import DatabaseSpec


def server_dns_names(db: DatabaseSpec) -> list[str]:
    """Every name a client may verify the server by (verify-full), short and qualified."""
    services = [names.rw_service(db), names.ro_service(db)]
    if db.pooler.enabled:
        services += [names.pooler(db, "rw"), names.pooler(db, "ro")]
    out: list[str] = []
    for service in services:
        out += [service, names.dns(db, service), f"{names.dns(db, service)}.cluster.local"]
    out.append(f"*.{names.dns(db, names.headless_service(db))}")
    return out


def ca_secret(db: DatabaseSpec, cert_pem: str, key_pem: str) -> K8sObject:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": metadata(db, names.ca_secret(db)),
        "type": "Opaque",
        "stringData": {"ca.crt": cert_pem, "ca.key": key_pem},
    }


def server_tls_secret(db: DatabaseSpec, cert_pem: str, key_pem: str, ca_pem: str) -> K8sObject:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": metadata(db, names.tls_secret(db)),
        "type": "kubernetes.io/tls",
        "stringData": {"tls.crt": cert_pem, "tls.key": key_pem, "ca.crt": ca_pem},
    }
