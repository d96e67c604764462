"""Prints the rule groups of a PrometheusRule manifest as a plain Prometheus rules file.

promtool and a plain Prometheus read rules files, not PrometheusRule objects; this keeps the
manifest the one source: ``make test-alerts`` and the e2e Prometheus both load its output.

  prometheus_rules.py MANIFEST                          every rule as written
  prometheus_rules.py --keep-annotation summary MANIFEST  only that annotation kept

promtool's unit tests compare every annotation of a firing alert; the tests pin the
templated summary (where a wrong label shows) and leave the runbook prose to the manifest.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import yaml


def rule_groups(manifest: str, keep_annotations: list[str] | None = None) -> dict[str, Any]:
    document = yaml.safe_load(manifest)
    if document.get("kind") != "PrometheusRule":
        raise SystemExit(f"not a PrometheusRule: kind {document.get('kind')!r}")
    groups: list[dict[str, Any]] = document["spec"]["groups"]
    if keep_annotations is not None:
        for group in groups:
            for rule in group["rules"]:
                annotations = rule.get("annotations", {})
                rule["annotations"] = {
                    k: v for k, v in annotations.items() if k in keep_annotations
                }
    return {"groups": groups}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("manifest", type=Path)
    parser.add_argument("--keep-annotation", action="append", dest="keep")
    args = parser.parse_args()
    groups = rule_groups(args.manifest.read_text(), args.keep)
    print(yaml.safe_dump(groups, sort_keys=False), end="")


if __name__ == "__main__":
    main()
