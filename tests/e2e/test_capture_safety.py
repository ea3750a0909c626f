"""Capture and refresh against hostile or unusual surroundings: callers' search_paths and
operators, private entry points, several owners in one session, triggers switched off and on,
widened columns, types of the user's schemas, columns dropped and re-added, SQL-standard
function bodies, REFRESH MATERIALIZED VIEW CONCURRENTLY, and refresh_on_run."""

import json

import pytest

from conftest import connect


def kind(db, name):
    return db.value("SELECT last_refresh_kind FROM pgstream.pgs_stream_tables WHERE pgs_name = %s", (name,))


def refresh(db, name):
    db.sql("SELECT pgstream.refresh_stream_table(%s)", (name,))
    return kind(db, name)


def run(conn, sql, params=None):
    with conn.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchall() if cur.description else None


@pytest.fixture
def mallory(db):
    """A non-superuser role with its own schema that may write to public.src."""
    role = db.name + "_mallory"
    db.sql(f'CREATE ROLE "{role}" LOGIN')
    db.sql(f'CREATE SCHEMA mallory AUTHORIZATION "{role}"')
    db.sql("CREATE TABLE src (id int PRIMARY KEY, v int)")
    db.sql("INSERT INTO src SELECT g, g FROM generate_series(1, 20) g")
    db.sql(f'GRANT SELECT, INSERT, UPDATE, DELETE ON src TO "{role}"')
    conn = connect(db.name)
    run(conn, f'SET ROLE "{role}"')
    yield role, conn
    conn.close()
    db.sql("DROP SCHEMA mallory CASCADE")
    db.sql(f'DROP OWNED BY "{role}"')
    db.sql(f'DROP ROLE "{role}"')


def test_the_capture_trigger_ignores_the_writers_search_path_and_operators(db, mallory):
    role, conn = mallory
    db.sql("SELECT pgstream.create_stream_table('st', 'SELECT id, v FROM src WHERE v > 3')")
    run(conn, "CREATE TABLE mallory.calls (who text)")
    run(conn, "GRANT INSERT ON mallory.calls TO PUBLIC")
    # A unary minus on int2 ahead of pg_catalog's: it would run as the trigger's owner.
    run(conn, """CREATE FUNCTION mallory.neg(int2) RETURNS int2 LANGUAGE plpgsql AS $$
                 BEGIN INSERT INTO mallory.calls VALUES (current_user); RETURN 0 - $1; END $$""")
    run(conn, "CREATE OPERATOR mallory.- (RIGHTARG = int2, FUNCTION = mallory.neg)")
    run(conn, "SET search_path = mallory, pg_catalog, public")
    run(conn, "UPDATE public.src SET v = v + 1 WHERE id <= 5; DELETE FROM public.src WHERE id = 20")
    assert db.value("SELECT count(*) FROM mallory.calls") == 0
    assert refresh(db, "st") == "DIFFERENTIAL"
    assert db.multiset_difference("st", "SELECT id, v FROM src WHERE v > 3") == 0


def test_the_engines_private_functions_are_not_executable_by_others(db, mallory):
    _, conn = mallory
    for call in ("SELECT pgstream._drop_capture_objects()",
                 "SELECT pgstream._sync_capture(ARRAY['public.src'::regclass::oid])",
                 "SELECT pgstream._engine_ddl_running()"):
        with pytest.raises(Exception) as caught:
            run(conn, call)
        assert caught.value.pgcode == "42501", call


def test_stream_tables_of_two_owners_refresh_in_one_session(db, mallory):
    role, conn = mallory
    run(conn, "SELECT pgstream.create_stream_table('mallory.hers', 'SELECT id, v FROM public.src WHERE v > 5')")
    db.sql("SELECT pgstream.create_stream_table('mine', 'SELECT id, v FROM src WHERE v > 10')")
    session = db.connect()
    for round_ in range(3):
        db.sql("UPDATE src SET v = v + 3 WHERE id %% 3 = %s", (round_,))
        for name in ("mallory.hers", "mine"):
            run(session, "SELECT pgstream.refresh_stream_table(%s)", (name,))
    session.close()
    assert kind(db, "hers") == "DIFFERENTIAL" and kind(db, "mine") == "DIFFERENTIAL"
    assert db.multiset_difference("mallory.hers", "SELECT id, v FROM src WHERE v > 5") == 0
    assert db.multiset_difference("mine", "SELECT id, v FROM src WHERE v > 10") == 0


