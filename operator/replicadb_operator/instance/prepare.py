"""Carry out the bootstrap decision before postgres starts.

Each path leaves PGDATA ready for ``postgres -D PGDATA``: a new primary has its roles and
application database; a replica or a rewound former primary has standby.signal and a
primary_conninfo naming the current primary.

PGDATA/postgresql.conf only includes the mounted configuration. It must live in PGDATA:
pg_rewind runs crash recovery in single-user mode with PGDATA's own configuration, and with
initdb's defaults (wal_keep_size 0) that recovery recycles the very WAL the rewind needs.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import replace
from pathlib import Path

import psycopg
from psycopg import sql

from replicadb_operator.dataplane import datadir
from replicadb_operator.dataplane.bootstrap import (
    BootstrapAction,
    BootstrapDecision,
    DataDirState,
    decide_bootstrap,
)
from replicadb_operator.dataplane.config_files import REPLICATION_USER, SUPERUSER, quote_setting
from replicadb_operator.dataplane.datadir import RunAs
from replicadb_operator.instance.cluster_view import ClusterView
from replicadb_operator.instance.settings import InstanceSettings

Log = Callable[[str], None]
# Runs a step that a stop signal must not cut short (StopSignals.deferred in the entrypoint).
Uninterrupted = Callable[[], AbstractContextManager[None]]
RETRYABLE = (datadir.CommandFailed, psycopg.OperationalError)


class BootstrapRefused(RuntimeError):
    pass


def _write_private(path: Path, text: str, run_as: RunAs | None) -> None:
    path.write_text(text)
    if run_as is not None:
        run_as.chown(path)
    path.chmod(0o600)


def _retry(action: Callable[[], None], what: str, log: Log, attempts: int = 30) -> None:
    """The primary may not be reachable yet (it is starting, or DNS is not there yet)."""
    for attempt in range(1, attempts + 1):
        try:
            action()
            return
        except RETRYABLE as exc:
            if attempt == attempts:
                raise
            log(f"{what} failed (attempt {attempt}/{attempts}), retrying: {exc}")
            time.sleep(min(10.0, 0.5 * attempt))


def write_config_include(settings: InstanceSettings) -> None:
    config = settings.config_dir
    (settings.pgdata / "postgresql.conf").write_text(
        "# written by replicadb: the configuration lives in the mounted ConfigMap\n"
        f"include {quote_setting(str(config / 'postgresql.conf'))}\n"
        f"hba_file = {quote_setting(str(config / 'pg_hba.conf'))}\n"
    )


def _initialize(settings: InstanceSettings, bindir: Path, run_as: RunAs | None, log: Log) -> None:
    pwfile = settings.run_dir / "initdb-password"
    _write_private(pwfile, settings.secret("superuser-password") + "\n", run_as)
    try:
        datadir.initdb(bindir, settings.pgdata, pwfile, run_as)
    finally:
        pwfile.unlink(missing_ok=True)
    write_config_include(settings)
    log("initdb done; creating roles and the application database")
    options = {**settings.server_options(), "listen_addresses": ""}
    datadir.pg_ctl_start(bindir, settings.pgdata, options, settings.run_dir / "init.log", run_as)
    try:
        with psycopg.connect(
            host=str(settings.run_dir),
            port=settings.port,
            user=SUPERUSER,
            password=settings.secret("superuser-password"),
            dbname="postgres",
            autocommit=True,
        ) as conn:
            for role, key, extra in (
                (REPLICATION_USER, "replication-password", "REPLICATION"),
                (settings.app_user, "app-password", ""),
            ):
                conn.execute(
                    sql.SQL("CREATE ROLE {} WITH LOGIN {} PASSWORD {}").format(
                        sql.Identifier(role), sql.SQL(extra), sql.Literal(settings.secret(key))
                    )
                )
            conn.execute(
                sql.SQL("CREATE DATABASE {} OWNER {}").format(
                    sql.Identifier(settings.app_database), sql.Identifier(settings.app_user)
                )
            )
    finally:
        datadir.pg_ctl_stop(bindir, settings.pgdata, "fast", run_as)


def _clone(
    settings: InstanceSettings, primary: str, bindir: Path, run_as: RunAs | None, log: Log
) -> None:
    conninfo = settings.follow_conninfo(primary)
    marker = unfinished_marker(settings)
    _durably_create(marker)
    _retry(
        lambda: datadir.base_backup(bindir, settings.pgdata, conninfo, run_as),
        f"base backup from {primary}",
        log,
    )
    datadir.make_standby(settings.pgdata, conninfo)
    marker.unlink()


def _set_aside(pgdata: Path, log: Log) -> None:
    """Keep the diverged data of a former primary (one copy) instead of deleting it."""
    aside = pgdata.with_name(pgdata.name + ".diverged")
    shutil.rmtree(aside, ignore_errors=True)
    pgdata.rename(aside)
    log(f"kept the diverged data in {aside}")


def unfinished_marker(settings: InstanceSettings) -> Path:
    """Present while pg_rewind or pg_basebackup writes PGDATA (beside it, on the same
    volume). Neither is restartable: stopped part-way (the pod deleted, the container
    killed), pg_rewind leaves data that is neither history, and a second run may then find
    "no rewind required" while the local WAL holds records of neither (seen: a standby
    looping on "invalid resource manager ID" for good); a killed pg_basebackup leaves part
    of a copy. Data found with the marker is set aside and cloned again."""
    return settings.pgdata.parent / ".replicadb-copy-unfinished"


def _rewind_or_clone(
    settings: InstanceSettings,
    primary: str,
    bindir: Path,
    run_as: RunAs | None,
    log: Log,
    uninterrupted: Uninterrupted,
) -> None:
    source = settings.rewind_source(primary)

    def checkpoint_source() -> None:
        # Until a checkpoint on the new primary records its timeline in pg_control,
        # pg_rewind sees "the same timeline", rewinds nothing, and the node then loops on
        # "new timeline forked off current database system timeline".
        with psycopg.connect(source, autocommit=True) as conn:
            conn.execute("CHECKPOINT")

    _retry(checkpoint_source, f"checkpoint on {primary}", log)
    marker = unfinished_marker(settings)
    _durably_create(marker)
    try:
        with uninterrupted():  # a stop asked for meanwhile ends us after the marker is gone
            copied = datadir.rewind(bindir, settings.pgdata, source, run_as)
            marker.unlink()
    except datadir.CommandFailed as exc:
        # Typically the WAL back to the fork is gone. A base backup always works.
        log(f"pg_rewind failed, cloning {primary} instead: {exc}")
        _set_aside(settings.pgdata, log)
        _clone(settings, primary, bindir, run_as, log)
        return
    log("pg_rewind: " + ("pages copied" if copied else "no rewind required"))
    datadir.make_standby(settings.pgdata, settings.follow_conninfo(primary))


def _durably_create(path: Path) -> None:
    path.touch()
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)  # the directory entry: the marker must outlive a crash of the node
    finally:
        os.close(fd)


def bootstrap_decision(settings: InstanceSettings, view: ClusterView) -> BootstrapDecision:
    """What this instance's data directory and the operator's decision call for."""
    designated = view.target_primary == settings.name
    return decide_bootstrap(DataDirState.read(settings.pgdata), designated, view.initialized)


def prepare_instance(
    settings: InstanceSettings,
    view: ClusterView,
    log: Log,
    run_as: RunAs | None = None,
    bindir: Path | None = None,
    uninterrupted: Uninterrupted = nullcontext,
) -> BootstrapDecision:
    """The caller holds the data directory's lock (entrypoint.hold_data_lock): no postgres
    runs on this data, so a postmaster.pid in it is a killed server's."""
    bindir = bindir or datadir.find_bindir()
    settings = replace(settings, peer_addresses=view.addresses)
    settings.run_dir.mkdir(parents=True, exist_ok=True)
    if run_as is not None:
        run_as.chown(settings.run_dir)
    _write_private(settings.passfile, settings.passfile_text(), run_as)
    decision = bootstrap_decision(settings, view)
    log(f"bootstrap: {decision.action.value} ({decision.reason})")
    stale = datadir.remove_stale_pid_file(settings.pgdata)
    if stale is not None:
        log(f"removed the postmaster.pid of a killed postgres (PID {stale})")
    source = view.current_primary or view.target_primary
    follow = source if source and source != settings.name else None

    if unfinished_marker(settings).exists():
        if follow is None:
            raise BootstrapRefused(
                "an earlier pg_rewind or base backup was stopped part-way, so this data must "
                "not be used, and no other primary is named to clone"
            )
        log("an earlier pg_rewind or base backup was stopped part-way: cloning again")
        if settings.pgdata.exists():
            _set_aside(settings.pgdata, log)
        _clone(settings, follow, bindir, run_as, log)
        write_config_include(settings)
        return BootstrapDecision(BootstrapAction.BASE_BACKUP, "an earlier copy was unfinished")
    if decision.action is BootstrapAction.REFUSE:
        raise BootstrapRefused(decision.reason)
    if decision.action is BootstrapAction.INITDB:
        _initialize(settings, bindir, run_as, log)
        return decision
    if decision.action in (BootstrapAction.BASE_BACKUP, BootstrapAction.REWIND_AND_FOLLOW):
        if follow is None:
            raise BootstrapRefused(f"{decision.action.value} needs a primary, and none is named")
        if decision.action is BootstrapAction.BASE_BACKUP:
            _clone(settings, follow, bindir, run_as, log)
        else:
            _rewind_or_clone(settings, follow, bindir, run_as, log, uninterrupted)
    elif decision.action is BootstrapAction.START_REPLICA and follow is not None:
        # The primary may have changed while this pod was away, and this standby may hold
        # WAL the new primary never had (it streamed from the old one until the end): a
        # rewind is a no-op when nothing diverged, and the only way back when something did.
        (settings.pgdata / "standby.signal").unlink(missing_ok=True)  # single-user recovery
        _rewind_or_clone(settings, follow, bindir, run_as, log, uninterrupted)
    # pg_basebackup and pg_rewind copied the source's file; point it at our own mount again.
    write_config_include(settings)
    return decision


def hold_restarting_primary(
    settings: InstanceSettings,
    view: ClusterView,
    reread: Callable[[], ClusterView],
    log: Log,
    sleep: Callable[[float], None] = time.sleep,
) -> ClusterView:
    """A primary restarting on its own data (its postgres died, or its pod was replaced)
    waits as long as the operator takes to notice, then reads the decision again.

    Without the pause it would be writable again within a second, and if the operator had
    meanwhile decided to fail over (it records that only after its probes failed), two
    instances would accept writes until it is fenced again. After the pause, a failover
    decided meanwhile shows in status and the entrypoint rewinds and follows instead.

    It does not follow earlier, although status names the new primary within the pause:
    the fence deletes a primary whose postgres it could not stop, so this container is about
    to be killed, and a rewind or a standby start begun here is cut off part-way (seen on
    the cluster: rejoins that never streamed again). The replacement pod does the rejoin."""
    decision = bootstrap_decision(settings, view)
    if decision.action is not BootstrapAction.START_PRIMARY or view.failure_detection_s <= 0:
        return view
    log(
        f"restarting as the primary: waiting {view.failure_detection_s:.0f} s for a failover "
        "the operator may be deciding"
    )
    sleep(view.failure_detection_s)
    return reread()
