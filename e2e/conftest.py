"""Fixtures for tests against a real Kubernetes cluster.

KUBECONFIG names the cluster: the local one (``make e2e``), kind (``make e2e-kind``) or any
other. A missing or unreachable cluster fails the run, unless REPLICADB_E2E_OPTIONAL=1 says
that skipping is acceptable (a developer machine without a cluster).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from e2e import kube

INSTANCE_IMAGE = os.environ.get("REPLICADB_INSTANCE_IMAGE", "localhost/replicadb/instance:dev")


@pytest.fixture(scope="session")
def api_client() -> client.ApiClient:
    kubeconfig = os.environ.get("KUBECONFIG")
    optional = os.environ.get("REPLICADB_E2E_OPTIONAL") == "1"
    try:
        if not kubeconfig:
            raise RuntimeError("KUBECONFIG is not set")
        api: client.ApiClient = config.new_client_from_config(config_file=kubeconfig)
        client.VersionApi(api).get_code(_request_timeout=5)
    except Exception as exc:
        message = f"no reachable Kubernetes cluster ({exc}); run `make e2e` or set KUBECONFIG"
        if optional:
            pytest.skip(message)
        pytest.fail(message)
    return api


@pytest.fixture
def namespace(api_client: client.ApiClient) -> Iterator[str]:
    """A namespace of the test's own, deleted with everything in it (volumes too) afterwards."""
    core = client.CoreV1Api(api_client)
    name = f"rdb-e2e-{uuid.uuid4().hex[:8]}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    try:
        yield name
    finally:
        claims = kube.claimed_volumes(core, name)
        try:
            core.delete_namespace(name)
        except ApiException as exc:
            if exc.status != 404:
                raise
        kube.wait_for(lambda: kube.namespace_gone(core, name), 180, f"namespace {name} deleted")
        # Provisioned volumes go when their claims do; wait so that the cluster is left clean.
        kube.wait_for(
            lambda: not any(kube.volume_exists(core, pv) for pv in claims),
            120,
            f"volumes of {name} released",
        )


@pytest.fixture(scope="session")
def instance_image() -> str:
    return INSTANCE_IMAGE
