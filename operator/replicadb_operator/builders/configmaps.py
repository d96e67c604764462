"""ConfigMaps: postgresql.conf and pg_hba.conf for the instances, pgbouncer.ini per pool."""

from __future__ import annotations

import hashlib

import yaml

from replicadb_operator.builders import names
from replicadb_operator.builders.metadata import K8sObject, metadata
from replicadb_operator.dataplane.config_files import (
    RESTART_PARAMETERS,
    SUPERUSER,
    merged_parameters,
    pg_hba_conf,
    postgresql_conf,
)
from replicadb_operator.spec import DatabaseSpec

TLS_DIR = "/etc/replicadb/tls"
POOLER_CONFIG_DIR = "/etc/pgbouncer/config"
POOLER_AUTH_DIR = "/etc/pgbouncer/auth"
POOLER_EXPORTER_CONFIG = "pgbouncer-exporter.yaml"


def instance_parameters(db: DatabaseSpec) -> dict[str, str]:
    params = merged_parameters(db.postgres.parameters)
    if db.tls.enabled:
        params |= {
            "ssl": "on",
            "ssl_cert_file": f"{TLS_DIR}/tls.crt",
            "ssl_key_file": f"{TLS_DIR}/tls.key",
        }
    return params


def restart_parameters_hash(db: DatabaseSpec) -> str:
    """Changes exactly when a parameter that needs a restart changes: put on the pod
    template, it makes a new revision, and the operator rolls the instances (updates/)."""
    params = instance_parameters(db)
    text = "\n".join(f"{k}={params[k]}" for k in sorted(params) if k in RESTART_PARAMETERS)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def instance_config(db: DatabaseSpec) -> K8sObject:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata(db, names.config_map(db)),
        "data": {
            "postgresql.conf": postgresql_conf(instance_parameters(db)),
            "pg_hba.conf": pg_hba_conf(require_tls=db.tls.required),
        },
    }


def pgbouncer_ini(db: DatabaseSpec, pool: str) -> str:
    target = names.rw_service(db) if pool == "rw" else names.ro_service(db)
    pooler = db.pooler
    lines = [
        "[databases]",
        f"* = host={names.dns(db, target)} port={names.PG_PORT}",
        "",
        "[pgbouncer]",
        "listen_addr = 0.0.0.0",
        f"listen_port = {names.POOLER_PORT}",
        "unix_socket_dir =",
        "auth_type = scram-sha-256",
        f"auth_file = {POOLER_AUTH_DIR}/userlist.txt",
        f"pool_mode = {pooler.pool_mode}",
        f"max_client_conn = {pooler.max_client_connections}",
        f"default_pool_size = {pooler.default_pool_size}",
        # The read-only Service spreads server connections over the replicas; using them in
        # turn spreads the queries too (the default reuses the most recently used first).
        f"server_round_robin = {int(pool == 'ro')}",
        "ignore_startup_parameters = extra_float_digits,options",
        f"admin_users = {SUPERUSER}",
        f"stats_users = {SUPERUSER}",
        # After a failover the Service sends new connections to the new primary; server
        # connections to a primary cut off the network must not hang for TCP's minutes.
        "server_connect_timeout = 3",
        "server_login_retry = 1",
        "tcp_keepalive = 1",
        "tcp_keepidle = 5",
        "tcp_keepintvl = 2",
        "tcp_keepcnt = 3",
        "query_wait_timeout = 30",
        "logfile =",
        "log_connections = 0",
        "log_disconnections = 0",
        "server_tls_sslmode = prefer",
    ]
    if db.tls.enabled:
        lines += [
            "client_tls_sslmode = " + ("require" if db.tls.required else "allow"),
            f"client_tls_cert_file = {TLS_DIR}/tls.crt",
            f"client_tls_key_file = {TLS_DIR}/tls.key",
        ]
    return "\n".join(lines) + "\n"


def pgbouncer_exporter_yaml(db: DatabaseSpec) -> str:
    """prometheus-pgbouncer-exporter's configuration: the PgBouncer beside it, over loopback.
    The DSN names no password: libpq takes it from PGPASSWORD (set from the superuser
    Secret), so it is in neither the ConfigMap nor the exporter's log of its DSN. No extra
    labels: the scrape adds ``database`` and ``pool`` from the pod's labels (see
    manifests/monitoring/servicemonitor.yaml)."""
    config = {
        "exporter_host": "0.0.0.0",
        "exporter_port": names.POOLER_METRICS_PORT,
        "pgbouncers": [
            {
                "dsn": f"host=127.0.0.1 port={names.POOLER_PORT} dbname=pgbouncer "
                f"user={SUPERUSER} sslmode={'require' if db.tls.required else 'prefer'}",
                "connect_timeout": 2,
            }
        ],
    }
    return yaml.safe_dump(config, sort_keys=False)


def pooler_config(db: DatabaseSpec) -> K8sObject:
    data = {f"pgbouncer-{pool}.ini": pgbouncer_ini(db, pool) for pool in ("rw", "ro")}
    if db.pooler.metrics:
        data[POOLER_EXPORTER_CONFIG] = pgbouncer_exporter_yaml(db)
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata(db, names.pooler_config_map(db)),
        "data": data,
    }
