"""The one status writer against a real API server: it sends the resourceVersion it last
saw, and a transition that another writer made stale is refused, not applied over it."""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial

import pytest
from kubernetes import client
from kubernetes.config import kube_config
from replicadb_operator import crd
from replicadb_operator.failover import transitions
from replicadb_operator.failover.record import Kind
from replicadb_operator.failover.writer import StatusWriter, Transition
from replicadb_operator.kube import clients

from tests.apiserver.control_plane import ControlPlane

pytestmark = pytest.mark.apiserver
NAMESPACE, NAME = "writer-test", "shop"


@pytest.fixture
def database(control_plane: ControlPlane, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # The operator's client reads KUBECONFIG; the kubernetes package read it at import.
    monkeypatch.setattr(kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(control_plane.kubeconfig))
    clients.api_client.cache_clear()
    api = control_plane.api()
    client.CoreV1Api(api).create_namespace({"metadata": {"name": NAMESPACE}})
    custom = client.CustomObjectsApi(api)
    body = {"apiVersion": f"{crd.GROUP}/{crd.VERSION}", "kind": crd.KIND,
            "metadata": {"name": NAME}, "spec": {}}  # fmt: skip
    custom.create_namespaced_custom_object(crd.GROUP, crd.VERSION, NAMESPACE, crd.PLURAL, body)
    yield
    clients.api_client.cache_clear()


def begin(target: str) -> Transition:
    return partial(transitions.begin, kind=Kind.FAILOVER, old="p", target=target,
                   reason="test", now="2025-01-01T00:00:00Z")  # fmt: skip


@pytest.mark.usefixtures("database")
def test_a_stale_writer_rereads_and_is_refused_instead_of_overwriting() -> None:
    first, second = StatusWriter(NAMESPACE, NAME), StatusWriter(NAMESPACE, NAME)
    first.apply(partial(transitions.name_first_primary, pod="p"))
    first.apply(partial(transitions.initialized, primary="p"))
    second.refresh()
    stale_version = first.resource_version
    second.apply(begin("r1"))  # the other operator decided first
    assert first.resource_version == stale_version
    with pytest.raises(transitions.Refused, match="already under way"):
        first.apply(begin("r2"))  # 409, read again, begin no longer applies
    assert first.status["targetPrimary"] == "r1"
    assert first.status["failover"]["to"] == "r1"
    # A transition that still applies after the re-read goes through.
    assert (
        first.apply(partial(transitions.retarget, target="r2", lag_bytes=None))["targetPrimary"]
        == "r2"
    )
