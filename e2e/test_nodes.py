"""A node that stops answering, done through the cluster's provider (kind: the node's
container is paused): the status reports the replica on it down while the primary keeps
serving writes, and once the node is back the replica streams again. Skips on one node, and
where nodes are not the provider's containers (the local cluster).
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from kubernetes import client

from e2e import incluster, kube, nodes
from e2e import operator_support as ops

pytestmark = pytest.mark.e2e

NAME = "nodeloss"


def step(text: str) -> None:
    print(f"\n[{time.strftime('%H:%M:%S')}] {text}", flush=True)


@pytest.fixture(scope="module")
def node_provider(api_client: client.ApiClient) -> nodes.NodeProvider:
    workers = [
        n
        for n in client.CoreV1Api(api_client).list_node().items
        if not any(t.effect == "NoSchedule" for t in n.spec.taints or [])
    ]
    if len(workers) < 2:
        pytest.skip(f"needs at least two schedulable nodes; this cluster has {len(workers)}")
    found = nodes.provider()
    if found is None:
        pytest.skip(
            "node faults go through the provider whose containers are the nodes "
            "(REPLICADB_E2E_PROVIDER=docker|podman, set by `make e2e-kind`)"
        )
    return found


@pytest.fixture(scope="module")
def operator(api_client: client.ApiClient, node_provider: nodes.NodeProvider) -> Iterator[None]:
    ops.deploy_operator(api_client)
    yield
    ops.remove_operator(api_client)


def instance_state(api: client.ApiClient, namespace: str, instance: str) -> str | None:
    st = ops.status(api, namespace, NAME)
    entry = next((i for i in st.get("instances") or [] if i["name"] == instance), None)
    return None if entry is None else entry.get("state")


def test_paused_replica_node_is_reported_and_recovers(
    api_client: client.ApiClient,
    node_provider: nodes.NodeProvider,
    operator: None,
    namespace: str,
    instance_image: str,
) -> None:
    core = client.CoreV1Api(api_client)
    spec = {
        "replicas": 1,
        "pgbouncer": {"enabled": False},
        "placement": {"podAntiAffinity": "required"},
    }
    ops.create_database(api_client, namespace, ops.database_body(NAME, spec))
    st = ops.wait_status(
        api_client, namespace, NAME, "healthy", 300, phase="Healthy", readyReplicas="1/1"
    )
    primary = st["primary"]
    replica = next(i["name"] for i in st["instances"] if i["role"] == "replica")
    node = core.read_namespaced_pod(replica, namespace).spec.node_name
    primary_node = core.read_namespaced_pod(primary, namespace).spec.node_name
    assert node != primary_node
    # On the primary's node: the client must not be on the node about to be paused.
    sql = incluster.ClientPod(api_client, namespace, instance_image, node=primary_node)
    password = ops.secret_value(api_client, namespace, f"{NAME}-superuser", "password")

    step(f"pause node {node} (replica {replica}); the primary is on {primary_node}")
    node_provider.pause(node)
    try:
        kube.wait_for(
            lambda: instance_state(api_client, namespace, replica) == "down",
            120,
            f"{replica} reported down",
        )
        st = ops.status(api_client, namespace, NAME)
        assert st["primary"] == primary
        step("the primary still takes writes")
        sql.query(
            "CREATE TABLE IF NOT EXISTS beats (at timestamptz); INSERT INTO beats VALUES (now())",
            f"{NAME}-rw",
            password,
        )
    finally:
        step(f"unpause node {node}")
        node_provider.unpause(node)
    kube.wait_for(
        lambda: instance_state(api_client, namespace, replica) == "streaming",
        180,
        f"{replica} streaming again",
    )
    ops.wait_status(api_client, namespace, NAME, "healthy again", 180, phase="Healthy")
    sql.delete()
