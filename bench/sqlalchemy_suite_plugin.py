"""pytest plugin of the SQLAlchemy suite runs (bench/orm_suites.py), loaded with ``-p``.

Always: records every test's outcome in a JSON file (so that baseline and routed runs can
be compared test by test) and, in a routed run, where the statements went.

Routed (``ORM_SUITE_REPLICADB`` names the primary and replica DSNs): every Session the
suite builds on its database (``fixture_session()``, ``Session(testing.db)``,
``sessionmaker(testing.db)``) is a :class:`RoutingSession` on replicadb, whose primary
engine is the suite's own ``testing.db``. Sessions bound to a Connection or to another
engine stay plain, as they would in an application. Replica engines report their
statements to the listeners the suite puts on ``testing.db`` (its SQL-count and
SQL-shape assertions), the way SQLAlchemy's own ``Engine.execution_options()`` copies do,
and share its statement cache (tests clear it).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

RESULTS_ENV = "ORM_SUITE_RESULTS"
ROUTED_ENV = "ORM_SUITE_REPLICADB"

_outcomes: dict[str, str] = {}
_routed: dict[str, Any] = {}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    test = report.nodeid
    if hasattr(report, "wasxfail"):
        # An expected failure counts as a pass (as unittest does); a strict xpass fails.
        _outcomes[test] = "failed" if report.failed else "passed"
    elif report.when == "call":
        _outcomes[test] = report.outcome
    elif report.failed:
        _outcomes[test] = "error"  # set-up or tear-down
    elif report.skipped:
        _outcomes[test] = "skipped"


@pytest.hookimpl(trylast=True)
def pytest_configure(config: pytest.Config) -> None:
    # test/conftest.py has put the sdist's lib/ first by now: SQLAlchemy is imported from
    # there, as the suite itself imports it.
    if os.environ.get(ROUTED_ENV):
        _install_routing_sessions()


def _install_routing_sessions() -> None:
    from sqlalchemy import orm
    from sqlalchemy.testing import config as testing_config

    from router_lib.contrib.sqlalchemy_routing import RoutingSession

    class SuiteSession(RoutingSession):
        def __init__(self, bind: Any = None, **kwargs: Any) -> None:
            if bind is not None and bind is testing_config.db and "replicadb" not in kwargs:
                kwargs["replicadb"] = _database(bind)
            super().__init__(bind, **kwargs)

    SuiteSession.__name__ = SuiteSession.__qualname__ = "Session"
    orm.Session = SuiteSession  # type: ignore[misc]
    # sessionmaker's class_ default was bound when sqlalchemy.orm was imported.
    defaults = orm.sessionmaker.__init__.__kwdefaults__
    assert defaults is not None
    defaults["class_"] = SuiteSession


def _database(testing_db: Any) -> Any:
    """The RoutedDatabase of the suite's engine (built on first use; the suite keeps one
    testing.db per run)."""
    database = _routed.get("database")
    if database is not None and database.primary_sync() is testing_db:
        return database
    from sqlalchemy import create_engine

    from router_lib.config import RouterConfig
    from router_lib.consistency import READ_YOUR_WRITES
    from router_lib.contrib.routing_service import RoutingService
    from router_lib.contrib.sqlalchemy_routing import RoutedDatabase

    def replica_engine(url: Any, **options: Any) -> Any:
        engine = create_engine(url, **options)
        engine.dispatch = engine.dispatch._join(testing_db.dispatch)
        engine._has_events = True  # listeners added to testing.db later count too
        # Tests that clear testing.db's statement cache to start clean (e.g. ORMExecuteTest,
        # whose options are classes defined per test) clear the replicas' too. Entries are
        # keyed by dialect instance: the engines do not share compiled statements.
        engine._compiled_cache = testing_db._compiled_cache
        return engine

    endpoints = json.loads(os.environ[ROUTED_ENV])
    config = RouterConfig(
        primary_dsn=endpoints["primary_dsn"],
        replica_dsns=tuple(endpoints["replica_dsns"]),
        consistency=READ_YOUR_WRITES,
        lag_probe_interval_s=0.5,
    )
    service = _routed.get("service") or RoutingService(config)
    _routed["service"] = service
    database = RoutedDatabase(testing_db.url, service=service, make_engine=replica_engine)
    database.engines.adopt(service.core.primary(), testing_db)
    _routed["database"] = database
    return database


def pytest_sessionfinish(session: pytest.Session) -> None:
    path = os.environ.get(RESULTS_ENV)
    if not path:
        return
    tally: dict[str, int] = {}
    service = _routed.get("service")
    if service is not None:
        for (target, reason), count in service.tally.items():
            tally[f"{target}:{reason}"] = count
        service.close()
    Path(path).write_text(json.dumps({"outcomes": _outcomes, "statements": tally}, indent=1))
