"""Two operator replicas (manifests/operator.yaml): Kopf peering lets exactly one act, and
when that one goes, the other takes over and keeps reconciling.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from replicadb_operator import crd
from replicadb_operator.failover.record import FailoverRecord, Kind
from replicadb_operator.monitoring.status_model import now_iso

from e2e import incluster, kube
from e2e import operator_support as ops

pytestmark = pytest.mark.e2e

SYSTEM = ops.SYSTEM
operator_pods, live_peers = ops.operator_pods, ops.live_peers
NAME = "ha"
SPEC = {"replicas": 1, "pgbouncer": {"enabled": False}}


def step(text: str) -> None:
    print(f"\n[{time.strftime('%H:%M:%S')}] {text}", flush=True)


@pytest.fixture(scope="module")
def operator(api_client: client.ApiClient) -> Iterator[None]:
    ops.deploy_operator(api_client)
    yield
    ops.remove_operator(api_client)


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
    ops.create_database(api_client, namespace, ops.database_body(NAME, SPEC))
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


def scale_operator(api: client.ApiClient, replicas: int) -> None:
    client.AppsV1Api(api).patch_namespaced_deployment_scale(
        "replicadb-operator", SYSTEM, {"spec": {"replicas": replicas}}
    )
    kube.wait_for(
        lambda: (
            len(operator_pods(api)) == replicas
            and (replicas == 0 or ops.deployment_ready(api, SYSTEM, "replicadb-operator"))
        ),
        180,
        f"operator scaled to {replicas}",
    )


def writable(sql: incluster.ClientPod, ip: str, password: str) -> bool:
    return sql.try_query("SELECT pg_is_in_recovery()", ip, password, timeout=2) == "f"


def test_an_operator_that_died_mid_failover_is_finished_by_the_next(
    api_client: client.ApiClient, operator: None, namespace: str, instance_image: str
) -> None:
    """The operator records its decision in status before anything irreversible. Here it
    'dies' right after that record (status written by hand with the operator scaled to 0,
    the old primary still alive and writable); the next operator must fence the old primary,
    promote the recorded target, and bring the old one back as a replica."""
    name = "resume"
    spec = {
        "replicas": 2,
        "pgbouncer": {"enabled": False},
        "replication": {"synchronousMode": "quorum", "synchronousStandbys": 1},
    }
    ops.create_database(api_client, namespace, ops.database_body(name, spec))
    ops.wait_status(api_client, namespace, name, "healthy", 300, phase="Healthy")
    password = ops.secret_value(api_client, namespace, f"{name}-superuser", "password")
    old, target = f"{name}-primary-0", f"{name}-replica-0"
    sql = incluster.ClientPod(api_client, namespace, instance_image)
    sql.query(
        "CREATE TABLE acked (id int PRIMARY KEY);"
        " INSERT INTO acked SELECT generate_series(1, 1000)",
        ops.pod_ip(api_client, namespace, old),
        password,
    )

    step("the operator stops right after recording a failover decision in status")
    scale_operator(api_client, 0)
    ops.custom(api_client).patch_namespaced_custom_object_status(
        crd.GROUP,
        crd.VERSION,
        namespace,
        crd.PLURAL,
        name,
        {
            "status": {
                "targetPrimary": target,
                "phase": "FailingOver",
                "failover": FailoverRecord(
                    Kind.FAILOVER, old, target, "e2e: operator died mid-failover", now_iso()
                ).to_status(),
            }
        },
    )
    assert writable(sql, ops.pod_ip(api_client, namespace, old), password)

    step("the next operator finishes it")
    started = time.monotonic()
    scale_operator(api_client, 2)
    st = ops.wait_status(api_client, namespace, name, "failover finished", 180, primary=target)
    print(f"finished {time.monotonic() - started:.1f} s after the operator was scaled up")
    assert not st.get("failover")
    assert st["lastFailover"]["to"] == target
    new_ip = ops.pod_ip(api_client, namespace, target)
    assert writable(sql, new_ip, password)
    assert sql.query("SELECT count(*) FROM acked", new_ip, password) == "1000"

    step(f"{old} comes back as a streaming replica of {target}; one primary only")

    def old_streams() -> bool:
        try:
            ip = ops.pod_ip(api_client, namespace, old)
        except ApiException:
            return False
        row = sql.try_query(
            "SELECT pg_is_in_recovery(), status FROM pg_stat_wal_receiver", ip, password, timeout=2
        )
        return row == "t|streaming"

    kube.wait_for(old_streams, 180, f"{old} streaming from {target}")
    ops.wait_status(api_client, namespace, name, "healthy again", 180, phase="Healthy")
