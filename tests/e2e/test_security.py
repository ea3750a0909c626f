"""Privileges: refresh runs the query as the table's owner, only owners may refresh, the
engine's superuser catalog writes ignore the caller's search_path, settings are restored."""

import json
import time

import pytest

from conftest import connect


@pytest.fixture
def alice(db):
    """A non-superuser role with its own schema, and a session logged in as it."""
    role = db.name + "_alice"
    db.sql(f'CREATE ROLE "{role}" LOGIN')
    db.sql(f'CREATE SCHEMA alice AUTHORIZATION "{role}"')
    db.sql("CREATE TABLE src (a int)")
    db.sql("INSERT INTO src VALUES (1)")
    db.sql(f'GRANT SELECT ON src TO "{role}"')
    conn = connect(db.name)
    with conn.cursor() as cur:
        cur.execute(f'SET ROLE "{role}"')
    yield role, conn
    conn.close()
    db.sql("DROP SCHEMA alice CASCADE")
    db.sql(f'DROP OWNED BY "{role}"')
    db.sql(f'DROP ROLE "{role}"')


def run(conn, sql, params=None):
    with conn.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchall() if cur.description else None


def test_refresh_runs_the_query_as_the_owner_even_for_a_superuser(db, alice):
    role, conn = alice
    run(conn, "SELECT pgstream.create_stream_table('alice.who', 'SELECT current_user::text AS who, a FROM public.src', '1m', 'FULL')")
    db.sql("INSERT INTO src VALUES (2)")
    db.sql("SELECT pgstream.refresh_stream_table('alice.who')")  # as the superuser
    assert db.sql("SELECT DISTINCT who FROM alice.who") == [(role,)]
    assert db.value("SELECT count(*) FROM alice.who") == 2


def test_only_owners_may_refresh_and_a_refused_refresh_is_not_counted(db, alice):
    role, conn = alice
    db.sql("CREATE TABLE secret_src (a int)")
    db.sql("SELECT pgstream.create_stream_table('mine', 'SELECT a FROM secret_src', '1m', 'FULL')")
    db.sql(f'GRANT SELECT ON mine TO "{role}"')
    with pytest.raises(Exception) as caught:
        run(conn, "SELECT pgstream.refresh_stream_table('public.mine')")
    assert caught.value.pgcode == "42501"
    assert db.sql("SELECT consecutive_errors, failed_refreshes FROM pgstream.pgs_stream_tables") == [(0, 0)]


def test_catalog_writes_ignore_the_callers_search_path(db, alice):
    role, conn = alice
    run(conn, "CREATE TABLE alice.calls (who text)")
    run(conn, "GRANT INSERT ON alice.calls TO PUBLIC")
    run(
        conn,
        "CREATE FUNCTION alice.clock_timestamp() RETURNS timestamptz LANGUAGE plpgsql AS "
        "$$ BEGIN INSERT INTO alice.calls VALUES (current_user); RETURN now(); END $$",
    )
    run(conn, "SET search_path = alice, pg_catalog")
    run(conn, "SELECT pgstream.create_stream_table('alice.st', 'SELECT a FROM public.src', '1m', 'FULL')")
    run(conn, "SELECT pgstream.alter_stream_table('alice.st', schedule => '5m')")
    run(conn, "SELECT pgstream.refresh_stream_table('alice.st')")
    run(conn, "SELECT pgstream_dbt.materialize('alice.st', 'SELECT a FROM public.src', %s::jsonb)",
        (json.dumps({"refresh_mode": "FULL", "schedule": "7m"}),))
    assert db.value("SELECT count(*) FROM alice.calls") == 0
    assert db.value("SELECT schedule FROM pgstream.pgs_stream_tables") == "7m"


