"""What an instance must do before PostgreSQL starts, decided from its data directory and
what the operator designates. The pod entrypoint acts on this; it never decides to promote.

| data directory                    | designated primary | decision            |
| --------------------------------- | ------------------ | ------------------- |
| empty, cluster never initialised  | yes                | initdb              |
| empty                             | no                 | base backup         |
| empty, cluster initialised        | yes                | refuse (would fork) |
| primary's data (no standby.signal)| yes                | start as primary    |
| primary's data (no standby.signal)| no                 | rewind and follow   |
| standby's data                    | either             | start as replica    |

A standby stays a standby even when designated: only the operator promotes (pg_promote),
after fencing the old primary. A former primary never starts accepting writes by itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from replicadb_operator.dataplane import datadir


class BootstrapAction(StrEnum):
    INITDB = "initdb"
    BASE_BACKUP = "base-backup"
    START_PRIMARY = "start-primary"
    START_REPLICA = "start-replica"
    REWIND_AND_FOLLOW = "rewind-and-follow"
    REFUSE = "refuse"


@dataclass(frozen=True)
class DataDirState:
    empty: bool
    standby: bool

    @classmethod
    def read(cls, path: Path) -> DataDirState:
        return cls(empty=datadir.is_empty(path), standby=datadir.is_standby(path))


@dataclass(frozen=True)
class BootstrapDecision:
    action: BootstrapAction
    reason: str


def decide_bootstrap(
    state: DataDirState, designated_primary: bool, cluster_initialized: bool
) -> BootstrapDecision:
    if state.empty:
        if not designated_primary:
            return BootstrapDecision(BootstrapAction.BASE_BACKUP, "empty data, replica")
        if cluster_initialized:
            return BootstrapDecision(
                BootstrapAction.REFUSE,
                "designated primary has empty data but the cluster was initialised before: "
                "initdb would start a second, empty history; the operator must pick another "
                "primary",
            )
        return BootstrapDecision(BootstrapAction.INITDB, "empty data, new cluster")
    if state.standby:
        return BootstrapDecision(BootstrapAction.START_REPLICA, "standby data")
    if designated_primary:
        return BootstrapDecision(BootstrapAction.START_PRIMARY, "primary data, still primary")
    return BootstrapDecision(
        BootstrapAction.REWIND_AND_FOLLOW, "data of a former primary: rewind, then follow"
    )
