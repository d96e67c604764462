"""A session's database-session state holds for all its statements and reaches nobody else.

Every check runs against real PostgreSQL (a primary and two streaming replicas). Pools hold
one connection per endpoint where the test is about leaks, so an unrelated caller is sure to
borrow the very connection the session used; its backend pid is compared to prove it.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from prometheus_client import CollectorRegistry
from replicadb_operator.local.topology import LocalTopology

import router_lib
from router_lib import (
    EVENTUAL,
    STRONG,
    AsyncRouter,
    Router,
    SessionStateLost,
    SessionStateNotAllowed,
)
from tests.integration.conftest import replicated, server_of, static_config
from tests.integration.sql import eventually, execute, scalar

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(180)]

TENANTS = ("tenant_a", "tenant_b", "tenant_c", "tenant_d")
WHO = (
    "SELECT pg_backend_pid(), current_user, current_setting('search_path'),"
    " current_setting('statement_timeout'), current_setting('app.user', true),"
    " current_setting('TimeZone')"
)


@pytest.fixture(scope="module")
def topology(shared_topology: LocalTopology) -> LocalTopology:
    dsn = shared_topology.dsn(shared_topology.primary)
    for tenant in TENANTS:
        execute(dsn, f"CREATE ROLE {tenant}")
        execute(dsn, f"CREATE SCHEMA {tenant} AUTHORIZATION {tenant}")
        execute(dsn, f"CREATE TABLE {tenant}.items (owner text)")
        execute(dsn, f"INSERT INTO {tenant}.items VALUES ('{tenant}')")
        execute(dsn, f"GRANT ALL ON {tenant}.items TO {tenant}")
    replicated(shared_topology)
    return shared_topology


def _router(topology: LocalTopology, pool_max: int = 1, **overrides: Any) -> Router:
    """One replica and one connection per endpoint (by default): a caller's next read or
    write borrows exactly the connection the previous one used."""
    config = static_config(
        topology,
        replica_dsns=(topology.dsn(topology.replicas[0]),),
        primary_pool_min=1,
        primary_pool_max=pool_max,
        replica_pool_min=1,
        replica_pool_max=1,
        **overrides,
    )
    return Router(config, registry=CollectorRegistry())


@pytest.fixture
def router(topology: LocalTopology) -> Iterator[Router]:
    with _router(topology) as router:
        yield router


def _pinned(session: router_lib.Session | router_lib.AsyncSession) -> bool:
    """(A function, so that the type checker does not narrow the property.)"""
    return session.pinned


def _who(target: Router | router_lib.Session, consistency: Any) -> tuple[Any, ...]:
    row = target.query_one(WHO, consistency=consistency)
    assert row is not None
    return tuple(row)


SETTINGS = [
    ("SET ROLE tenant_a", 1, "tenant_a"),
    ("SET search_path = tenant_a, public", 2, "tenant_a, public"),
    ("SET statement_timeout = '1234ms'", 3, "1234ms"),
    ("SELECT set_config('app.user', '7', false)", 4, "7"),
    ("SET TIME ZONE 'Pacific/Auckland'", 5, "Pacific/Auckland"),
]


@pytest.mark.parametrize(("statement", "column", "value"), SETTINGS)
def test_setting_holds_for_the_session_and_never_reaches_another_caller(
    topology: LocalTopology, router: Router, statement: str, column: int, value: str
) -> None:
    login = _who(router, STRONG)
    with router.session() as session:
        session.execute(statement)
        for level in (STRONG, EVENTUAL):
            for _ in range(3):
                seen = _who(session, level)
                assert seen[column] == value, (statement, level, seen)
                other = _who(router, level)  # same pooled connection: one per endpoint
                assert other[0] == seen[0], "the unrelated caller must borrow the same backend"
                # A custom parameter, once defined in a backend, reads '' after a reset
                # where a new backend reads NULL: the value itself is gone.
                assert other[column] in (login[column], ""), (statement, level, other)
        # Its reads still go to replicas.
        where = session.query_one("SELECT inet_server_addr()::text", consistency=EVENTUAL)
        assert where is not None
        assert server_of(topology, where[0]) in topology.replicas


def test_set_session_authorization_and_reset_role(router: Router) -> None:
    login = _who(router, STRONG)[1]
    with router.session() as session:
        session.execute("SET SESSION AUTHORIZATION tenant_b")
        assert session.query("SELECT session_user, current_user") == [("tenant_b", "tenant_b")]
        session.execute("SET ROLE tenant_b")
        session.execute("RESET ROLE")
        assert _who(session, EVENTUAL)[1] == "tenant_b"
        session.execute("RESET SESSION AUTHORIZATION")
        assert _who(session, EVENTUAL)[1] == login
        session.execute("SET ROLE tenant_c")
        assert _who(router, EVENTUAL)[1] == login
        assert _who(router, STRONG)[1] == login
    # Ended: nothing is replayed any more, and the connections went back clean.
    assert _who(router, STRONG)[1] == login


def test_settings_change_what_a_session_reads(router: Router) -> None:
    with router.session() as a, router.session() as b:  # read-your-writes
        a.execute("SET ROLE tenant_a")
        a.execute("SET search_path = tenant_a")
        b.execute("SET ROLE tenant_b")
        b.execute("SET search_path = tenant_b")
        for _ in range(3):
            assert a.query("SELECT owner FROM items") == [("tenant_a",)]
            assert b.query("SELECT owner FROM items") == [("tenant_b",)]
            a.execute("INSERT INTO items VALUES ('written by a')")
            assert ("written by a",) in a.query("SELECT owner FROM items")
            assert a.execute("DELETE FROM items WHERE owner = 'written by a'") == 1
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                b.query("SELECT * FROM tenant_a.items")


@pytest.mark.parametrize(
    "statement",
    [
        "SET ROLE tenant_a",
        "SET search_path = tenant_a",
        "RESET ALL",
        "SELECT set_config('app.user', '7', false)",
        "CREATE TEMP TABLE scratch (a int)",
        "PREPARE p AS SELECT 1",
        "LISTEN jobs",
        "SELECT pg_advisory_lock(42)",
        "DECLARE c CURSOR WITH HOLD FOR SELECT 1",
        "SET a.b = 1; SELECT 1",
    ],
)
def test_outside_a_session_state_is_refused_before_anything_is_sent(
    topology: LocalTopology, router: Router, statement: str
) -> None:
    with pytest.raises(SessionStateNotAllowed, match="session"):
        router.execute(statement)
    with pytest.raises(SessionStateNotAllowed), router.transaction() as tx:
        tx.execute(statement)
    # Transaction-scoped forms are fine anywhere.
    router.execute("SET LOCAL statement_timeout = 5")
    router.query("SELECT set_config('app.user', '7', true)")
    with router.transaction() as tx:
        tx.execute("SELECT pg_advisory_xact_lock(42)")
        tx.execute("CREATE TEMP TABLE gone (a int) ON COMMIT DROP")
    assert _who(router, STRONG)[4] in (None, "")
    dsn = topology.dsn(topology.primary)
    assert scalar(dsn, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'") == 0


def test_module_functions_refuse_session_state(
    topology: LocalTopology, monkeypatch: pytest.MonkeyPatch
) -> None:
    router_lib.configure(static_config(topology))
    try:
        with pytest.raises(SessionStateNotAllowed):
            router_lib.execute("SET ROLE tenant_a")
        with router_lib.session() as session:
            session.execute("SET ROLE tenant_a")
            assert session.query_one("SELECT current_user") == ("tenant_a",)
        assert router_lib.query_one("SELECT current_user", consistency=STRONG) != ("tenant_a",)
    finally:
        router_lib.close()


# -- state that pins the session to one primary connection ----------------------------------
PINNING = [
    (
        "temp_table",
        ["CREATE TEMP TABLE scratch (a int)", "INSERT INTO scratch VALUES (1), (2)"],
        "SELECT count(*) FROM scratch",
        2,
        "DROP TABLE scratch",
    ),
    ("prepared_statement", ["PREPARE p AS SELECT 42"], "EXECUTE p", 42, "DEALLOCATE p"),
    (
        "listen",
        ["LISTEN jobs"],
        "SELECT count(*) FROM pg_listening_channels()",
        1,
        "UNLISTEN jobs",
    ),
    (
        "held_cursor",
        ["DECLARE c CURSOR WITH HOLD FOR SELECT 7 FROM generate_series(1, 100)"],
        "FETCH 1 FROM c",
        7,
        "CLOSE c",
    ),
    (
        "advisory_lock",
        ["SELECT pg_advisory_lock(4242)"],
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()",
        1,
        "SELECT pg_advisory_unlock(4242)",
    ),
]

LEFT_ON_BACKEND = (
    "SELECT pg_backend_pid(), to_regclass('scratch') IS NOT NULL,"
    " (SELECT count(*) FROM pg_prepared_statements WHERE from_sql),"
    " (SELECT count(*) FROM pg_listening_channels()),"
    " (SELECT count(*) FROM pg_cursors WHERE is_holdable),"
    " (SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()),"
    " current_user"
)
CLEAN = (False, 0, 0, 0, 0)


def _pinned_backend_until_seen(router: Router, pid: int) -> tuple[Any, ...]:
    """Borrow the primary's pooled connections until the given backend comes round."""
    found: list[tuple[Any, ...]] = []

    def seen() -> bool:
        row = router.query_one(LEFT_ON_BACKEND, consistency=STRONG)
        assert row is not None
        if row[0] == pid:
            found.append(tuple(row))
        return bool(found)

    eventually(seen, 10, f"backend {pid} back in the pool")
    return found[0]


