"""Changing a running database: the operator rolls the instance pods, replicas first.

1. The read-only lag bound: a replica whose replay is paused leaves the read-only Service
   (label ``replicadb.io/lag=over-bound``) and comes back once it has caught up.
2. A new image under a writer through router_lib: replicas one at a time, then a switchover,
   then the former primary; nothing lost, the primary never restarted in place.
3. Supervised: a restart-only parameter reaches the replica, then the operator waits (condition
   and Event) until `kubectl replicadb switchover`; then ``primaryUpdateMethod: restart``
   restarts the primary in place with a new image.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from kubernetes import client
from replicadb_operator.cli import plugin

from e2e import kube
from e2e import operator_support as ops
from e2e.failover_run import wait_settled
from e2e.rolling_run import INSTANCE_NEXT_IMAGE, measure_roll

pytestmark = pytest.mark.e2e

NAME = "roll"
COMMON: dict[str, Any] = {
    "failover": {"failureThreshold": 2},
    "monitoring": {"probeIntervalSeconds": 1},
    "pgbouncer": {"enabled": False},
}
PSQL = 'PGPASSWORD="$(cat /etc/replicadb/secrets/superuser-password)" psql -h /run/replicadb -U postgres -d postgres -v ON_ERROR_STOP=1 -Atc'  # noqa: E501


@pytest.fixture(scope="module")
def operator(api_client: client.ApiClient) -> Iterator[None]:
    ops.deploy_operator(api_client)
    yield
    ops.remove_operator(api_client)


@contextlib.contextmanager
def database(api: client.ApiClient, spec: dict[str, Any]) -> Iterator[str]:
    with ops.temporary_namespace(api) as namespace:
        ops.create_database(api, namespace, ops.database_body(NAME, {**COMMON, **spec}))
        ops.wait_status(api, namespace, NAME, "healthy", 300, phase="Healthy")
        yield namespace


def sql(core: client.CoreV1Api, namespace: str, pod: str, statement: str) -> str:
    return kube.exec_in_pod(core, namespace, pod, ["sh", "-c", f'{PSQL} "{statement}"']).strip()


def lag_label(core: client.CoreV1Api, namespace: str, pod: str) -> str | None:
    labels = core.read_namespaced_pod(pod, namespace).metadata.labels or {}
    return labels.get("replicadb.io/lag")


def read_only_addresses(core: client.CoreV1Api, namespace: str) -> set[str]:
    endpoints = core.read_namespaced_endpoints(f"{NAME}-ro", namespace)
    return {a.ip for s in endpoints.subsets or [] for a in s.addresses or []}


def images(core: client.CoreV1Api, namespace: str) -> dict[str, str]:
    pods = core.list_namespaced_pod(namespace, label_selector="replicadb.io/component=instance")
    return {p.metadata.name: p.spec.containers[0].image for p in pods.items}


def events(core: client.CoreV1Api, namespace: str, reason: str) -> list[str]:
    found = core.list_namespaced_event(namespace, field_selector=f"reason={reason}").items
    return [e.message for e in found]


def condition(status: dict[str, Any], kind: str) -> dict[str, Any]:
    return next((c for c in status.get("conditions") or [] if c["type"] == kind), {})


def test_lag_bound_then_image_roll_with_switchover(
    api_client: client.ApiClient, operator: None
) -> None:
    core = client.CoreV1Api(api_client)
    spec = {
        "replicas": 2,
        "replication": {"synchronousMode": "quorum", "synchronousStandbys": 1},
        "readOnly": {"maxLagBytes": 1024 * 1024},
    }
    with database(api_client, spec) as namespace:
        st = wait_settled(api_client, namespace, NAME)
        primary = st["primary"]
        lagging, other = sorted(i["name"] for i in st["instances"] if i["name"] != primary)
        address = core.read_namespaced_pod(lagging, namespace).status.pod_ip
        kube.wait_for(
            lambda: address in read_only_addresses(core, namespace),
            60,
            f"{lagging} in the read-only Service",
        )

        # By("a replica over spec.readOnly.maxLagBytes leaves the read-only Service")
        sql(core, namespace, lagging, "SELECT pg_wal_replay_pause()")
        sql(
            core,
            namespace,
            primary,
            "CREATE TABLE filler AS SELECT g, repeat('x', 200) AS pad "
            "FROM generate_series(1, 20000) g",
        )  # ~5 MiB of WAL
        kube.wait_for(
            lambda: lag_label(core, namespace, lagging) == "over-bound",
            30,
            f"{lagging} labelled over-bound",
        )
        kube.wait_for(
            lambda: address not in read_only_addresses(core, namespace),
            30,
            f"{lagging} out of the read-only Service",
        )
        assert lag_label(core, namespace, other) == "within-bound"

        # By("it comes back once it has caught up")
        sql(core, namespace, lagging, "SELECT pg_wal_replay_resume()")
        kube.wait_for(
            lambda: address in read_only_addresses(core, namespace),
            30,
            f"{lagging} back in the read-only Service",
        )
        assert lag_label(core, namespace, lagging) == "within-bound"

        # By("a new image: replicas one at a time, a switchover, then the former primary")
        run = measure_roll(
            api_client,
            namespace,
            NAME,
            {"postgres": {"image": INSTANCE_NEXT_IMAGE}},
            "image change",
        )
        print(yaml.safe_dump(vars(run)))
        assert run.lost_acknowledged_writes == 0
        assert run.primary_restarts_without_switchover == 0
        assert run.dual_primary_samples == 0
        assert run.new_primary != run.old_primary
        assert set(run.replaced[:2]) == {lagging, other}  # replicas first
        assert run.old_primary in run.replaced[2:]
        assert run.write_unavailable_s_max < 5.0
        st = ops.status(api_client, namespace, NAME)
        assert st["lastFailover"]["kind"] == "switchover"
        assert st["lastFailover"]["reason"].startswith("rolling update")
        assert set(images(core, namespace).values()) == {INSTANCE_NEXT_IMAGE}
        assert st["rollingUpdate"]["updatedInstances"] == sorted(images(core, namespace))
        assert condition(st, "Updating")["status"] == "False"


def test_supervised_waits_for_the_user_then_restart_in_place(
    api_client: client.ApiClient, operator: None
) -> None:
    core = client.CoreV1Api(api_client)
    spec = {"replicas": 1, "updates": {"primaryUpdateStrategy": "supervised"}}
    with database(api_client, spec) as namespace:
        st = wait_settled(api_client, namespace, NAME)
        primary = st["primary"]
        replica = next(i["name"] for i in st["instances"] if i["name"] != primary)
        primary_uid = kube.pod_uid(core, namespace, primary)

        # By("a restart-only parameter reaches the replica; the primary waits for the user")
        ops.patch_database(
            api_client,
            namespace,
            NAME,
            {"spec": {"postgres": {"parameters": {"max_connections": "120"}}}},
        )

        def waiting() -> bool:
            roll = ops.status(api_client, namespace, NAME).get("rollingUpdate") or {}
            return roll.get("state") == "WaitingForSwitchover"

        kube.wait_for(waiting, 180, "the roll waiting for a switchover")
        st = ops.status(api_client, namespace, NAME)
        assert st["rollingUpdate"]["updatedInstances"] == [replica]
        assert st["rollingUpdate"]["outdatedInstances"] == [primary]
        assert condition(st, "Updating")["reason"] == "WaitingForSwitchover"
        assert kube.pod_uid(core, namespace, primary) == primary_uid
        kube.wait_for(
            lambda: bool(events(core, namespace, "WaitingForSwitchover")),
            30,
            "the WaitingForSwitchover Event",
        )
        assert sql(core, namespace, replica, "SHOW max_connections") == "120"

        # By("kubectl replicadb switchover: then the former primary is updated")
        assert plugin.main(["switchover", NAME, "--to", replica, "-n", namespace]) == 0
        kube.wait_for(lambda: up_to_date(api_client, namespace), 180, "every instance updated")
        st = wait_settled(api_client, namespace, NAME)
        assert st["primary"] == replica
        assert sql(core, namespace, primary, "SHOW max_connections") == "120"

        # By("primaryUpdateMethod restart, unsupervised: the primary restarts in place")
        switched_at = st["lastFailover"]["time"]
        new_primary_uid = kube.pod_uid(core, namespace, replica)
        ops.patch_database(
            api_client,
            namespace,
            NAME,
            {
                "spec": {
                    "postgres": {"image": INSTANCE_NEXT_IMAGE},
                    "updates": {
                        "primaryUpdateMethod": "restart",
                        "primaryUpdateStrategy": "unsupervised",
                    },
                }
            },
        )
        kube.wait_for(
            lambda: images_are(core, namespace, INSTANCE_NEXT_IMAGE),
            180,
            "every pod on the new image",
        )
        kube.wait_for(lambda: up_to_date(api_client, namespace), 180, "every instance updated")
        st = wait_settled(api_client, namespace, NAME)
        assert st["primary"] == replica  # no switchover: restarted in place
        assert st["lastFailover"]["time"] == switched_at
        assert kube.pod_uid(core, namespace, replica) != new_primary_uid
        assert "primaryRestart" not in st["rollingUpdate"]
        assert events(core, namespace, "PrimaryRestarted")


def up_to_date(api: client.ApiClient, namespace: str) -> bool:
    roll = ops.status(api, namespace, NAME).get("rollingUpdate") or {}
    return roll.get("state") == "UpToDate" and not roll.get("outdatedInstances")


def images_are(core: client.CoreV1Api, namespace: str, image: str) -> bool:
    found = images(core, namespace)
    return len(found) == 2 and set(found.values()) == {image}
