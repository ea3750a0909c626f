"""Change capture: statement triggers on sources record that they changed, so a refresh with
nothing new is skipped (also after DDL that leaves the query's meaning as it was); DDL that
changes it, TRUNCATE, uncapturable sources and non-deterministic queries always recompute; the triggers come and go with the stream tables and DROP EXTENSION."""

import time

import pytest

from conftest import connect, wait_for


def last_kind(db, name="st"):
    return db.value("SELECT last_refresh_kind FROM pgstream.pgs_stream_tables WHERE pgs_name = %s", (name,))


def make(db, query="SELECT a FROM src", name="st"):
    """Creates a stream table and refreshes it once: changes made by the creating transaction
    itself (its DDL) are not counted as covered, so the first refresh after create recomputes."""
    db.sql("CREATE TABLE IF NOT EXISTS src (a int)")
    db.sql(f"SELECT pgstream.create_stream_table('{name}', %s, '1m', 'FULL')", (query,))
    db.sql(f"SELECT pgstream.refresh_stream_table('{name}')")


def refreshes(db, name="st"):
    return db.value("SELECT total_refreshes FROM pgstream.pgs_stream_tables WHERE pgs_name = %s", (name,))


def next_scheduled(db, name="st", timeout=20):
    """Waits for the scheduler's next refresh of `name`; returns its kind."""
    start = refreshes(db, name)
    deadline = time.time() + timeout
    while time.time() < deadline:
        if refreshes(db, name) > start:
            return last_kind(db, name)
        time.sleep(0.05)
    raise AssertionError(f"no scheduled refresh of {name} within {timeout}s")


def settled(db, name="st"):
    """Waits until the scheduler skips `name` (everything so far is covered)."""
    for _ in range(20):
        if next_scheduled(db, name) == "SKIPPED":
            return
    raise AssertionError(f"{name} never settled")


def scheduled(db, query="SELECT a FROM src", name="st"):
    db.sql("CREATE TABLE IF NOT EXISTS src (a int)")
    db.sql(f"SELECT pgstream.create_stream_table('{name}', %s, '1s', 'FULL')", (query,))
    settled(db, name)


def test_a_scheduled_refresh_with_no_source_change_is_skipped(db):
    scheduled(db)
    assert db.value("SELECT last_rows_inserted + last_rows_deleted FROM pgstream.pgs_stream_tables") == 0
    db.sql("INSERT INTO src VALUES (1)")
    assert next_scheduled(db) == "FULL" and db.value("SELECT count(*) FROM st") == 1
    assert next_scheduled(db) == "SKIPPED"
    db.sql("UPDATE src SET a = 2 WHERE false")  # a statement that changes no row still counts
    assert next_scheduled(db) == "FULL"
    db.sql("TRUNCATE src")
    assert next_scheduled(db) == "FULL" and db.value("SELECT count(*) FROM st") == 0
    assert next_scheduled(db) == "SKIPPED"
    assert db.value("SELECT count(*) FROM pgstream_changes.statements WHERE source_relid = 'src'::regclass") == 0


def test_ddl_that_leaves_the_query_as_it_was_is_skipped_too(db):
    db.sql("CREATE TABLE src (a int); CREATE VIEW src_view AS SELECT a FROM src")
    scheduled(db, "SELECT a FROM src_view")
    db.sql("CREATE TABLE unrelated (x int); CREATE OR REPLACE VIEW src_view AS SELECT a FROM src")
    assert next_scheduled(db) == "SKIPPED"
    db.sql("CREATE OR REPLACE VIEW src_view AS SELECT a + 1 AS a FROM src")
    assert next_scheduled(db) == "FULL"


def test_a_manual_refresh_always_recomputes(db):
    scheduled(db)
    db.sql("INSERT INTO st (a, __pgs_row_id) VALUES (99, 1)")  # someone writes to it by hand
    db.sql("SELECT pgstream.refresh_stream_table('st')")
    assert last_kind(db) == "FULL" and db.value("SELECT count(*) FROM st") == 0


def test_an_uncommitted_change_is_picked_up_after_it_commits(db):
    scheduled(db)
    writer = db.connect(autocommit=False)
    with writer.cursor() as cur:
        cur.execute("INSERT INTO src VALUES (7)")
    assert next_scheduled(db) == "SKIPPED"
    writer.commit()
    wait_for(lambda: db.value("SELECT count(*) FROM st") == 1, what="st to have 1 rows")


def test_writes_around_a_refresh_in_one_transaction_are_not_lost(db):
    scheduled(db)
    conn = db.connect(autocommit=False)
    with conn.cursor() as cur:
        cur.execute("INSERT INTO src VALUES (1)")
        db.sql("CREATE TABLE unrelated (x int)")  # another transaction commits meanwhile
        cur.execute("SELECT pgstream.refresh_stream_table('st')")
        cur.execute("INSERT INTO src VALUES (2)")
    conn.commit()
    wait_for(lambda: db.value("SELECT count(*) FROM st") == 2, what="st to have 2 rows")


