"""router_lib is a distribution of its own (``replicadb-router``): it must work where neither
the operator nor the extras are installed, and name the extra a feature needs."""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]
ROUTER_LIB = ROOT / "router_lib"


def test_router_lib_runs_without_the_operator_and_without_extras() -> None:
    # A fresh interpreter that sees the repository root only (not operator/), with imports of
    # the operator and of every extra refused whatever the virtualenv holds.
    script = Path(__file__).with_name("client_without_extras.py")
    done = subprocess.run(
        [sys.executable, "-s", str(script)],
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "router: built from static DSNs" in done.stdout
    for extra in ("kube", "redis", "metrics"):
        assert f"{extra}: " in done.stdout


def test_no_module_of_router_lib_imports_the_operator() -> None:
    for path in sorted(ROUTER_LIB.rglob("*.py")):
        if "build" in path.relative_to(ROUTER_LIB).parts:
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                assert name.split(".")[0] not in ("replicadb_operator", "kopf"), (path, name)


def test_the_client_distribution_requires_only_the_driver_pool_and_parser() -> None:
    project = tomllib.loads((ROUTER_LIB / "pyproject.toml").read_text())["project"]
    assert project["name"] == "replicadb-router"
    required = {Requirement(text).name for text in project["dependencies"]}
    assert required == {"psycopg", "psycopg-pool", "pglast"}
    extras = {
        extra: {Requirement(text).name for text in requirements}
        for extra, requirements in project["optional-dependencies"].items()
    }
    assert extras == {
        "kube": {"kubernetes"},
        "redis": {"redis"},
        "metrics": {"prometheus-client"},
        "django": {"Django"},
        "sqlalchemy": {"SQLAlchemy"},
    }


def test_the_client_distribution_ships_every_subpackage() -> None:
    """setuptools is given the package list: a new subpackage (router_lib.contrib...) left
    out of it would be missing from the wheel, though the checkout's tests pass."""
    tool = tomllib.loads((ROUTER_LIB / "pyproject.toml").read_text())["tool"]["setuptools"]
    folders = {
        ".".join(("router_lib", *init.parent.relative_to(ROUTER_LIB).parts))
        for init in ROUTER_LIB.rglob("__init__.py")
        if "build" not in init.relative_to(ROUTER_LIB).parts
    }
    assert set(tool["packages"]) == folders


def test_the_operator_distribution_gets_router_lib_from_the_client_distribution() -> None:
    root = tomllib.loads((ROOT / "pyproject.toml").read_text())
    required = {Requirement(text).name for text in root["project"]["dependencies"]}
    assert "replicadb-router" in required
    assert root["tool"]["setuptools"]["packages"]["find"]["include"] == ["replicadb_operator*"]
