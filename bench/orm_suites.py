"""``make orm-suites``: the ORMs' own test suites as the judge of the integrations.

Each suite runs twice on one local topology (a primary and two streaming replicas): once
against the primary directly (baseline), once through router_lib's integration. Every test
that passes in the baseline must pass through replicadb; the report lists those that do not.
Sources come from the PyPI sdists (which ship the suites), downloaded once into
``/var/cache/replicadb/orm-suites/`` keyed by version. Writes ``.bench/orm_suites.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict
from replicadb_operator.local.os_user import server_user
from replicadb_operator.local.topology import LocalTopology
from sqlalchemy import URL

from bench import sqlalchemy_suite_plugin
from bench.report import BENCH_DIR, progress
from tests.integration.conftest import replicated

ROOT = Path(__file__).resolve().parents[1]
CACHE = Path(os.environ.get("REPLICADB_ORM_SUITES_CACHE", "/var/cache/replicadb/orm-suites"))
DJANGO_VERSION = "5.2.19"
DJANGO_MODULES = (
    "basic",
    "queries",
    "transactions",
    "transaction_hooks",
    "select_for_update",
    "update",
    "delete",
    "aggregation",
    "expressions",
    "model_fields",
    "backends.postgresql",
)
ROUTED_ENGINE = "router_lib.contrib.django_backend"
SQLALCHEMY_VERSION = "2.0.58"  # the root pyproject's dev pin
SQLALCHEMY_TARGETS = ("test/orm", "test/sql")
SQLALCHEMY_DATABASE = "test"  # the suite's own name; it must start empty


@dataclass
class SuiteRun:
    outcomes: dict[str, str]
    statements: dict[str, int]
    seconds: float

    def count(self, outcome: str) -> int:
        return sum(1 for value in self.outcomes.values() if value == outcome)


@dataclass
class SuiteReport:
    baseline: SuiteRun
    routed: SuiteRun
    modules: tuple[str, ...]
    exceptions: dict[str, str] = field(default_factory=dict)

    def figures(self) -> dict[str, Any]:
        return {
            "baseline_passed": self.baseline.count("passed"),
            "baseline_failed": self.baseline.count("failed") + self.baseline.count("error"),
            "passed": self.routed.count("passed"),
            "failed": self.routed.count("failed"),
            "errors": self.routed.count("error"),
            "skipped": self.routed.count("skipped"),
            "modules": list(self.modules),
            "seconds": round(self.routed.seconds, 1),
            "baseline_seconds": round(self.baseline.seconds, 1),
            "passed_in_baseline_only": sorted(self.exceptions),
            "failed_in_baseline": sorted(
                test
                for test, outcome in self.baseline.outcomes.items()
                if outcome in ("failed", "error")
            ),
            "statements_through_replicadb": self.routed.statements,
        }


def sdist_source(name: str, version: str) -> Path:
    """The unpacked sdist, downloaded with pip on first use."""
    folder = CACHE / f"{name.lower()}-{version}"
    unpacked = folder / f"{name.lower()}-{version}"
    if unpacked.is_dir():
        return unpacked
    folder.mkdir(parents=True, exist_ok=True)
    archive = folder / f"{name.lower()}-{version}.tar.gz"
    if not archive.exists():
        progress(f"downloading the {name} {version} sdist into {folder}")
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "-q", "--no-binary", ":all:",
             "--no-deps", f"{name}=={version}", "-d", str(folder)],
            check=True,
        )  # fmt: skip
    with tarfile.open(archive) as tar:
        tar.extractall(folder, filter="data")
    return unpacked


def django_databases(topology: LocalTopology, routed: bool) -> dict[str, Any]:
    """``default`` and ``other`` (the suite's second database), on the primary directly or
    through the backend with the replicas."""
    values = conninfo_to_dict(topology.dsn(topology.primary))
    databases: dict[str, Any] = {}
    for alias in ("default", "other"):
        entry: dict[str, Any] = {
            "NAME": f"django_{alias}",
            "USER": values["user"],
            "PASSWORD": values["password"],
        }
        if routed:
            entry["ENGINE"] = ROUTED_ENGINE
            entry["REPLICADB"] = {
                "primary_dsn": topology.dsn(topology.primary),
                "replica_dsns": [topology.dsn(name) for name in topology.replicas],
                "consistency": "read_your_writes",
            }
        else:
            entry["ENGINE"] = "django.db.backends.postgresql"
            entry["HOST"] = values["host"]
            entry["PORT"] = values.get("port", "5432")
        databases[alias] = entry
    return databases


def django_settings(topology: LocalTopology, routed: bool) -> str:
    # The suite's own settings (tests/test_sqlite.py), on PostgreSQL, with a runner that
    # records each test's outcome.
    return "\n".join(
        [
            f"DATABASES = {django_databases(topology, routed)!r}",
            'SECRET_KEY = "django_tests_secret_key"',
            'PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]',
            'DEFAULT_AUTO_FIELD = "django.db.models.AutoField"',
            "USE_TZ = False",
            'TEST_RUNNER = "bench.django_suite_runner.RecordingRunner"',
            "",
        ]
    )


def run_django(topology: LocalTopology, routed: bool, modules: tuple[str, ...]) -> SuiteRun:
    tests = sdist_source("Django", DJANGO_VERSION) / "tests"
    kind = "through replicadb" if routed else "baseline"
    progress(f"django {DJANGO_VERSION}: {len(modules)} modules, {kind}")
    with tempfile.TemporaryDirectory(prefix="orm-suite-") as scratch:
        settings = Path(scratch) / "suite_settings.py"
        settings.write_text(django_settings(topology, routed))
        results = Path(scratch) / "results.json"
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([scratch, str(ROOT), str(ROOT / "operator")])
        env["ORM_SUITE_RESULTS"] = str(results)
        started = time.monotonic()
        subprocess.run(
            [sys.executable, "runtests.py", "--settings=suite_settings", "--parallel=1",
             "--noinput", "-v", "1", *modules],
            cwd=tests, env=env, check=False,
        )  # fmt: skip
        seconds = time.monotonic() - started
        record = json.loads(results.read_text())
    return SuiteRun(record["outcomes"], record["statements"], seconds)


def sqlalchemy_database(topology: LocalTopology) -> str:
    """A fresh, empty ``test`` database with the suite's schemas (README.unittests.rst);
    returns its ``--dburi``."""
    admin = topology.dsn(topology.primary)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {SQLALCHEMY_DATABASE} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {SQLALCHEMY_DATABASE} ENCODING 'utf8' TEMPLATE template0")
    values = conninfo_to_dict(admin)
    with psycopg.connect(admin, dbname=SQLALCHEMY_DATABASE, autocommit=True) as conn:
        for schema in ("test_schema", "test_schema_2"):
            conn.execute(f"CREATE SCHEMA {schema}")
    url = URL.create(
        "postgresql+psycopg",
        username=str(values["user"]),
        password=str(values["password"]),
        host=str(values["host"]),
        port=int(values.get("port") or 5432),
        database=SQLALCHEMY_DATABASE,
    )
    return url.render_as_string(hide_password=False)


def run_sqlalchemy(topology: LocalTopology, routed: bool, targets: tuple[str, ...]) -> SuiteRun:
    source = sdist_source("SQLAlchemy", SQLALCHEMY_VERSION)
    kind = "through replicadb" if routed else "baseline"
    progress(f"sqlalchemy {SQLALCHEMY_VERSION}: {' '.join(targets)}, {kind}")
    dburi = sqlalchemy_database(topology)
    with tempfile.TemporaryDirectory(prefix="orm-suite-") as scratch:
        results = Path(scratch) / "results.json"
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "operator")])
        env[sqlalchemy_suite_plugin.RESULTS_ENV] = str(results)
        env.pop(sqlalchemy_suite_plugin.ROUTED_ENV, None)
        if routed:
            replicated(topology)  # the replicas have the empty database and its schemas
            env[sqlalchemy_suite_plugin.ROUTED_ENV] = json.dumps(
                {
                    "primary_dsn": topology.dsn(topology.primary),
                    "replica_dsns": [topology.dsn(name) for name in topology.replicas],
                }
            )
        log = BENCH_DIR / f"sqlalchemy_suite_{'routed' if routed else 'baseline'}.log"
        BENCH_DIR.mkdir(exist_ok=True)
        started = time.monotonic()
        with log.open("w") as output:
            # The suite's addopts (-v, --maxfail=250) replaced: one line per failure, and
            # a run that goes to the end.
            subprocess.run(
                [sys.executable, "-m", "pytest", *targets, "--dburi", dburi,
                 "-p", "bench.sqlalchemy_suite_plugin", "-p", "no:asyncio",
                 "-p", "no:cacheprovider", "-o", "addopts=--strict-markers",
                 "-q", "--tb=line", "-rN", "--timeout=300"],
                cwd=source, env=env, stdout=output, stderr=subprocess.STDOUT, check=False,
            )  # fmt: skip
        seconds = time.monotonic() - started
        record = json.loads(results.read_text())
    return SuiteRun(record["outcomes"], record["statements"], seconds)


def compare(baseline: SuiteRun, routed: SuiteRun) -> dict[str, str]:
    """Tests that passed in the baseline and not through replicadb: id -> routed outcome."""
    return {
        test: routed.outcomes.get(test, "not run")
        for test, outcome in baseline.outcomes.items()
        if outcome == "passed" and routed.outcomes.get(test) != "passed"
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--suites", nargs="*", default=["django", "sqlalchemy"])
    parser.add_argument("--django-modules", nargs="*", default=list(DJANGO_MODULES))
    parser.add_argument("--sqlalchemy-targets", nargs="*", default=list(SQLALCHEMY_TARGETS))
    parser.add_argument("--report", default="orm_suites", help="writes .bench/REPORT.json")
    parser.add_argument(
        "--check", action="store_true", help="exit 1 if a test passed only in the baseline"
    )
    args = parser.parse_args()
    modules = tuple(args.django_modules)
    topology = LocalTopology(replicas=2, run_as=server_user())
    report: dict[str, Any] = {}
    try:
        topology.start()
        replicated(topology)
        if "django" in args.suites:
            baseline = run_django(topology, False, modules)
            routed = run_django(topology, True, modules)
            django = SuiteReport(baseline, routed, modules, compare(baseline, routed))
            report["django"] = django.figures()
        if "sqlalchemy" in args.suites:
            targets = tuple(args.sqlalchemy_targets)
            baseline = run_sqlalchemy(topology, False, targets)
            routed = run_sqlalchemy(topology, True, targets)
            sqlalchemy = SuiteReport(baseline, routed, targets, compare(baseline, routed))
            report["sqlalchemy"] = sqlalchemy.figures()
    finally:
        topology.destroy()
    BENCH_DIR.mkdir(exist_ok=True)
    path = BENCH_DIR / f"{args.report}.json"
    previous = json.loads(path.read_text()) if path.exists() else {}
    path.write_text(json.dumps(previous | report, indent=2) + "\n")
    for name, figures in report.items():
        shown = {k: v for k, v in figures.items() if k != "statements_through_replicadb"}
        print(name, json.dumps(shown, indent=1))
    print(f"written to {path}")
    if args.check and any(figures["passed_in_baseline_only"] for figures in report.values()):
        sys.exit(1)


if __name__ == "__main__":
    main()
