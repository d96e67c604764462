"""The pod entrypoint's preparation on real processes: a new primary, a replica by base
backup, a restart, and a former primary that rewinds and follows after a failover."""

from __future__ import annotations

import asyncio
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from replicadb_operator.dataplane import datadir, instance_control
from replicadb_operator.dataplane.bootstrap import BootstrapAction
from replicadb_operator.dataplane.config_files import (
    merged_parameters,
    pg_hba_conf,
    postgresql_conf,
)
from replicadb_operator.dataplane.datadir import RunAs
from replicadb_operator.instance.cluster_view import ClusterView
from replicadb_operator.instance.prepare import (
    BootstrapRefused,
    hold_restarting_primary,
    prepare_instance,
    unfinished_marker,
)
from replicadb_operator.instance.settings import InstanceSettings
from replicadb_operator.local.addresses import find_free_block

from tests.integration.sql import eventually, execute, scalar

pytestmark = pytest.mark.postgres

PODS = ("db-primary-0", "db-replica-0")


class Pods:
    """Two instance 'pods' as local processes: their own address, data and run dirs."""

    def __init__(self, base: Path, run_as: RunAs | None) -> None:
        self.base, self.run_as = base, run_as
        self.log: list[str] = []
        self.processes: list[subprocess.Popen[bytes]] = []
        block = find_free_block(len(PODS))
        self.hosts = {name: block.instance(i) for i, name in enumerate(PODS)}
        self.config, self.secrets = base / "config", base / "secrets"
        for directory in (self.config, self.secrets):
            directory.mkdir()
        (self.config / "postgresql.conf").write_text(
            postgresql_conf(merged_parameters({"shared_buffers": "32MB"}))
        )
        (self.config / "pg_hba.conf").write_text(pg_hba_conf(["127.0.0.0/8"]))
        self.passwords = {
            key: secrets.token_urlsafe(12)
            for key in ("superuser-password", "replication-password", "app-password")
        }
        for key, value in self.passwords.items():
            (self.secrets / key).write_text(value)
        for path in (base, self.config, self.secrets, *self.config.iterdir()):
            self.own(path)
        for path in self.secrets.iterdir():
            self.own(path)

    def own(self, path: Path) -> None:
        if self.run_as is not None:
            self.run_as.chown(path)

    def settings(self, name: str, names_resolve: bool = True) -> InstanceSettings:
        """``names_resolve=False``: peers only by a DNS name that never resolves (``.invalid``),
        so that only the addresses in the status can reach them."""
        pod = self.base / name
        if not pod.exists():
            pod.mkdir(mode=0o700)
            self.own(pod)
        return InstanceSettings(
            name=name,
            database="db",
            namespace="default",
            pgdata=pod / "data",
            config_dir=self.config,
            secrets_dir=self.secrets,
            run_dir=pod / "run",
            peer_domain="unused" if names_resolve else "peers.invalid",
            listen_addresses=self.hosts[name],
            peer_hosts=self.hosts if names_resolve else {},
        )

    def boot(self, name: str, view: ClusterView, names_resolve: bool = True) -> BootstrapAction:
        settings = self.settings(name, names_resolve)
        decision = prepare_instance(settings, view, self.log.append, self.run_as)
        datadir.pg_ctl_start(
            datadir.find_bindir(),
            settings.pgdata,
            settings.server_options(),
            settings.run_dir / "postgres.log",
            self.run_as,
        )
        return decision.action

    def spawn_as_postgres(self, args: list[str]) -> subprocess.Popen[bytes]:
        uid = None if self.run_as is None else self.run_as.uid
        gid = None if self.run_as is None else self.run_as.gid
        process = subprocess.Popen(args, user=uid, group=gid)
        self.processes.append(process)
        return process

    def stop(self, name: str, mode: str = "fast") -> None:
        data = self.settings(name).pgdata
        if datadir.postmaster_pid(data) is not None:
            datadir.pg_ctl_stop(datadir.find_bindir(), data, mode, self.run_as)

    def dsn(self, name: str, user: str = "postgres", dbname: str = "postgres") -> str:
        key = "superuser-password" if user == "postgres" else "app-password"
        return (
            f"host={self.hosts[name]} user={user} dbname={dbname} "
            f"password={self.passwords[key]} connect_timeout=2"
        )


@pytest.fixture
def pods(pg_user: RunAs | None) -> Iterator[Pods]:
    base = Path(tempfile.mkdtemp(prefix="replicadb-pods-"))
    base.chmod(0o711)
    made = Pods(base, pg_user)
    try:
        yield made
    finally:
        for name in PODS:
            made.stop(name, "immediate")
        for process in made.processes:
            process.kill()
            process.wait()
        shutil.rmtree(base, ignore_errors=True)


