"""The three ways a primary fails in the failover tests, done to a real pod.

- ``pod_delete``: the pod is deleted with grace period 0 (a node or kubelet losing it);
- ``process_kill``: only the postgres process is killed (SIGKILL from the node);
- ``network_cut``: the pod's network namespace drops everything on its interface (iptables
  inside that namespace), while postgres keeps running;
- ``network_cut_operator_kill``: that, and at the same moment the acting operator's process
  is killed (SIGKILL): a node that dies with the primary and the operator on it. The
  operator that takes over has never seen the primary alive (issue 12).

Process kill and network cut work from the node itself (the local cluster, where tests run
as root on the node); on kind they would go through ``docker exec`` into the node container.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from pathlib import Path

from kubernetes import client

FAULT_KINDS = ("pod_delete", "process_kill", "network_cut")
OPERATOR_AND_PRIMARY = "network_cut_operator_kill"


def container_id(core: client.CoreV1Api, namespace: str, pod: str) -> str:
    status = core.read_namespaced_pod(pod, namespace).status
    raw = str(status.container_statuses[0].container_id or "")
    return raw.split("://", 1)[-1]


def container_pids(cid: str) -> list[int]:
    """Host PIDs of the container's processes, found by its cgroup path."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if cid in (proc / "cgroup").read_text():
                pids.append(int(proc.name))
        except OSError:
            continue
    return sorted(pids)


def postmaster_pid(cid: str) -> int:
    """The container's first process is postgres itself (the entrypoint exec'd it)."""
    pids = container_pids(cid)
    for pid in pids:
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            parent = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except OSError:
            continue
        if cmdline and cmdline[0].endswith(b"postgres") and parent not in pids:
            return pid
    raise LookupError(f"no postmaster among the processes of container {cid}")


def kill_postgres(core: client.CoreV1Api, namespace: str, pod: str) -> None:
    os.kill(postmaster_pid(container_id(core, namespace, pod)), 9)


def cut_network(core: client.CoreV1Api, namespace: str, pod: str) -> None:
    """Drop every packet on the pod's eth0, both ways. The pod keeps running."""
    pid = postmaster_pid(container_id(core, namespace, pod))
    netns = f"/proc/{pid}/ns/net"
    for chain, flag in (("INPUT", "-i"), ("OUTPUT", "-o")):
        subprocess.run(
            [
                "nsenter",
                f"--net={netns}",
                "iptables",
                "-w",
                "-I",
                chain,
                flag,
                "eth0",
                "-j",
                "DROP",
            ],
            check=True,
        )


def kill_acting_operator(core: client.CoreV1Api) -> str:
    """SIGKILL every process of the acting operator's container; returns the pod's name.
    Its container restarts in place (the Deployment keeps the pod), as after an OOM kill."""
    from e2e import operator_support as ops

    pod = ops.acting_operator(core.api_client)
    for pid in container_pids(container_id(core, ops.SYSTEM, pod)):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
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
