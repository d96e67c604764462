"""The e2e Prometheus scrapes with the jobs the Prometheus Operator makes of our
ServiceMonitors: the labels alerts and dashboard rely on come from the same fields."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from e2e import prometheus_config

MONITORS = Path(__file__).parents[2] / "manifests" / "monitoring" / "servicemonitor.yaml"


def jobs() -> dict[str, dict[str, object]]:
    monitors = list(yaml.safe_load_all(MONITORS.read_text()))
    config = prometheus_config.prometheus_config(monitors, ["rules.yaml"], "/kubeconfig")
    return {str(j["job_name"]).split("/")[2]: j for j in config["scrape_configs"]}


def test_operator_job_honours_its_labels_and_is_named_by_the_service_label() -> None:
    job = jobs()["replicadb-operator"]
    assert job["honor_labels"] is True
    rules = job["relabel_configs"]
    assert isinstance(rules, list)
    assert {
        "source_labels": ["__meta_kubernetes_service_label_app_kubernetes_io_name"],
        "target_label": "job",
    } in rules
    sd = job["kubernetes_sd_configs"]
    assert isinstance(sd, list)
    assert sd[0]["namespaces"] == {"names": ["replicadb-system"]}


def test_pooler_job_labels_database_and_pool_from_the_pod_in_every_namespace() -> None:
    job = jobs()["replicadb-pooler"]
    assert job["honor_labels"] is False  # PgBouncer's own database label -> exported_database
    rules = job["relabel_configs"]
    assert isinstance(rules, list)
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
    sd = job["kubernetes_sd_configs"]
    assert isinstance(sd, list)
    assert "namespaces" not in sd[0]


def test_untranslated_fields_are_refused_not_ignored() -> None:
    monitor = {
        "metadata": {"name": "m", "namespace": "n"},
        "spec": {"selector": {"matchLabels": {}}, "endpoints": [{"port": "x", "tlsConfig": {}}]},
    }
    with pytest.raises(ValueError, match="tlsConfig"):
        prometheus_config.scrape_jobs(monitor, "/kubeconfig")
