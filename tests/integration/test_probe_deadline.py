"""A probe reports within its deadline even when the instance stops answering mid-query
(psycopg's own cancellation would wait up to ten seconds)."""

from __future__ import annotations

import os
import signal
import time

import pytest
from replicadb_operator.dataplane.probe import InstanceProber, ProbeTimeouts
from replicadb_operator.local.topology import LocalTopology

from tests.integration.sql import scalar

pytestmark = pytest.mark.postgres


async def test_a_frozen_backend_is_reported_unreachable_within_the_deadline(
    topology: LocalTopology,
) -> None:
    prober = InstanceProber("pg-0", topology.dsn("pg-0"), ProbeTimeouts(total_s=1.0))
    try:
        assert (await prober.probe()).reachable
        backend = scalar(
            topology.dsn("pg-0"),
            "SELECT pid FROM pg_stat_activity WHERE application_name = 'replicadb-probe'",
        )
        os.kill(backend, signal.SIGSTOP)  # the kept connection now never answers
        try:
            started = time.monotonic()
            frozen = await prober.probe()
            elapsed = time.monotonic() - started
        finally:
            os.kill(backend, signal.SIGCONT)
        assert not frozen.reachable
        assert elapsed < 1.5, f"probe took {elapsed:.2f} s"
        # The next probe uses a fresh connection and sees the instance again.
        assert (await prober.probe()).reachable
    finally:
        await prober.close()
