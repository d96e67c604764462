"""The operator on a real cluster: the sample becomes a primary, two streaming replicas, two
poolers; data written through the read-write Service is read through every read path;
scaling, invalid specs, a quiet steady state, and deletion that removes everything.

Steps read in order; each ``step()`` line says what is being shown.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from replicadb_operator import crd

from e2e import incluster, kube
from e2e import operator_support as ops

pytestmark = pytest.mark.e2e

SAMPLE = yaml.safe_load((ops.MANIFESTS / "samples" / "replicateddatabase.yaml").read_text())
READY_WITHIN_S = 240
NAME = SAMPLE["metadata"]["name"]


def step(text: str) -> None:
    print(f"\n[{time.strftime('%H:%M:%S')}] {text}", flush=True)


@pytest.fixture(scope="module")
def operator(api_client: client.ApiClient) -> Iterator[None]:
    step("deploy the operator from manifests/")
    ops.deploy_operator(api_client)
    yield
    ops.remove_operator(api_client)


def instance_pods(api: client.ApiClient, namespace: str) -> list[Any]:
    return list(
        client.CoreV1Api(api)
        .list_namespaced_pod(namespace, label_selector="replicadb.io/component=instance")
        .items
    )


def test_sample_database_end_to_end(
    api_client: client.ApiClient, namespace: str, operator: None, instance_image: str
) -> None:
    core = client.CoreV1Api(api_client)
    started = time.monotonic()
    step(f"apply the sample ReplicatedDatabase '{NAME}' (1 primary, 2 replicas, poolers)")
    ops.create_database(api_client, namespace, SAMPLE)
    st = ops.wait_status(
        api_client,
        namespace,
        NAME,
        "2/2 replicas ready",
        READY_WITHIN_S,
        phase="Healthy",
        readyReplicas="2/2",
    )
    step(f"healthy after {time.monotonic() - started:.0f} s; primary {st['primary']}")
    assert st["primary"] == f"{NAME}-primary-0"
    replicas = [i for i in st["instances"] if i["role"] == "replica"]
    assert sorted(i["state"] for i in replicas) == ["streaming", "streaming"]
    for pool in ("rw", "ro"):
        deployment = f"{NAME}-pooler-{pool}"

        def pooler_ready(name: str = deployment) -> bool:
            return ops.deployment_ready(api_client, namespace, name)

        kube.wait_for(pooler_ready, 120, f"pooler {pool} ready")

    step("the primary streams to both replicas (pg_stat_replication), seen from a client pod")
    sql = incluster.ClientPod(api_client, namespace, instance_image)
    password = ops.secret_value(api_client, namespace, f"{NAME}-superuser", "password")
    primary_ip = ops.pod_ip(api_client, namespace, st["primary"])
    rows = sql.query(
        "SELECT application_name, state FROM pg_stat_replication ORDER BY 1", primary_ip, password
    )
    assert rows.splitlines() == [f"{NAME}-replica-0|streaming", f"{NAME}-replica-1|streaming"]

    step("write through the read-write Service; read through read-only and both poolers")
    app_password = ops.secret_value(api_client, namespace, f"{NAME}-app", "password")
    app: dict[str, Any] = {"user": "app", "dbname": "app", "password": app_password}
    sql.query(
        "CREATE TABLE orders (id int PRIMARY KEY, item text); INSERT INTO orders VALUES (1, 'tea')",
        f"{NAME}-rw",
        **app,
    )
    query = "SELECT item FROM orders WHERE id = 1"
    sql.eventually(query, "tea", 30, f"{NAME}-ro", **app)
    for pool in ("rw", "ro"):
        sql.eventually(query, "tea", 30, f"{NAME}-pooler-{pool}", port=6432, **app)
    assert sql.query("SELECT pg_is_in_recovery()", f"{NAME}-ro", **app) == "t"

    step("kubectl get rdb shows the primary, Ready 2/2 and a lag column")
    if ops.kubectl() is not None:
        table = ops.kubectl_get_rdb(namespace)
        print(table)
        header, row = table.splitlines()[:2]
        assert "MAX LAG" in header
        assert "READY" in header
        assert f"{NAME}-primary-0" in row
        assert "2/2" in row

    step("no failover-blocked note left over from start-up once the primary answers")
    ops.wait_status(
        api_client, namespace, NAME, "failoverBlocked cleared", 15, failoverBlocked=None
    )

    step("steady state: count write requests over 60 s (apiserver_request_total)")
    before = ops.apiserver_write_counts(api_client)
    time.sleep(60)
    after = ops.apiserver_write_counts(api_client)
    delta = {
        k: after.get(k, 0) - before.get(k, 0) for k in after if after.get(k, 0) != before.get(k, 0)
    }
    print("write requests in 60 s:", delta)
    operator_owned = {
        "statefulsets",
        "services",
        "configmaps",
        "secrets",
        "deployments",
        "poddisruptionbudgets",
        "roles",
        "rolebindings",
        "serviceaccounts",
        "pods",
    }
    spurious = {k: v for k, v in delta.items() if k[1] in operator_owned and k[2] == ""}
    assert spurious == {}, f"writes in steady state: {spurious}"
    status_writes = sum(v for k, v in delta.items() if k[1] == crd.PLURAL)
    assert status_writes <= 60 / 5 + 1, f"{status_writes} status writes in 60 s"

    step("a reloadable parameter reaches every instance without a restart")
    ops.patch_database(
        api_client, namespace, NAME, {"spec": {"postgres": {"parameters": {"work_mem": "24MB"}}}}
    )
    started_before = {}
    for pod in instance_pods(api_client, namespace):
        started_before[pod.metadata.name] = kube.postgres_restarts(pod)
        sql.eventually("SHOW work_mem", "24MB", 180, pod.status.pod_ip, password)
    for pod in instance_pods(api_client, namespace):
        assert kube.postgres_restarts(pod) == started_before[pod.metadata.name]

    step("scale to 3 replicas, then back to 1")
    ops.patch_database(api_client, namespace, NAME, {"spec": {"replicas": 3}})
    ops.wait_status(
        api_client, namespace, NAME, "3/3 replicas", READY_WITHIN_S, readyReplicas="3/3"
    )
    ops.patch_database(api_client, namespace, NAME, {"spec": {"replicas": 1}})
    ops.wait_status(
        api_client,
        namespace,
        NAME,
        "1/1 replicas",
        READY_WITHIN_S,
        readyReplicas="1/1",
        phase="Healthy",
    )
    kube.wait_for(lambda: len(instance_pods(api_client, namespace)) == 2, 120, "2 instance pods")
    sql.eventually(query, "tea", 30, f"{NAME}-ro", **app)
    sql.delete()

    step("delete the database: everything it created goes")
    ops.custom(api_client).delete_namespaced_custom_object(
        crd.GROUP, crd.VERSION, namespace, crd.PLURAL, NAME
    )
    apps = client.AppsV1Api(api_client)

    def all_gone() -> bool:
        return (
            not apps.list_namespaced_stateful_set(namespace).items
            and not apps.list_namespaced_deployment(namespace).items
            and not [s for s in core.list_namespaced_service(namespace).items]
            and not [p for p in core.list_namespaced_persistent_volume_claim(namespace).items]
            and not instance_pods(api_client, namespace)
            and not [
                s
                for s in core.list_namespaced_secret(namespace).items
                if s.metadata.name.startswith(NAME)
            ]
        )

    kube.wait_for(all_gone, 180, "everything the database created deleted")


@pytest.mark.parametrize(
    ("sample", "field"),
    [
        ("negative-replicas.yaml", "spec.replicas"),
        ("unknown-pool-mode.yaml", "spec.pgbouncer.poolMode"),
        ("malformed-storage.yaml", "spec.postgres.storage.size"),
        ("too-many-sync-standbys.yaml", "spec.replication.synchronousStandbys"),
        ("yaml-boolean-mode.yaml", "spec.replication.synchronousMode"),
    ],
)
def test_invalid_specs_are_refused_naming_the_field(
    api_client: client.ApiClient, namespace: str, operator: None, sample: str, field: str
) -> None:
    body = yaml.safe_load((ops.MANIFESTS / "invalid" / sample).read_text())
    with pytest.raises(ApiException) as refused:
        ops.create_database(api_client, namespace, body)
    assert refused.value.status == 422
    assert field in str(refused.value.body), refused.value.body
