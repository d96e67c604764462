"""Deploying the operator from manifests/ and talking to a ReplicatedDatabase in e2e tests."""

from __future__ import annotations

import base64
import contextlib
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from replicadb_operator import crd
from replicadb_operator.kube import apply

from e2e import kube

ROOT = Path(__file__).parents[1]
MANIFESTS = ROOT / "manifests"
SYSTEM = "replicadb-system"
SELECTOR = "app.kubernetes.io/name=replicadb-operator"
PEERING = "replicadb"
OPERATOR_IMAGE = os.environ.get("REPLICADB_OPERATOR_IMAGE", "localhost/replicadb/operator:dev")
KUBECTL_CANDIDATES = ("kubectl", "/var/cache/replicadb/bin/kubectl")


def manifest_documents() -> Iterator[dict[str, Any]]:
    """The kustomization's resources, in order (without needing kustomize)."""
    kustomization = yaml.safe_load((MANIFESTS / "kustomization.yaml").read_text())
    for resource in kustomization["resources"]:
        for doc in yaml.safe_load_all((MANIFESTS / resource).read_text()):
            if doc:
                yield doc


def deploy_operator(api: client.ApiClient) -> None:
    """Apply manifests/. An operator left running by an earlier session is restarted, so that
    it runs the image built now (the tag stays :dev)."""
    core = client.CoreV1Api(api)
    for pod in core.list_namespaced_pod(
        "replicadb-system", label_selector="app.kubernetes.io/name=replicadb-operator"
    ).items:
        core.delete_namespaced_pod(pod.metadata.name, "replicadb-system")
    for doc in manifest_documents():
        if doc["kind"] == "Deployment":
            doc["spec"]["template"]["spec"]["containers"][0]["image"] = OPERATOR_IMAGE
        apply.ensure(doc)
        if doc["kind"] == "CustomResourceDefinition":
            wait_crd_established(api, doc["metadata"]["name"])
    kube.wait_for(
        lambda: deployment_ready(api, "replicadb-system", "replicadb-operator"),
        180,
        "operator Deployment ready (every replica)",
        interval=1,
    )


def deployment_ready(api: client.ApiClient, namespace: str, name: str) -> bool:
    deployment = client.AppsV1Api(api).read_namespaced_deployment(name, namespace)
    wanted = deployment.spec.replicas if deployment.spec.replicas is not None else 1
    return bool(
        (deployment.status.ready_replicas or 0) >= wanted
        and (deployment.status.updated_replicas or 0) >= wanted
        and (deployment.status.replicas or 0) == wanted
    )


def wait_crd_established(api: client.ApiClient, name: str) -> None:
    ext = client.ApiextensionsV1Api(api)

    def established() -> bool:
        conditions = ext.read_custom_resource_definition(name).status.conditions or []
        return any(c.type == "Established" and c.status == "True" for c in conditions)

    kube.wait_for(established, 60, f"CRD {name} established")


@contextlib.contextmanager
def temporary_namespace(api: client.ApiClient, prefix: str = "rdb-e2e") -> Iterator[str]:
    """A namespace for a whole test module, removed with everything in it afterwards."""
    core = client.CoreV1Api(api)
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    try:
        yield name
    finally:
        core.delete_namespace(name)
        kube.wait_for(lambda: kube.namespace_gone(core, name), 180, f"namespace {name} deleted")


def operator_log_tail(api: client.ApiClient, lines: int = 40) -> str:
    """The operator's recent log lines (without probe noise), for failure messages."""
    core = client.CoreV1Api(api)
    pods = core.list_namespaced_pod(
        "replicadb-system", label_selector="app.kubernetes.io/name=replicadb-operator"
    ).items
    out = []
    for pod in pods:
        text = core.read_namespaced_pod_log(pod.metadata.name, "replicadb-system", tail_lines=400)
        kept = [line for line in text.splitlines() if "healthz" not in line and "alive" not in line]
        out.append(f"--- operator {pod.metadata.name}\n" + "\n".join(kept[-lines:]))
    return "\n".join(out)


