"""Operations on a data directory that run PostgreSQL's own programs: initdb, pg_basebackup,
pg_rewind, pg_ctl, and the two files that make an instance a standby.

PostgreSQL refuses to run as root: every program runs as ``RunAs`` (the current user when
that is None), which is how the pod entrypoint (already non-root) and the local test
topology (root starting servers as an unprivileged user) both use this module.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from replicadb_operator.dataplane.config_files import quote_setting

DEFAULT_BINDIRS = ("/usr/lib/postgresql/15/bin", "/usr/lib/postgresql/16/bin")


def find_bindir() -> Path:
    """PostgreSQL's program directory: $PG_BINDIR, Debian's layout, or pg_ctl on PATH."""
    explicit = os.environ.get("PG_BINDIR")
    if explicit:
        return Path(explicit)
    for candidate in DEFAULT_BINDIRS:
        if Path(candidate, "pg_ctl").exists():
            return Path(candidate)
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).resolve().parent
    raise FileNotFoundError("PostgreSQL programs not found: set PG_BINDIR or install postgresql")


@dataclass(frozen=True)
class RunAs:
    """An unprivileged OS user to run PostgreSQL programs as."""

    name: str
    uid: int
    gid: int
    home: str

    @classmethod
    def lookup(cls, name: str) -> RunAs:
        entry = pwd.getpwnam(name)
        return cls(name=name, uid=entry.pw_uid, gid=entry.pw_gid, home=entry.pw_dir)

    def chown(self, path: Path) -> None:
        os.chown(path, self.uid, self.gid)


class CommandFailed(RuntimeError):
    def __init__(self, args: Sequence[str], returncode: int, output: str) -> None:
        tail = "\n".join(output.strip().splitlines()[-15:])
        super().__init__(f"{Path(args[0]).name} exited with {returncode}:\n{tail}")
        self.returncode = returncode
        self.output = output


def run_program(
    args: Sequence[str],
    run_as: RunAs | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = 300,
) -> str:
    """Run one program to completion; its combined output, or CommandFailed."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    switch = run_as is not None and os.geteuid() != run_as.uid
    if run_as is not None and switch:
        full_env["HOME"] = run_as.home
        full_env["USER"] = run_as.name
    proc = subprocess.run(
        list(args),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=full_env,
        timeout=timeout,
        cwd="/",
        check=False,
        user=run_as.uid if run_as is not None and switch else None,
        group=run_as.gid if run_as is not None and switch else None,
        extra_groups=[] if switch else None,
    )
    if proc.returncode != 0:
        raise CommandFailed(args, proc.returncode, proc.stdout)
    return proc.stdout


def is_empty(datadir: Path) -> bool:
    return not (datadir / "PG_VERSION").exists()


def is_standby(datadir: Path) -> bool:
    return (datadir / "standby.signal").exists()


def initdb(bindir: Path, datadir: Path, password_file: Path, run_as: RunAs | None = None) -> None:
    """A new cluster with data checksums (so pg_rewind is always possible) and password
    authentication from the start."""
    run_program(
        [
            str(bindir / "initdb"),
            "--pgdata",
            str(datadir),
            "--username",
            "postgres",
            "--pwfile",
            str(password_file),
            "--auth",
            "scram-sha-256",
            "--data-checksums",
            "--encoding",
            "UTF8",
            "--locale",
            "C.UTF-8",
        ],
        run_as,
    )


def base_backup(
    bindir: Path, datadir: Path, source_conninfo: str, run_as: RunAs | None = None
) -> None:
    """Copy the primary into an empty ``datadir`` as a standby of it."""
    run_program(
        [
            str(bindir / "pg_basebackup"),
            "--pgdata",
            str(datadir),
            "--dbname",
            source_conninfo,
            "--wal-method",
            "stream",
            "--checkpoint",
            "fast",
            "--no-password",
        ],
        run_as,
        timeout=3600,
    )


