"""Node faults through the cluster's provider: a kind node is a container, so stopping,
pausing or cutting off a node is a ``docker``/``podman`` command on that container.

REPLICADB_E2E_PROVIDER names the provider (``make e2e-kind`` sets it); without it (the local
single-node cluster, or any cluster whose nodes are not containers here) node faults are not
available and the tests that need them skip.
"""

from __future__ import annotations

import os
import subprocess

from e2e import kind_cluster


class NodeProvider:
    def __init__(self, name: str) -> None:
        self.provider = (
            kind_cluster.detect_provider()
            if name == "podman"
            else kind_cluster.Provider(name, dict(os.environ))
        )

    def _run(self, *args: str) -> None:
        subprocess.run([self.provider.name, *args], env=self.provider.env, check=True)

    def pause(self, node: str) -> None:
        """Every process of the node frozen: kubelet, containerd and the pods stop answering,
        as with a hung machine."""
        self._run("pause", node)

    def unpause(self, node: str) -> None:
        self._run("unpause", node)

    def stop(self, node: str) -> None:
        self._run("stop", node)

    def start(self, node: str) -> None:
        self._run("start", node)


def provider() -> NodeProvider | None:
    name = os.environ.get("REPLICADB_E2E_PROVIDER")
    return NodeProvider(name) if name in ("docker", "podman") else None