def test_ddl_counts_as_a_change_and_new_sources_are_followed(db):
    db.sql("CREATE TABLE src (a int)")
    db.sql("CREATE TABLE other (a int)")
    db.sql("INSERT INTO src VALUES (1), (2)")
    db.sql("CREATE VIEW v AS SELECT a FROM src WHERE a > 1")
    scheduled(db, "SELECT a FROM v")
    db.sql("CREATE OR REPLACE VIEW v AS SELECT a FROM src WHERE a > 0")
    wait_for(lambda: db.value("SELECT count(*) FROM st") == 2, what="st to have 2 rows")
    db.sql("CREATE OR REPLACE VIEW v AS SELECT a FROM other")
    wait_for(lambda: db.value("SELECT count(*) FROM st") == 0, what="st to have 0 rows")
    settled(db)
    assert db.sql("SELECT source_name FROM pgstream.pgs_dependencies ORDER BY 1") == [("other",), ("v",)]
    db.sql("INSERT INTO other VALUES (5)")  # the new base table is captured
    wait_for(lambda: db.value("SELECT count(*) FROM st") == 1, what="st to have 1 rows")


def test_sources_whose_changes_a_statement_trigger_cannot_see_are_not_trusted(db):
    db.sql("CREATE UNLOGGED TABLE u (a int)")
    db.sql("CREATE TABLE parted (a int) PARTITION BY RANGE (a)")
    db.sql("CREATE TABLE part1 PARTITION OF parted FOR VALUES FROM (0) TO (100)")
    db.sql("CREATE TABLE secured (a int)")
    db.sql("ALTER TABLE secured ENABLE ROW LEVEL SECURITY")
    for name, source in (("s1", "u"), ("s2", "part1"), ("s3", "secured"), ("s4", "pg_class")):
        db.sql(f"SELECT pgstream.create_stream_table('{name}', 'SELECT count(*) AS n FROM {source}', '1m', 'FULL')")
    assert dict(db.sql("SELECT source_name, status FROM pgstream.check_cdc_health()")) == {
        "u": "not capturable (unlogged table): readers always recompute",
        "part1": "not capturable (partition): readers always recompute",
        "secured": "not capturable (row-level security): readers always recompute",
    }
    # PostgreSQL records no dependency on a system catalog; the plan shows it is read.
    assert db.value("SELECT depends_only_on_sources FROM pgstream.pgs_stream_tables WHERE pgs_name = 's4'") is False
    assert db.value("SELECT count(*) FROM pg_trigger WHERE tgname = 'pgstream_capture'") == 0


def test_queries_that_can_change_by_themselves_always_recompute(db):
    db.sql("CREATE TABLE src (a int)")
    db.sql("INSERT INTO src VALUES (1)")
    db.sql("CREATE VIEW recent AS SELECT a FROM src WHERE now() > '2000-01-01'")
    queries = {
        "clock": "SELECT a, now() AS seen_at FROM src",
        "through_view": "SELECT a FROM recent",
        "today": "SELECT a, CURRENT_DATE AS d FROM src",
    }
    for name, query in queries.items():
        db.sql(f"SELECT pgstream.create_stream_table('{name}', %s, '1s', 'FULL')", (query,))
    for name in queries:
        assert db.value("SELECT depends_only_on_sources FROM pgstream.pgs_stream_tables WHERE pgs_name = %s", (name,)) is False
        assert next_scheduled(db, name) == "FULL"
        assert next_scheduled(db, name) == "FULL"
    db.sql("SELECT pgstream.create_stream_table('plain', 'SELECT a FROM src', '1m', 'FULL')")
    assert db.value("SELECT depends_only_on_sources FROM pgstream.pgs_stream_tables WHERE pgs_name = 'plain'") is True


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
    db.sql("ALTER TABLE src DISABLE TRIGGER pgstream_capture")
    assert "not enabled ALWAYS" in db.value("SELECT status FROM pgstream.check_cdc_health()")
    db.sql("ALTER TABLE src ENABLE ALWAYS TRIGGER pgstream_capture")
    db.sql("SELECT pgstream.drop_stream_table('st')")
    assert db.value("SELECT count(*) FROM pg_trigger WHERE tgname = 'pgstream_capture'") == 1
    db.sql("DROP TABLE st2")  # a plain DROP TABLE of the last reader
    assert db.value("SELECT count(*) FROM pg_trigger WHERE tgname = 'pgstream_capture'") == 0


def test_writes_made_while_the_capture_trigger_was_gone_are_not_skipped(db):
    """Scheduled refreshes after the capture trigger was dropped (and rows written meanwhile) put
    the trigger back and recompute, every reader's: DDL alone would be skipped, but those writes
    left no change record to show (the drop counts as a truncation of the source)."""
    scheduled(db)
    scheduled(db, "SELECT a FROM src WHERE a > 0", name="st2")
    db.sql("DROP TRIGGER pgstream_capture ON src")
    db.sql("INSERT INTO src VALUES (7)")
    # (Whichever refreshes first puts the trigger back; the other recomputes all the same.)
    wait_for(lambda: db.value("SELECT count(*) FROM st") == 1 and db.value("SELECT count(*) FROM st2") == 1,
             what="both readers to have the row written while the trigger was gone")
    assert db.value("SELECT count(*) FROM pg_trigger WHERE tgname = 'pgstream_capture'") == 1
    assert next_scheduled(db) == "SKIPPED"


def test_changes_are_captured_under_replica_mode(db):
    scheduled(db)
    conn = db.connect()
    with conn.cursor() as cur:
        cur.execute("SET session_replication_role = replica")
        cur.execute("INSERT INTO src VALUES (5)")
    assert next_scheduled(db) == "FULL" and db.value("SELECT count(*) FROM st") == 1


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