def test_the_engines_catalog_questions_ignore_functions_on_the_callers_search_path(db, alice):
    """A function of a user's schema that matches the argument types exactly would win over
    pg_catalog's polymorphic one (unnest(int2vector) over unnest(anyarray), array_agg(int) over
    array_agg(anynonarray)): the engine's own SQL and its delta SQL's helpers name pg_catalog's,
    so a superuser creating and refreshing with that schema on its search_path runs none of the
    user's code."""
    role, conn = alice
    run(conn, "CREATE TABLE alice.calls (who text)")
    run(conn, "GRANT INSERT ON alice.calls TO PUBLIC")
    for arg, element in [("int2vector", "int2"), ("name[]", "name")]:
        run(conn, f"CREATE FUNCTION alice.unnest(v {arg}) RETURNS SETOF {element} LANGUAGE plpgsql AS "
                  "$$ BEGIN INSERT INTO alice.calls VALUES (current_user); "
                  f"RETURN QUERY SELECT x FROM pg_catalog.unnest(v::{element}[]) x; END $$")
    # And an aggregate the delta SQL's own helpers would resolve to (array_agg(int) over
    # pg_catalog's array_agg(anynonarray)).
    run(conn, "CREATE FUNCTION alice.spy(s int[], v int) RETURNS int[] LANGUAGE plpgsql AS "
              "$$ BEGIN INSERT INTO alice.calls VALUES (current_user); RETURN s || v; END $$")
    run(conn, "CREATE AGGREGATE alice.array_agg(int) (sfunc = alice.spy, stype = int[])")
    for element in ("text", "bigint"):  # what the engine's catalog queries aggregate
        run(conn, f"CREATE FUNCTION alice.spy(s {element}[], v {element}) RETURNS {element}[] "
                  "LANGUAGE plpgsql AS $$ BEGIN INSERT INTO alice.calls VALUES (current_user); "
                  "RETURN s || v; END $$")
        run(conn, f"CREATE AGGREGATE alice.array_agg({element}) (sfunc = alice.spy, stype = {element}[])")
    db.sql("CREATE TABLE keyed (id int PRIMARY KEY, v int)")
    db.sql("INSERT INTO keyed VALUES (1, 1)")
    admin = db.connect()
    with admin.cursor() as cur:
        cur.execute("SET search_path = alice, public")
        cur.execute("SELECT pgstream.create_stream_table('public.k', 'SELECT id, v FROM public.keyed', NULL, 'DIFFERENTIAL')")
        cur.execute("INSERT INTO public.keyed VALUES (2, 2)")
        cur.execute("SELECT pgstream.refresh_stream_table('public.k')")
        cur.execute("COMMENT ON TABLE public.k IS 'kept'")
        # A changed query: recreated beside and swapped in (grants and comments carried).
        cur.execute("SELECT pgstream_dbt.materialize('public.k', 'SELECT id, v, v + 1 AS w FROM public.keyed', "
                    "'{\"refresh_mode\": \"DIFFERENTIAL\"}'::jsonb)")
        cur.execute("SELECT pgstream.explain_stream_table('public.k')")
    assert db.value("SELECT count(*) FROM alice.calls") == 0
    assert db.value("SELECT obj_description('public.k'::regclass, 'pg_class')") == "kept"
    assert db.value("SELECT count(*) FROM k") == 2


def test_refresh_restores_the_callers_settings_inside_a_transaction(db):
    db.sql("CREATE SCHEMA elsewhere")
    db.sql("CREATE TABLE src (a float8, b bytea)")
    db.sql("INSERT INTO src VALUES (0.1, '\\x00ff')")
    db.sql("SELECT pgstream.create_stream_table('st', 'SELECT a, b FROM src', '1m', 'FULL')")
    conn = db.connect(autocommit=False)
    run(conn, "SET LOCAL search_path = elsewhere, public")
    run(conn, "SET LOCAL extra_float_digits = 0")
    run(conn, "SET LOCAL bytea_output = 'escape'")
    run(conn, "SELECT pgstream.refresh_stream_table('public.st')")
    assert run(conn, "SHOW search_path") == [("elsewhere, public",)]
    assert run(conn, "SHOW extra_float_digits") == [("0",)]
    assert run(conn, "SHOW bytea_output") == [("escape",)]
    conn.rollback()
    ids = db.sql("SELECT __pgs_row_id FROM st")
    run_conn = db.connect()
    run(run_conn, "SET extra_float_digits = 0")
    run(run_conn, "SELECT pgstream.refresh_stream_table('st')")
    assert db.sql("SELECT __pgs_row_id FROM st") == ids, "row ids do not depend on session output settings"
    assert db.sql("SELECT last_rows_inserted, last_rows_deleted FROM pgstream.pgs_stream_tables") == [(0, 0)]


def test_scheduler_status_is_visible_to_ordinary_users(db, alice):
    role, conn = alice
    run(conn, "SELECT pgstream.create_stream_table('alice.st', 'SELECT a FROM public.src', '1s', 'FULL')")
    deadline = time.time() + 20
    while time.time() < deadline and not run(conn, "SELECT pgstream.scheduler_running()")[0][0]:
        time.sleep(0.1)
    assert run(conn, "SELECT scheduler_running FROM pgstream.pg_stat_stream_tables") == [(True,)]


