from __future__ import annotations

from pathlib import Path

import pytest
from replicadb_operator.dataplane.bootstrap import (
    BootstrapAction,
    DataDirState,
    decide_bootstrap,
)

EMPTY = DataDirState(empty=True, standby=False)
PRIMARY_DATA = DataDirState(empty=False, standby=False)
STANDBY_DATA = DataDirState(empty=False, standby=True)


@pytest.mark.parametrize(
    ("state", "designated", "initialized", "action"),
    [
        (EMPTY, True, False, BootstrapAction.INITDB),
        (EMPTY, False, True, BootstrapAction.BASE_BACKUP),
        (EMPTY, True, True, BootstrapAction.REFUSE),
        (PRIMARY_DATA, True, True, BootstrapAction.START_PRIMARY),
        (PRIMARY_DATA, False, True, BootstrapAction.REWIND_AND_FOLLOW),
        (STANDBY_DATA, False, True, BootstrapAction.START_REPLICA),
        # Designated but still a standby: the operator promotes it, never the pod itself.
        (STANDBY_DATA, True, True, BootstrapAction.START_REPLICA),
    ],
)
def test_decision_table(
    state: DataDirState, designated: bool, initialized: bool, action: BootstrapAction
) -> None:
    assert decide_bootstrap(state, designated, initialized).action is action


def test_reads_a_data_directory(tmp_path: Path) -> None:
    path = tmp_path
    assert DataDirState.read(path) == EMPTY
    (path / "PG_VERSION").write_text("15\n")
    assert DataDirState.read(path) == PRIMARY_DATA
    (path / "standby.signal").touch()
    assert DataDirState.read(path) == STANDBY_DATA


def test_a_standby_never_keeps_the_switchover_read_only_setting(tmp_path: Path) -> None:
    from replicadb_operator.dataplane import datadir

    (tmp_path / "postgresql.auto.conf").write_text(
        "# Do not edit\ndefault_transaction_read_only = 'on'\nwork_mem = '8MB'\n"
    )
    datadir.make_standby(tmp_path, "host=new-primary")
    text = (tmp_path / "postgresql.auto.conf").read_text()
    assert "default_transaction_read_only" not in text
    assert "work_mem = '8MB'" in text
    assert "primary_conninfo = 'host=new-primary'" in text
    assert (tmp_path / "standby.signal").exists()
