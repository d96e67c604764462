"""Crash points for tests: ``RDB_TEST_CRASH_AFTER=<kind>:<step>`` (e.g. ``failover:fence``)
makes the operator kill itself (SIGKILL, as the OOM killer or a lost node would) right after
that step is recorded in status. Inert when the variable is unset."""

from __future__ import annotations

import logging
import os
import signal

from replicadb_operator.failover.record import Kind, Step

ENV = "RDB_TEST_CRASH_AFTER"
log = logging.getLogger(__name__)


def after_step(kind: Kind, step: Step) -> None:
    if os.environ.get(ENV) == f"{kind.value}:{step.value}":
        log.warning("crash point %s:%s reached: killing the operator", kind.value, step.value)
        os.kill(os.getpid(), signal.SIGKILL)