def test_new_cluster_then_replica_then_failover_and_rewind(pods: Pods) -> None:
    primary, replica = PODS
    fresh = ClusterView(target_primary=primary, current_primary=None, initialized=False)
    assert pods.boot(primary, fresh) is BootstrapAction.INITDB
    # The application role and database exist; the app can write.
    execute(pods.dsn(primary, "app", "app"), "CREATE TABLE items (id int PRIMARY KEY)")
    execute(pods.dsn(primary, "app", "app"), "INSERT INTO items VALUES (1)")

    running = ClusterView(target_primary=primary, current_primary=primary, initialized=True)
    assert pods.boot(replica, running) is BootstrapAction.BASE_BACKUP
    eventually(lambda: scalar(pods.dsn(replica, "app", "app"), "SELECT count(*) FROM items") == 1)
    assert scalar(pods.dsn(replica), "SELECT status FROM pg_stat_wal_receiver") == "streaming"

    # A restart of the replica starts it as before.
    pods.stop(replica)
    assert pods.boot(replica, running) is BootstrapAction.START_REPLICA
    held: list[float] = []
    slow = replace(running, failure_detection_s=3.0)
    assert hold_restarting_primary(pods.settings(replica), slow, fail, print, held.append) is slow
    assert held == []  # a replica restarts without waiting

    # Failover: the primary dies, the operator promotes the replica and records it.
    execute(pods.dsn(primary, "app", "app"), "INSERT INTO items VALUES (2)")
    pods.stop(primary, "immediate")
    # Killed in a container, its postmaster (PID 1 there) left its postmaster.pid, naming a
    # PID that is alive again under the same user: the replacement's entrypoint.
    pid_file = pods.settings(primary).pgdata / "postmaster.pid"
    entrypoint = pods.spawn_as_postgres(["sleep", "60"])
    pid_file.write_text(f"{entrypoint.pid}\n{pid_file.parent}\n")
    pods.own(pid_file)
    asyncio.run(instance_control.promote(pods.dsn(replica)))
    execute(pods.dsn(replica, "app", "app"), "INSERT INTO items VALUES (3)")
    failed_over = ClusterView(
        target_primary=replica,
        current_primary=replica,
        initialized=True,
        addresses={replica: pods.hosts[replica]},
    )

    # Had it restarted on its own before the operator recorded that, it would have waited for
    # the operator's failure detection, then read the decision again, and seen the failover.
    seen = hold_restarting_primary(
        pods.settings(primary), slow, lambda: failed_over, print, held.append
    )
    assert (held, seen) == ([3.0], failed_over)

    # The former primary comes back: it must not accept writes; it rewinds and follows, at the
    # address the status gives (its peers' names resolve to nothing here).
    assert pods.boot(primary, failed_over, names_resolve=False) is BootstrapAction.REWIND_AND_FOLLOW
    assert "pg_rewind: pages copied" in pods.log  # a rewind, not a clone
    assert any("removed the postmaster.pid of a killed postgres" in m for m in pods.log)
    assert scalar(pods.dsn(primary), "SELECT pg_is_in_recovery()") is True
    eventually(
        lambda: (
            scalar(pods.dsn(primary, "app", "app"), "SELECT count(*) FROM items WHERE id = 3") == 1
        ),
        what="former primary replays the new primary's write",
    )
    # Streaming by a name that resolves nowhere: reached at the status' address.
    sender = scalar(pods.dsn(primary), "SELECT sender_host FROM pg_stat_wal_receiver")
    assert sender == f"{replica}.peers.invalid"

    # A pg_rewind or base backup stopped part-way (its pod deleted meanwhile) leaves its
    # marker behind, and what it left is not trusted: the next start clones the primary.
    marker = unfinished_marker(pods.settings(primary))
    assert not marker.exists()  # a finished rewind removes it, as a finished clone does
    assert not unfinished_marker(pods.settings(replica)).exists()
    pods.stop(primary)
    marker.touch()
    assert pods.boot(primary, failed_over, names_resolve=False) is BootstrapAction.BASE_BACKUP
    assert "an earlier pg_rewind or base backup was stopped part-way: cloning again" in pods.log
    assert not marker.exists()
    eventually(
        lambda: scalar(pods.dsn(primary), "SELECT status FROM pg_stat_wal_receiver") == "streaming",
        what="the cloned former primary streams",
    )
    assert scalar(pods.dsn(primary, "app", "app"), "SELECT count(*) FROM items") == 3


def test_designated_primary_with_empty_data_in_an_initialized_cluster_refuses(
    pods: Pods,
) -> None:
    view = ClusterView(target_primary=PODS[0], current_primary=PODS[1], initialized=True)
    with pytest.raises(BootstrapRefused, match="second, empty history"):
        prepare_instance(pods.settings(PODS[0]), view, lambda m: None, pods.run_as)
    assert not (pods.settings(PODS[0]).pgdata / "PG_VERSION").exists()


def fail() -> ClusterView:
    raise AssertionError("the view was read again")


def test_unfinished_data_never_starts_as_the_primary(pods: Pods) -> None:
    settings = pods.settings(PODS[0])
    settings.pgdata.parent.mkdir(parents=True, exist_ok=True)
    unfinished_marker(settings).touch()
    view = ClusterView(target_primary=PODS[0], current_primary=PODS[0], initialized=True)
    with pytest.raises(BootstrapRefused, match="stopped part-way"):
        prepare_instance(settings, view, lambda m: None, pods.run_as)