def test_writes_made_while_capture_triggers_were_disabled_are_not_lost(db):
    db.sql("CREATE TABLE src (id int PRIMARY KEY, v int); INSERT INTO src SELECT g, g FROM generate_series(1, 10) g")
    db.sql("SELECT pgstream.create_stream_table('st', 'SELECT id, v FROM src WHERE v > 2')")
    assert refresh(db, "st") == "DIFFERENTIAL"
    db.sql("ALTER TABLE src DISABLE TRIGGER USER")
    db.sql("INSERT INTO src VALUES (11, 11); DELETE FROM src WHERE id = 3")
    assert refresh(db, "st") == "FULL"  # while disabled
    db.sql("INSERT INTO src VALUES (12, 12)")
    db.sql("ALTER TABLE src ENABLE TRIGGER USER")
    assert refresh(db, "st") == "FULL"  # what was written in between
    assert db.multiset_difference("st", "SELECT id, v FROM src WHERE v > 2") == 0
    db.sql("INSERT INTO src VALUES (13, 13)")
    assert refresh(db, "st") == "DIFFERENTIAL"
    assert db.multiset_difference("st", "SELECT id, v FROM src WHERE v > 2") == 0


def test_a_widened_varchar_column_never_makes_writes_fail(db):
    db.sql("CREATE TABLE src (id int PRIMARY KEY, name varchar(10)); INSERT INTO src VALUES (1, 'short')")
    db.sql("SELECT pgstream.create_stream_table('st', 'SELECT id, name FROM src')")
    refresh(db, "st")
    db.sql("ALTER TABLE src ALTER COLUMN name TYPE varchar(30)")
    db.sql("INSERT INTO src VALUES (2, 'a name longer than ten')")  # failed before
    db.sql("UPDATE src SET name = 'renamed, and long too' WHERE id = 1")  # old and new rows: typed NULLs
    refresh(db, "st")
    assert db.multiset_difference("st", "SELECT id, name FROM src") == 0
    db.sql("INSERT INTO src VALUES (3, 'another long name here')")
    assert refresh(db, "st") == "DIFFERENTIAL"
    assert db.multiset_difference("st", "SELECT id, name FROM src") == 0


def test_enum_keys_of_a_users_schema_in_private_stages(db):
    db.sql("CREATE SCHEMA app; CREATE TYPE app.mood AS ENUM ('sad', 'ok', 'happy')")
    db.sql("CREATE TABLE app.people (id int PRIMARY KEY, mood app.mood, score int)")
    db.sql("INSERT INTO app.people SELECT g, (ARRAY['sad','ok','happy'])[g % 3 + 1]::app.mood, g FROM generate_series(1, 30) g")
    query = ("WITH per_mood AS (SELECT mood, count(*) AS n, sum(score) AS total FROM app.people GROUP BY mood) "
             "SELECT p.mood, p.n, p.total, max(q.score) AS best FROM per_mood p "
             "LEFT JOIN app.people q ON q.mood = p.mood GROUP BY p.mood, p.n, p.total")
    db.sql("SET search_path = app, public")
    db.sql("SELECT pgstream.create_stream_table('moods', %s)", (query,))
    db.sql("UPDATE app.people SET mood = 'happy' WHERE id < 5; INSERT INTO app.people VALUES (31, 'sad', 99)")
    assert refresh(db, "moods") == "DIFFERENTIAL"
    assert db.multiset_difference("moods", query) == 0


def test_a_column_dropped_and_added_again_under_its_name_is_recomputed(db):
    db.sql("CREATE TABLE src (id int PRIMARY KEY, v int); INSERT INTO src SELECT g, g FROM generate_series(1, 10) g")
    db.sql("SELECT pgstream.create_stream_table('st', 'SELECT id, v FROM src')")
    refresh(db, "st")
    db.sql("ALTER TABLE src DROP COLUMN v; ALTER TABLE src ADD COLUMN v int")
    assert refresh(db, "st") == "FULL"
    assert db.value("SELECT count(*) FROM st WHERE v IS NOT NULL") == 0
    assert db.multiset_difference("st", "SELECT id, v FROM src") == 0


def test_a_redefined_sql_standard_function_body_is_recomputed(db):
    db.sql("CREATE TABLE src (id int PRIMARY KEY, v int); INSERT INTO src SELECT g, g FROM generate_series(1, 10) g")
    db.sql("CREATE FUNCTION twice(int) RETURNS int IMMUTABLE LANGUAGE sql RETURN $1 * 2")
    db.sql("SELECT pgstream.create_stream_table('st', 'SELECT id, twice(v) AS w FROM src')")
    refresh(db, "st")
    db.sql("CREATE OR REPLACE FUNCTION twice(int) RETURNS int IMMUTABLE LANGUAGE sql RETURN $1 * 3")
    assert refresh(db, "st") == "FULL"
    assert db.multiset_difference("st", "SELECT id, twice(v) AS w FROM src") == 0


def test_refresh_materialized_view_concurrently_is_not_recorded_as_ddl(db):
    db.sql("CREATE TABLE src (id int PRIMARY KEY); CREATE MATERIALIZED VIEW mv AS SELECT id FROM src")
    db.sql("CREATE UNIQUE INDEX ON mv (id)")
    db.sql("DELETE FROM pgstream_changes.statements")
    db.sql("REFRESH MATERIALIZED VIEW CONCURRENTLY mv")
    assert db.value("SELECT count(*) FROM pgstream_changes.statements WHERE source_relid = 0") == 0
    db.sql("CREATE TABLE other (x int)")  # a user's CREATE TABLE still is
    assert db.value("SELECT count(*) FROM pgstream_changes.statements WHERE source_relid = 0") == 1


