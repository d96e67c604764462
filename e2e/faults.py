"""The three ways a primary fails in the failover tests, done to a real pod through the
Kubernetes API only, so that they work the same on every cluster:

- ``pod_delete``: the pod is deleted with grace period 0 (a node or kubelet losing it);
- ``process_kill``: postgres dies without a shutdown: from an ``exec`` in the pod, every
  process but the postmaster gets SIGKILL and the postmaster (the container's PID 1, which
  the kernel does not let its own namespace SIGKILL) an immediate-shutdown SIGQUIT; the
  container exits and the kubelet restarts it, with crash recovery;
- ``network_cut``: an ephemeral container with NET_ADMIN in the pod takes the pod's eth0
  down, while postgres keeps running (nothing reaches it and it reaches nothing);
- ``network_cut_operator_kill``: that, and at the same moment the acting operator's pod is
  deleted without grace (its node died with the primary's). The operator that takes over
  has never seen the primary alive (issue 12). The kopf process is its container's PID 1,
  which no signal from inside the pod can kill, so the API's pod deletion stands in for it.

Node-level faults (a node stopped, paused or cut off) go through the cluster's provider:
see e2e/nodes.py.
"""

from __future__ import annotations

import contextlib
import uuid

from kubernetes import client

from e2e import kube

FAULT_KINDS = ("pod_delete", "process_kill", "network_cut")
OPERATOR_AND_PRIMARY = "network_cut_operator_kill"

# SIGKILL to everything but PID 1 and this shell, then SIGQUIT to the postmaster.
KILL_POSTGRES = "kill -s KILL -1; kill -s QUIT 1"

# The instance image has Python but no ip or iptables: SIOCSIFFLAGS without IFF_UP.
LINK_DOWN = """
import fcntl, socket, struct
SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
req = struct.pack("16sH", b"eth0", 0)
flags = struct.unpack("16sH", fcntl.ioctl(s, SIOCGIFFLAGS, req)[:18])[1]
fcntl.ioctl(s, SIOCSIFFLAGS, struct.pack("16sH", b"eth0", flags & ~IFF_UP))
print("eth0 down")
"""


def kill_postgres(core: client.CoreV1Api, namespace: str, pod: str) -> None:
    # The exec's own stream may end with the container.
    with contextlib.suppress(RuntimeError):
        kube.exec_in_pod(core, namespace, pod, ["sh", "-c", KILL_POSTGRES])


def _container_image(core: client.CoreV1Api, namespace: str, pod: str) -> str:
    spec = core.read_namespaced_pod(pod, namespace).spec
    return str(spec.containers[0].image)


def cut_network(core: client.CoreV1Api, namespace: str, pod: str) -> None:
    """The pod's eth0 goes down from an ephemeral container in its network namespace."""
    name = f"netcut-{uuid.uuid4().hex[:6]}"
    debug = {
        "name": name,
        "image": _container_image(core, namespace, pod),
        "imagePullPolicy": "IfNotPresent",
        "command": ["python3", "-c", LINK_DOWN],
        "securityContext": {
            "runAsUser": 0,
            "runAsNonRoot": False,
            "capabilities": {"add": ["NET_ADMIN"]},
        },
    }
    core.patch_namespaced_pod_ephemeralcontainers(
        pod, namespace, {"spec": {"ephemeralContainers": [debug]}}
    )

    def finished() -> bool:
        statuses = core.read_namespaced_pod(pod, namespace).status.ephemeral_container_statuses
        state = next((s.state for s in statuses or [] if s.name == name), None)
        if state is None or state.terminated is None:
            return False
        if state.terminated.exit_code != 0:
            raise RuntimeError(f"network cut in {pod} exited {state.terminated.exit_code}")
        return True

    kube.wait_for(finished, 60, f"network of {pod} cut", interval=0.2)


def kill_acting_operator(core: client.CoreV1Api) -> str:
    """Delete the acting operator's pod with grace period 0; returns its name."""
    from e2e import operator_support as ops

    pod = ops.acting_operator(core.api_client)
    core.delete_namespaced_pod(pod, ops.SYSTEM, grace_period_seconds=0)
    return pod


def inject(core: client.CoreV1Api, namespace: str, pod: str, kind: str) -> None:
    if kind == "pod_delete":
        core.delete_namespaced_pod(pod, namespace, grace_period_seconds=0)
    elif kind == "process_kill":
        kill_postgres(core, namespace, pod)
    elif kind == "network_cut":
        cut_network(core, namespace, pod)
    elif kind == OPERATOR_AND_PRIMARY:
        cut_network(core, namespace, pod)
        kill_acting_operator(core)
    else:
        raise ValueError(f"unknown fault {kind!r}; one of {FAULT_KINDS}")