def rewind(bindir: Path, datadir: Path, source_conninfo: str, run_as: RunAs | None = None) -> bool:
    """Rewind a stopped former primary to the point where the new primary's timeline forked.

    True when pages were copied, False when no rewind was needed. pg_rewind runs crash
    recovery on the target first if it was not shut down cleanly (PostgreSQL 13+).
    """
    output = run_program(
        [
            str(bindir / "pg_rewind"),
            "--target-pgdata",
            str(datadir),
            "--source-server",
            source_conninfo,
        ],
        run_as,
        timeout=3600,
    )
    return "no rewind required" not in output


_AUTO_CONF_LINE = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_.]*)\s*=")


def set_auto_conf(datadir: Path, settings: Mapping[str, str], remove: tuple[str, ...] = ()) -> None:
    """Set (or ``remove``) parameters in postgresql.auto.conf of a stopped instance, as
    ALTER SYSTEM would."""
    path = datadir / "postgresql.auto.conf"
    lines = path.read_text().splitlines() if path.exists() else []
    drop = {key.lower() for key in (*settings, *remove)}
    kept = [
        line
        for line in lines
        if not ((m := _AUTO_CONF_LINE.match(line)) and m.group(1).lower() in drop)
    ]
    kept += [f"{key} = {quote_setting(value)}" for key, value in settings.items()]
    path.write_text("\n".join(kept) + "\n")


# Set on a primary being switched over (no new writes while the target catches up); it must
# not follow the instance into its life as a standby, nor a later promotion.
SWITCHOVER_SETTINGS = ("default_transaction_read_only",)


def make_standby(datadir: Path, primary_conninfo: str) -> None:
    """Turn a stopped data directory into a standby of ``primary_conninfo``."""
    set_auto_conf(datadir, {"primary_conninfo": primary_conninfo}, remove=SWITCHOVER_SETTINGS)
    (datadir / "standby.signal").touch()


def start_command(bindir: Path, datadir: Path, options: Mapping[str, str]) -> list[str]:
    """The postgres command line, instance-specific settings as -c options."""
    args = [str(bindir / "postgres"), "-D", str(datadir)]
    for key, value in options.items():
        args += ["-c", f"{key}={value}"]
    return args


def pg_ctl_start(
    bindir: Path,
    datadir: Path,
    options: Mapping[str, str],
    logfile: Path,
    run_as: RunAs | None = None,
    wait: bool = True,
) -> None:
    opts = " ".join(f"-c {key}={value}" for key, value in options.items())
    run_program(
        [
            str(bindir / "pg_ctl"),
            "start",
            "-D",
            str(datadir),
            "-l",
            str(logfile),
            "-o",
            opts,
            "-w" if wait else "-W",
            "-t",
            "60",
        ],
        run_as,
        # As in a pod: the server knows its data directory (see fence's stop from inside).
        env={"PGDATA": str(datadir), "PATH": f"{bindir}:{os.environ.get('PATH', '')}"},
    )


def pg_ctl_stop(
    bindir: Path, datadir: Path, mode: str = "fast", run_as: RunAs | None = None
) -> None:
    """Stop the instance; ``immediate`` is a crash as far as the data is concerned."""
    run_program([str(bindir / "pg_ctl"), "stop", "-D", str(datadir), "-m", mode, "-w"], run_as)


def postmaster_pid(datadir: Path) -> int | None:
    try:
        return int((datadir / "postmaster.pid").read_text().split("\n", 1)[0])
    except (FileNotFoundError, ValueError):
        return None


def remove_stale_pid_file(datadir: Path) -> int | None:
    """Remove the postmaster.pid a killed postgres left; return the PID it named. Only for a
    caller that knows no postgres runs on ``datadir`` (the instance's data lock).

    A killed container's postmaster was its PID 1, and so is the entrypoint of the container
    that replaces it: postgres itself ignores a lock file naming its own PID, but pg_rewind's
    single-user recovery runs as a child, sees PID 1 alive under its own user, refuses ("lock
    file already exists"), and the rewind falls back to a full clone of the new primary."""
    pid = postmaster_pid(datadir)
    if pid is not None:
        (datadir / "postmaster.pid").unlink(missing_ok=True)
    return pid