def test_a_failure_waits_a_schedule_interval_before_the_retry(db):
    db.sql("CREATE TABLE src (a int)")
    db.sql("SELECT pgstream.create_stream_table('st', 'SELECT a FROM src', '3s', 'FULL')")
    db.sql("ALTER TABLE src RENAME COLUMN a TO b")
    deadline = time.time() + 20
    while time.time() < deadline and db.value("SELECT failed_refreshes FROM pgstream.pgs_stream_tables") == 0:
        time.sleep(0.05)
    assert db.value("SELECT failed_refreshes FROM pgstream.pgs_stream_tables") == 1
    time.sleep(1.5)
    assert db.value("SELECT failed_refreshes FROM pgstream.pgs_stream_tables") == 1, "retried before its schedule"


def test_a_swap_that_would_read_itself_is_refused(db):
    db.sql("CREATE TABLE src (a int)")
    full = json.dumps({"refresh_mode": "FULL"})
    db.sql("SELECT pgstream_dbt.materialize('a', 'SELECT a FROM src', %s::jsonb)", (full,))
    err = db.error("SELECT pgstream_dbt.materialize('a', 'SELECT a, a AS b FROM a', %s::jsonb)", (full,))
    assert err.pgcode == "42P17" and "public.a -> public.a" in err.diag.message_primary


def test_a_swap_keeps_the_owning_role(db, alice):
    role, conn = alice
    owners = db.name + "_owners"
    db.sql(f'CREATE ROLE "{owners}"')
    try:
        db.sql(f'GRANT "{owners}" TO "{role}"')
        db.sql(f'GRANT CREATE, USAGE ON SCHEMA alice TO "{owners}"')
        db.sql(f'GRANT SELECT ON src TO "{owners}"')
        full = json.dumps({"refresh_mode": "FULL"})
        run(conn, f'SET ROLE "{owners}"')
        run(conn, "SELECT pgstream_dbt.materialize('alice.t', 'SELECT a FROM public.src', %s::jsonb)", (full,))
        run(conn, f'SET ROLE "{role}"')
        result = run(conn, "SELECT pgstream_dbt.materialize('alice.t', 'SELECT a, a + 1 AS b FROM public.src', %s::jsonb)", (full,))[0][0]
        assert result["action"] == "recreated" and result["in_place"] is False
        assert db.value("SELECT tableowner FROM pg_tables WHERE schemaname = 'alice' AND tablename = 't'") == owners
    finally:
        db.sql("DROP TABLE IF EXISTS alice.t")
        db.sql(f'DROP OWNED BY "{owners}"')
        db.sql(f'DROP ROLE "{owners}"')


def test_a_non_superuser_owns_differential_aggregates_and_cte_chains(db, alice):
    """Inner stages and aggregate state live in pgstream_changes, filled under the owner's rights."""
    role, conn = alice
    run(conn, "CREATE TABLE alice.sales (id int PRIMARY KEY, g int, v int)")
    run(conn, "INSERT INTO alice.sales SELECT g, g % 4, g FROM generate_series(1, 40) g")
    queries = {
        "alice.per_group": "SELECT g, count(*) AS n, sum(v) AS s, min(v) AS lo FROM alice.sales GROUP BY g",
        "alice.chain": ("WITH per_g AS (SELECT g, sum(v) AS s FROM alice.sales GROUP BY g) "
                        "SELECT count(*) AS groups, max(s) AS top FROM per_g"),
    }
    for name, query in queries.items():
        run(conn, "SELECT pgstream.create_stream_table(%s, %s)", (name, query))
    run(conn, "UPDATE alice.sales SET v = v + 100 WHERE id % 5 = 0; DELETE FROM alice.sales WHERE id = 7")
    for name, query in queries.items():
        run(conn, "SELECT pgstream.refresh_stream_table(%s)", (name,))
        assert run(conn, "SELECT last_refresh_kind FROM pgstream.pg_stat_stream_tables "
                         "WHERE stream_table = %s::regclass", (name,)) == [("DIFFERENTIAL",)]
        assert db.multiset_difference(name, query) == 0
    # The schema's other tables stay closed to the owner.
    with pytest.raises(Exception) as caught:
        run(conn, "SELECT count(*) FROM pgstream_changes.statements")
    assert caught.value.pgcode == "42501"
