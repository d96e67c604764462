"""A ReplicatedDatabase on the test API server, backed by a local topology of real
PostgreSQL processes: the test plays kubelet and StatefulSet controller (it creates the pod
objects and sets their status: address, readiness), and the operator runs as its own
process (``kopf run``), so that it can be killed at any moment and started again.
"""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from replicadb_operator import crd
from replicadb_operator.builders import names, statefulsets
from replicadb_operator.dataplane.conninfo import primary_conninfo
from replicadb_operator.dataplane.instance_control import repoint_replica
from replicadb_operator.local.addresses import POSTGRES_PORT
from replicadb_operator.local.topology import LocalTopology
from replicadb_operator.spec import parse_spec

REPO = Path(__file__).resolve().parents[2]
DB_NAME = "shop"
SPEC: dict[str, Any] = {
    "replicas": 2,
    "replication": {"synchronousMode": "quorum", "synchronousStandbys": 1},
    "failover": {"failureThreshold": 2},
    "monitoring": {"probeIntervalSeconds": 0.5},
    "pgbouncer": {"enabled": False},
}


def wait_for(check: Callable[[], Any], timeout_s: float, what: str, poll_s: float = 0.1) -> Any:
    """Poll ``check`` until it returns something true; fail naming ``what`` at the deadline."""
    deadline = time.monotonic() + timeout_s
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = check()
            if value:
                return value
        except Exception as exc:  # the thing may be restarting: keep polling
            last_error = exc
        time.sleep(poll_s)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what} ({last_error})")


def install_crd(api: client.ApiClient) -> None:
    ext = client.ApiextensionsV1Api(api)
    try:
        ext.create_custom_resource_definition(crd.crd())
    except ApiException as exc:
        if exc.status != 409:
            raise

    def established() -> bool:
        obj = ext.read_custom_resource_definition(f"{crd.PLURAL}.{crd.GROUP}")
        return any(
            c.type == "Established" and c.status == "True" for c in obj.status.conditions or []
        )

    wait_for(established, 30, "the CRD established")


class OperatorProcess:
    """``kopf run`` of our handlers against the test API server. ``crash_after`` arms the
    crash point (``kind:step``): the process kills itself right after recording that step."""

    def __init__(
        self,
        kubeconfig: Path,
        namespace: str,
        log: Path,
        crash_after: str | None,
        passfile: Path,
    ) -> None:
        env = {
            **os.environ,
            "KUBECONFIG": str(kubeconfig),
            "RDB_METRICS_PORT": "0",
            "PYTHONPATH": f"{REPO / 'operator'}:{REPO}",
            "PYTHONUNBUFFERED": "1",
            # Replicas repointed by the operator read the local topology's passfile.
            "RDB_FOLLOWER_PASSFILE": str(passfile),
        }
        env.pop("RDB_TEST_CRASH_AFTER", None)
        if crash_after:
            env["RDB_TEST_CRASH_AFTER"] = crash_after
        self.log = log
        with log.open("ab") as out:
            self.process = subprocess.Popen(
                [
                    sys.executable, "-m", "kopf", "run", "--standalone",
                    "--namespace", namespace, "-m", "replicadb_operator.handlers",
                ],
                env=env, stdout=out, stderr=subprocess.STDOUT, cwd=REPO,
            )  # fmt: skip

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        if self.alive:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)


