"""A session verifies its stream tables' capture (triggers, buffers, reading views, partitions)
once, and again only after an invalidation of what it read: DDL the event triggers do not record
(on the engine's own buffers) is found by the next refresh in the same session, and a refresh by
another session makes this one verify again. Counted by the calls of the checking functions
(track_functions) in the refreshing transaction. While it trusts that verification, a session
also reuses the plan of the stream table's last refresh for the same changed sources: a view
redefined in another session, and changes of other sources, get a plan of their own."""

from conftest import connect

QUERY = "SELECT id, v FROM src WHERE v > 2"


def _setup(db):
    """st over src, refreshed after changes until this session trusts its verification: the
    first refresh after the create sees the create's DDL records (verified, not kept), the
    second verifies and keeps it."""
    db.sql("CREATE TABLE src (id int PRIMARY KEY, v int); INSERT INTO src SELECT g, g FROM generate_series(1, 10) g")
    db.sql("SELECT pgstream.create_stream_table('st', %s, NULL, 'DIFFERENTIAL')", (QUERY,))
    db.sql("SET track_functions = 'pl'")
    for new_id in (101, 102):
        db.sql("INSERT INTO src VALUES (%s, %s)", (new_id, new_id))
        kind, checks = _refresh_counting_checks(db)
        assert (kind, checks > 0) == ("DIFFERENTIAL", True)
    return db.value("SELECT 'src'::regclass::oid")


def _in_another_session(db, *statements):
    other = connect(db.name)
    with other.cursor() as cur:
        for statement in statements:
            cur.execute(statement)
    other.close()


def _refresh_counting_checks(db, isolation="READ COMMITTED"):
    """Refreshes st in a transaction of its own; returns the refresh kind and how many times the
    capture checks ran in it."""
    # (The view shows calls not yet flushed to the statistics, of this transaction and perhaps
    # earlier ones: read before and after.)
    calls = (
        "SELECT COALESCE(sum(calls), 0) FROM pg_stat_xact_user_functions "
        "WHERE schemaname = 'pgstream' AND funcname IN ('_capture_complete', '_row_capture_current')"
    )
    db.sql(f"BEGIN ISOLATION LEVEL {isolation}")
    before = db.value(calls)
    db.sql("SELECT pgstream.refresh_stream_table('st')")
    checks = db.value(calls) - before
    db.sql("COMMIT")
    kind = db.value("SELECT last_refresh_kind FROM pgstream.pgs_stream_tables WHERE pgs_name = 'st'")
    return kind, checks


def test_capture_is_verified_again_after_ddl_on_its_buffer_that_no_event_trigger_records(db):
    relid = _setup(db)
    db.sql("UPDATE src SET v = v + 1 WHERE id = 4")
    assert _refresh_counting_checks(db) == ("DIFFERENTIAL", 0)  # trusted
    assert _refresh_counting_checks(db) == ("SKIPPED", 0)  # the skip check trusts it too

    db.sql("INSERT INTO src VALUES (12, 12)")  # pending when the buffer is renamed away
    _in_another_session(db, f'ALTER TABLE pgstream_changes."rows_{relid}" RENAME TO "gone_{relid}"')
    # Trusting the earlier verification, the refresh would read a buffer that is not there.
    kind, checks = _refresh_counting_checks(db)
    assert (kind, checks > 0) == ("FULL", True)
    assert db.multiset_difference("st", QUERY) == 0

    db.sql("DELETE FROM src WHERE id = 5")
    kind, checks = _refresh_counting_checks(db)  # after a repair: verified again
    assert (kind, checks > 0) == ("DIFFERENTIAL", True)
    db.sql("INSERT INTO src VALUES (13, 13)")
    assert _refresh_counting_checks(db) == ("DIFFERENTIAL", 0)
    assert db.multiset_difference("st", QUERY) == 0


