"""Small helpers the e2e tests share: waiting, pod state, exec and logs."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from kubernetes.stream import stream
from replicadb_operator.builders import names


def wait_for(check: Callable[[], bool], timeout: float, what: str, interval: float = 1.0) -> None:
    """Poll ``check`` until it is true; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def namespace_gone(core: client.CoreV1Api, name: str) -> bool:
    try:
        core.read_namespace(name)
    except ApiException as exc:
        if exc.status == 404:
            return True
        raise
    return False


def volume_exists(core: client.CoreV1Api, name: str) -> bool:
    try:
        core.read_persistent_volume(name)
    except ApiException as exc:
        if exc.status == 404:
            return False
        raise
    return True


def pod_status(core: client.CoreV1Api, namespace: str, name: str) -> client.V1PodStatus:
    status = core.read_namespaced_pod(name, namespace).status
    assert status is not None
    return status


def pod_uid(core: client.CoreV1Api, namespace: str, name: str) -> str:
    meta = core.read_namespaced_pod(name, namespace).metadata
    assert meta is not None
    return str(meta.uid)


def claimed_volumes(core: client.CoreV1Api, namespace: str) -> list[str]:
    """Names of the PersistentVolumes bound to the namespace's claims."""
    return [
        str(pvc.spec.volume_name)
        for pvc in core.list_namespaced_persistent_volume_claim(namespace).items
        if pvc.spec is not None and pvc.spec.volume_name
    ]


def pod_ready(core: client.CoreV1Api, namespace: str, name: str) -> bool:
    try:
        status = pod_status(core, namespace, name)
    except ApiException as exc:
        if exc.status == 404:
            return False
        raise
    return any(c.type == "Ready" and c.status == "True" for c in status.conditions or [])


def pod_phase(core: client.CoreV1Api, namespace: str, name: str) -> str:
    return str(pod_status(core, namespace, name).phase)


def claim(core: client.CoreV1Api, namespace: str, name: str) -> tuple[str, str]:
    """(phase, storage class) of a PersistentVolumeClaim."""
    pvc = core.read_namespaced_persistent_volume_claim(name, namespace)
    assert pvc.status is not None
    assert pvc.spec is not None
    return str(pvc.status.phase), str(pvc.spec.storage_class_name or "")


def wait_pod_ready(core: client.CoreV1Api, namespace: str, name: str, timeout: float = 120) -> None:
    try:
        wait_for(lambda: pod_ready(core, namespace, name), timeout, f"pod {namespace}/{name} Ready")
    except TimeoutError as exc:
        raise TimeoutError(f"{exc}\n{describe_pod(core, namespace, name)}") from None


def wait_pod_finished(
    core: client.CoreV1Api, namespace: str, name: str, timeout: float = 120
) -> str:
    """Wait until the pod Succeeded or Failed; returns the phase."""
    wait_for(
        lambda: pod_phase(core, namespace, name) in ("Succeeded", "Failed"),
        timeout,
        f"pod {namespace}/{name} to finish",
    )
    return pod_phase(core, namespace, name)


def describe_pod(core: client.CoreV1Api, namespace: str, name: str) -> str:
    """Status and recent events of a pod, for failure messages."""
    try:
        pod = pod_status(core, namespace, name)
    except ApiException as exc:
        return f"pod {namespace}/{name}: {exc.reason}"
    events = core.list_namespaced_event(namespace, field_selector=f"involvedObject.name={name}")
    lines = [f"pod {namespace}/{name}: phase={pod.phase}"]
    for status in pod.container_statuses or []:
        lines.append(f"  container {status.name}: ready={status.ready} state={status.state}")
    lines += [f"  event {e.reason}: {e.message}" for e in events.items]
    return "\n".join(lines)


DEFAULT_CONTAINER = "kubectl.kubernetes.io/default-container"


def postgres_restarts(pod: client.V1Pod) -> int:
    """Restarts of an instance pod's postgres container (its fence agent's are not counted)."""
    return sum(
        c.restart_count or 0
        for c in pod.status.container_statuses or []
        if c.name == names.POSTGRES_CONTAINER
    )


def exec_in_pod(core: client.CoreV1Api, namespace: str, name: str, command: list[str]) -> str:
    """Run a command in the pod's default container (as kubectl picks it: the annotation,
    else the first); returns stdout, raises on a non-zero exit."""
    pod = core.read_namespaced_pod(name, namespace)
    container = (pod.metadata.annotations or {}).get(DEFAULT_CONTAINER)
    resp: Any = stream(
        core.connect_get_namespaced_pod_exec,
        name,
        namespace,
        container=container or pod.spec.containers[0].name,
        command=command,
        stdout=True,
        stderr=True,
        stdin=False,
        tty=False,
        _preload_content=False,
    )
    resp.run_forever(timeout=60)
    out, err = resp.read_stdout(), resp.read_stderr()
    code = resp.returncode
    resp.close()
    if code != 0:
        raise RuntimeError(f"{command} in {namespace}/{name} exited {code}: {err}")
    return str(out)
