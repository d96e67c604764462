"""The operator against a real API server, with real PostgreSQL behind the pod objects."""

from __future__ import annotations

import pytest

from tests.apiserver.cluster import KubeTopology

pytestmark = [pytest.mark.apiserver, pytest.mark.postgres]


def test_operator_initialises_the_database_and_lists_synchronous_standbys(
    kube_topology: KubeTopology,
) -> None:
    kube_topology.start_operator()
    status = kube_topology.wait_healthy()
    assert status["primary"] == "shop-primary-0"
    labels = kube_topology.role_labels()
    assert labels["shop-primary-0"] == "primary"
    assert labels["shop-replica-0"] == labels["shop-replica-1"] == "replica"
