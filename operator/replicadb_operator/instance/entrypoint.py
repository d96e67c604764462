"""``replicadb-instance``: the PostgreSQL container's command.

Reads the instance's settings and the operator's decision (CR status), prepares PGDATA,
then replaces itself with postgres so that signals and exit codes are postgres's own.
"""

from __future__ import annotations

import os
import sys
import time

from replicadb_operator.dataplane import datadir
from replicadb_operator.instance.cluster_view import read_cluster_view, wait_for_target
from replicadb_operator.instance.prepare import BootstrapRefused, prepare_instance
from replicadb_operator.instance.settings import InstanceSettings


def log(message: str) -> None:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
    print(f'{{"ts": "{stamp}", "component": "replicadb-instance", "msg": {message!r}}}', flush=True)


def main() -> int:
    settings = InstanceSettings.from_env()
    view = wait_for_target(
        lambda: read_cluster_view(settings.namespace, settings.database), log, settings.name
    )
    try:
        prepare_instance(settings, view, log)
    except BootstrapRefused as exc:
        log(f"refusing to start: {exc}")
        return 2
    command = datadir.start_command(
        datadir.find_bindir(), settings.pgdata, settings.server_options()
    )
    log("starting postgres")
    os.execv(command[0], command)


if __name__ == "__main__":
    sys.exit(main())