def test_a_refresh_by_another_session_makes_this_one_verify_again(db):
    _setup(db)
    db.sql("INSERT INTO src VALUES (12, 12)")
    assert _refresh_counting_checks(db) == ("DIFFERENTIAL", 0)
    _in_another_session(db, "INSERT INTO src VALUES (13, 13)", "SELECT pgstream.refresh_stream_table('st')")
    db.sql("INSERT INTO src VALUES (14, 14)")
    kind, checks = _refresh_counting_checks(db)
    assert (kind, checks > 0) == ("DIFFERENTIAL", True)
    assert db.multiset_difference("st", QUERY) == 0


def test_a_view_redefined_in_another_session_is_planned_again(db):
    db.sql("CREATE TABLE src (id int PRIMARY KEY, v int); INSERT INTO src SELECT g, g FROM generate_series(1, 10) g")
    db.sql("CREATE VIEW big AS SELECT id, v FROM src WHERE v > 2")
    db.sql("SELECT pgstream.create_stream_table('st', 'SELECT id, v FROM big', NULL, 'DIFFERENTIAL')")
    for new_id in (101, 102, 103):  # past the first refreshes: verification and plan kept
        db.sql("INSERT INTO src VALUES (%s, %s)", (new_id, new_id))
        db.sql("SELECT pgstream.refresh_stream_table('st')")
    _in_another_session(db, "CREATE OR REPLACE VIEW big AS SELECT id, v FROM src WHERE v > 5",
                        "INSERT INTO src VALUES (104, 1), (105, 50)")
    db.sql("SELECT pgstream.refresh_stream_table('st')")
    assert db.multiset_difference("st", "SELECT id, v FROM src WHERE v > 5") == 0
    db.sql("INSERT INTO src VALUES (106, 4), (107, 60)")
    db.sql("SELECT pgstream.refresh_stream_table('st')")
    assert db.multiset_difference("st", "SELECT id, v FROM src WHERE v > 5") == 0


def test_changes_of_other_sources_are_not_applied_with_a_plan_kept_for_one(db):
    db.sql("CREATE TABLE a (id int PRIMARY KEY, k int); CREATE TABLE b (k int PRIMARY KEY, name text)")
    db.sql("INSERT INTO a SELECT g, g % 5 FROM generate_series(1, 20) g; INSERT INTO b SELECT g, 'n' || g FROM generate_series(0, 4) g")
    query = "SELECT a.id, b.name FROM a JOIN b ON b.k = a.k"
    db.sql("SELECT pgstream.create_stream_table('st', %s, NULL, 'DIFFERENTIAL')", (query,))
    rounds = [
        "INSERT INTO a VALUES (100, 1); UPDATE b SET name = name || '+' WHERE k = 2",  # both
        "INSERT INTO a VALUES (101, 2)",  # a only, twice: its plan kept, then taken
        "INSERT INTO a VALUES (102, 3)",
        "UPDATE b SET name = 'renamed' WHERE k = 3",  # b only
        "UPDATE b SET name = 'again' WHERE k = 1",
        "DELETE FROM a WHERE id = 100",  # a only again
        "INSERT INTO a VALUES (103, 4); UPDATE b SET name = 'both' WHERE k = 4",
    ]
    for statement in rounds:
        db.sql(statement)
        db.sql("SELECT pgstream.refresh_stream_table('st')")
        assert db.multiset_difference("st", query) == 0, statement


def test_a_refresh_in_a_repeatable_read_transaction_always_verifies(db):
    # Its snapshot is the transaction's, perhaps older than invalidations processed since.
    _setup(db)
    for n, isolation in enumerate(("REPEATABLE READ", "SERIALIZABLE", "REPEATABLE READ")):
        db.sql("INSERT INTO src VALUES (%s, 7)", (200 + n,))
        kind, checks = _refresh_counting_checks(db, isolation)
        assert (kind, checks > 0) == ("DIFFERENTIAL", True), isolation
    db.sql("INSERT INTO src VALUES (300, 7)")
    kind, checks = _refresh_counting_checks(db)
    assert (kind, checks > 0) == ("DIFFERENTIAL", True)  # nothing left to trust by those
    assert db.multiset_difference("st", QUERY) == 0