@pytest.mark.parametrize(("reason", "create", "use", "expected", "drop"), PINNING)
def test_state_that_cannot_move_pins_the_session_then_goes_back_clean(
    topology: LocalTopology, reason: str, create: list[str], use: str, expected: int, drop: str
) -> None:
    registry = CollectorRegistry()
    config = static_config(topology, primary_pool_min=2, primary_pool_max=2)
    with Router(config, registry=registry) as router:
        login = _who(router, STRONG)[1]
        with router.session(EVENTUAL) as session:
            session.execute("SET ROLE tenant_a")
            for statement in create:
                session.execute(statement)
            assert _pinned(session)
            pid = session.query_one("SELECT pg_backend_pid()")
            assert pid is not None
            for _ in range(5):  # reads too: all on the pinned connection
                assert session.query_one(use) == (expected,)
                assert session.query_one("SELECT pg_backend_pid()") == pid
                assert session.query_one("SELECT current_user") == ("tenant_a",)
                other = router.query_one(LEFT_ON_BACKEND, consistency=STRONG)
                assert other is not None
                assert other[0] != pid[0]
                assert other[1:6] == CLEAN
            session.execute(drop)
            assert not _pinned(session), f"{drop} left nothing that cannot move"
            assert session.query_one("SELECT current_user") == ("tenant_a",)
            for statement in create:
                session.execute(statement)
            assert _pinned(session)
        back = _pinned_backend_until_seen(router, pid[0])
        assert back[1:6] == CLEAN
        assert back[6] == login
        pins = registry.get_sample_value("replicadb_router_session_pins_total", {"reason": reason})
        assert pins == 2


