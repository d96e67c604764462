"""Target discovery for the e2e Prometheus, in place of ``kubernetes_sd_configs`` (which
Debian's Prometheus is built without).

For each scrape job e2e/prometheus_config.py translates from a ServiceMonitor, the harness
lists the Services its selector matches, reads their Endpoints and the pods behind them, and
writes ``file_sd_configs`` target groups carrying the ``__meta_kubernetes_*`` labels that
kubernetes_sd's ``endpoints`` role attaches (Prometheus 2.42, discovery/kubernetes/endpoints.go).
The job's relabelling, unchanged from the Prometheus Operator's, then selects and labels the
targets as it would in a user's cluster. A background thread rewrites the files every few
seconds, so that targets follow pods replaced during a failover.

``endpoint_targets`` is pure (API objects as the JSON dicts the API server returns); the
rest is the I/O around it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from e2e.prometheus_config import Discovery, sanitize

log = logging.getLogger(__name__)

TargetGroup = dict[str, Any]  # {"targets": ["ip:port"], "labels": {name: value}}
Obj = Mapping[str, Any]
META = "__meta_kubernetes_"


def _object_labels(prefix: str, meta: Obj) -> dict[str, str]:
    """kubernetes_sd's ``<prefix>_label_<name>``/``labelpresent`` and the annotation twins."""
    out = {}
    for kind, values in (("label", meta.get("labels")), ("annotation", meta.get("annotations"))):
        for key, value in (values or {}).items():
            out[f"{META}{prefix}_{kind}_{sanitize(key)}"] = value
            out[f"{META}{prefix}_{kind}present_{sanitize(key)}"] = "true"
    return out


def pod_labels(pod: Obj) -> dict[str, str]:
    meta, spec, status = pod["metadata"], pod.get("spec") or {}, pod.get("status") or {}
    ready = next(
        (c["status"].lower() for c in status.get("conditions") or [] if c["type"] == "Ready"),
        "unknown",
    )
    out = {
        f"{META}pod_name": meta["name"],
        f"{META}pod_ip": status.get("podIP") or "",
        f"{META}pod_ready": ready,
        f"{META}pod_phase": status.get("phase") or "",
        f"{META}pod_node_name": spec.get("nodeName") or "",
        f"{META}pod_host_ip": status.get("hostIP") or "",
        f"{META}pod_uid": meta.get("uid") or "",
    }
    controller = next((o for o in meta.get("ownerReferences") or [] if o.get("controller")), None)
    if controller is not None:
        out[f"{META}pod_controller_kind"] = controller["kind"]
        out[f"{META}pod_controller_name"] = controller["name"]
    out.update(_object_labels("pod", meta))
    return out


def endpoint_targets(
    endpoints: Obj, service: Obj | None, pods: Mapping[str, Obj]
) -> list[TargetGroup]:
    """The targets kubernetes_sd (role: endpoints) makes of one Endpoints object: one per
    address and port, ready and not-ready addresses alike. ``pods`` maps the names of the
    pods in the Endpoints' namespace to the pods; an address whose pod is unknown gets no
    pod labels, as in kubernetes_sd."""
    meta = endpoints["metadata"]
    common = {f"{META}namespace": meta["namespace"], f"{META}endpoints_name": meta["name"]}
    common.update(_object_labels("endpoints", meta))
    if service is not None:
        common[f"{META}service_name"] = service["metadata"]["name"]
        common.update(_object_labels("service", service["metadata"]))
    groups = []
    for subset in endpoints.get("subsets") or []:
        for port in subset.get("ports") or []:
            protocol = port.get("protocol") or "TCP"
            for ready, addresses in (
                ("true", subset.get("addresses")),
                ("false", subset.get("notReadyAddresses")),
            ):
                for address in addresses or []:
                    labels = dict(common)
                    labels.update(
                        {
                            f"{META}endpoint_port_name": port.get("name") or "",
                            f"{META}endpoint_port_protocol": protocol,
                            f"{META}endpoint_ready": ready,
                        }
                    )
                    if address.get("hostname"):
                        labels[f"{META}endpoint_hostname"] = address["hostname"]
                    if address.get("nodeName"):
                        labels[f"{META}endpoint_node_name"] = address["nodeName"]
                    ref = address.get("targetRef") or {}
                    if ref:
                        labels[f"{META}endpoint_address_target_kind"] = ref.get("kind", "")
                        labels[f"{META}endpoint_address_target_name"] = ref.get("name", "")
                    pod = pods.get(ref.get("name", "")) if ref.get("kind") == "Pod" else None
                    if pod is not None:
                        labels.update(pod_labels(pod))
                        labels.update(_container_labels(pod, port["port"], protocol))
                    groups.append(
                        {"targets": [f"{address['ip']}:{port['port']}"], "labels": labels}
                    )
    return groups


