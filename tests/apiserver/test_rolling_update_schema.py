"""spec.updates and spec.readOnly are checked at admission by a real API server, with the
field named in the refusal; status.rollingUpdate round-trips through the one status writer
(the schema keeps its fields, a merge patch removes the recorded primary restart)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from kubernetes.config import kube_config
from replicadb_operator import crd
from replicadb_operator.failover import transitions
from replicadb_operator.failover.writer import StatusWriter
from replicadb_operator.kube import clients

from tests.apiserver.control_plane import ControlPlane

pytestmark = pytest.mark.apiserver


@pytest.fixture
def db(control_plane: ControlPlane, monkeypatch: pytest.MonkeyPatch) -> Iterator[Database]:
    monkeypatch.setattr(kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(control_plane.kubeconfig))
    clients.api_client.cache_clear()
    api = control_plane.api()
    # A namespace per test: this control plane runs no controller that would remove one.
    namespace = f"updates-{uuid.uuid4().hex[:8]}"
    client.CoreV1Api(api).create_namespace({"metadata": {"name": namespace}})
    yield Database(client.CustomObjectsApi(api), namespace)
    clients.api_client.cache_clear()


@dataclass
class Database:
    custom: Any
    namespace: str


def create(db: Database, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    body = {"apiVersion": f"{crd.GROUP}/{crd.VERSION}", "kind": crd.KIND,
            "metadata": {"name": name}, "spec": spec}  # fmt: skip
    created: dict[str, Any] = db.custom.create_namespaced_custom_object(
        crd.GROUP, crd.VERSION, db.namespace, crd.PLURAL, body
    )
    return created


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"updates": {"primaryUpdateMethod": "reboot"}}, "spec.updates.primaryUpdateMethod"),
        ({"updates": {"primaryUpdateStrategy": "manual"}}, "spec.updates.primaryUpdateStrategy"),
        ({"readOnly": {"maxLagBytes": -1}}, "spec.readOnly.maxLagBytes"),
        ({"readOnly": {"maxLagSeconds": "soon"}}, "spec.readOnly.maxLagSeconds"),
    ],
)
def test_bad_update_fields_are_refused_naming_the_field(
    db: Database, spec: dict[str, Any], field: str
) -> None:
    with pytest.raises(ApiException) as refused:
        create(db, "bad", spec)
    assert refused.value.status == 422
    assert field in str(refused.value.body)


def test_defaults_and_rolling_update_status_round_trip(db: Database) -> None:
    created = create(db, "shop", {"readOnly": {"maxLagSeconds": 2.5}})
    assert created["spec"]["updates"] == {
        "primaryUpdateMethod": "switchover",
        "primaryUpdateStrategy": "unsupervised",
    }
    assert created["spec"]["readOnly"] == {"maxLagSeconds": 2.5}
    writer = StatusWriter(db.namespace, "shop")
    writer.apply(partial(transitions.name_first_primary, pod="shop-primary-0"))
    writer.apply(partial(transitions.initialized, primary="shop-primary-0"))
    progress = {"revision": "abc", "updatedInstances": ["shop-replica-0"],
                "outdatedInstances": ["shop-primary-0"], "state": "RestartingPrimary",
                "message": "restarting shop-primary-0 in place"}  # fmt: skip
    writer.apply(partial(transitions.roll_observed, progress=progress))
    writer.apply(partial(transitions.primary_restart_begun, pod="shop-primary-0", uid="u1",
                         now="2025-01-01T00:00:00Z"))  # fmt: skip
    stored = writer.refresh()["rollingUpdate"]
    assert stored["primaryRestart"] == {"pod": "shop-primary-0", "uid": "u1",
                                        "since": "2025-01-01T00:00:00Z"}  # fmt: skip
    assert stored["updatedInstances"] == ["shop-replica-0"]
    writer.apply(transitions.primary_restart_over)
    assert "primaryRestart" not in writer.refresh()["rollingUpdate"]
    assert writer.status["rollingUpdate"]["state"] == "RestartingPrimary"
