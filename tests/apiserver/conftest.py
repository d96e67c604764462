"""Fixtures for the layer below the cluster: one API server and etcd for the session, and
per test a ReplicatedDatabase whose pods stand for a local topology of real PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from replicadb_operator.dataplane.datadir import RunAs
from replicadb_operator.local.topology import LocalTopology

from tests.apiserver.cluster import KubeTopology, install_crd
from tests.apiserver.control_plane import APISERVER, ControlPlane


@pytest.fixture(scope="session")
def control_plane() -> Iterator[ControlPlane]:
    if not APISERVER.exists():
        pytest.fail(f"{APISERVER} is missing: `make cluster-build` builds it")
    plane = ControlPlane()
    plane.start()
    try:
        install_crd(plane.api())
        yield plane
    finally:
        plane.stop()


@pytest.fixture
def kube_topology(control_plane: ControlPlane, pg_user: RunAs | None) -> Iterator[KubeTopology]:
    topology = LocalTopology(replicas=2, run_as=pg_user)
    cluster: KubeTopology | None = None
    try:
        topology.start()
        cluster = KubeTopology(control_plane.api(), control_plane.kubeconfig, topology)
        cluster.create()
        yield cluster
    finally:
        if cluster is not None:
            cluster.stop()
        topology.destroy()
