"""A primary and N streaming replicas as local processes, built with the data plane's own
operations (initdb with checksums, pg_basebackup, pg_rewind, standby.signal).

Instances are named ``pg-0``, ``pg-1``... like pods of a StatefulSet; ``pg-0`` starts as the
primary. All of it lives under one base directory and is gone after :meth:`destroy`.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import tempfile
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from replicadb_operator.dataplane import datadir
from replicadb_operator.dataplane.config_files import (
    REPLICATION_USER,
    SUPERUSER,
    merged_parameters,
    pg_hba_conf,
    postgresql_conf,
)
from replicadb_operator.dataplane.conninfo import pgpass_line, primary_conninfo, superuser_conninfo
from replicadb_operator.dataplane.datadir import RunAs
from replicadb_operator.local.addresses import POSTGRES_PORT, AddressBlock, find_free_block

OWNER_FILE = "owner.pid"
BASE_PREFIX = "replicadb-"

LOCAL_PARAMETERS = {
    # Small footprint: several topologies may run side by side on a 2-core test machine.
    "shared_buffers": "32MB",
    "max_connections": "100",
    "wal_keep_size": "256MB",
    "logging_collector": "off",
}


@dataclass
class LocalInstance:
    name: str
    host: str
    directory: Path

    @property
    def datadir(self) -> Path:
        return self.directory / "data"

    @property
    def logfile(self) -> Path:
        return self.directory / "postgres.log"

    @property
    def options(self) -> dict[str, str]:
        """Settings that belong to this instance, not to its data (they survive rewind)."""
        return {
            "listen_addresses": self.host,
            "port": str(POSTGRES_PORT),
            "unix_socket_directories": str(self.directory),
            "cluster_name": self.name,
        }


class LocalTopology:
    def __init__(
        self,
        replicas: int = 2,
        base: Path | None = None,
        run_as: RunAs | None = None,
        parameters: dict[str, str] | None = None,
        block: AddressBlock | None = None,
        password: str | None = None,
    ) -> None:
        self.run_as = run_as
        self.bindir = datadir.find_bindir()
        self.base = base or Path(tempfile.mkdtemp(prefix=BASE_PREFIX))
        self.block: AddressBlock = block or find_free_block(replicas + 1)
        self.password = password or secrets.token_urlsafe(18)
        self.parameters = {**LOCAL_PARAMETERS, **(parameters or {})}
        self.instances = {
            f"pg-{i}": LocalInstance(f"pg-{i}", self.block.instance(i), self.base / f"pg-{i}")
            for i in range(replicas + 1)
        }
        self.primary = "pg-0"

    # -- files owned by the server user ---------------------------------------------------
    def _own(self, path: Path, mode: int) -> None:
        if self.run_as is not None:
            self.run_as.chown(path)
        path.chmod(mode)

    def _write_private(self, path: Path, text: str) -> None:
        path.write_text(text)
        self._own(path, 0o600)

    @property
    def passfile(self) -> Path:
        return self.base / "pgpass"

    # -- connection strings ---------------------------------------------------------------
    def dsn(self, name: str, dbname: str = "postgres", **extra: str | int) -> str:
        """A client DSN for the superuser (tests and benchmarks run as root)."""
        return make_conninfo(
            "",
            host=self.instances[name].host,
            port=POSTGRES_PORT,
            user=SUPERUSER,
            password=self.password,
            dbname=dbname,
            connect_timeout=2,
            **extra,
        )

    def dsns(self) -> dict[str, str]:
        return {name: self.dsn(name) for name in self.instances}

    def follower_conninfo(self, primary: str, follower: str) -> str:
        return primary_conninfo(
            self.instances[primary].host, POSTGRES_PORT, follower, str(self.passfile)
        )

    def _source_conninfo(self, primary: str) -> str:
        return superuser_conninfo(self.instances[primary].host, POSTGRES_PORT, str(self.passfile))

    @property
    def replicas(self) -> list[str]:
        return [name for name in self.instances if name != self.primary]

    # -- lifecycle ------------------------------------------------------------------------
    def start(self, owner_pid: int | None = None) -> None:
        """Start everything. ``owner_pid`` (default: this process) is recorded so that
        :func:`reap_abandoned` can stop a topology whose owner died without cleaning up;
        pass 0 for a topology meant to outlive its starter (``replicadb-local up``)."""
        self._own(self.base, 0o711)
        pid = os.getpid() if owner_pid is None else owner_pid
        (self.base / OWNER_FILE).write_text(f"{pid}\n")
        self._write_private(
            self.passfile,
            pgpass_line("*", "*", REPLICATION_USER, self.password)
            + "\n"
            + pgpass_line("*", "*", SUPERUSER, self.password)
            + "\n",
        )
        for inst in self.instances.values():
            inst.directory.mkdir()
            self._own(inst.directory, 0o700)
        self._init_primary(self.instances[self.primary])
        for name in self.replicas:
            self._clone(name, self.primary)
            self.start_instance(name)

    def _init_primary(self, inst: LocalInstance) -> None:
        pwfile = inst.directory / "pwfile"
        self._write_private(pwfile, self.password + "\n")
        datadir.initdb(self.bindir, inst.datadir, pwfile, self.run_as)
        pwfile.unlink()
        (inst.datadir / "postgresql.conf").write_text(
            postgresql_conf(merged_parameters(self.parameters))
        )
        (inst.datadir / "pg_hba.conf").write_text(pg_hba_conf(["127.0.0.0/8"]))
        self.start_instance(inst.name)
        with psycopg.connect(self.dsn(inst.name), autocommit=True) as conn:
            conn.execute(
                sql.SQL("CREATE ROLE {} WITH REPLICATION LOGIN PASSWORD {}").format(
                    sql.Identifier(REPLICATION_USER), sql.Literal(self.password)
                )
            )

    def _clone(self, name: str, source: str) -> None:
        inst = self.instances[name]
        conninfo = self.follower_conninfo(source, name)
        datadir.base_backup(self.bindir, inst.datadir, conninfo, self.run_as)
        datadir.make_standby(inst.datadir, conninfo)

    def start_instance(self, name: str) -> None:
        inst = self.instances[name]
        datadir.pg_ctl_start(self.bindir, inst.datadir, inst.options, inst.logfile, self.run_as)

    def stop_instance(self, name: str, mode: str = "fast") -> None:
        """Stop one instance; ``immediate`` is a crash as far as its data is concerned."""
        inst = self.instances[name]
        if datadir.postmaster_pid(inst.datadir) is not None:
            datadir.pg_ctl_stop(self.bindir, inst.datadir, mode, self.run_as)

    def kill(self, name: str) -> None:
        self.stop_instance(name, "immediate")

    def rejoin(self, name: str, primary: str) -> bool:
        """Bring a stopped former primary back as a standby of ``primary`` (checkpoint on the
        source, pg_rewind, standby.signal, start). True when pages were rewound."""
        # See instance_control.checkpoint: pg_rewind reads the source's timeline from pg_control.
        with psycopg.connect(self.dsn(primary), autocommit=True) as conn:
            conn.execute("CHECKPOINT")
        inst = self.instances[name]
        rewound = datadir.rewind(
            self.bindir, inst.datadir, self._source_conninfo(primary), self.run_as
        )
        datadir.make_standby(inst.datadir, self.follower_conninfo(primary, name))
        self.start_instance(name)
        return rewound

    def stop(self) -> None:
        for name in self.instances:
            with contextlib.suppress(datadir.CommandFailed):  # already down
                self.stop_instance(name, "immediate")

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.base, ignore_errors=True)

    # -- a record for the command line, which starts and stops in separate runs ------------
    def save(self, path: Path) -> None:
        state = {
            "base": str(self.base),
            "primary": self.primary,
            "replicas": len(self.instances) - 1,
            "block": self.block.second_octet,
            "password": self.password,
            "run_as": self.run_as.name if self.run_as else None,
        }
        path.write_text(json.dumps(state, indent=2))
        path.chmod(0o600)  # it holds the password

    @classmethod
    def load(cls, path: Path) -> LocalTopology:
        state = json.loads(path.read_text())
        topology = cls(
            replicas=int(state["replicas"]),
            base=Path(state["base"]),
            run_as=RunAs.lookup(state["run_as"]) if state["run_as"] else None,
            block=AddressBlock(int(state["block"])),
            password=str(state["password"]),
        )
        topology.primary = str(state["primary"])
        return topology


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def reap_abandoned(parent: Path | None = None) -> list[Path]:
    """Stop and remove topologies whose owning process is gone (a test run killed by a signal
    or a timeout never runs its teardown). Returns the directories removed."""
    parent = parent or Path(tempfile.gettempdir())
    reaped = []
    for base in parent.glob(BASE_PREFIX + "*"):
        try:
            owner = int((base / OWNER_FILE).read_text())
        except (FileNotFoundError, ValueError, NotADirectoryError):
            continue
        if owner == 0 or _alive(owner):
            continue
        # SIGQUIT is PostgreSQL's immediate shutdown; SIGTERM is PgBouncer's.
        pidfiles = [(p, signal.SIGQUIT) for p in base.glob("*/data/postmaster.pid")]
        pidfiles += [(p, signal.SIGTERM) for p in base.glob("pgbouncer/*.pid")]
        for pidfile, signum in pidfiles:
            with contextlib.suppress(ValueError, FileNotFoundError, ProcessLookupError):
                os.kill(int(pidfile.read_text().split("\n", 1)[0]), signum)
        shutil.rmtree(base, ignore_errors=True)
        reaped.append(base)
    return reaped
