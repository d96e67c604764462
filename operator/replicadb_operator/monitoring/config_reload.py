"""Reloadable parameters reach the instances without a restart.

The kubelet refreshes a mounted ConfigMap on its own schedule (up to about a minute), and
PostgreSQL does not watch its files. So the monitor checks, per instance, that the file the
server sees is the one the spec asks for, and then calls pg_reload_conf(). Parameters that
need a restart change the pod template instead, and the pods are rolled (see updates/).
"""

from __future__ import annotations

import hashlib
import logging

import psycopg

from replicadb_operator.builders.configmaps import instance_config
from replicadb_operator.builders.statefulsets import CONFIG_DIR
from replicadb_operator.dataplane import instance_control
from replicadb_operator.spec import DatabaseSpec

log = logging.getLogger(__name__)

FILES = ("postgresql.conf", "pg_hba.conf")
_SEEN_SQL = "SELECT " + ", ".join(f"md5(pg_read_file('{CONFIG_DIR}/{name}'))" for name in FILES)


def wanted_digests(db: DatabaseSpec) -> tuple[str, ...]:
    data = instance_config(db)["data"]
    return tuple(hashlib.md5(data[name].encode()).hexdigest() for name in FILES)


class ConfigReloader:
    """Remembers, per instance, which configuration it was last reloaded with."""

    def __init__(self) -> None:
        self.applied: dict[str, tuple[str, ...]] = {}

    async def reload_where_needed(self, db: DatabaseSpec, dsns: dict[str, str]) -> list[str]:
        """Reload every instance whose mounted files now match the spec and that has not been
        reloaded with them yet; returns those reloaded."""
        want = wanted_digests(db)
        reloaded = []
        for name, dsn in dsns.items():
            if self.applied.get(name) == want:
                continue
            try:
                async with instance_control.admin_connection(dsn, connect_timeout_s=1.0) as conn:
                    row = await (await conn.execute(_SEEN_SQL)).fetchone()
                    if row is None or tuple(row) != want:
                        continue  # the kubelet has not refreshed the files yet
                    await conn.execute("SELECT pg_reload_conf()")
            except (OSError, TimeoutError, psycopg.Error) as exc:
                log.debug("config check on %s failed: %s", name, exc)
                continue
            self.applied[name] = want
            reloaded.append(name)
        return reloaded
