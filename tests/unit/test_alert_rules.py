"""The alert manifest's shape: what promtool's own tests (tests/alerts/) cannot see."""

from __future__ import annotations

from pathlib import Path

import yaml

from scripts.prometheus_rules import rule_groups

ROOT = Path(__file__).resolve().parents[2]
MANIFEST = ROOT / "manifests" / "monitoring" / "prometheusrule.yaml"


def alerts() -> list[dict[str, object]]:
    groups = rule_groups(MANIFEST.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def test_every_alert_has_a_severity_a_summary_a_runbook_and_a_promtool_test_file() -> None:
    names = [str(rule["alert"]) for rule in alerts()]
    assert len(names) == len(set(names))
    for rule in alerts():
        labels, annotations = rule["labels"], rule["annotations"]
        assert isinstance(labels, dict)
        assert labels["severity"] in {"info", "warning", "critical"}
        assert isinstance(annotations, dict)
        assert annotations["summary"]
        assert len(str(annotations["runbook"]).splitlines()) >= 2, rule["alert"]
    test_files = {p.name.removesuffix(".test.yaml") for p in (ROOT / "tests/alerts").iterdir()}
    assert test_files == set(names)


def test_every_promtool_test_file_checks_its_own_alert_firing_and_not_firing() -> None:
    for path in (ROOT / "tests" / "alerts").glob("*.test.yaml"):
        alert = path.name.removesuffix(".test.yaml")
        cases = [
            check
            for test in yaml.safe_load(path.read_text())["tests"]
            for check in test["alert_rule_test"]
        ]
        assert {c["alertname"] for c in cases} == {alert}
        assert any(c["exp_alerts"] for c in cases), f"{path.name}: never fires"
        assert any(not c["exp_alerts"] for c in cases), f"{path.name}: never checks silence"


def test_only_the_summary_is_kept_for_promtool() -> None:
    groups = rule_groups(MANIFEST.read_text(), ["summary"])["groups"]
    for rule in groups[0]["rules"]:
        assert set(rule["annotations"]) == {"summary"}
