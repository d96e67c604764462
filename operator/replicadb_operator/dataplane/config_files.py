"""Pure builders for postgresql.conf and pg_hba.conf, shared by the operator's ConfigMaps and
the local process topology.

Instance-specific settings (addresses, socket directory) are passed on the postgres command
line instead: pg_basebackup and pg_rewind copy configuration files from their source, and
command-line settings survive that.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

REPLICATION_USER = "replicator"
SUPERUSER = "postgres"

# What every instance needs for streaming replication, failover and rewind.
BASE_PARAMETERS: dict[str, str] = {
    "wal_level": "replica",
    "max_wal_senders": "10",
    "max_replication_slots": "10",
    # pg_rewind needs the WAL back to the last common checkpoint; keep enough of it.
    "wal_keep_size": "512MB",
    "wal_log_hints": "on",
    "hot_standby": "on",
    "hot_standby_feedback": "on",
    # Replicas report their positions every second: lag and read-your-writes stay current.
    "wal_receiver_status_interval": "1s",
    "wal_sender_timeout": "10s",
    "wal_receiver_timeout": "10s",
    "recovery_target_timeline": "latest",
    # A standby whose primary_conninfo changed while its WAL receiver was stopped (detached
    # during a failover) retries streaming after this long; the default 5 s adds to RTO.
    "wal_retrieve_retry_interval": "500ms",
    "password_encryption": "scram-sha-256",
    "max_connections": "100",
    "shared_buffers": "128MB",
    "log_line_prefix": "%m [%p] %q%u@%d ",
}

# Parameters that only take effect after a restart (the operator restarts replicas first).
RESTART_PARAMETERS = frozenset(
    {
        "max_connections",
        "shared_buffers",
        "max_wal_senders",
        "max_replication_slots",
        "wal_level",
        "wal_log_hints",
        "hot_standby",
        "max_worker_processes",
        "max_prepared_transactions",
        "max_locks_per_transaction",
        "port",
        "listen_addresses",
        "shared_preload_libraries",
        "ssl",
    }
)


def quote_setting(value: str) -> str:
    """Any setting may be single-quoted in postgresql.conf, so always quote."""
    return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


def merged_parameters(user: Mapping[str, str] | None = None) -> dict[str, str]:
    """The base parameters with the user's on top (the user wins)."""
    merged = dict(BASE_PARAMETERS)
    merged.update(user or {})
    return merged


def postgresql_conf(parameters: Mapping[str, str]) -> str:
    lines = ["# written by replicadb; edit the ReplicatedDatabase spec, not this file"]
    lines += [f"{key} = {quote_setting(str(value))}" for key, value in sorted(parameters.items())]
    return "\n".join(lines) + "\n"


def pg_hba_conf(
    client_cidrs: Iterable[str] = ("0.0.0.0/0", "::/0"),
    require_tls: bool = False,
) -> str:
    """Password (scram-sha-256) everywhere; replication only for the replication role."""
    host = "hostssl" if require_tls else "host"
    lines = [
        "# TYPE  DATABASE     USER        ADDRESS   METHOD",
        "local   all          all                   scram-sha-256",
    ]
    for cidr in client_cidrs:
        lines.append(f"{host}    replication  {REPLICATION_USER}  {cidr}  scram-sha-256")
        lines.append(f"{host}    all          all         {cidr}  scram-sha-256")
    return "\n".join(lines) + "\n"