def remove_operator(api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    try:
        core.delete_namespace("replicadb-system")
    except ApiException as exc:
        if exc.status != 404:
            raise
    kube.wait_for(lambda: kube.namespace_gone(core, "replicadb-system"), 120, "operator removed")


def operator_pods(api: client.ApiClient) -> list[str]:
    pods = client.CoreV1Api(api).list_namespaced_pod(SYSTEM, label_selector=SELECTOR).items
    return sorted(
        p.metadata.name
        for p in pods
        if p.metadata.deletion_timestamp is None and p.status.phase == "Running"
    )


def live_peers(api: client.ApiClient) -> dict[str, int]:
    """Peer identity (the pod name, from POD_ID) -> priority, for peers that are alive."""
    body: dict[str, Any] = custom(api).get_cluster_custom_object(
        "kopf.dev", "v1", "clusterkopfpeerings", PEERING
    )
    pods = set(operator_pods(api))
    return {
        identity: int(info["priority"])
        for identity, info in (body.get("status") or {}).items()
        if info and identity in pods
    }


def acting_operator(api: client.ApiClient) -> str:
    """The operator pod that acts: Kopf peering lets the highest priority alone act."""
    peers = live_peers(api)
    if not peers:
        raise RuntimeError("no live operator peer")
    return max(peers, key=lambda pod: peers[pod])


def custom(api: client.ApiClient) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(api)


def database_body(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    """A ReplicatedDatabase object named ``name`` with ``spec``."""
    return {
        "apiVersion": f"{crd.GROUP}/{crd.VERSION}",
        "kind": crd.KIND,
        "metadata": {"name": name},
        "spec": spec,
    }


def create_database(api: client.ApiClient, namespace: str, body: dict[str, Any]) -> None:
    custom(api).create_namespaced_custom_object(crd.GROUP, crd.VERSION, namespace, crd.PLURAL, body)


def get_database(api: client.ApiClient, namespace: str, name: str) -> dict[str, Any]:
    obj: dict[str, Any] = custom(api).get_namespaced_custom_object(
        crd.GROUP, crd.VERSION, namespace, crd.PLURAL, name
    )
    return obj


def patch_database(api: client.ApiClient, namespace: str, name: str, body: dict[str, Any]) -> None:
    custom(api).patch_namespaced_custom_object(
        crd.GROUP, crd.VERSION, namespace, crd.PLURAL, name, body
    )


def status(api: client.ApiClient, namespace: str, name: str) -> dict[str, Any]:
    return dict(get_database(api, namespace, name).get("status") or {})


def wait_status(
    api: client.ApiClient, namespace: str, name: str, what: str, timeout: float, **expected: Any
) -> dict[str, Any]:
    """Wait until every ``key=value`` holds in status; the last status is in the error."""
    last: dict[str, Any] = {}

    def check() -> bool:
        nonlocal last
        last = status(api, namespace, name)
        return all(last.get(k) == v for k, v in expected.items())

    try:
        kube.wait_for(check, timeout, what, interval=1)
    except TimeoutError as exc:
        brief = {k: last.get(k) for k in ("phase", "primary", "readyReplicas", "instances")}
        raise TimeoutError(f"{exc}; status: {brief}") from None
    return last


def secret_value(api: client.ApiClient, namespace: str, name: str, key: str) -> str:
    data = client.CoreV1Api(api).read_namespaced_secret(name, namespace).data or {}
    return base64.b64decode(data[key]).decode()


def service_ip(api: client.ApiClient, namespace: str, name: str) -> str:
    return str(client.CoreV1Api(api).read_namespaced_service(name, namespace).spec.cluster_ip)


def pod_ip(api: client.ApiClient, namespace: str, name: str) -> str:
    return str(client.CoreV1Api(api).read_namespaced_pod(name, namespace).status.pod_ip)


def connect(host: str, password: str, **params: Any) -> psycopg.Connection[tuple[Any, ...]]:
    """Superuser on the postgres database unless ``params`` say otherwise."""
    params = {"port": 5432, "user": "postgres", "dbname": "postgres", **params}
    params.setdefault("connect_timeout", 5)
    return psycopg.connect(host=host, password=password, autocommit=True, **params)


def eventually_query(dsn_args: dict[str, Any], query: str, expected: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            with connect(**dsn_args) as conn:
                row = conn.execute(query).fetchone()
                last = None if row is None else row[0]
                if last == expected:
                    return
        except psycopg.Error as exc:
            last = exc
        time.sleep(0.5)
    raise AssertionError(f"{query!r} gave {last!r}, not {expected!r}, within {timeout} s")


def kubectl() -> str | None:
    for candidate in KUBECTL_CANDIDATES:
        found = shutil.which(candidate) or (candidate if Path(candidate).exists() else None)
        if found:
            return found
    built = sorted(Path("/var/cache/replicadb").glob("k8s-*/bin/kubectl"))
    return str(built[-1]) if built else None


def kubectl_get_rdb(namespace: str) -> str:
    binary = kubectl()
    assert binary is not None, "kubectl not found"
    return subprocess.run(
        [binary, "get", "rdb", "-n", namespace], capture_output=True, text=True, check=True
    ).stdout


def apiserver_write_counts(api: client.ApiClient) -> dict[tuple[str, str, str], float]:
    """apiserver_request_total summed by (verb, resource, subresource), write verbs only."""
    host = api.configuration.host
    response = api.call_api("GET", f"{host}/metrics")
    response.read()
    text = response.data.decode()
    counts: dict[tuple[str, str, str], float] = {}
    for line in text.splitlines():
        if not line.startswith("apiserver_request_total{"):
            continue
        labels_text, value = line[len("apiserver_request_total{") :].rsplit("} ", 1)
        labels = dict(part.split("=", 1) for part in labels_text.split(",") if "=" in part)
        labels = {k: v.strip('"') for k, v in labels.items()}
        if labels.get("verb") not in ("POST", "PUT", "PATCH", "DELETE", "APPLY"):
            continue
        key = (labels["verb"], labels.get("resource", ""), labels.get("subresource", ""))
        counts[key] = counts.get(key, 0.0) + float(value)
    return counts
