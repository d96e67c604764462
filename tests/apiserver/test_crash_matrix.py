"""The operator killed right after every step of both plans; a new one finishes from status.
At no sampled moment do two instances accept writes, no acknowledged write is lost, the plan
completes and status ends consistent."""

from __future__ import annotations

import pytest
from replicadb_operator.failover.record import Kind, Step

from tests.apiserver.cluster import KubeTopology
from tests.apiserver.crash_matrix import CASES, run_case

pytestmark = [pytest.mark.apiserver, pytest.mark.postgres, pytest.mark.slow]


@pytest.mark.parametrize(("kind", "step"), CASES, ids=[f"{k}-{s}" for k, s in CASES])
def test_killed_after_step_and_finished_by_a_new_operator(
    kube_topology: KubeTopology, kind: Kind, step: Step
) -> None:
    result = run_case(kube_topology, kind, step)
    assert result.problems == ()
    assert result.finished
    assert result.dual_primary_samples == 0
    assert result.lost_acknowledged_writes == 0
