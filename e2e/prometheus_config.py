"""A plain Prometheus configuration from manifests/monitoring/: the scrape jobs the Prometheus
Operator would generate from our ServiceMonitors, and our PrometheusRule's groups.

The e2e layer has no Prometheus Operator; translating the ServiceMonitors (rather than
writing scrape jobs by hand) means the e2e Prometheus sees exactly the labels a user's
Prometheus would, so an alert or dashboard query that relies on a label the ServiceMonitor
does not give fails here. Only the ServiceMonitor fields our manifests use are translated;
anything else is refused rather than ignored. The target labels are the Prometheus
Operator's (namespace, service, pod, container, endpoint, job).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

Config = dict[str, Any]

KNOWN_SPEC = {"jobLabel", "selector", "namespaceSelector", "endpoints"}
KNOWN_ENDPOINT = {"port", "interval", "honorLabels", "relabelings", "metricRelabelings"}
RELABEL_FIELDS = {
    "sourceLabels": "source_labels",
    "targetLabel": "target_label",
    "separator": "separator",
    "regex": "regex",
    "replacement": "replacement",
    "action": "action",
    "modulus": "modulus",
}


def sanitize(label: str) -> str:
    """Kubernetes label name -> the name of its service-discovery meta label."""
    return re.sub(r"[^a-zA-Z0-9_]", "_", label)


def relabel(rules: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for rule in rules:
        unknown = set(rule) - set(RELABEL_FIELDS)
        if unknown:
            raise ValueError(f"relabeling fields not translated: {sorted(unknown)}")
        out.append({RELABEL_FIELDS[k]: v for k, v in rule.items()})
    return out


def scrape_jobs(
    monitor: dict[str, Any], kubeconfig: str, interval: str | None = None
) -> list[Config]:
    """One scrape job per endpoint of ``monitor`` (a ServiceMonitor). ``interval`` overrides
    the endpoints' own (e2e scrapes faster than a production Prometheus would)."""
    spec, meta = monitor["spec"], monitor["metadata"]
    unknown = set(spec) - KNOWN_SPEC
    if unknown:
        raise ValueError(f"ServiceMonitor fields not translated: {sorted(unknown)}")
    selector = spec["selector"]
    if set(selector) != {"matchLabels"}:
        raise ValueError("only selector.matchLabels is translated")
    namespaces = spec.get("namespaceSelector", {})
    sd: Config = {"role": "endpoints", "kubeconfig_file": kubeconfig}
    if not namespaces.get("any"):
        sd["namespaces"] = {"names": namespaces.get("matchNames") or [meta["namespace"]]}
    jobs = []
    for index, endpoint in enumerate(spec["endpoints"]):
        unknown = set(endpoint) - KNOWN_ENDPOINT
        if unknown:
            raise ValueError(f"endpoint fields not translated: {sorted(unknown)}")
        keep = [
            {
                "source_labels": [
                    f"__meta_kubernetes_service_label_{sanitize(key)}",
                    f"__meta_kubernetes_service_labelpresent_{sanitize(key)}",
                ],
                "regex": f"({re.escape(value)});true",
                "action": "keep",
            }
            for key, value in sorted(selector["matchLabels"].items())
        ]
        keep.append(
            {
                "source_labels": ["__meta_kubernetes_endpoint_port_name"],
                "regex": endpoint["port"],
                "action": "keep",
            }
        )
        job_source = (
            f"__meta_kubernetes_service_label_{sanitize(spec['jobLabel'])}"
            if "jobLabel" in spec
            else "__meta_kubernetes_service_name"
        )
        targets = [
            {"source_labels": ["__meta_kubernetes_namespace"], "target_label": "namespace"},
            {"source_labels": ["__meta_kubernetes_service_name"], "target_label": "service"},
            {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"},
            {
                "source_labels": ["__meta_kubernetes_pod_container_name"],
                "target_label": "container",
            },
            {"source_labels": [job_source], "target_label": "job"},
            {"target_label": "endpoint", "replacement": endpoint["port"]},
        ]
        job: Config = {
            "job_name": f"serviceMonitor/{meta['namespace']}/{meta['name']}/{index}",
            "honor_labels": bool(endpoint.get("honorLabels", False)),
            "scrape_interval": interval or endpoint.get("interval", "30s"),
            "kubernetes_sd_configs": [sd],
            "relabel_configs": keep + targets + relabel(endpoint.get("relabelings", [])),
        }
        if "metricRelabelings" in endpoint:
            job["metric_relabel_configs"] = relabel(endpoint["metricRelabelings"])
        jobs.append(job)
    return jobs


def prometheus_config(
    monitors: Iterable[dict[str, Any]],
    rule_files: list[str],
    kubeconfig: str,
    interval: str = "5s",
) -> Config:
    return {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "rule_files": rule_files,
        "scrape_configs": [
            job for monitor in monitors for job in scrape_jobs(monitor, kubeconfig, interval)
        ],
    }
