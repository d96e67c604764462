"""``replicadb-instance``: the PostgreSQL container's command.

Reads the instance's settings and the operator's decision (CR status), prepares PGDATA,
then replaces itself with postgres so that signals and exit codes are postgres's own.
"""

from __future__ import annotations

import fcntl
import os
import sys
import time
from pathlib import Path

from replicadb_operator.dataplane import datadir
from replicadb_operator.instance.cluster_view import (
    ClusterView,
    read_cluster_view,
    wait_for_target,
)
from replicadb_operator.instance.prepare import (
    BootstrapRefused,
    hold_restarting_primary,
    prepare_instance,
)
from replicadb_operator.instance.settings import InstanceSettings
from replicadb_operator.instance.stop_signals import StopSignals


def log(message: str, component: str = "replicadb-instance") -> None:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
    print(f'{{"ts": "{stamp}", "component": "{component}", "msg": {message!r}}}', flush=True)


LOCK_WAIT_S = 120.0


def hold_data_lock(path: Path, wait_s: float = LOCK_WAIT_S) -> int:
    """Take an exclusive flock next to PGDATA and keep it through exec into postgres.

    A force-deleted pod's containers can outlive its API object, and the StatefulSet starts
    the replacement at once, on the same volume. PostgreSQL's own postmaster.pid cannot tell
    (both postmasters are PID 1 in their containers); this lock can, on the same node's
    volume: the replacement waits until every process of the old one has exited."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    deadline = time.monotonic() + wait_s
    said = False
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{path} still locked after {wait_s:.0f} s") from None
            if not said:
                log("another postgres still uses this volume (a replaced pod); waiting")
                said = True
            time.sleep(0.2)
    os.set_inheritable(fd, True)  # postgres and its children keep holding it
    return fd


def main() -> int:
    stop = StopSignals()
    stop.install()  # see stop_signals: PID 1 needs handlers to stop promptly
    settings = InstanceSettings.from_env()
    settings.pgdata.parent.mkdir(parents=True, exist_ok=True)
    hold_data_lock(settings.pgdata.parent / ".replicadb-instance.lock")

    def read() -> ClusterView:
        return read_cluster_view(settings.namespace, settings.database)

    view = wait_for_target(read, log, settings.name)
    view = hold_restarting_primary(
        settings, view, lambda: wait_for_target(read, log, settings.name), log
    )
    try:
        prepare_instance(settings, view, log, uninterrupted=stop.deferred)
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
