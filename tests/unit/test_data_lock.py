"""The volume lock that keeps a replaced pod's postgres from starting beside the old one."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from replicadb_operator.instance.entrypoint import hold_data_lock

HOLDER = """
import sys, time
from pathlib import Path
from replicadb_operator.instance.entrypoint import hold_data_lock
hold_data_lock(Path(sys.argv[1]))
print("held", flush=True)
time.sleep(30)
"""


def test_second_holder_waits_and_the_lock_survives_exec(tmp_path: Path) -> None:
    lock = tmp_path / "lock"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(lock)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(TimeoutError, match="still locked"):
            hold_data_lock(lock, wait_s=0.5)
    finally:
        holder.kill()
        holder.wait()
    fd = hold_data_lock(lock, wait_s=2)
    assert os.get_inheritable(fd)
    os.close(fd)
