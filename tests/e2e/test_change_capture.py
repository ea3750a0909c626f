"""Change capture: statement triggers on sources record that they changed, so a refresh with
nothing new is skipped; DDL, TRUNCATE, uncapturable sources and non-deterministic queries
always recompute; the triggers come and go with the stream tables and DROP EXTENSION."""

import pytest

from conftest import connect


def last_kind(db, name="st"):
    return db.value("SELECT last_refresh_kind FROM pgstream.pgs_stream_tables WHERE pgs_name = %s", (name,))


def make(db, query="SELECT a FROM src", name="st"):
    """Creates a stream table and refreshes it once: changes made by the creating transaction
    itself (its DDL) are not counted as covered, so the first refresh after create recomputes."""
    db.sql("CREATE TABLE IF NOT EXISTS src (a int)")
    db.sql(f"SELECT pgstream.create_stream_table('{name}', %s, '1m', 'FULL')", (query,))
    db.sql(f"SELECT pgstream.refresh_stream_table('{name}')")


def test_a_refresh_with_no_source_change_is_skipped(db):
    make(db)
    assert last_kind(db) == "FULL"
    db.sql("SELECT pgstream.refresh_stream_table('st')")
    assert last_kind(db) == "SKIPPED"
    assert db.value("SELECT total_refreshes FROM pgstream.pgs_stream_tables") == 3
    db.sql("INSERT INTO src VALUES (1)")
    db.sql("SELECT pgstream.refresh_stream_table('st')")
    assert last_kind(db) == "FULL" and db.value("SELECT count(*) FROM st") == 1
    db.sql("UPDATE src SET a = 2 WHERE false")  # a statement that changes no row still counts
    db.sql("SELECT pgstream.refresh_stream_table('st')")
    assert last_kind(db) == "FULL"
    db.sql("TRUNCATE src")
    db.sql("SELECT pgstream.refresh_stream_table('st')")
    assert last_kind(db) == "FULL" and db.value("SELECT count(*) FROM st") == 0
    assert db.value("SELECT count(*) FROM pgstream_changes.statements WHERE source_relid = 'src'::regclass") == 0


def test_an_uncommitted_change_is_picked_up_after_it_commits(db):
    make(db)
    writer = db.connect(autocommit=False)
    with writer.cursor() as cur:
        cur.execute("INSERT INTO src VALUES (7)")
    db.sql("SELECT pgstream.refresh_stream_table('st')")
    assert last_kind(db) == "SKIPPED"
    writer.commit()
    db.sql("SELECT pgstream.refresh_stream_table('st')")
    assert last_kind(db) == "FULL" and db.value("SELECT count(*) FROM st") == 1


def test_a_change_in_the_refreshing_transaction_is_seen(db):
    make(db)
    conn = db.connect(autocommit=False)
    with conn.cursor() as cur:
        cur.execute("INSERT INTO src VALUES (3)")
        cur.execute("SELECT pgstream.refresh_stream_table('st')")
        cur.execute("SELECT count(*) FROM st")
        assert cur.fetchone()[0] == 1
    conn.commit()
    # Changes of the refreshing transaction are not taken as covered (it could write more
    # after the refresh), so one more recompute, then nothing.
    db.sql("SELECT pgstream.refresh_stream_table('st')")
    assert last_kind(db) == "FULL"
    db.sql("SELECT pgstream.refresh_stream_table('st')")
    assert last_kind(db) == "SKIPPED"


def test_a_write_after_the_refresh_in_the_same_transaction_is_not_lost(db):
    make(db)
    conn = db.connect(autocommit=False)
    with conn.cursor() as cur:
        cur.execute("SELECT pgstream.refresh_stream_table('st')")
        cur.execute("INSERT INTO src VALUES (9)")
    conn.commit()
    db.sql("SELECT pgstream.refresh_stream_table('st')")
    assert db.value("SELECT count(*) FROM st") == 1


def test_queries_that_can_change_by_themselves_always_recompute(db):
    db.sql("CREATE TABLE src (a int)")
    db.sql("INSERT INTO src VALUES (1)")
    db.sql("CREATE VIEW recent AS SELECT a FROM src WHERE now() > '2000-01-01'")
    make(db, "SELECT a, now() AS seen_at FROM src", name="clock")
    make(db, "SELECT a FROM recent", name="through_view")
    make(db, "SELECT a, CURRENT_DATE AS d FROM src", name="today")
    for name in ("clock", "through_view", "today"):
        assert db.value("SELECT depends_only_on_sources FROM pgstream.pgs_stream_tables WHERE pgs_name = %s", (name,)) is False
        db.sql(f"SELECT pgstream.refresh_stream_table('{name}')")
        assert last_kind(db, name) == "FULL"


