"""Rules applied when a stream table is defined: minimum schedule, the search_path its query
is resolved with, and no cycles among stream tables."""

import json


def test_schedules_shorter_than_the_minimum_are_refused(db):
    db.sql("CREATE TABLE src (a int)")
    db.sql("SET pgstream.min_schedule_seconds = 30")
    err = db.error("SELECT pgstream.create_stream_table('st', 'SELECT a FROM src', '10s', 'FULL')")
    assert err.pgcode == "22023" and "pgstream.min_schedule_seconds (30 seconds)" in err.diag.message_primary
    db.sql("SELECT pgstream.create_stream_table('st', 'SELECT a FROM src', '30s', 'FULL')")
    err = db.error("SELECT pgstream.alter_stream_table('st', schedule => '29s')")
    assert err.pgcode == "22023"
    err = db.error(
        "SELECT pgstream_dbt.materialize('st', 'SELECT a FROM src', %s::jsonb)",
        (json.dumps({"refresh_mode": "FULL", "schedule": "5s"}),),
    )
    assert err.pgcode == "22023"
    assert db.value("SELECT schedule FROM pgstream.pgs_stream_tables") == "30s"
    db.sql("SELECT pgstream.alter_stream_table('st', schedule => '* * * * *')")  # cron: every 60s


def test_the_query_keeps_the_search_path_it_was_created_with(db):
    db.sql("CREATE SCHEMA sales")
    db.sql("CREATE TABLE sales.orders (a int)")
    db.sql("INSERT INTO sales.orders VALUES (1)")
    db.sql("CREATE TABLE public.orders (a int)")  # a same-named table elsewhere
    conn = db.connect()
    with conn.cursor() as cur:
        cur.execute("SET search_path = sales, public")
        cur.execute("SELECT pgstream.create_stream_table('st', 'SELECT a FROM orders', '1m', 'FULL')")
    assert db.value("SELECT search_path FROM pgstream.pgs_stream_tables") == "sales, public"
    db.sql("INSERT INTO sales.orders VALUES (2)")
    db.sql("SELECT pgstream.refresh_stream_table('sales.st')")  # this session: search_path public
    assert db.value("SELECT count(*) FROM sales.st") == 2
    assert db.value("SHOW search_path") == '"$user", public', "the caller's setting is restored"


def test_a_redefinition_that_would_close_a_cycle_is_refused(db):
    db.sql("CREATE TABLE src (a int)")
    full = json.dumps({"refresh_mode": "FULL"})
    db.sql("SELECT pgstream_dbt.materialize('a', 'SELECT a FROM src', %s::jsonb)", (full,))
    db.sql("SELECT pgstream_dbt.materialize('b', 'SELECT a FROM a', %s::jsonb)", (full,))
    db.sql("SELECT pgstream_dbt.materialize('c', 'SELECT a FROM b', %s::jsonb)", (full,))
    err = db.error("SELECT pgstream_dbt.materialize('a', 'SELECT a FROM c', %s::jsonb)", (full,))
    assert err.pgcode == "42P17"
    assert "public.a -> public.c -> public.b -> public.a" in err.diag.message_primary
    assert db.value("SELECT defining_query FROM pgstream.pgs_stream_tables WHERE pgs_name = 'a'") == "SELECT a FROM src"