def test_state_made_in_a_session_transaction_pins_or_follows(router: Router) -> None:
    with router.session() as session:
        with session.transaction() as tx:
            tx.execute("SET search_path = tenant_b")
            tx.execute("SET ROLE tenant_b")
        assert not _pinned(session)
        assert session.query("SELECT owner FROM items", consistency=EVENTUAL) == [("tenant_b",)]
        with session.transaction() as tx:
            tx.execute("CREATE TEMP TABLE scratch (a int)")
        assert _pinned(session)
        session.execute("INSERT INTO scratch VALUES (1)")
        with session.transaction(read_only=True) as tx:
            assert tx.query("SELECT count(*) FROM scratch") == [(1,)]
        with session.transaction() as tx:  # raw connection use: the router looks afterwards
            tx.connection.execute("DROP TABLE scratch")
        assert not _pinned(session)
        assert _who(session, STRONG)[1] == "tenant_b"
    assert _who(router, STRONG)[1] != "tenant_b"


def test_pinned_state_lost_with_its_connection_is_reported(
    topology: LocalTopology, router: Router
) -> None:
    with router.session() as session:
        session.execute("CREATE TEMP TABLE scratch (a int)")
        pid = session.query_one("SELECT pg_backend_pid()")
        assert pid is not None
        execute(topology.dsn(topology.primary), "SELECT pg_terminate_backend(%s)", (pid[0],))
        with pytest.raises(SessionStateLost, match="temp_table"):
            session.query("SELECT count(*) FROM scratch")
        with pytest.raises(SessionStateLost):
            session.query("SELECT 1")
    # The router itself is fine.
    assert router.query_one("SELECT 1", consistency=STRONG) == (1,)


