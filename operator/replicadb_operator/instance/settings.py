"""What an instance pod knows about itself, from its environment and mounted files.

| variable             | meaning                                                        |
| -------------------- | -------------------------------------------------------------- |
| POD_NAME             | this instance's name (also its application_name)               |
| RDB_NAME             | the ReplicatedDatabase it belongs to                           |
| POD_NAMESPACE        | namespace of both                                              |
| PGDATA               | data directory (on the volume claim)                           |
| RDB_CONFIG_DIR       | postgresql.conf, pg_hba.conf (ConfigMap); /etc/replicadb/config |
| RDB_SECRETS_DIR      | superuser-password, replication-password, app-password files  |
| RDB_RUN_DIR          | writable scratch (passfile, socket), default /run/replicadb    |
| RDB_PEER_DOMAIN      | DNS suffix of instance pods: <pod>.<suffix> (headless Service)  |
| RDB_APP_USER / RDB_APP_DATABASE | the application role and database created at initdb |
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from replicadb_operator.dataplane.config_files import REPLICATION_USER, SUPERUSER
from replicadb_operator.dataplane.conninfo import pgpass_line, primary_conninfo, superuser_conninfo

POSTGRES_PORT = 5432


@dataclass(frozen=True)
class InstanceSettings:
    name: str
    database: str
    namespace: str
    pgdata: Path
    config_dir: Path
    secrets_dir: Path
    run_dir: Path
    peer_domain: str
    app_user: str = "app"
    app_database: str = "app"
    listen_addresses: str = "*"
    port: int = POSTGRES_PORT
    sslmode: str = "prefer"
    # Tests outside Kubernetes map instance names to addresses instead of DNS.
    peer_hosts: Mapping[str, str] = field(default_factory=dict)
    # Where each instance last answered, from the status (ClusterView.addresses): dialled
    # as libpq's hostaddr, with the DNS name kept as host. Cluster DNS serves a recreated
    # pod's old address for up to 30 s, and a failover's new primary is often one.
    peer_addresses: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> InstanceSettings:
        env = os.environ if env is None else env
        missing = [k for k in ("POD_NAME", "RDB_NAME", "POD_NAMESPACE", "PGDATA") if k not in env]
        if missing:
            raise RuntimeError(f"missing environment: {', '.join(missing)}")
        name, database, namespace = env["POD_NAME"], env["RDB_NAME"], env["POD_NAMESPACE"]
        return cls(
            name=name,
            database=database,
            namespace=namespace,
            pgdata=Path(env["PGDATA"]),
            config_dir=Path(env.get("RDB_CONFIG_DIR", "/etc/replicadb/config")),
            secrets_dir=Path(env.get("RDB_SECRETS_DIR", "/etc/replicadb/secrets")),
            run_dir=Path(env.get("RDB_RUN_DIR", "/run/replicadb")),
            peer_domain=env.get("RDB_PEER_DOMAIN", f"{database}-instances.{namespace}.svc"),
            app_user=env.get("RDB_APP_USER", "app"),
            app_database=env.get("RDB_APP_DATABASE", "app"),
            sslmode=env.get("RDB_SSLMODE", "prefer"),
        )

    def secret(self, key: str) -> str:
        return (self.secrets_dir / key).read_text().strip()

    @property
    def passfile(self) -> Path:
        return self.run_dir / "pgpass"

    def host_of(self, instance: str) -> str:
        return self.peer_hosts.get(instance) or f"{instance}.{self.peer_domain}"

    def follow_conninfo(self, primary: str) -> str:
        return primary_conninfo(
            self.host_of(primary),
            self.port,
            self.name,
            str(self.passfile),
            self.sslmode,
            hostaddr=self.peer_addresses.get(primary),
        )

    def rewind_source(self, primary: str) -> str:
        return superuser_conninfo(
            self.host_of(primary),
            self.port,
            str(self.passfile),
            sslmode=self.sslmode,
            hostaddr=self.peer_addresses.get(primary),
        )

    def passfile_text(self) -> str:
        return (
            pgpass_line("*", "*", REPLICATION_USER, self.secret("replication-password"))
            + "\n"
            + pgpass_line("*", "*", SUPERUSER, self.secret("superuser-password"))
            + "\n"
        )

    def server_options(self) -> dict[str, str]:
        """postgres -c options: what is specific to this pod (the shared configuration is
        included from PGDATA/postgresql.conf, see prepare.write_config_include)."""
        return {
            "listen_addresses": self.listen_addresses,
            "port": str(self.port),
            "unix_socket_directories": str(self.run_dir),
            "cluster_name": self.name,
        }
