"""Automatic failover on a real cluster, under a steady writer through router_lib in
synchronous mode: for each way a primary fails, a replica is promoted, writes resume, no
acknowledged write is lost, no two instances accept writes at once, and the former primary
comes back as a streaming replica. Where nodes are the provider's containers (kind), the
primary's node too: lost and partitioned (a failover, and the cut-off primary refuses its
own node's client before anyone could be promoted), frozen briefly and drained (no
failover)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import yaml
from kubernetes import client
from replicadb_operator.dataplane.heartbeat import PRIMARY_SILENT_S

from e2e import faults, nodes
from e2e import operator_support as ops
from e2e.failover_run import measure_failover
from e2e.node_fault_run import NODE_KINDS, measure_node_fault

pytestmark = pytest.mark.e2e

NAME = "ledger"
SPEC = {
    "replicas": 2,
    "replication": {"synchronousMode": "quorum", "synchronousStandbys": 1},
    "failover": {"failureThreshold": 2},
    "monitoring": {"probeIntervalSeconds": 1},
    "pgbouncer": {"enabled": False},
}


@pytest.fixture(scope="module")
def operator(api_client: client.ApiClient) -> Iterator[None]:
    ops.deploy_operator(api_client)
    yield
    ops.remove_operator(api_client)


@pytest.fixture(scope="module")
def database(api_client: client.ApiClient, operator: None) -> Iterator[str]:
    # Node faults need the instances on separate nodes (kind has a worker per zone).
    spec = {**SPEC, "placement": {"podAntiAffinity": "required"}} if nodes.provider() else SPEC
    with ops.temporary_namespace(api_client) as namespace:
        ops.create_database(api_client, namespace, ops.database_body(NAME, spec))
        ops.wait_status(api_client, namespace, NAME, "healthy", 300, phase="Healthy")
        yield namespace


@pytest.mark.parametrize("kind", faults.FAULT_KINDS)
def test_failover_loses_nothing(api_client: client.ApiClient, database: str, kind: str) -> None:
    run = measure_failover(api_client, database, NAME, kind)
    print(yaml.safe_dump({k: v for k, v in vars(run).items() if k != "statuses_seen"}))
    assert run.new_primary != run.old_primary or kind == "process_kill"
    assert run.lost_acknowledged_writes == 0
    assert run.dual_primary_samples == 0
    assert run.acknowledged > 50
    st = ops.status(api_client, database, NAME)
    assert st["phase"] in ("Healthy", "Degraded")
    assert st["primary"] == run.new_primary


@pytest.mark.parametrize("kind", NODE_KINDS)
def test_node_fault_loses_nothing(api_client: client.ApiClient, database: str, kind: str) -> None:
    provider = nodes.provider()
    if provider is None:
        pytest.skip("node faults need nodes that are the provider's containers (kind)")
    run = measure_node_fault(api_client, database, NAME, kind, provider)
    print(yaml.safe_dump({k: v for k, v in vars(run).items() if k != "statuses_seen"}))
    assert run.lost_acknowledged_writes == 0
    assert run.dual_primary_samples == 0
    assert run.acknowledged > 50
    if kind in ("node_loss", "node_partition"):
        assert run.failovers == 1
        assert run.new_primary != run.old_primary
    else:
        assert run.failovers == 0  # a freeze within the window, or a drain's switchover
    if kind == "node_drain":
        assert run.new_primary != run.old_primary
    if kind == "node_partition":
        # The fence agent stopped the cut-off primary before a replica could be promoted.
        assert run.refused_after_s is not None
        assert run.refused_after_s < PRIMARY_SILENT_S
