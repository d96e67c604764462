"""A plain Prometheus configuration from manifests/monitoring/: the scrape jobs the Prometheus
Operator would generate from our ServiceMonitors, and our PrometheusRule's groups.

The e2e layer has no Prometheus Operator; translating the ServiceMonitors (rather than
writing scrape jobs by hand) means the e2e Prometheus sees exactly the labels a user's
Prometheus would, so an alert or dashboard query that relies on a label the ServiceMonitor
does not give fails here. Only the ServiceMonitor fields our manifests use are translated;
anything else is refused rather than ignored. The target labels are the Prometheus
Operator's (namespace, service, pod, container, endpoint, job).

Debian's Prometheus is built without Kubernetes service discovery (no
``kubernetes_sd_configs``), so each job reads its targets from a ``file_sd_configs`` file
instead, which e2e/prometheus_targets.py fills from the Kubernetes API with the same
``__meta_kubernetes_*`` labels that ``kubernetes_sd_configs`` (role: endpoints) would attach.
The relabelling is therefore the Prometheus Operator's, unchanged: it keeps the selected
Services' ``metrics`` endpoints and derives the target labels from those meta labels.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable
from pathlib import Path
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
# How often Prometheus re-reads a target file even without a file-system event (it also
# watches the files; the harness replaces them atomically, which it sees at once).
FILE_SD_REFRESH = "5s"


@dataclasses.dataclass(frozen=True)
class Discovery:
    """What the harness discovers for one scrape job, in place of kubernetes_sd: the
    Endpoints of the Services matching ``label_selector`` in ``namespaces`` (None: all),
    written as file_sd target groups to ``file``."""

    job_name: str
    file: Path
    namespaces: tuple[str, ...] | None
    label_selector: str


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


def job_name(monitor: dict[str, Any], index: int) -> str:
    meta = monitor["metadata"]
    return f"serviceMonitor/{meta['namespace']}/{meta['name']}/{index}"


def target_file(targets_dir: Path, name: str) -> Path:
    return targets_dir / f"{name.replace('/', '_')}.json"


def _checked_spec(monitor: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = monitor["spec"]
    unknown = set(spec) - KNOWN_SPEC
    if unknown:
        raise ValueError(f"ServiceMonitor fields not translated: {sorted(unknown)}")
    if set(spec["selector"]) != {"matchLabels"}:
        raise ValueError("only selector.matchLabels is translated")
    for endpoint in spec["endpoints"]:
        unknown = set(endpoint) - KNOWN_ENDPOINT
        if unknown:
            raise ValueError(f"endpoint fields not translated: {sorted(unknown)}")
    return spec


def _namespaces(monitor: dict[str, Any]) -> tuple[str, ...] | None:
    namespaces = monitor["spec"].get("namespaceSelector", {})
    if namespaces.get("any"):
        return None
    return tuple(namespaces.get("matchNames") or [monitor["metadata"]["namespace"]])


def discoveries(monitor: dict[str, Any], targets_dir: Path) -> list[Discovery]:
    """One Discovery per endpoint of ``monitor`` (a ServiceMonitor), as its scrape jobs."""
    spec = _checked_spec(monitor)
    selector = ",".join(f"{k}={v}" for k, v in sorted(spec["selector"]["matchLabels"].items()))
    return [
        Discovery(
            job_name=job_name(monitor, index),
            file=target_file(targets_dir, job_name(monitor, index)),
            namespaces=_namespaces(monitor),
            label_selector=selector,
        )
        for index in range(len(spec["endpoints"]))
    ]


def scrape_jobs(
    monitor: dict[str, Any], targets_dir: Path, interval: str | None = None
) -> list[Config]:
    """One scrape job per endpoint of ``monitor`` (a ServiceMonitor), reading its targets
    from a file in ``targets_dir``. ``interval`` overrides the endpoints' own (e2e scrapes
    faster than a production Prometheus would)."""
    spec = _checked_spec(monitor)
    selector = spec["selector"]
    jobs = []
    for index, endpoint in enumerate(spec["endpoints"]):
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
        name = job_name(monitor, index)
        job: Config = {
            "job_name": name,
            "honor_labels": bool(endpoint.get("honorLabels", False)),
            "scrape_interval": interval or endpoint.get("interval", "30s"),
            "file_sd_configs": [
                {
                    "files": [str(target_file(targets_dir, name))],
                    "refresh_interval": FILE_SD_REFRESH,
                }
            ],
            "relabel_configs": keep + targets + relabel(endpoint.get("relabelings", [])),
        }
        if "metricRelabelings" in endpoint:
            job["metric_relabel_configs"] = relabel(endpoint["metricRelabelings"])
        jobs.append(job)
    return jobs


def prometheus_config(
    monitors: Iterable[dict[str, Any]],
    rule_files: list[str],
    targets_dir: Path,
    interval: str = "5s",
) -> Config:
    return {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "rule_files": rule_files,
        "scrape_configs": [
            job for monitor in monitors for job in scrape_jobs(monitor, targets_dir, interval)
        ],
    }
