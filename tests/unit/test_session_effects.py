"""What statements leave on the database session, from the parse (router_lib.session_effects)
and the sync code generated from the async source (scripts/async_to_sync.py)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from router_lib.carried_state import settings_from_rows
from router_lib.classify import Classifier
from router_lib.session_effects import SessionEffects, resolve_setting_names

CLASSIFIER = Classifier()


def effects(text: str, has_params: bool = False) -> SessionEffects | None:
    return CLASSIFIER.classify(text, has_params).effects


@pytest.mark.parametrize(
    "text",
    [
        "SET search_path = a",
        "SET ROLE tenant",
        "RESET ROLE",
        "RESET ALL",
        "SET SESSION AUTHORIZATION someone",
        "SET TIME ZONE 'UTC'",
        "SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY",
        "SELECT set_config('search_path', 'a', false)",
        "select SET_CONFIG('work_mem', '1MB', false), 1",
    ],
)
def test_settings_are_replayable(text: str) -> None:
    found = effects(text)
    assert found is not None
    assert found.settings
    assert not found.pins
    assert not CLASSIFIER.classify(text, False).read_only


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("CREATE TEMP TABLE t (a int)", "temp_table"),
        ("CREATE TEMPORARY TABLE t AS SELECT 1", "temp_table"),
        ("SELECT 1 INTO TEMP t", "temp_table"),
        ("CREATE TEMP VIEW v AS SELECT 1", "temp_table"),
        ("CREATE TABLE pg_temp.t (a int)", "temp_table"),
        ("PREPARE p AS SELECT 1", "prepared_statement"),
        ("LISTEN channel", "listen"),
        ("DECLARE c CURSOR WITH HOLD FOR SELECT 1", "held_cursor"),
        ("SELECT pg_advisory_lock(1)", "advisory_lock"),
        ("SELECT pg_try_advisory_lock_shared(1, 2)", "advisory_lock"),
        ("LOAD 'auto_explain'", "load"),
        ("SELECT set_config(name, 'x', false) FROM t", "opaque_setting"),
    ],
)
def test_state_that_cannot_move_pins(text: str, reason: str) -> None:
    found = effects(text)
    assert found is not None
    assert reason in found.pins


@pytest.mark.parametrize(
    "text",
    [
        "SELECT 1",
        "SHOW search_path",
        "SET LOCAL search_path = a",
        "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE",
        "SELECT set_config('a.b', 'x', true)",
        "SELECT pg_advisory_xact_lock(1)",
        "CREATE TEMP TABLE t (a int) ON COMMIT DROP",
        "DECLARE c CURSOR FOR SELECT 1",
        "NOTIFY channel",
        "INSERT INTO t VALUES (1)",
        "DISCARD PLANS",
    ],
)
def test_transaction_scoped_forms_leave_nothing(text: str) -> None:
    assert effects(text) is None


@pytest.mark.parametrize(
    "text",
    [
        "DROP TABLE t",
        "DEALLOCATE p",
        "DEALLOCATE ALL",
        "UNLISTEN *",
        "CLOSE ALL",
        "DISCARD TEMP",
        "SELECT pg_advisory_unlock_all()",
    ],
)
def test_releases_are_checked_afterwards(text: str) -> None:
    found = effects(text)
    assert found is not None
    assert found.may_release


def test_multi_statement_strings_combine_their_effects() -> None:
    found = effects("SET ROLE a; CREATE TEMP TABLE t (x int); SELECT 1")
    assert found is not None
    assert found.settings
    assert found.pins == frozenset({"temp_table"})


def test_custom_setting_names_come_from_literals_or_positional_parameters() -> None:
    literal = effects("SELECT set_config('app.user', '7', false)")
    assert literal is not None
    assert literal.setting_names == ("app.user",)
    by_param = effects("SELECT set_config(%s, %s, false)", has_params=True)
    assert by_param is not None
    assert resolve_setting_names(by_param.setting_names, ("app.tenant", "9")) == ("app.tenant",)
    assert resolve_setting_names(by_param.setting_names, {"a": "app.tenant"}) is None
    assert resolve_setting_names(by_param.setting_names, (5, "9")) is None
    custom_set = effects("SET app.tenant = 7")
    assert custom_set is not None
    assert custom_set.setting_names == ("app.tenant",)


def test_replayed_settings_put_authorization_then_role_last() -> None:
    rows = [
        ("search_path", "a"),
        ("session_authorization", "alice"),
        ("role", "tenant"),
        ("app.user", "7"),
        ("app.unset", None),
    ]
    assert settings_from_rows(rows, "bob") == (
        ("search_path", "a"),
        ("app.user", "7"),
        ("session_authorization", "alice"),
        ("role", "tenant"),
    )
    unchanged = [("session_authorization", "bob"), ("role", "none")]
    assert settings_from_rows(unchanged, "bob") == ()


def _generator() -> object:
    path = Path(__file__).resolve().parents[2] / "scripts" / "async_to_sync.py"
    spec = importlib.util.spec_from_file_location("async_to_sync", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generator_drops_async_and_maps_names_keeping_comments() -> None:
    convert = _generator().convert  # type: ignore[attr-defined]
    source = (
        "import asyncio\n"
        "import time\n"
        "async def go(pool: AsyncConnectionPool) -> None:  # keep me\n"
        "    async with pool.connection() as conn:\n"
        "        await (await conn.execute('SELECT 1')).fetchone()\n"
        "    await asyncio.sleep(0.1)\n"
    )
    assert convert(source, "x.py") == (
        "import time\n"
        "def go(pool: ConnectionPool) -> None:  # keep me\n"
        "    with pool.connection() as conn:\n"
        "        (conn.execute('SELECT 1')).fetchone()\n"
        "    time.sleep(0.1)\n"
    )


def test_generator_refuses_asyncio_it_cannot_translate() -> None:
    module = _generator()
    with pytest.raises(module.Unconvertible):  # type: ignore[attr-defined]
        module.convert("import asyncio\nasyncio.gather()\n", "x.py")  # type: ignore[attr-defined]


def test_replayed_settings_are_reset_by_name_anything_else_wholly() -> None:
    from router_lib import carried_state

    replayed = (("search_path", "a"), ("app.user", "7"), ("role", "tenant"))
    assert carried_state.reset_sql(carried_state.REPLAYED, replayed) == (
        'RESET "search_path"; RESET "app"."user"; RESET ROLE'
    )
    assert carried_state.reset_sql(carried_state.SETTINGS, replayed) == (
        "RESET SESSION AUTHORIZATION; RESET ALL"
    )
    assert carried_state.reset_sql(carried_state.ANYTHING, ()) == "DISCARD ALL"
