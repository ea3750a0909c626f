"""Errors raised by PostgreSQL inside the engine (SPI) reach the client as the original error:
its SQLSTATE, message and DETAIL, never a Rust panic or a backtrace. The test cluster runs with
RUST_BACKTRACE=1 in its environment (scripts/cluster.sh), which would put a backtrace into every
such error's DETAIL if the extension let pgrx capture one."""

import re

import psycopg2
import pytest

BACKTRACE = re.compile(r"std::|rust_begin_unwind|LocalKey|libc-start|backtrace|\b\d+: 0x", re.I)


def failure(db, statement):
    with pytest.raises(psycopg2.Error) as caught:
        db.sql(statement)
    return caught.value


def assert_clean(error, sqlstate, message_part, detail_part=None):
    diag = error.diag
    for text in (diag.message_primary, diag.message_detail, diag.message_hint, diag.context):
        assert not BACKTRACE.search(text or ""), f"a backtrace reached the client:\n{text}"
    assert error.pgcode == sqlstate, f"{error.pgcode} {diag.message_primary}"
    assert message_part in diag.message_primary
    if detail_part is not None:
        assert detail_part in (diag.message_detail or ""), diag.message_detail


def test_errors_from_inside_the_engine_are_the_original_errors(db):
    db.sql("CREATE TABLE src (id int PRIMARY KEY, k int, v int)")
    db.sql("INSERT INTO src SELECT g, g % 3, g FROM generate_series(1, 9) g")

    # An error of the initial population inside create_stream_table.
    assert_clean(failure(db, "SELECT pgstream.create_stream_table('boom', 'SELECT 1 / (k - k) AS x FROM src')"),
                 "22012", "division by zero")

    # A duplicate key inside a refresh: a unique index the user put on the stream table.
    db.sql("SELECT pgstream.create_stream_table('per_k', 'SELECT k, sum(v) AS s FROM src GROUP BY k')")
    db.sql("CREATE UNIQUE INDEX per_k_s ON per_k (s)")
    db.sql("UPDATE src SET v = 0; UPDATE src SET v = 1 WHERE id IN (1, 2)")
    assert_clean(failure(db, "SELECT pgstream.refresh_stream_table('per_k')"),
                 "23505", "duplicate key value violates unique constraint \"per_k_s\"", "Key (s)=")
    db.sql("DROP INDEX per_k_s")

    # The same in a FULL refresh.
    db.sql("UPDATE src SET v = id")
    db.sql("SELECT pgstream.create_stream_table('rows', 'SELECT id, v FROM src', '1m', 'FULL')")
    db.sql("CREATE UNIQUE INDEX rows_v ON rows (v)")
    db.sql("UPDATE src SET v = 1 WHERE id IN (1, 2)")
    assert_clean(failure(db, "SELECT pgstream.refresh_stream_table('rows')"), "23505", "rows_v", "Key (v)=")
    db.sql("DROP INDEX rows_v")

    # A permission error: the owner lost SELECT on the source.
    db.sql("DROP ROLE IF EXISTS err_owner")  # (left by an earlier run on this cluster: roles outlive the test database)
    db.sql("CREATE ROLE err_owner LOGIN")
    db.sql("GRANT ALL ON SCHEMA public TO err_owner")
    db.sql("GRANT SELECT ON src TO err_owner")
    db.sql("SET ROLE err_owner")
    db.sql("SELECT pgstream.create_stream_table('mine', 'SELECT id FROM src')")
    db.sql("RESET ROLE")
    db.sql("REVOKE SELECT ON src FROM err_owner")
    assert_clean(failure(db, "SELECT pgstream.refresh_stream_table('mine')"), "42501", "permission denied")

    # A statement timeout in the middle of a refresh.
    db.sql("INSERT INTO src SELECT g, g % 3, g FROM generate_series(10, 20000) g")
    db.sql("SELECT pgstream.create_stream_table('slow', 'SELECT a.k, count(*) AS n FROM src a, src b "
           "WHERE a.id % 1000 = b.id % 1000 GROUP BY a.k', '1m', 'FULL', initialize => false)")
    db.sql("SET statement_timeout = '50ms'")
    assert_clean(failure(db, "SELECT pgstream.refresh_stream_table('slow')"), "57014", "statement timeout")
    db.sql("RESET statement_timeout")

    # A source dropped under a stream table.
    db.sql("CREATE TABLE gone (x int)")
    db.sql("CREATE VIEW gone_v AS SELECT x FROM gone")
    db.sql("SELECT pgstream.create_stream_table('on_gone', 'SELECT x FROM gone_v', '1m', 'FULL')")
    db.sql("DROP VIEW gone_v")
    error = failure(db, "SELECT pgstream.refresh_stream_table('on_gone')")
    assert_clean(error, "42P01", "gone_v")

    # And the session is usable afterwards: nothing was left half done.
    assert db.value("SELECT count(*) FROM per_k") == 3
    assert db.value("SELECT count(*) FROM pgstream.pgs_stream_tables") == 5