def _container_labels(pod: Obj, port: int, protocol: str) -> dict[str, str]:
    """The container declaring the endpoint's port number, as kubernetes_sd finds it."""
    for container in (pod.get("spec") or {}).get("containers") or []:
        for cport in container.get("ports") or []:
            if cport["containerPort"] == port:
                return {
                    f"{META}pod_container_name": container["name"],
                    f"{META}pod_container_image": container.get("image") or "",
                    f"{META}pod_container_port_name": cport.get("name") or "",
                    f"{META}pod_container_port_number": str(port),
                    f"{META}pod_container_port_protocol": protocol,
                }
    return {}


def discover(api: client.ApiClient, discovery: Discovery) -> list[TargetGroup]:
    """The target groups of one scrape job, read from the API server now."""
    core = client.CoreV1Api(api)
    if discovery.namespaces is None:
        services = [core.list_service_for_all_namespaces(label_selector=discovery.label_selector)]
    else:
        services = [
            core.list_namespaced_service(ns, label_selector=discovery.label_selector)
            for ns in discovery.namespaces
        ]
    groups: list[TargetGroup] = []
    pods_by_namespace: dict[str, dict[str, Obj]] = {}
    for service_list in services:
        for svc in service_list.items:
            namespace, name = svc.metadata.namespace, svc.metadata.name
            try:
                endpoints = core.read_namespaced_endpoints(name, namespace)
            except ApiException as exc:
                if exc.status == 404:
                    continue
                raise
            if namespace not in pods_by_namespace:
                pods = core.list_namespaced_pod(namespace).items
                pods_by_namespace[namespace] = {
                    p.metadata.name: api.sanitize_for_serialization(p) for p in pods
                }
            groups += endpoint_targets(
                api.sanitize_for_serialization(endpoints),
                api.sanitize_for_serialization(svc),
                pods_by_namespace[namespace],
            )
    return sorted(groups, key=lambda g: (g["targets"], sorted(g["labels"].items())))


def write_targets(path: Path, groups: list[TargetGroup]) -> bool:
    """Replace ``path`` atomically (Prometheus watches it) when its content changes."""
    text = json.dumps(groups, indent=1, sort_keys=True) + "\n"
    if path.exists() and path.read_text() == text:
        return False
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
    return True


def refresh(api: client.ApiClient, discoveries: list[Discovery]) -> None:
    for discovery in discoveries:
        if write_targets(discovery.file, discover(api, discovery)):
            log.info("targets of %s rewritten", discovery.job_name)


@contextlib.contextmanager
def refreshed_targets(
    kubeconfig: str, discoveries: list[Discovery], period_s: float = 2.0
) -> Iterator[None]:
    """Write every job's target file now, then keep rewriting them every ``period_s`` until
    the block ends. A failed refresh (the API server busy during a failover) keeps the
    previous files and is retried at the next period."""
    api = client.ApiClient(_configuration(kubeconfig))
    refresh(api, discoveries)
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(period_s):
            try:
                refresh(api, discoveries)
            except Exception:  # logged and retried; the test's waits decide
                log.warning("refreshing the Prometheus targets failed", exc_info=True)

    thread = threading.Thread(target=loop, name="prometheus-targets", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=30)
        api.close()


def _configuration(kubeconfig: str) -> client.Configuration:
    """A client of the discovery thread's own (the test's ApiClient is used meanwhile)."""
    configuration = client.Configuration()
    config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)
    return configuration