class KubeTopology:
    """Pods ``shop-primary-0``, ``shop-replica-0``, ``shop-replica-1`` in a namespace of the
    test's own, standing for the local instances ``pg-0``, ``pg-1``, ``pg-2``."""

    def __init__(self, api: client.ApiClient, kubeconfig: Path, topology: LocalTopology) -> None:
        self.api, self.kubeconfig, self.topology = api, kubeconfig, topology
        self.core = client.CoreV1Api(api)
        self.custom = client.CustomObjectsApi(api)
        self.namespace = f"rdb-{uuid.uuid4().hex[:8]}"
        self.db = parse_spec(DB_NAME, self.namespace, SPEC)
        self.pods = {
            names.primary_pod(self.db): "pg-0",
            names.replica_pod(self.db, 0): "pg-1",
            names.replica_pod(self.db, 1): "pg-2",
        }
        self.operators: list[OperatorProcess] = []
        self.log = topology.base / "operator.log"

    # -- set-up ------------------------------------------------------------------------------
    def create(self) -> None:
        self.core.create_namespace({"metadata": {"name": self.namespace}})
        secret = names.credentials_secret(self.db, "superuser")
        password = base64.b64encode(self.topology.password.encode()).decode()
        self.core.create_namespaced_secret(
            self.namespace, {"metadata": {"name": secret}, "data": {"password": password}}
        )
        # Standbys are known by their pod names (application_name), as in a pod.
        for pod, instance in self.pods.items():
            if instance != self.topology.primary:
                conninfo = primary_conninfo(
                    self.topology.instances[self.topology.primary].host,
                    POSTGRES_PORT,
                    pod,
                    str(self.topology.passfile),
                )
                run(repoint_replica(self.topology.dsn(instance), conninfo))
        with psycopg.connect(self.topology.dsn("pg-0"), autocommit=True) as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS acked (id bigint PRIMARY KEY)")
        for pod in self.pods:
            self.create_pod(pod)
        self.custom.create_namespaced_custom_object(
            crd.GROUP,
            crd.VERSION,
            self.namespace,
            crd.PLURAL,
            {
                "apiVersion": f"{crd.GROUP}/{crd.VERSION}",
                "kind": crd.KIND,
                "metadata": {"name": DB_NAME},
                "spec": SPEC,
            },
        )

    def create_pod(self, pod: str, running: bool = True) -> None:
        """A pod object as the StatefulSet controller makes it; ``running``: and as the
        kubelet reports it once postgres answers (address, Ready)."""
        labels = names.instance_selector(self.db)
        # The StatefulSets' current template: an older one would start a rolling update.
        annotations = {names.ANNOTATION_REVISION: statefulsets.revision(self.db)}
        body = {
            "metadata": {"name": pod, "labels": labels, "annotations": annotations},
            "spec": {
                "nodeName": "node-test",
                "containers": [{"name": "postgres", "image": "replicadb/instance:test"}],
            },
        }
        self.core.create_namespaced_pod(self.namespace, body)
        if running:
            self.set_pod(pod, ready=True)

    def set_pod(self, pod: str, ready: bool, container_running: bool = True) -> None:
        host = self.topology.instances[self.pods[pod]].host
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        state = {"running": {"startedAt": now}} if container_running else {"waiting": {}}
        status = {
            "phase": "Running",
            "podIP": host,
            "podIPs": [{"ip": host}],
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
            "containerStatuses": [
                {
                    "name": "postgres",
                    "ready": ready,
                    "restartCount": 0,
                    "image": "replicadb/instance:test",
                    "imageID": "",
                    "state": state,
                }
            ],
        }
        self.core.patch_namespaced_pod_status(pod, self.namespace, {"status": status})

    def replace_pod(self, pod: str) -> None:
        """``kubectl delete pod --grace-period=0 --force`` and the StatefulSet's new pod,
        still Pending; with no kubelet, the old postgres keeps running and writable (as a
        force-deleted pod's container does for seconds on a real node)."""
        self.core.delete_namespaced_pod(pod, self.namespace, grace_period_seconds=0)
        wait_for(lambda: self._pod_gone(pod), 10, f"{pod} deleted")
        self.create_pod(pod, running=False)

    def _pod_gone(self, pod: str) -> bool:
        try:
            self.core.read_namespaced_pod(pod, self.namespace)
        except ApiException as exc:
            return bool(exc.status == 404)
        return False

    def write_status(self, fields: dict[str, Any]) -> None:
        """As a dead operator left it (merge patch)."""
        self.custom.patch_namespaced_custom_object_status(
            crd.GROUP, crd.VERSION, self.namespace, crd.PLURAL, DB_NAME, {"status": fields}
        )

    def set_role_label(self, pod: str, role: str | None) -> None:
        self.core.patch_namespaced_pod(
            pod, self.namespace, {"metadata": {"labels": {names.LABEL_ROLE: role}}}
        )

    def dsn(self, pod: str) -> str:
        return self.topology.dsn(self.pods[pod])

    def dsns(self) -> dict[str, str]:
        return {pod: self.dsn(pod) for pod in self.pods}

    def primary_or_none(self) -> str | None:
        value = self.status().get("primary")
        return str(value) if value else None

    # -- reading -----------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        obj = self.custom.get_namespaced_custom_object(
            crd.GROUP, crd.VERSION, self.namespace, crd.PLURAL, DB_NAME
        )
        return dict(obj.get("status") or {})

    def role_labels(self) -> dict[str, str | None]:
        pods = self.core.list_namespaced_pod(self.namespace).items
        return {p.metadata.name: (p.metadata.labels or {}).get(names.LABEL_ROLE) for p in pods}

    def instance_of(self, pod: str) -> str:
        return self.pods[pod]

    def synchronous_standbys(self) -> str:
        with psycopg.connect(self.topology.dsn("pg-0"), autocommit=True) as conn:
            row = conn.execute("SHOW synchronous_standby_names").fetchone()
        return str(row[0]) if row else ""

    def events(self) -> list[tuple[str, str]]:
        items = self.core.list_namespaced_event(self.namespace).items
        return [(e.reason, e.message) for e in items]

    # -- the operator ------------------------------------------------------------------------
    def start_operator(self, crash_after: str | None = None) -> OperatorProcess:
        process = OperatorProcess(
            self.kubeconfig, self.namespace, self.log, crash_after, self.topology.passfile
        )
        self.operators.append(process)
        return process

    def wait_healthy(self, timeout_s: float = 60) -> dict[str, Any]:
        """Initialised, every instance ready, synchronous standbys listed on the primary."""

        def healthy() -> dict[str, Any] | None:
            status = self.status()
            ok = (
                status.get("phase") == "Healthy"
                and status.get("primary")
                and "ANY" in self.synchronous_standbys()
            )
            return status if ok else None

        result: dict[str, Any] = wait_for(healthy, timeout_s, "a healthy database")
        return result

    def stop(self) -> None:
        for operator in self.operators:
            operator.kill()


def run(coro: Any) -> Any:
    import asyncio

    return asyncio.run(coro)
