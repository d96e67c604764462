"""The e2e Prometheus scrapes with the jobs the Prometheus Operator makes of our
ServiceMonitors: the labels alerts and dashboard rely on come from the same fields.

Debian's Prometheus has no kubernetes_sd; the e2e harness writes file_sd target files with
the meta labels kubernetes_sd would attach (e2e/prometheus_targets.py). The last tests run
promtool's own service discovery and relabelling over such a file, made from the Service
and pods our builders produce, so what is checked is what Prometheus does with them."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from replicadb_operator.builders import pooler, services
from replicadb_operator.spec import parse_spec

from e2e import prometheus_config, prometheus_targets

MONITORS = Path(__file__).parents[2] / "manifests" / "monitoring" / "servicemonitor.yaml"
TARGETS = Path("/targets")


def monitors() -> list[dict[str, Any]]:
    return list(yaml.safe_load_all(MONITORS.read_text()))


def jobs(targets_dir: Path = TARGETS) -> dict[str, dict[str, Any]]:
    config = prometheus_config.prometheus_config(monitors(), ["rules.yaml"], targets_dir)
    return {str(j["job_name"]).split("/")[2]: j for j in config["scrape_configs"]}


def test_operator_job_honours_its_labels_and_is_named_by_the_service_label() -> None:
    job = jobs()["replicadb-operator"]
    assert job["honor_labels"] is True
    assert {
        "source_labels": ["__meta_kubernetes_service_label_app_kubernetes_io_name"],
        "target_label": "job",
    } in job["relabel_configs"]
    [operator] = [d for m in monitors() for d in prometheus_config.discoveries(m, TARGETS)][:1]
    assert operator.namespaces == ("replicadb-system",)
    assert operator.label_selector == "app.kubernetes.io/name=replicadb-operator"


def test_pooler_job_labels_database_and_pool_from_the_pod_in_every_namespace() -> None:
    job = jobs()["replicadb-pooler"]
    assert job["honor_labels"] is False  # PgBouncer's own database label -> exported_database
    rules = job["relabel_configs"]
    assert {
        "source_labels": ["__meta_kubernetes_pod_label_replicadb_io_database"],
        "target_label": "database",
    } in rules
    assert {
        "source_labels": [
            "__meta_kubernetes_service_label_replicadb_io_component",
            "__meta_kubernetes_service_labelpresent_replicadb_io_component",
        ],
        "regex": "(pooler);true",
        "action": "keep",
    } in rules
    [discovery] = prometheus_config.discoveries(monitors()[1], TARGETS)
    assert discovery.namespaces is None
    assert discovery.label_selector == (
        "app.kubernetes.io/managed-by=replicadb-operator,replicadb.io/component=pooler"
    )


def test_every_job_reads_its_own_target_file_not_kubernetes_sd() -> None:
    """Debian's Prometheus refuses kubernetes_sd_configs; each job has a file the harness
    discovery writes, the same one its Discovery names."""
    discoveries = {
        d.job_name: d for m in monitors() for d in prometheus_config.discoveries(m, TARGETS)
    }
    for job in jobs().values():
        assert "kubernetes_sd_configs" not in job
        [sd] = job["file_sd_configs"]
        assert sd["files"] == [str(discoveries[job["job_name"]].file)]
    assert len({d.file for d in discoveries.values()}) == len(discoveries) == 3


def test_untranslated_fields_are_refused_not_ignored() -> None:
    monitor = {
        "metadata": {"name": "m", "namespace": "n"},
        "spec": {"selector": {"matchLabels": {}}, "endpoints": [{"port": "x", "tlsConfig": {}}]},
    }
    with pytest.raises(ValueError, match="tlsConfig"):
        prometheus_config.scrape_jobs(monitor, TARGETS)
    with pytest.raises(ValueError, match="tlsConfig"):
        prometheus_config.discoveries(monitor, TARGETS)


DB = parse_spec("shop", "prod", {"replicas": 1}, uid="uid-1")


def pooler_pod(name: str, ip: str, ready: bool) -> dict[str, Any]:
    """A pod of the ``ro`` pooler Deployment, as the API server returns it."""
    template = pooler.pooler_deployment(DB, "ro")["spec"]["template"]
    return {
        "metadata": {**template["metadata"], "name": name, "namespace": "prod", "uid": name},
        "spec": {**template["spec"], "nodeName": "node-1"},
        "status": {
            "phase": "Running",
            "podIP": ip,
            "hostIP": "192.0.2.1",
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        },
    }


def pooler_endpoints(pods: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The ``ro`` pooler Service and the Endpoints Kubernetes makes of it for ``pods``."""
    service = services.pooler_service(DB, "ro")
    service["metadata"]["namespace"] = "prod"

    def address(pod: dict[str, Any]) -> dict[str, Any]:
        name = pod["metadata"]["name"]
        return {
            "ip": pod["status"]["podIP"],
            "nodeName": "node-1",
            "targetRef": {"kind": "Pod", "name": name, "namespace": "prod"},
        }

    def ready(pod: dict[str, Any]) -> bool:
        return bool(pod["status"]["conditions"][0]["status"] == "True")

    endpoints = {
        "metadata": {"name": service["metadata"]["name"], "namespace": "prod"},
        "subsets": [
            {
                "addresses": [address(p) for p in pods if ready(p)],
                "notReadyAddresses": [address(p) for p in pods if not ready(p)],
                "ports": [
                    {"name": p["name"], "port": p["targetPort"], "protocol": "TCP"}
                    for p in service["spec"]["ports"]
                ],
            }
        ],
    }
    return service, endpoints


