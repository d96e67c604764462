"""Credentials Secrets. Passwords are inputs: the reconcile generates them (CSPRNG) only
when a Secret does not exist yet, so a builder run never rotates anything."""

from __future__ import annotations

import secrets as random_secrets

from psycopg.conninfo import make_conninfo

from replicadb_operator.builders import names
from replicadb_operator.builders.metadata import K8sObject, metadata
from replicadb_operator.dataplane.config_files import REPLICATION_USER, SUPERUSER
from replicadb_operator.spec import DatabaseSpec

PASSWORD_BYTES = 24
KINDS = ("superuser", "replication", "app")


def new_password() -> str:
    return random_secrets.token_urlsafe(PASSWORD_BYTES)


def username_of(db: DatabaseSpec, kind: str) -> str:
    users = {"superuser": SUPERUSER, "replication": REPLICATION_USER}
    return users.get(kind, db.credentials.app_user)


def credentials_secret(db: DatabaseSpec, kind: str, password: str) -> K8sObject:
    data = {"username": username_of(db, kind), "password": password}
    if kind == "app":
        host = names.dns(db, names.rw_service(db))
        data |= {
            "dbname": db.credentials.app_database,
            "host": host,
            "port": str(names.PG_PORT),
            "readOnlyHost": names.dns(db, names.ro_service(db)),
            "poolerHost": names.dns(db, names.pooler(db, "rw")),
            "poolerReadOnlyHost": names.dns(db, names.pooler(db, "ro")),
            "dsn": make_conninfo(
                "",
                host=host,
                port=names.PG_PORT,
                user=db.credentials.app_user,
                password=password,
                dbname=db.credentials.app_database,
            ),
        }
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": metadata(db, names.credentials_secret(db, kind)),
        "type": "kubernetes.io/basic-auth",
        "stringData": data,
    }


def pooler_auth_secret(db: DatabaseSpec, passwords: dict[str, str]) -> K8sObject:
    """PgBouncer's auth_file: the application role and the superuser (admin console)."""

    def quoted(value: str) -> str:
        return '"' + value.replace('"', '""') + '"'

    lines = [
        f"{quoted(db.credentials.app_user)} {quoted(passwords['app'])}",
        f"{quoted(SUPERUSER)} {quoted(passwords['superuser'])}",
    ]
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": metadata(db, names.pooler_auth_secret(db)),
        "type": "Opaque",
        "stringData": {"userlist.txt": "\n".join(lines) + "\n"},
    }
