"""Readers during a refresh, refreshes racing each other, and failing refreshes."""

import threading
import time


def make_source(db, rows=100):
    db.sql("CREATE TABLE src (id int, v int)")
    db.sql(f"INSERT INTO src SELECT g, g % 7 FROM generate_series(1, {rows}) g")
    db.sql("SELECT pgstream.create_stream_table('st', 'SELECT id, v FROM src', '1m', 'FULL')")


def test_reader_sees_old_rows_while_a_refresh_is_uncommitted(db):
    make_source(db)
    db.sql("DELETE FROM src WHERE id <= 60")
    db.sql("UPDATE src SET v = -1")
    writer = db.connect(autocommit=False)
    with writer.cursor() as cur:
        cur.execute("SELECT pgstream.refresh_stream_table('st')")  # applied, not committed
    reader = db.connect()
    with reader.cursor() as cur:
        cur.execute("SET lock_timeout = '2s'")
        cur.execute("SELECT count(*), count(*) FILTER (WHERE v = -1) FROM st")
        assert cur.fetchone() == (100, 0), "a reader must see the old rows, not block or see an empty table"
    writer.commit()
    assert db.sql("SELECT count(*), count(*) FILTER (WHERE v = -1) FROM st") == [(40, 40)]


def test_reader_is_not_blocked_during_a_slow_refresh(db):
    db.sql("CREATE TABLE delay (seconds float8)")
    db.sql("INSERT INTO delay VALUES (0)")
    db.sql(
        "CREATE FUNCTION slow_pass() RETURNS bool LANGUAGE plpgsql VOLATILE AS "
        "$$ BEGIN PERFORM pg_sleep((SELECT seconds FROM delay)); RETURN true; END $$"
    )
    db.sql("CREATE TABLE src (id int)")
    db.sql("INSERT INTO src SELECT generate_series(1, 10)")
    db.sql("SELECT pgstream.create_stream_table('st', 'SELECT id FROM src WHERE (SELECT slow_pass())', '1m', 'FULL')")
    db.sql("UPDATE delay SET seconds = 2")
    db.sql("INSERT INTO src SELECT generate_series(11, 20)")
    errors = []

    def refresh():
        try:
            conn = db.connect()
            with conn.cursor() as cur:
                cur.execute("SELECT pgstream.refresh_stream_table('st')")
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    worker = threading.Thread(target=refresh)
    worker.start()
    time.sleep(0.5)
    reader = db.connect()
    with reader.cursor() as cur:
        cur.execute("SET lock_timeout = '500ms'")
        cur.execute("SELECT count(*) FROM st")
        seen_during = cur.fetchone()[0]
    assert worker.is_alive(), "the refresh should still be running when the reader reads"
    worker.join()
    assert not errors, errors
    assert seen_during == 10
    assert db.value("SELECT count(*) FROM st") == 20


def test_two_concurrent_refreshes_serialize_and_apply_once(db):
    make_source(db)
    db.sql("INSERT INTO src SELECT g, 0 FROM generate_series(101, 150) g")
    first = db.connect(autocommit=False)
    with first.cursor() as cur:
        cur.execute("SELECT pgstream.refresh_stream_table('st')")
    second_done = threading.Event()
    errors = []

    def second_refresh():
        try:
            conn = db.connect()
            with conn.cursor() as cur:
                cur.execute("SET application_name = 'second_refresh'")
                cur.execute("SELECT pgstream.refresh_stream_table('st')")
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            second_done.set()

    worker = threading.Thread(target=second_refresh)
    worker.start()
    deadline = time.time() + 10
    waiting = False
    while time.time() < deadline and not waiting:
        waiting = db.value(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'second_refresh' "
            "AND wait_event_type = 'Lock' AND wait_event = 'advisory'"
        ) == 1
        time.sleep(0.05)
    assert waiting, "the second refresh must wait for the first"
    assert not second_done.is_set()
    first.commit()
    worker.join(timeout=30)
    assert not errors, errors
    assert db.value("SELECT count(*) FROM st") == 150
    assert db.multiset_difference("st", "SELECT id, v FROM src") == 0
    assert db.sql("SELECT total_refreshes, last_rows_inserted, last_rows_deleted FROM pgstream.pgs_stream_tables") == [(3, 0, 0)]


def test_failing_refresh_is_recorded_and_raised(db):
    make_source(db)
    db.sql("ALTER TABLE src RENAME COLUMN v TO w")
    err = db.error("SELECT pgstream.refresh_stream_table('st')")
    assert err.pgcode == "42703" and '"v"' in err.diag.message_primary
    row = db.sql(
        "SELECT total_refreshes, failed_refreshes, consecutive_errors, last_error, last_error_at IS NOT NULL "
        "FROM pgstream.pg_stat_stream_tables"
    )[0]
    assert row[:3] == (2, 1, 1) and '"v"' in row[3] and row[4]
    db.error("SELECT pgstream.refresh_stream_table('st')")
    assert db.value("SELECT consecutive_errors FROM pgstream.pgs_stream_tables") == 2
    assert db.value("SELECT count(*) FROM st") == 100, "a failed refresh leaves the old rows"
    db.sql("ALTER TABLE src RENAME COLUMN w TO v")
    db.sql("SELECT pgstream.refresh_stream_table('st')")
    assert db.sql("SELECT consecutive_errors, failed_refreshes FROM pgstream.pgs_stream_tables") == [(0, 2)]


def test_failure_inside_an_open_transaction_is_still_recorded(db):
    make_source(db)
    db.sql("ALTER TABLE src RENAME COLUMN v TO w")
    conn = db.connect(autocommit=False)
    with conn.cursor() as cur:
        cur.execute("SELECT 1")
        try:
            cur.execute("SELECT pgstream.refresh_stream_table('st')")
            raise AssertionError("refresh should fail")
        except Exception:  # noqa: BLE001 - the error is expected
            conn.rollback()
    assert db.value("SELECT consecutive_errors FROM pgstream.pgs_stream_tables") == 1
