"""Property: no statement shape that writes or locks is classified as a read, and ordinary
reads in the same disguises still are (a classifier that sent everything to the primary
would fail the second property).

Shapes: a core that writes (DML, row locks, write functions, SELECT INTO) placed in a CTE, a
subquery, a FROM-clause function, a WHERE clause, EXPLAIN ANALYZE, behind comments, in any
letter case, with extra whitespace, or after another statement. The strategies are shared
with the integration test that runs them against real PostgreSQL.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from router_lib.classify import Classifier
from tests.unit.test_router_corpus import WRITE_FUNCTIONS

ids = st.integers(min_value=1, max_value=100)

DML = [
    "INSERT INTO audit (item, note) VALUES ({n}, 'shape')",
    "UPDATE items SET qty = qty + 1 WHERE id = {n}",
    "DELETE FROM audit WHERE item = {n} AND id < 0",
    "INSERT INTO items (id, name) VALUES ({n} + 1000, 'shape') ON CONFLICT (id) DO NOTHING",
]
LOCKS = ["FOR UPDATE", "FOR NO KEY UPDATE", "FOR SHARE", "FOR KEY SHARE"]
LOCK_OPTIONS = ["", " NOWAIT", " SKIP LOCKED"]
# Lock calls that cannot wait: run against real servers, a session lock left on one pooled
# connection must not block another (keys of session and transaction locks differ, too).
WRITE_CALLS = [
    "nextval('s')",
    "setval('s', {n})",
    "pg_try_advisory_lock({n})",
    "pg_advisory_unlock({n})",
    "pg_try_advisory_xact_lock({n} + 1000)",
    "pg_try_advisory_xact_lock_shared({n} + 1000)",
    "txid_current()",
    "pg_current_xact_id()",
    "pg_notify('shape', 'n{n}')",
    "pg_current_wal_lsn()",
    "set_config('app.shape', '{n}', false)",
    "lo_create(0)",
    "bump()",
    "app.touch({n})",
]
READ_CALLS = ["lower('x{n}')", "abs(-{n})", "length('{n}')", "now()", "coalesce(NULL, {n})"]


@st.composite
def dml_shapes(draw: st.DrawFn) -> str:
    dml = draw(st.sampled_from(DML)).format(n=draw(ids))
    wrap = draw(st.sampled_from(["{}", "cte", "nested_cte", "explain"]))
    if wrap == "cte":
        return f"WITH w AS ({dml} RETURNING 1) SELECT count(*) FROM w"
    if wrap == "nested_cte":
        return f"WITH o AS (WITH w AS ({dml} RETURNING 1) SELECT * FROM w) SELECT * FROM o"
    if wrap == "explain":
        return f"EXPLAIN ANALYZE {dml}"
    return dml


@st.composite
def lock_shapes(draw: st.DrawFn) -> str:
    lock = draw(st.sampled_from(LOCKS)) + draw(st.sampled_from(LOCK_OPTIONS))
    select = f"SELECT id, qty FROM items WHERE id = {draw(ids)} {lock}"
    wrap = draw(st.sampled_from(["{}", "subquery", "cte", "in"]))
    if wrap == "subquery":
        return f"SELECT * FROM ({select}) AS locked"
    if wrap == "cte":
        return f"WITH l AS ({select}) SELECT * FROM l"
    if wrap == "in":
        return f"SELECT name FROM items WHERE id IN (SELECT id FROM ({select}) AS x)"
    return select


def call_positions(call: str, n: int) -> list[str]:
    return [
        f"SELECT {call}",
        f"SELECT * FROM {call} AS f",
        f"SELECT id FROM items WHERE qty > 0 AND ({call}) IS NOT NULL AND id = {n}",
        f"SELECT CASE WHEN id = {n} THEN {call} END FROM items WHERE id = {n}",
        f"SELECT (SELECT {call}) AS sub",
        f"SELECT count(*) FROM items WHERE id IN (SELECT 1 WHERE ({call}) IS NOT NULL)",
        f"WITH c AS (SELECT {call} AS v) SELECT * FROM c",
    ]


@st.composite
def call_shapes(draw: st.DrawFn, calls: list[str]) -> str:
    n = draw(ids)
    call = draw(st.sampled_from(calls)).format(n=n)
    return draw(st.sampled_from(call_positions(call, n)))


@st.composite
def select_into_shapes(draw: st.DrawFn) -> str:
    return f"SELECT * INTO TEMP shape_{draw(ids)} FROM items WHERE id < 3"


@st.composite
def read_shapes(draw: st.DrawFn) -> str:
    n = draw(ids)
    shapes = [
        f"SELECT id, name FROM items WHERE id = {n}",
        f"SELECT count(*) FROM items WHERE qty > {n}",
        f"WITH r AS (SELECT * FROM items WHERE id < {n}) SELECT max(qty) FROM r",
        f"SELECT name FROM items WHERE id IN (SELECT item FROM audit WHERE id = {n})",
        f"SELECT * FROM (SELECT id FROM items ORDER BY id LIMIT {n}) AS t",
        f"SELECT 'UPDATE items SET qty = {n}' AS quoted",
        f"EXPLAIN SELECT * FROM items WHERE id = {n}",
        f"SELECT * FROM items i JOIN item_names v ON v.id = i.id WHERE i.id = {n}",
        *call_positions(draw(st.sampled_from(READ_CALLS)).format(n=n), n),
    ]
    return draw(st.sampled_from(shapes))


@st.composite
def disguised(draw: st.DrawFn, core: st.SearchStrategy[str], allow_multi: bool) -> str:
    """The same statement with comments, letter case and whitespace changed, or (for writes)
    placed after a harmless statement."""
    text = draw(core)
    case = draw(st.sampled_from(["as is", "upper", "lower"]))
    if case == "upper":
        text = text.upper()
    elif case == "lower":
        text = text.lower()
    space = draw(st.sampled_from([" ", "  ", "\n", "\t", "\n  "]))
    text = text.replace(" ", space, draw(st.integers(min_value=0, max_value=3)))
    prefix = draw(st.sampled_from(["", "/* shape */ ", "-- shape\n", "/* a */ /* b */ "]))
    suffix = draw(st.sampled_from(["", ";", " -- tail", " /* tail */"]))
    text = prefix + text + suffix
    if allow_multi and draw(st.booleans()):
        text = draw(st.sampled_from(["SELECT 1; ", "SELECT 1 FROM items LIMIT 1;\n"])) + text
    return text


def write_statements() -> st.SearchStrategy[str]:
    core = st.one_of(dml_shapes(), lock_shapes(), call_shapes(WRITE_CALLS), select_into_shapes())
    return disguised(core, allow_multi=True)


def read_statements() -> st.SearchStrategy[str]:
    return disguised(read_shapes(), allow_multi=False)


CLASSIFIER = Classifier(write_functions=WRITE_FUNCTIONS)


@settings(max_examples=600, deadline=None)
@given(write_statements())
def test_no_write_shape_is_classified_as_a_read(sql: str) -> None:
    assert not CLASSIFIER.classify_uncached(sql, False).read_only, sql


@settings(max_examples=300, deadline=None)
@given(read_statements())
def test_read_shapes_stay_reads(sql: str) -> None:
    assert CLASSIFIER.classify_uncached(sql, False).read_only, sql