def test_refresh_on_run_refreshes_an_unchanged_stream_table_in_the_call(db):
    db.sql("CREATE TABLE src (id int PRIMARY KEY, v int); INSERT INTO src SELECT g, g FROM generate_series(1, 10) g")
    query = "SELECT id, v FROM src WHERE v > 2"

    def materialize(config):
        return json.loads(db.value("SELECT pgstream_dbt.materialize('st', %s, %s::jsonb)::text",
                                   (query, json.dumps(config))))

    assert materialize({})["action"] == "created"
    db.sql("INSERT INTO src VALUES (11, 11)")
    plain = materialize({})
    assert plain["action"] == "unchanged" and "refreshed" not in plain
    assert db.value("SELECT count(*) FROM st") == 8  # one schedule old
    result = materialize({"refresh_on_run": True})
    assert result["action"] == "unchanged" and result["refreshed"] is True
    assert result["refresh"] == {"kind": "DIFFERENTIAL", "inserted": 1, "updated": 0, "deleted": 0}
    assert "refresh_on_run" in result["reason"]
    assert db.multiset_difference("st", query) == 0
    err = db.error("SELECT pgstream_dbt.materialize('st', %s, '{\"refresh_on_run\": \"yes\"}')", (query,))
    assert err.pgcode == "22023" and "refresh_on_run" in err.diag.message_primary


def test_a_retyped_stream_table_retypes_the_stream_tables_reading_it(db):
    db.sql("CREATE TABLE t (id int PRIMARY KEY, v varchar(10), n numeric(10, 2)); INSERT INTO t VALUES (1, 'abc', 1.25)")
    db.sql("SELECT pgstream.create_stream_table('s', 'SELECT id, v, n FROM t')")
    db.sql("SELECT pgstream.create_stream_table('d', 'SELECT id, v, n FROM s')")
    db.sql("ALTER TABLE t ALTER v TYPE varchar(30), ALTER n TYPE numeric(10, 4)")
    db.sql("UPDATE t SET v = 'x', n = 1.2345")
    for name in ("d", "s", "d"):  # the reader first: it must catch up once its source is retyped
        refresh(db, name)
    assert db.sql("SELECT v, n FROM d") == [("x", __import__("decimal").Decimal("1.2345"))]
    db.sql("UPDATE t SET v = repeat('a', 26)")
    refresh(db, "s")
    refresh(db, "d")
    assert db.multiset_difference("d", "SELECT id, v, n FROM t") == 0


def test_a_stream_table_given_to_another_owner_refreshes_in_the_same_session(db, mallory):
    role, conn = mallory
    db.sql("CREATE TABLE u (id int PRIMARY KEY, w int); INSERT INTO u SELECT g, g FROM generate_series(1, 20) g")
    db.sql(f'GRANT SELECT ON u TO "{role}"')
    query = "SELECT s.id, s.v, u.w FROM src s JOIN u USING (id)"
    db.sql("SELECT pgstream.create_stream_table('joined', %s)", (query,))
    db.sql("UPDATE src SET v = v + 1 WHERE id < 5")
    assert refresh(db, "joined") == "DIFFERENTIAL"  # this session now has its delta tables
    db.sql(f'ALTER TABLE joined OWNER TO "{role}"')
    db.sql("UPDATE src SET v = v + 1 WHERE id < 5")
    refresh(db, "joined")
    db.sql("UPDATE src SET v = v + 1 WHERE id < 5")
    assert refresh(db, "joined") == "DIFFERENTIAL"
    assert db.multiset_difference("joined", query) == 0


def test_a_unique_constraint_checked_per_statement_lets_a_refresh_swap_values(db):
    """What dbt-pgstream's constraints are: DEFERRABLE INITIALLY IMMEDIATE."""
    db.sql("CREATE TABLE u (id int PRIMARY KEY, email text); INSERT INTO u VALUES (1, 'a'), (2, 'b')")
    db.sql("SELECT pgstream.create_stream_table('s', 'SELECT id, email FROM u')")
    db.sql("ALTER TABLE s ADD CONSTRAINT pgs_con_x UNIQUE (email) DEFERRABLE INITIALLY IMMEDIATE")
    db.sql("UPDATE u SET email = CASE id WHEN 1 THEN 'b' ELSE 'a' END")
    assert refresh(db, "s") == "DIFFERENTIAL"
    assert db.multiset_difference("s", "SELECT id, email FROM u") == 0
    db.sql("INSERT INTO u VALUES (3, 'a')")  # a real duplicate still fails, and changes nothing
    err = db.error("SELECT pgstream.refresh_stream_table('s')")
    assert err.pgcode == "23505" and "pgs_con_x" in err.diag.message_primary
    assert db.value("SELECT count(*) FROM s") == 2
