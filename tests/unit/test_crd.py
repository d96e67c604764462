"""The CRD: generated from crd.py, and its schema refuses bad specs naming the field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from replicadb_operator import crd
from replicadb_operator.spec import DatabaseSpec, parse_spec

CRD_FILE = Path(__file__).parents[2] / "crds" / "replicateddatabases.replicadb.io.yaml"


def test_crds_folder_matches_the_schema_source() -> None:
    assert CRD_FILE.read_text() == crd.crd_yaml(), (
        "crds/ drifted from operator/replicadb_operator/crd.py: run `make crds`"
    )


def schema() -> dict[str, Any]:
    version = crd.crd()["spec"]["versions"][0]
    return dict(version["schema"]["openAPIV3Schema"]["properties"]["spec"])


def test_names_printer_columns_and_status_subresource() -> None:
    body = crd.crd()
    assert body["metadata"]["name"] == "replicateddatabases.replicadb.io"
    assert body["spec"]["names"]["shortNames"] == ["rdb"]
    version = body["spec"]["versions"][0]
    assert version["subresources"] == {"status": {}}
    columns = [c["name"] for c in version["additionalPrinterColumns"]]
    assert columns == ["Primary", "Ready", "Max lag", "Phase", "Age"]


def test_ranges_enums_and_patterns_are_in_the_schema() -> None:
    spec = schema()["properties"]
    assert spec["replicas"]["minimum"] == 0
    assert spec["pgbouncer"]["properties"]["poolMode"]["enum"] == [
        "session",
        "transaction",
        "statement",
    ]
    size = spec["postgres"]["properties"]["storage"]["properties"]["size"]["pattern"]
    import re

    assert re.match(size, "10Gi")
    assert not re.match(size, "ten gigs")


def test_cross_field_rule_names_the_field() -> None:
    rules = schema()["x-kubernetes-validations"]
    sync_rule = next(r for r in rules if "synchronousStandbys" in r["rule"])
    assert sync_rule["fieldPath"] == ".replication.synchronousStandbys"
    assert "must not exceed spec.replicas" in sync_rule["message"]


def test_every_property_has_a_description_for_kubectl_explain() -> None:
    def walk(node: dict[str, Any], path: str) -> list[str]:
        missing = []
        for key, child in node.get("properties", {}).items():
            if "description" not in child:
                missing.append(f"{path}.{key}")
            missing += walk(child, f"{path}.{key}")
        return missing

    assert walk(schema(), "spec") == []


def test_schema_defaults_are_the_spec_model_defaults() -> None:
    spec = schema()["properties"]
    parsed: DatabaseSpec = parse_spec("db", "ns", {})
    assert spec["replicas"]["default"] == parsed.replicas
    fo = spec["failover"]["properties"]
    assert fo["failureThreshold"]["default"] == parsed.failover.failure_threshold
    assert fo["maxLagBytes"]["default"] == parsed.failover.max_lag_bytes
    assert spec["postgres"]["properties"]["image"]["default"] == parsed.postgres.image


def test_sample_manifest_parses() -> None:
    sample = Path(__file__).parents[2] / "manifests" / "samples" / "replicateddatabase.yaml"
    body = yaml.safe_load(sample.read_text())
    db = parse_spec(body["metadata"]["name"], "default", body["spec"])
    assert (db.replicas, db.pooler.enabled) == (2, True)