def test_endpoint_targets_carry_the_labels_kubernetes_sd_attaches() -> None:
    pods = [pooler_pod("a", "10.0.0.1", True), pooler_pod("b", "10.0.0.2", False)]
    service, endpoints = pooler_endpoints(pods)
    groups = prometheus_targets.endpoint_targets(
        endpoints, service, {p["metadata"]["name"]: p for p in pods}
    )
    by_target = {(g["targets"][0]): g["labels"] for g in groups}
    assert sorted(by_target) == ["10.0.0.1:6432", "10.0.0.1:9127", "10.0.0.2:6432", "10.0.0.2:9127"]
    labels = by_target["10.0.0.2:9127"]
    meta = "__meta_kubernetes_"
    assert labels[f"{meta}namespace"] == "prod"
    assert labels[f"{meta}service_name"] == labels[f"{meta}endpoints_name"] == "shop-pooler-ro"
    assert labels[f"{meta}service_label_replicadb_io_component"] == "pooler"
    assert labels[f"{meta}service_labelpresent_replicadb_io_component"] == "true"
    assert labels[f"{meta}endpoint_port_name"] == "metrics"
    assert labels[f"{meta}endpoint_ready"] == "false"
    assert labels[f"{meta}endpoint_address_target_kind"] == "Pod"
    assert labels[f"{meta}pod_name"] == "b"
    assert labels[f"{meta}pod_ready"] == "false"
    assert labels[f"{meta}pod_label_replicadb_io_pool"] == "ro"
    assert labels[f"{meta}pod_container_name"] == "metrics"  # the exporter declares 9127
    assert labels[f"{meta}pod_container_port_number"] == "9127"
    assert by_target["10.0.0.1:6432"][f"{meta}pod_container_name"] == "pgbouncer"
    assert by_target["10.0.0.1:9127"][f"{meta}endpoint_ready"] == "true"
    # An address whose pod is gone keeps its endpoint labels and gets no pod labels.
    orphans = prometheus_targets.endpoint_targets(endpoints, service, {})
    assert all(f"{meta}pod_name" not in g["labels"] for g in orphans)


def promtool_targets(
    tmp_path: Path, monitor: str, groups: list[dict[str, Any]]
) -> list[dict[str, str]]:
    """The labels Prometheus gives the targets of ``monitor``'s job when its target file
    holds ``groups`` (promtool runs the file discovery and the job's relabelling)."""
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is not installed (make system-deps installs Debian's prometheus)")
    config = prometheus_config.prometheus_config(monitors(), [], tmp_path)
    [job] = [j for j in config["scrape_configs"] if j["job_name"].split("/")[2] == monitor]
    prometheus_targets.write_targets(Path(job["file_sd_configs"][0]["files"][0]), groups)
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    # promtool waits out the whole timeout; file discovery answers at once.
    command = [promtool, "check", "service-discovery", "--timeout=1s"]
    out = subprocess.run(
        [*command, str(tmp_path / "prometheus.yml"), job["job_name"]],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    kept = [t["labels"] for t in json.loads(out) if t["labels"]]
    return [{k: v for k, v in t.items() if not k.startswith("__")} for t in kept]


def test_prometheus_keeps_the_pooler_metrics_ports_labelled_by_database_and_pool(
    tmp_path: Path,
) -> None:
    pods = [pooler_pod("a", "10.0.0.1", True), pooler_pod("b", "10.0.0.2", False)]
    service, endpoints = pooler_endpoints(pods)
    groups = prometheus_targets.endpoint_targets(
        endpoints, service, {p["metadata"]["name"]: p for p in pods}
    )
    targets = promtool_targets(tmp_path, "replicadb-pooler", groups)
    common = {
        "namespace": "prod",
        "service": "shop-pooler-ro",
        "job": "shop-pooler-ro",
        "container": "metrics",
        "endpoint": "metrics",
        "database": "shop",
        "pool": "ro",
    }
    assert sorted(targets, key=lambda t: t["pod"]) == [
        {**common, "pod": "a", "instance": "10.0.0.1:9127"},
        {**common, "pod": "b", "instance": "10.0.0.2:9127"},
    ]


def test_prometheus_drops_services_the_selector_does_not_match(tmp_path: Path) -> None:
    """The keep rules still select: a Service without replicadb.io/metrics=router in the
    router job's file is not scraped, one with it is, named by the Service."""
    pods = [pooler_pod("a", "10.0.0.1", True)]
    service, endpoints = pooler_endpoints(pods)
    pod_map = {"a": pods[0]}
    unlabelled = prometheus_targets.endpoint_targets(endpoints, service, pod_map)
    assert promtool_targets(tmp_path, "replicadb-router", unlabelled) == []
    service["metadata"]["labels"]["replicadb.io/metrics"] = "router"
    labelled = prometheus_targets.endpoint_targets(endpoints, service, pod_map)
    [target] = promtool_targets(tmp_path, "replicadb-router", labelled)
    assert target["job"] == "shop-pooler-ro"
    assert target["endpoint"] == "metrics"