def test_many_sessions_at_once_each_see_only_their_own_role_and_path(
    topology: LocalTopology,
) -> None:
    with _router(topology, pool_max=3) as router:
        errors: list[BaseException] = []

        def worker(tenant: str) -> None:
            try:
                with router.session() as session:
                    session.execute(f"SET ROLE {tenant}")
                    session.execute(f"SET search_path = {tenant}")
                    for round_ in range(25):
                        level = (EVENTUAL, STRONG)[round_ % 2]
                        row = session.query_one(
                            "SELECT current_user, current_setting('search_path'),"
                            " (SELECT owner FROM items LIMIT 1)",
                            consistency=level,
                        )
                        assert row == (tenant, tenant, tenant), (tenant, row)
                        if round_ % 5 == 0:
                            session.execute("UPDATE items SET owner = owner")
                        login_row = router.query_one("SELECT current_user", consistency=level)
                        assert login_row is not None
                        assert login_row[0] not in TENANTS
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=worker, args=(t,)) for t in TENANTS * 2]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        assert not errors, errors[0]


async def test_async_sessions_keep_and_contain_their_state(topology: LocalTopology) -> None:
    config = static_config(topology, primary_pool_max=2, replica_pool_max=1, primary_pool_min=1)
    async with AsyncRouter(config, registry=CollectorRegistry()) as router:
        with pytest.raises(SessionStateNotAllowed):
            await router.execute("SET ROLE tenant_a")

        async def tenant_work(tenant: str) -> None:
            async with router.session() as session:
                await session.execute(f"SET ROLE {tenant}")
                await session.execute(f"SET search_path = {tenant}")
                for level in (EVENTUAL, STRONG) * 5:
                    row = await session.query_one(
                        "SELECT current_user, (SELECT owner FROM items LIMIT 1)",
                        consistency=level,
                    )
                    assert row == (tenant, tenant)

        await asyncio.gather(*(tenant_work(t) for t in TENANTS))
        async with router.session() as session:
            await session.execute("CREATE TEMP TABLE scratch (a int)")
            assert _pinned(session)
            await session.execute("INSERT INTO scratch VALUES (1)")
            assert await session.query("SELECT count(*) FROM scratch") == [(1,)]
            await session.execute("DISCARD TEMP")
            assert not _pinned(session)
        for level in (EVENTUAL, STRONG):
            row = await router.query_one(
                "SELECT current_user, to_regclass('scratch')", consistency=level
            )
            assert row is not None
            assert row[0] not in TENANTS
            assert row[1] is None


def test_load_pins_and_its_connection_is_closed_not_reused(topology: LocalTopology) -> None:
    registry = CollectorRegistry()
    config = static_config(topology, primary_pool_min=1, primary_pool_max=2)
    with Router(config, registry=registry) as router:
        with router.session() as session:
            session.execute("LOAD 'auto_explain'")
            assert _pinned(session)
            pid = session.query_one("SELECT pg_backend_pid()")
            assert pid is not None
            session.execute("DISCARD ALL")  # a loaded library stays: still pinned
            assert _pinned(session)
        # A library cannot be unloaded: the backend is closed, never handed to anyone.
        dsn = topology.dsn(topology.primary)
        eventually(
            lambda: scalar(dsn, "SELECT count(*) FROM pg_stat_activity WHERE pid = %s", pid) == 0,
            10,
            "the backend that loaded a library is gone",
        )
        for _ in range(4):
            assert router.query_one("SELECT pg_backend_pid()", consistency=STRONG) != pid
        assert registry.get_sample_value("replicadb_router_session_pins_total", {"reason": "load"})


def test_discard_all_drops_settings_and_pinned_state(router: Router) -> None:
    login = _who(router, STRONG)[1]
    with router.session() as session:
        session.execute("SET ROLE tenant_a")
        session.execute("CREATE TEMP TABLE scratch (a int)")
        session.execute("PREPARE p AS SELECT 1")
        assert _pinned(session)
        session.execute("DISCARD ALL")
        assert not _pinned(session)
        assert _who(session, STRONG)[1] == login
        assert _who(session, EVENTUAL)[1] == login
        assert session.query_one("SELECT to_regclass('scratch')") == (None,)
