"""Parallel refresh: a database's due stream tables are refreshed by up to
pgstream.max_parallel_refreshes refresh workers at once, readers after what they read (see also
test_scheduler.py's chain, which runs under the default of one worker per core); the workers stay
between ticks and stop with their scheduler worker; a refresh worker that is terminated stops
neither the scheduler nor the other refreshes."""

import time

import pytest

from conftest import wait_for

REFRESHER = "pg_stream_dbt refresh"
SCHEDULER = "pg_stream_dbt scheduler"


def set_limit(db, value):
    if value is None:
        db.sql("ALTER SYSTEM RESET pgstream.max_parallel_refreshes")
    else:
        db.sql(f"ALTER SYSTEM SET pgstream.max_parallel_refreshes = {int(value)}")
    db.sql("SELECT pg_reload_conf()")


@pytest.fixture
def slow_tables(db):
    """Six stream tables whose refresh takes 0.4 s each (a volatile function: recomputed on
    every scheduled refresh, never skipped)."""
    db.sql("CREATE TABLE src (k int)")
    db.sql("INSERT INTO src VALUES (1)")
    db.sql("CREATE FUNCTION slow_one() RETURNS int VOLATILE LANGUAGE sql AS 'SELECT 1 FROM pg_sleep(0.4)'")
    names = [f"p{i}" for i in range(1, 7)]
    for name in names:
        db.sql("SELECT pgstream.create_stream_table(%s, 'SELECT k, slow_one() AS one FROM src', '1s', 'FULL')",
               (name,))
    yield names
    set_limit(db, None)


def refreshers(db, busy=True):
    """The refresh workers of this database (those refreshing a stream table now, with busy)."""
    return db.sql("SELECT pid FROM pg_stat_activity WHERE backend_type = %s AND datname = current_database()"
                  + (" AND state = 'active' AND query LIKE 'refresh of stream table #%%'" if busy else ""),
                  (REFRESHER,))


def most_at_once(db, seconds):
    most, deadline = 0, time.time() + seconds
    while time.time() < deadline:
        most = max(most, len(refreshers(db)))
        time.sleep(0.02)
    return most


def refresh_counts(db):
    return dict(db.sql("SELECT pgs_name, total_refreshes FROM pgstream.pgs_stream_tables"))


def every_table_refreshes(db, tables, timeout=20):
    """Waits until each of `tables` has refreshed again (no fixed window: a slow machine takes
    longer per tick); returns the most busy refresh workers seen meanwhile."""
    before, most = refresh_counts(db), 0

    def done():
        nonlocal most
        most = max(most, len(refreshers(db)))
        after = refresh_counts(db)
        return all(after[name] > before[name] for name in tables)

    wait_for(done, timeout=timeout, what=f"every table refreshed again after {before}")
    return most


def test_due_tables_are_refreshed_by_workers_up_to_the_limit(db, slow_tables):
    set_limit(db, 2)
    wait_for(lambda: len(refreshers(db)) > 0, what="refresh workers")
    assert most_at_once(db, 4) == 2
    set_limit(db, 3)
    time.sleep(2)  # the tick under way finishes with the old limit
    assert most_at_once(db, 4) == 3
    assert every_table_refreshes(db, slow_tables) <= 3
    # A lowered limit takes effect: the worker beyond it leaves.
    set_limit(db, 2)
    wait_for(lambda: len(refreshers(db, busy=False)) <= 2, what="the third refresh worker to leave")
    assert most_at_once(db, 3) == 2
    failed = db.value("SELECT sum(failed_refreshes) FROM pgstream.pgs_stream_tables")
    assert failed == 0


def test_a_limit_of_one_refreshes_in_the_scheduler_worker_itself(db, slow_tables):
    set_limit(db, 1)
    # The refresh workers of the earlier ticks are asked to leave (once the tick under way,
    # started under the default limit, has ended).
    wait_for(lambda: not refreshers(db, busy=False), what="the refresh workers to leave")
    assert most_at_once(db, 3) == 0
    assert every_table_refreshes(db, slow_tables) == 0


def test_refresh_workers_stay_between_ticks_and_stop_with_their_scheduler(db, slow_tables):
    set_limit(db, 2)
    wait_for(lambda: len(refreshers(db)) > 0, what="refresh workers")
    time.sleep(1)
    first = {pid for (pid,) in refreshers(db, busy=False)}
    assert len(first) == 2, first
    every_table_refreshes(db, slow_tables)
    every_table_refreshes(db, slow_tables)  # several ticks
    assert {pid for (pid,) in refreshers(db, busy=False)} == first, "the same warm workers"
    db.sql("ALTER SYSTEM SET pgstream.enabled = off")
    db.sql("SELECT pg_reload_conf()")
    try:
        wait_for(lambda: not refreshers(db, busy=False), what="the refresh workers to stop with the scheduler")
    finally:
        db.sql("ALTER SYSTEM RESET pgstream.enabled")
        db.sql("SELECT pg_reload_conf()")


def test_a_terminated_refresh_worker_stops_neither_the_scheduler_nor_the_others(db, slow_tables):
    set_limit(db, 2)
    wait_for(lambda: db.value("SELECT count(*) FROM pg_stat_activity WHERE backend_type = %s "
                              "AND datname = current_database()", (SCHEDULER,)) == 1, what="the scheduler")
    scheduler = db.value("SELECT pid FROM pg_stat_activity WHERE backend_type = %s "
                         "AND datname = current_database()", (SCHEDULER,))
    victims = wait_for(lambda: refreshers(db), what="a refresh worker")
    db.sql("SELECT pg_terminate_backend(%s)", (victims[0][0],))
    before = refresh_counts(db)
    # Another worker takes the terminated one's place; every table refreshes again.
    wait_for(lambda: all(refresh_counts(db)[name] > before[name] for name in slow_tables),
             timeout=15, what=f"every table refreshed after {before}")
    assert db.value("SELECT pid FROM pg_stat_activity WHERE backend_type = %s "
                    "AND datname = current_database()", (SCHEDULER,)) == scheduler
    # Terminated is not failed: nothing recorded, the table refreshed on a later tick.
    assert db.value("SELECT sum(consecutive_errors) FROM pgstream.pgs_stream_tables") == 0
