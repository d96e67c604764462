"""The corpus of tricky statements: where each must run, and why.

The same corpus runs against real PostgreSQL in tests/integration/test_router_corpus.py, where
the replicas' statement logs prove that no write reached them. The schema it assumes is
:data:`SCHEMA` (created on the primary by that test).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from router_lib import classify
from router_lib.classify import Classifier

SCHEMA = [
    "CREATE SCHEMA app",
    "CREATE TABLE items (id int PRIMARY KEY, name text, qty int DEFAULT 0)",
    "CREATE TABLE audit (id serial PRIMARY KEY, item int, note text)",
    "CREATE SEQUENCE s",
    "CREATE VIEW item_names AS SELECT id, name FROM items",
    "INSERT INTO items SELECT g, 'item ' || g, g FROM generate_series(1, 100) g",
    # Functions that write, declared so in the router configuration (WRITE_FUNCTIONS).
    "CREATE FUNCTION bump() RETURNS int LANGUAGE sql "
    "AS 'UPDATE items SET qty = qty + 1 WHERE id = 1 RETURNING qty'",
    "CREATE FUNCTION app.touch(int) RETURNS int LANGUAGE sql "
    "AS 'INSERT INTO audit (item) VALUES ($1) RETURNING id'",
    "CREATE PROCEDURE app.tidy() LANGUAGE sql AS 'DELETE FROM audit WHERE id < 0'",
]
WRITE_FUNCTIONS = ("bump", "app.touch")


@dataclass(frozen=True)
class Case:
    sql: str
    params: Any = None
    replica: bool = False  # True: may run on a replica
    reason: str | None = None
    run: bool = True  # False: classify only (would disturb the integration topology)

    @property
    def id(self) -> str:
        return self.sql[:60]


def read(sql: str, params: Any = None) -> Case:
    return Case(sql, params, replica=True, reason=classify.READ)


def primary(sql: str, reason: str, params: Any = None, run: bool = True) -> Case:
    return Case(sql, params, replica=False, reason=reason, run=run)


CORPUS: list[Case] = [
    # -- reads: these must go to replicas (or the router is useless) -----------------------
    read("SELECT id, name FROM items WHERE id = %s", (1,)),
    read("SELECT * FROM items WHERE name = %(name)s", {"name": "item 2"}),
    read("select count(*) from items"),
    read("SELECT i.id, a.note FROM items i LEFT JOIN audit a ON a.item = i.id WHERE i.id < 5"),
    read(
        "WITH recent AS (SELECT * FROM audit ORDER BY id DESC LIMIT 10) SELECT count(*) FROM recent"
    ),
    read("SELECT * FROM item_names WHERE id = 1"),
    read("SELECT name FROM items WHERE id IN (SELECT item FROM audit)"),
    read("SELECT 'FOR UPDATE' AS mentions_a_lock"),
    read("SELECT 'DELETE FROM items WHERE true' AS not_a_write"),
    read("SELECT 1 AS one -- ; DELETE FROM items"),
    read("/* UPDATE items SET qty = 0 */ SELECT max(qty) FROM items"),
    read('SELECT "nextval" FROM (SELECT 1 AS "nextval") AS t'),
    read("SELECT $$ INSERT INTO items VALUES (1) $$ AS dollar_quoted"),
    read("SHOW work_mem"),
    read("EXPLAIN SELECT * FROM items WHERE id = 1"),
    read("VALUES (1, 'a'), (2, 'b')"),
    read("TABLE items"),
    read("SELECT now(), current_user, version()"),
    read("SELECT id FROM items WHERE name LIKE %s", ("item 1%",)),
    read("SELECT id FROM items WHERE name LIKE 'item 2%%'", ()),
    read("SELECT id FROM items WHERE name LIKE 'item 3%'"),
    read("SELECT pg_last_wal_replay_lsn()"),
    read("SELECT row_number() OVER (ORDER BY id) FROM items LIMIT 3"),
    read("SELECT lower(name), upper(name), length(name) FROM items WHERE id = %s", (4,)),
    read("SELECT * FROM items WHERE id = ANY(%s)", ([1, 2, 3],)),
    read("SELECT 1 FROM items WHERE EXISTS (SELECT 1 FROM audit WHERE audit.item = items.id)"),
    read("SELECT * FROM generate_series(1, 3)"),
    read("SELECT id FROM items ORDER BY id LIMIT 5 OFFSET 2"),
    read("SELECT a.id FROM items a, items b WHERE a.id = b.id AND a.id < 3"),
    read("SELECT id FROM items UNION SELECT item FROM audit"),
    read("SELECT pg_sleep(0)"),
    read("SELECT coalesce(max(qty), 0) FROM items WHERE id = %s", (5,)),
    # -- writes -------------------------------------------------------------------------
    primary(
        "INSERT INTO items (id, name) VALUES (%s, %s) ON CONFLICT (id) DO NOTHING",
        classify.WRITE,
        (1001, "new"),
    ),
    primary("insert into audit (item, note) values (1, 'lower-case insert')", classify.WRITE),
    primary("UPDATE items SET qty = qty + 1 WHERE id = %s", classify.WRITE, (6,)),
    primary("DELETE FROM audit WHERE id < 0", classify.WRITE),
    primary(
        "MERGE INTO items t USING (SELECT 1 AS id) s ON t.id = s.id "
        "WHEN MATCHED THEN UPDATE SET qty = t.qty",
        classify.WRITE,
    ),
    primary("INSERT INTO audit (item) SELECT id FROM items WHERE id < 3 RETURNING id", "write"),
    primary("WITH x AS (SELECT 1) INSERT INTO audit (item) SELECT * FROM x", classify.WRITE),
    primary("COPY (SELECT 1) TO STDOUT", classify.WRITE),
    # -- row locks, in every spelling and position -------------------------------------------
    primary("SELECT * FROM items WHERE id = 1 FOR UPDATE", classify.LOCKING_CLAUSE),
    primary("SELECT * FROM items WHERE id = 1 FOR NO KEY UPDATE", classify.LOCKING_CLAUSE),
    primary("SELECT * FROM items WHERE id = 1 FOR SHARE", classify.LOCKING_CLAUSE),
    primary("SELECT * FROM items WHERE id = 1 FOR KEY SHARE", classify.LOCKING_CLAUSE),
    primary("SELECT * FROM items WHERE id = 1 FOR UPDATE SKIP LOCKED", classify.LOCKING_CLAUSE),
    primary("SELECT * FROM items WHERE id = 1 for update nowait", classify.LOCKING_CLAUSE),
    primary(
        "SELECT * FROM items i JOIN audit a ON a.item = i.id FOR UPDATE OF i",
        classify.LOCKING_CLAUSE,
    ),
    primary(
        "SELECT * FROM (SELECT * FROM items WHERE id = 1 FOR UPDATE) AS locked",
        classify.LOCKING_CLAUSE,
    ),
    primary(
        "WITH l AS (SELECT * FROM items WHERE id = 2 FOR SHARE) SELECT * FROM l", "locking_clause"
    ),
    primary(
        "SELECT id FROM items WHERE id IN (SELECT id FROM items WHERE id = 3 FOR UPDATE)",
        classify.LOCKING_CLAUSE,
    ),
    primary("LOCK TABLE audit IN SHARE MODE", classify.LOCK),
    # -- SELECT INTO and friends --------------------------------------------------------------
    primary("SELECT * INTO TEMP TABLE corpus_copy FROM items WHERE id < 3", classify.SELECT_INTO),
    primary("CREATE TABLE corpus_ctas AS SELECT * FROM items WHERE id < 3", classify.DDL),
    # -- data-modifying CTEs, also nested -----------------------------------------------------
    primary(
        "WITH d AS (DELETE FROM audit WHERE id < 0 RETURNING *) SELECT count(*) FROM d",
        classify.MODIFYING_CTE,
    ),
    primary(
        "WITH u AS (UPDATE items SET qty = qty WHERE id = 1 RETURNING id) SELECT * FROM u",
        classify.MODIFYING_CTE,
    ),
    primary(
        "WITH i AS (INSERT INTO audit (item) VALUES (2) RETURNING id) SELECT id FROM i",
        classify.MODIFYING_CTE,
    ),
    primary(
        "WITH o AS (WITH n AS (UPDATE items SET qty = qty WHERE id = 2 RETURNING id) "
        "SELECT * FROM n) SELECT * FROM o",
        classify.MODIFYING_CTE,
    ),
    # -- functions that write, lock, or need the primary ------------------------------------
    primary("SELECT nextval('s')", classify.WRITE_FUNCTION),
    primary("SELECT setval('s', 100)", classify.WRITE_FUNCTION),
    primary("SELECT currval('s')", classify.WRITE_FUNCTION),
    primary("SELECT lastval()", classify.WRITE_FUNCTION),
    primary("SELECT NEXTVAL('s')", classify.WRITE_FUNCTION),
    primary("SELECT pg_catalog.nextval('s')", classify.WRITE_FUNCTION),
    primary("SELECT * FROM nextval('s')", classify.WRITE_FUNCTION),
    primary("SELECT id FROM items WHERE qty > nextval('s') LIMIT 1", classify.WRITE_FUNCTION),
    primary("SELECT CASE WHEN true THEN nextval('s') END", classify.WRITE_FUNCTION),
    primary("SELECT coalesce(NULL, nextval('s'))", classify.WRITE_FUNCTION),
    primary("SELECT (SELECT nextval('s')) AS sub", classify.WRITE_FUNCTION),
    primary("SELECT pg_advisory_lock(%s)", classify.WRITE_FUNCTION, (42,)),
    primary("SELECT pg_advisory_unlock(42)", classify.WRITE_FUNCTION),
    # Distinct keys: a session lock kept by one pooled connection must not block another.
    primary("SELECT pg_try_advisory_lock(7)", classify.WRITE_FUNCTION),
    primary("SELECT pg_advisory_xact_lock(8)", classify.WRITE_FUNCTION),
    primary("SELECT pg_try_advisory_xact_lock_shared(9)", classify.WRITE_FUNCTION),
    primary("SELECT pg_advisory_unlock_all()", classify.WRITE_FUNCTION),
    primary("SELECT txid_current()", classify.WRITE_FUNCTION),
    primary("SELECT txid_current_if_assigned()", classify.WRITE_FUNCTION),
    primary("SELECT pg_current_xact_id()", classify.WRITE_FUNCTION),
    primary("SELECT pg_notify('events', 'hello')", classify.WRITE_FUNCTION),
    primary("SELECT lo_create(0)", classify.WRITE_FUNCTION),
    primary("SELECT lo_unlink(0)", classify.WRITE_FUNCTION),
    primary("SELECT loread(0, 10)", classify.WRITE_FUNCTION),
    primary("SELECT pg_current_wal_lsn()", classify.WRITE_FUNCTION),
    primary("SELECT pg_current_wal_insert_lsn()", classify.WRITE_FUNCTION),
    primary("SELECT set_config('app.tenant', '42', false)", classify.WRITE_FUNCTION),
    primary("SELECT pg_catalog.set_config('app.tenant', %s, true)", "write_function", ("7",)),
    primary("SELECT bump()", classify.WRITE_FUNCTION),
    primary("SELECT app.touch(1)", classify.WRITE_FUNCTION),
    primary("SELECT * FROM items WHERE qty < bump()", classify.WRITE_FUNCTION),
    primary("SELECT pg_switch_wal()", classify.WRITE_FUNCTION),
    primary("SELECT pg_reload_conf()", classify.WRITE_FUNCTION),
    primary("SELECT pg_terminate_backend(0)", classify.WRITE_FUNCTION),
    primary("SELECT pg_create_restore_point('corpus')", classify.WRITE_FUNCTION),
    primary("SELECT pg_logical_emit_message(true, 'corpus', 'x')", classify.WRITE_FUNCTION),
    primary("SELECT dblink_exec('dbname=x', 'DELETE FROM t')", classify.WRITE_FUNCTION),
    # -- LISTEN/NOTIFY ----------------------------------------------------------------------
    primary("LISTEN events", classify.LISTEN_NOTIFY),
    primary("NOTIFY events, 'payload'", classify.LISTEN_NOTIFY),
    primary("UNLISTEN *", classify.LISTEN_NOTIFY),
    # -- several statements, or none that parses --------------------------------------------
    primary("SELECT 1; SELECT 2", classify.MULTI_STATEMENT),
    primary(
        "SELECT * FROM items WHERE id = 1; UPDATE items SET qty = qty WHERE id = 1",
        classify.MULTI_STATEMENT,
    ),
    primary("SELEC * FROM items", classify.UNPARSABLE),
    primary("SELECT * FROM items WHERE id = %s AND name = %q", classify.UNPARSABLE, (1,)),
    primary("SELECT * FROM items WHERE id = %(id)s AND qty = %s", "unparsable", {"id": 1}),
    primary("   ", classify.EMPTY),
    # -- transaction control, session state, cursors ----------------------------------------
    primary("BEGIN", classify.TRANSACTION),
    primary("START TRANSACTION READ ONLY", classify.TRANSACTION),
    primary("COMMIT", classify.TRANSACTION),
    primary("SET search_path TO public", classify.SESSION_STATE),
    primary("RESET ALL", classify.SESSION_STATE),
    primary("DISCARD ALL", classify.SESSION_STATE, run=False),
    primary("PREPARE corpus_p AS SELECT 1", classify.SESSION_STATE),
    primary("EXECUTE corpus_p", classify.SESSION_STATE),
    primary("DEALLOCATE corpus_p", classify.SESSION_STATE),
    primary("DECLARE corpus_c CURSOR FOR SELECT 1", classify.SESSION_STATE),
    # -- EXPLAIN of writes (ANALYZE executes them) ----------------------------------------
    primary("EXPLAIN ANALYZE DELETE FROM audit WHERE id < 0", classify.WRITE),
    primary("EXPLAIN ANALYZE SELECT nextval('s')", classify.WRITE_FUNCTION),
    primary("EXPLAIN (ANALYZE, BUFFERS) UPDATE items SET qty = qty WHERE id = 1", "write"),
    primary("EXPLAIN UPDATE items SET qty = 0", classify.WRITE),
    primary("EXPLAIN ANALYZE SELECT * FROM items WHERE id = 1 FOR UPDATE", "locking_clause"),
    # -- DDL, maintenance, procedures ---------------------------------------------------------
    primary("CREATE TABLE IF NOT EXISTS corpus_scratch (id int)", classify.DDL),
    primary("ALTER TABLE corpus_scratch ADD COLUMN IF NOT EXISTS note text", classify.DDL),
    primary("CREATE INDEX IF NOT EXISTS corpus_scratch_id ON corpus_scratch (id)", classify.DDL),
    primary("DROP TABLE IF EXISTS corpus_never_existed", classify.DDL),
    primary("GRANT SELECT ON items TO PUBLIC", classify.DDL),
    primary("COMMENT ON TABLE items IS 'corpus'", classify.DDL),
    primary("VACUUM audit", classify.DDL),
    primary("ANALYZE items", classify.DDL),
    primary("CHECKPOINT", classify.DDL),
    primary("CALL app.tidy()", classify.PROCEDURE),
    primary("DO $$ BEGIN PERFORM 1; END $$", classify.PROCEDURE),
    primary("TRUNCATE corpus_scratch", classify.WRITE),
]


@pytest.fixture(scope="module")
def classifier() -> Classifier:
    return Classifier(write_functions=WRITE_FUNCTIONS)


@pytest.mark.parametrize("case", CORPUS, ids=[c.id for c in CORPUS])
def test_corpus_statement_is_routed_where_it_must_run(classifier: Classifier, case: Case) -> None:
    result = classifier.classify(case.sql, case.params is not None)
    assert result.read_only is case.replica
    if case.reason is not None:
        assert result.reason == case.reason


def test_corpus_covers_both_sides() -> None:
    reads = sum(c.replica for c in CORPUS)
    assert reads >= 30
    assert len(CORPUS) - reads >= 90


def test_cached_answer_is_the_same_object(classifier: Classifier) -> None:
    first = classifier.classify("SELECT id FROM items WHERE id = %s", True)
    assert classifier.classify("SELECT id FROM items WHERE id = %s", True) is first


def test_same_text_with_and_without_parameters_is_classified_separately() -> None:
    classifier = Classifier()
    # With parameters psycopg turns %s into $1; without, "%s" is literal text (unparsable).
    assert classifier.classify("SELECT %s", True).read_only
    assert not classifier.classify("SELECT %s", False).read_only


def test_a_learned_write_goes_to_the_primary_from_then_on() -> None:
    classifier = Classifier()
    assert classifier.classify("SELECT audit_something(1)", False).read_only
    classifier.mark_write("SELECT audit_something(1)", False)
    learned = classifier.classify("SELECT audit_something(1)", False)
    assert not learned.read_only
    assert learned.reason == classify.LEARNED_WRITE


def test_tables_are_collected_for_cache_invalidation(classifier: Classifier) -> None:
    write = classifier.classify(
        "UPDATE public.items SET qty = 1 FROM audit WHERE audit.id = 1", False
    )
    assert write.tables == {"items", "audit"}
    assert not write.invalidates_all
    assert classifier.classify("ALTER TABLE items ADD COLUMN x int", False).invalidates_all
    assert classifier.classify("SELECT bump()", False).invalidates_all
    assert not classifier.classify("SELECT nextval('s')", False).invalidates_all


def test_the_classification_cache_is_bounded() -> None:
    classifier = Classifier(max_entries=50)
    for n in range(200):
        classifier.classify(f"SELECT {n}", False)
    assert len(classifier._without_params) <= 50
