"""Connection strings for replication and rewind, built by libpq's rules (psycopg's
make_conninfo quotes values), with passwords kept in a passfile, never inline."""

from __future__ import annotations

from psycopg.conninfo import make_conninfo

from replicadb_operator.dataplane.config_files import REPLICATION_USER, SUPERUSER


def primary_conninfo(
    host: str,
    port: int,
    application_name: str,
    passfile: str,
    sslmode: str = "prefer",
    user: str = REPLICATION_USER,
    hostaddr: str | None = None,
) -> str:
    """What a standby streams from. ``application_name`` is the name synchronous_standby_names
    and pg_stat_replication know the standby by. ``hostaddr``: the address to connect to
    without a DNS lookup (``host`` stays the name, for TLS and messages)."""
    return make_conninfo(
        host=host,
        hostaddr=hostaddr,
        port=port,
        user=user,
        application_name=application_name,
        passfile=passfile,
        sslmode=sslmode,
        connect_timeout=2,
    )


def superuser_conninfo(
    host: str,
    port: int,
    passfile: str,
    dbname: str = "postgres",
    sslmode: str = "prefer",
    hostaddr: str | None = None,
) -> str:
    """For pg_rewind's --source-server and pg_basebackup (rewind needs a superuser)."""
    return make_conninfo(
        host=host,
        hostaddr=hostaddr,
        port=port,
        user=SUPERUSER,
        dbname=dbname,
        passfile=passfile,
        sslmode=sslmode,
        connect_timeout=2,
    )


def pgpass_line(host: str, port: int | str, user: str, password: str, database: str = "*") -> str:
    """One ~/.pgpass line; ':' and '\\' in fields are escaped as libpq expects."""

    def esc(value: str) -> str:
        return value.replace("\\", "\\\\").replace(":", "\\:")

    return ":".join(esc(str(v)) for v in (host, port, database, user, password))
