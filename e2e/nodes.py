"""Node faults through the cluster's provider: a kind node is a container, so stopping,
pausing or cutting off a node is a ``docker``/``podman`` command on that container. A drain
goes through the Kubernetes API, as ``kubectl drain`` does.

REPLICADB_E2E_PROVIDER names the provider (``make e2e-kind`` sets it); without it (the local
single-node cluster, or any cluster whose nodes are not containers here) node faults are not
available and the tests that need them skip.
"""

from __future__ import annotations

import os
import subprocess
import time

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from e2e import kind_cluster

# The node's own interface to the cluster network. Dropping what crosses it (in, out and
# forwarded for its pods) cuts the node off while everything on it keeps running and pods
# on the same node still reach each other, as a failed switch port or a lost link does.
PARTITION_RULES = [
    ["INPUT", "-i", "eth0"],
    ["OUTPUT", "-o", "eth0"],
    ["FORWARD", "-i", "eth0"],
    ["FORWARD", "-o", "eth0"],
]


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

    def kill(self, node: str) -> None:
        """The machine gone at once: every process of the node SIGKILLed."""
        self._run("kill", node)

    def start(self, node: str) -> None:
        self._run("start", node)

    def _rules(self, node: str, action: str) -> None:
        """All rules in one exec: the cut takes effect at once, not one rule per second."""
        script = "; ".join(
            f"iptables {action} {' '.join(rule)} -j DROP" for rule in PARTITION_RULES
        )
        self._run("exec", node, "sh", "-ec", script)

    def partition(self, node: str) -> None:
        self._rules(node, "-I")

    def heal(self, node: str) -> None:
        self._rules(node, "-D")


def cordon(core: client.CoreV1Api, node: str, unschedulable: bool = True) -> None:
    core.patch_node(node, {"spec": {"unschedulable": unschedulable}})


def drain(core: client.CoreV1Api, node: str, timeout_s: float = 180) -> None:
    """``kubectl drain --ignore-daemonsets --delete-emptydir-data``: cordon, then evict every
    pod on the node but DaemonSet pods, retrying evictions a PodDisruptionBudget refuses
    (kubectl retries every 5 s; every second here), until the pods are gone."""
    cordon(core, node)
    deadline = time.monotonic() + timeout_s
    while True:
        pods = [
            p
            for p in core.list_pod_for_all_namespaces(field_selector=f"spec.nodeName={node}").items
            if not any(o.kind == "DaemonSet" for o in p.metadata.owner_references or [])
            and p.metadata.deletion_timestamp is None
        ]
        if not pods:
            return
        for pod in pods:
            eviction = client.V1Eviction(
                metadata=client.V1ObjectMeta(
                    name=pod.metadata.name, namespace=pod.metadata.namespace
                )
            )
            try:
                core.create_namespaced_pod_eviction(
                    pod.metadata.name, pod.metadata.namespace, eviction
                )
            except ApiException as exc:
                if exc.status not in (404, 429):  # gone already; refused by a budget
                    raise
        if time.monotonic() > deadline:
            raise TimeoutError(f"drain of {node}: {[p.metadata.name for p in pods]} remain")
        time.sleep(1.0)


def provider() -> NodeProvider | None:
    name = os.environ.get("REPLICADB_E2E_PROVIDER")
    return NodeProvider(name) if name in ("docker", "podman") else None
