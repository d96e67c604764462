"""The unprivileged account local servers run as when we are root (PostgreSQL refuses root)."""

from __future__ import annotations

import os
import subprocess

from replicadb_operator.dataplane.datadir import RunAs

DEFAULT_USER = "replicadb-test"


def server_user(name: str = DEFAULT_USER) -> RunAs | None:
    """None when not root (servers then run as ourselves); else ``name``, created if absent."""
    if os.geteuid() != 0:
        return None
    try:
        return RunAs.lookup(name)
    except KeyError:
        subprocess.run(
            [
                "useradd",
                "--system",
                "--no-create-home",
                "--home-dir",
                "/nonexistent",
                "--shell",
                "/usr/sbin/nologin",
                name,
            ],
            check=True,
        )
        return RunAs.lookup(name)
