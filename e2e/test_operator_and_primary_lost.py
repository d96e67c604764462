"""Issue 12 on a real cluster: the primary is cut off the network and, at the same moment,
the acting operator is killed. The operator that takes over (the other replica, or the
same pod's restarted container) has never seen the primary alive; it fails over on the sync
states and positions recorded in status, says so, and writes resume within 30 s."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import yaml
from kubernetes import client

from e2e import faults, kube
from e2e import operator_support as ops
from e2e.failover_run import measure_failover

pytestmark = pytest.mark.e2e

NAME = "lost"
SPEC = {
    "replicas": 2,
    "replication": {"synchronousMode": "quorum", "synchronousStandbys": 1},
    "failover": {"failureThreshold": 2},
    "monitoring": {"probeIntervalSeconds": 1},
    "pgbouncer": {"enabled": False},
}
RTO_GOAL_S = 30.0


def sync_states_recorded(api: client.ApiClient, namespace: str) -> bool:
    instances = ops.status(api, namespace, NAME).get("instances") or []
    return sum(1 for i in instances if i.get("syncState") == "quorum") == SPEC["replicas"]


@pytest.fixture
def database(api_client: client.ApiClient) -> Iterator[str]:
    ops.deploy_operator(api_client)
    try:
        with ops.temporary_namespace(api_client) as namespace:
            ops.create_database(api_client, namespace, ops.database_body(NAME, SPEC))
            ops.wait_status(api_client, namespace, NAME, "healthy", 300, phase="Healthy")
            kube.wait_for(
                lambda: sync_states_recorded(api_client, namespace), 60, "sync states in status"
            )
            yield namespace
    finally:
        ops.remove_operator(api_client)


def test_operator_and_primary_lost_together(api_client: client.ApiClient, database: str) -> None:
    run = measure_failover(api_client, database, NAME, faults.OPERATOR_AND_PRIMARY)
    print(yaml.safe_dump({k: v for k, v in vars(run).items() if k != "statuses_seen"}))
    assert run.new_primary != run.old_primary
    assert run.rto_s < RTO_GOAL_S
    assert run.lost_acknowledged_writes == 0
    assert run.dual_primary_samples == 0
    last = ops.status(api_client, database, NAME)["lastFailover"]
    assert last["basis"] == "recorded"
