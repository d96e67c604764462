"""What only a cluster with several nodes in several zones shows (kind: one worker per zone):
the operator spreads a database's instances over the zones, keeps them on different nodes
(required anti-affinity), records each instance's zone in status, and router_lib told its
zone (REPLICADB_ZONE) reads from the replica in that zone. On one node these skip, saying why.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from kubernetes import client

from e2e import incluster, kube
from e2e import operator_support as ops

pytestmark = pytest.mark.e2e

ZONE_LABEL = "topology.kubernetes.io/zone"
NAME = "zoned"


def step(text: str) -> None:
    print(f"\n[{time.strftime('%H:%M:%S')}] {text}", flush=True)


def schedulable_zones(core: client.CoreV1Api) -> dict[str, str]:
    """node -> zone, for nodes that take ordinary pods and carry a zone label."""
    zones = {}
    for node in core.list_node().items:
        taints = [t for t in node.spec.taints or [] if t.effect in ("NoSchedule", "NoExecute")]
        zone = (node.metadata.labels or {}).get(ZONE_LABEL)
        if zone and not taints and not node.spec.unschedulable:
            zones[node.metadata.name] = zone
    return zones


@pytest.fixture(scope="module")
def zones(api_client: client.ApiClient) -> dict[str, str]:
    found = schedulable_zones(client.CoreV1Api(api_client))
    if len(set(found.values())) < 2:
        pytest.skip(
            f"needs schedulable nodes in at least two zones ({ZONE_LABEL}); this cluster has "
            f"{len(set(found.values()))} ({len(found)} labelled node(s)): run `make e2e-kind`"
        )
    return found


@pytest.fixture(scope="module")
def operator(api_client: client.ApiClient, zones: dict[str, str]) -> Iterator[None]:
    ops.deploy_operator(api_client)
    yield
    ops.remove_operator(api_client)


def test_instances_spread_over_zones_and_reads_stay_in_zone(
    api_client: client.ApiClient,
    zones: dict[str, str],
    operator: None,
    namespace: str,
    instance_image: str,
) -> None:
    core = client.CoreV1Api(api_client)
    zone_count = len(set(zones.values()))
    replicas = zone_count - 1  # one instance per zone
    spec = {
        "replicas": replicas,
        "pgbouncer": {"enabled": False},
        "placement": {"podAntiAffinity": "required", "whenUnsatisfiable": "DoNotSchedule"},
    }
    step(f"a database with {replicas + 1} instances over {zone_count} zones: {zones}")
    ops.create_database(api_client, namespace, ops.database_body(NAME, spec))
    st = ops.wait_status(
        api_client,
        namespace,
        NAME,
        "healthy",
        300,
        phase="Healthy",
        readyReplicas=f"{replicas}/{replicas}",
    )

    step("one instance per node (anti-affinity) and per zone (spread)")
    pods = core.list_namespaced_pod(
        namespace, label_selector="replicadb.io/component=instance"
    ).items
    placed = {p.metadata.name: p.spec.node_name for p in pods}
    print(placed)
    assert len(set(placed.values())) == len(placed), f"two instances share a node: {placed}"
    assert {zones[node] for node in placed.values()} == set(zones.values())

    step("status records each instance's zone")

    def zones_in_status() -> bool:
        nonlocal st
        st = ops.status(api_client, namespace, NAME)
        return all(i.get("zone") for i in st.get("instances") or [])

    kube.wait_for(zones_in_status, 60, "a zone in every status instance")
    for instance in st["instances"]:
        assert instance["zone"] == zones[placed[instance["name"]]], instance

    replica = next(i for i in st["instances"] if i["role"] == "replica")
    zone = replica["zone"]
    step(f"router_lib with REPLICADB_ZONE={zone} reads from {replica['name']} only")
    reader = incluster.ScriptPod(
        api_client,
        namespace,
        instance_image,
        "zone_reads.py",
        env={
            "REPLICADB_NAME": NAME,
            "REPLICADB_NAMESPACE": namespace,
            "REPLICADB_ZONE": zone,
            "REPLICADB_CONSISTENCY": "eventual",
            "REPLICADB_USER": "app",
            "REPLICADB_DBNAME": "app",
        },
        secret_env={"REPLICADB_PASSWORD": (f"{NAME}-app", "password")},
    )
    try:
        result = reader.wait_json("/tmp/result.json", 180, "the zone reader's result")
    except BaseException:
        print(reader.logs()[-4000:])
        raise
    finally:
        reader.delete()
    print(result)
    assert result["servers"] == {replica["address"]: 40}, result
