"""Two operator replicas (manifests/operator.yaml): Kopf peering lets exactly one act, and
when that one goes, the other takes over and keeps reconciling.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client

from e2e import kube
from e2e import operator_support as ops

pytestmark = pytest.mark.e2e

SYSTEM = "replicadb-system"
SELECTOR = "app.kubernetes.io/name=replicadb-operator"
PEERING = "replicadb"
NAME = "ha"
SPEC = {"replicas": 1, "pgbouncer": {"enabled": False}}


def step(text: str) -> None:
    print(f"\n[{time.strftime('%H:%M:%S')}] {text}", flush=True)


@pytest.fixture(scope="module")
def operator(api_client: client.ApiClient) -> Iterator[None]:
    ops.deploy_operator(api_client)
    yield
    ops.remove_operator(api_client)


def operator_pods(api: client.ApiClient) -> list[str]:
    pods = client.CoreV1Api(api).list_namespaced_pod(SYSTEM, label_selector=SELECTOR).items
    return sorted(
        p.metadata.name
        for p in pods
        if p.metadata.deletion_timestamp is None and p.status.phase == "Running"
    )


def live_peers(api: client.ApiClient) -> dict[str, int]:
    """Peer identity (the pod name, from POD_ID) -> priority, for peers that are alive."""
    body: dict[str, Any] = ops.custom(api).get_cluster_custom_object(
        "kopf.dev", "v1", "clusterkopfpeerings", PEERING
    )
    pods = set(operator_pods(api))
    return {
        identity: int(info["priority"])
        for identity, info in (body.get("status") or {}).items()
        if info and identity in pods
    }


def log(api: client.ApiClient, pod: str) -> str:
    return str(client.CoreV1Api(api).read_namespaced_pod_log(pod, SYSTEM))


def test_one_of_two_operators_acts_and_the_other_takes_over(
    api_client: client.ApiClient, operator: None, namespace: str
) -> None:
    step("two operator replicas register as peers with different priorities")
    peers: dict[str, int] = {}

    def both_registered() -> bool:
        nonlocal peers
        peers = live_peers(api_client)
        return len(peers) == 2

    kube.wait_for(both_registered, 60, "two live peers in ClusterKopfPeering/replicadb")
    assert len(set(peers.values())) == 2, f"equal priorities freeze both: {peers}"
    leader = max(peers, key=peers.__getitem__)
    (follower,) = set(peers) - {leader}
    print(f"leader {leader} ({peers[leader]}), follower {follower} ({peers[follower]})")

    step("a database is reconciled, by the leader only")
    ops.create_database(
        api_client,
        namespace,
        {
            "apiVersion": "replicadb.io/v1alpha1",
            "kind": "ReplicatedDatabase",
            "metadata": {"name": NAME},
            "spec": SPEC,
        },
    )
    ops.wait_status(api_client, namespace, NAME, "healthy", 300, phase="Healthy")
    assert namespace in log(api_client, leader)
    follower_log = log(api_client, follower)
    assert namespace not in follower_log, "the paused operator handled the database"
    # A replica that saw no peer at start-up resumed once; one more means it took over.
    resumed_before = follower_log.count("Resuming operations")

    step(f"the leader {leader} goes away; {follower} resumes and reconciles a change")
    client.CoreV1Api(api_client).delete_namespaced_pod(leader, SYSTEM)
    started = time.monotonic()
    kube.wait_for(
        lambda: log(api_client, follower).count("Resuming operations") > resumed_before,
        90,
        f"{follower} resumed",
    )
    print(f"{follower} resumed {time.monotonic() - started:.1f} s after the delete request")
    ops.patch_database(
        api_client, namespace, NAME, {"spec": {"postgres": {"parameters": {"work_mem": "8MB"}}}}
    )
    generation = ops.get_database(api_client, namespace, NAME)["metadata"]["generation"]
    ops.wait_status(
        api_client, namespace, NAME, "change reconciled", 120, observedGeneration=generation
    )
    print(f"generation {generation} reconciled {time.monotonic() - started:.1f} s after")

    step("the replacement pod joins as a peer; still exactly one acts")
    kube.wait_for(both_registered, 120, "two live peers again")
    assert len(set(peers.values())) == 2