def test_ddl_on_a_source_view_counts_as_a_change(db):
    db.sql("CREATE TABLE src (a int)")
    db.sql("INSERT INTO src VALUES (1), (2)")
    db.sql("CREATE VIEW v AS SELECT a FROM src WHERE a > 1")
    make(db, "SELECT a FROM v")
    db.sql("SELECT pgstream.refresh_stream_table('st')")
    assert last_kind(db) == "SKIPPED"
    db.sql("CREATE OR REPLACE VIEW v AS SELECT a FROM src WHERE a > 0")
    db.sql("SELECT pgstream.refresh_stream_table('st')")
    assert last_kind(db) == "FULL" and db.value("SELECT count(*) FROM st") == 2


def test_uncapturable_sources_always_recompute(db):
    db.sql("CREATE TABLE src (a int)")
    db.sql("CREATE MATERIALIZED VIEW mv AS SELECT a FROM src")
    make(db, "SELECT a FROM mv")
    db.sql("SELECT pgstream.refresh_stream_table('st')")
    assert last_kind(db) == "FULL"
    assert db.value("SELECT status FROM pgstream.check_cdc_health() WHERE source_name = 'mv'").startswith("not capturable (materialized view)")


def test_triggers_follow_the_stream_tables_and_a_disabled_one_is_not_trusted(db):
    make(db)
    assert db.sql("SELECT source_name, trigger_present, status FROM pgstream.check_cdc_health()") == [("src", True, "ok")]
    make(db, "SELECT a FROM src", name="st2")
    db.sql("SELECT pgstream.refresh_stream_table('st')")
    db.sql("ALTER TABLE src DISABLE TRIGGER pgstream_capture")
    db.sql("SELECT pgstream.refresh_stream_table('st')")
    assert last_kind(db) == "FULL"
    assert "not enabled ALWAYS" in db.value("SELECT status FROM pgstream.check_cdc_health()")
    db.sql("ALTER TABLE src ENABLE ALWAYS TRIGGER pgstream_capture")
    db.sql("SELECT pgstream.drop_stream_table('st')")
    assert db.value("SELECT count(*) FROM pg_trigger WHERE tgname = 'pgstream_capture'") == 1
    db.sql("DROP TABLE st2")  # a plain DROP TABLE of the last reader
    assert db.value("SELECT count(*) FROM pg_trigger WHERE tgname = 'pgstream_capture'") == 0


def test_changes_are_captured_under_replica_mode(db):
    make(db)
    db.sql("SELECT pgstream.refresh_stream_table('st')")
    conn = db.connect()
    with conn.cursor() as cur:
        cur.execute("SET session_replication_role = replica")
        cur.execute("INSERT INTO src VALUES (5)")
    db.sql("SELECT pgstream.refresh_stream_table('st')")
    assert last_kind(db) == "FULL" and db.value("SELECT count(*) FROM st") == 1


def test_drop_extension_removes_the_capture_triggers(db):
    make(db)
    db.sql("DROP EXTENSION pg_stream_dbt")
    assert db.value("SELECT count(*) FROM pg_trigger WHERE tgname = 'pgstream_capture'") == 0
    db.sql("INSERT INTO src VALUES (1)")  # writes keep working
    assert db.value("SELECT count(*) FROM st") == 0


def test_readers_only_need_select_and_cannot_see_the_change_records(db):
    role = db.name + "_reader"
    db.sql(f'CREATE ROLE "{role}" LOGIN')
    try:
        db.sql("CREATE TABLE src (a int)")
        db.sql(f'GRANT SELECT ON src TO "{role}"')
        db.sql(f'CREATE SCHEMA mine AUTHORIZATION "{role}"')
        conn = connect(db.name)
        with conn.cursor() as cur:
            cur.execute(f'SET ROLE "{role}"')
            cur.execute("SELECT pgstream.create_stream_table('mine.st', 'SELECT a FROM public.src', '1m', 'FULL')")
            with pytest.raises(Exception) as caught:
                cur.execute("SELECT count(*) FROM pgstream_changes.statements")
            assert caught.value.pgcode == "42501"
        conn.close()
        db.sql("INSERT INTO src VALUES (1)")  # the superuser writes; the trigger records it
        assert db.value("SELECT trigger_present FROM pgstream.check_cdc_health()") is True
    finally:
        db.sql("DROP SCHEMA IF EXISTS mine CASCADE")
        db.sql(f'DROP OWNED BY "{role}"')
        db.sql(f'DROP ROLE "{role}"')
