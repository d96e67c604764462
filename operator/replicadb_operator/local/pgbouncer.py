"""A local PgBouncer in front of the topology's primary (or of its replicas, like the
operator's read-only pool), configured like the operator's pooler.

The userlist holds the SCRAM verifier read from pg_authid, not the password: PgBouncer
authenticates clients with it and reuses the client's SCRAM keys to log in to the server.
"""

from __future__ import annotations

import os
import resource
import shutil
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg.conninfo import make_conninfo

from replicadb_operator.dataplane.config_files import SUPERUSER
from replicadb_operator.dataplane.datadir import run_program
from replicadb_operator.local.addresses import PGBOUNCER_PORT, POSTGRES_PORT
from replicadb_operator.local.topology import LocalTopology


@dataclass(frozen=True)
class PoolerSettings:
    pool_mode: str = "transaction"
    max_client_conn: int = 2000
    default_pool_size: int = 20


def pgbouncer_ini(
    server_hosts: str,
    listen_host: str,
    directory: Path,
    settings: PoolerSettings,
    listen_port: int = PGBOUNCER_PORT,
) -> str:
    """``server_hosts``: one address, or several separated by commas (PgBouncer 1.17+ opens
    each new server connection to the next one in turn)."""
    return "\n".join(
        [
            "[databases]",
            f"* = host={server_hosts} port={POSTGRES_PORT}",
            "",
            "[pgbouncer]",
            f"listen_addr = {listen_host}",
            f"listen_port = {listen_port}",
            f"unix_socket_dir = {directory}",
            "auth_type = scram-sha-256",
            f"auth_file = {directory / 'userlist.txt'}",
            f"pool_mode = {settings.pool_mode}",
            f"max_client_conn = {settings.max_client_conn}",
            f"default_pool_size = {settings.default_pool_size}",
            # Several servers: use the server connections in turn. The default (the most
            # recently used first) leaves a few connections, on a few servers, doing the work.
            f"server_round_robin = {int(',' in server_hosts)}",
            "ignore_startup_parameters = extra_float_digits,options",
            f"logfile = {directory / 'pgbouncer.log'}",
            f"pidfile = {directory / 'pgbouncer.pid'}",
            "",
        ]
    )


class LocalPgBouncer:
    """``servers``: the instances it pools (default: the primary); ``name`` and ``port`` tell
    several of them apart on the topology's pooler address."""

    def __init__(
        self,
        topology: LocalTopology,
        settings: PoolerSettings | None = None,
        servers: tuple[str, ...] | None = None,
        name: str = "pgbouncer",
        port: int = PGBOUNCER_PORT,
    ) -> None:
        self.topology = topology
        self.settings = settings or PoolerSettings()
        self.servers = servers or (topology.primary,)
        self.directory = topology.base / name
        self.host = topology.block.pooler
        self.port = port

    def dsn(self, dbname: str = "postgres", **extra: str | int | None) -> str:
        return make_conninfo(
            "",
            host=self.host,
            port=self.port,
            user=SUPERUSER,
            password=self.topology.password,
            dbname=dbname,
            connect_timeout=5,
            **extra,
        )

    def _verifier(self) -> str:
        with psycopg.connect(self.topology.dsn(self.topology.primary)) as conn:
            row = conn.execute(
                "SELECT rolpassword FROM pg_authid WHERE rolname = %s", [SUPERUSER]
            ).fetchone()
        if row is None or not row[0]:
            raise RuntimeError(f"no password set for {SUPERUSER}")
        return str(row[0])

    def start(self) -> None:
        binary = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
        self.directory.mkdir(exist_ok=True)
        run_as = self.topology.run_as
        if run_as is not None:
            run_as.chown(self.directory)
        userlist = self.directory / "userlist.txt"
        userlist.write_text(f'"{SUPERUSER}" "{self._verifier()}"\n')
        ini = self.directory / "pgbouncer.ini"
        ini.write_text(
            pgbouncer_ini(
                ",".join(self.topology.instances[name].host for name in self.servers),
                self.host,
                self.directory,
                self.settings,
                self.port,
            )
        )
        for path in (userlist, ini):
            if run_as is not None:
                run_as.chown(path)
            path.chmod(0o600)
        # Every client is a file descriptor: lift our soft limit so the child inherits it.
        _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        wanted = min(hard, self.settings.max_client_conn * 2 + 100)
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
        run_program([binary, "-d", str(ini)], run_as)
        self._wait_listening()

    def _wait_listening(self, timeout_s: float = 10.0) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                with psycopg.connect(self.dsn(), prepare_threshold=None) as conn:
                    conn.execute("SELECT 1")
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def stop(self) -> None:
        pidfile = self.directory / "pgbouncer.pid"
        try:
            pid = int(pidfile.read_text().strip())
        except (FileNotFoundError, ValueError):
            return
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.02)
        os.kill(pid, signal.SIGKILL)
