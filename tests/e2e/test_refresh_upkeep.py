"""What keeps a DIFFERENTIAL refresh cheap as a deployment lives on: it reads its change window
through the buffer's BRIN index, not the backlog a lagging reader of the same source holds; its
skip check finds change records by index; the session's work tables do not grow with every
refresh (temporary tables are never vacuumed); and it tells inserted from updated rows without
probing the stream table once more."""

import psycopg2.errors
import pytest

from conftest import wait_for


# The two DIFFERENTIAL readers of `src` that _setup makes, by name.
READERS = {
    "fast": "SELECT g, sum(v) AS s, count(*) AS n FROM src GROUP BY g",
    "slow": "SELECT id, v FROM src WHERE v % 3 = 0",
}


def _setup(db):
    db.sql("CREATE TABLE src (id int PRIMARY KEY, g int, v int)")
    db.sql("INSERT INTO src SELECT i, i % 10, i FROM generate_series(1, 2000) i")
    for name, query in READERS.items():
        db.sql("SELECT pgstream.create_stream_table(%s, %s, NULL, 'DIFFERENTIAL')", (name, query))
    return db.value("SELECT 'src'::regclass::oid")


def _assert_equal_to_their_queries(db, readers):
    for name, query in readers.items():
        assert db.multiset_difference(name, query) == 0, name


def _buffered(db, relid):
    return db.value(f"SELECT count(*) FROM pgstream_changes.rows_{relid}")


def _buffer_index(db, relid):
    return db.value(
        "SELECT pg_get_indexdef(i.indexrelid) FROM pg_index i WHERE i.indrelid = %s::regclass",
        (f"pgstream_changes.rows_{relid}",),
    )


def test_a_change_buffer_two_differential_readers_share_has_a_brin_index(db):
    db.sql("CREATE TABLE src (id int PRIMARY KEY, g int, v int)")
    relid = db.value("SELECT 'src'::regclass::oid")
    db.sql("SELECT pgstream.create_stream_table('one', 'SELECT g, count(*) AS n FROM src GROUP BY g', NULL, 'DIFFERENTIAL')")
    db.sql("SELECT pgstream.create_stream_table('full_reader', 'SELECT id FROM src', NULL, 'FULL')")
    assert _buffer_index(db, relid) is None  # one DIFFERENTIAL reader: no index to pay for
    db.sql("SELECT pgstream.create_stream_table('two', 'SELECT id, v FROM src', NULL, 'DIFFERENTIAL')")
    index = _buffer_index(db, relid)
    assert index is not None and "USING brin (__pgs_xid pgstream.xid8_minmax_ops)" in index, index


def _index_scans(db, relid):
    db.sql("SELECT pg_stat_clear_snapshot()")
    return db.value(
        "SELECT COALESCE(sum(idx_scan), 0) FROM pg_stat_all_indexes "
        "WHERE schemaname = 'pgstream_changes' AND relname = %s",
        (f"rows_{relid}",),
    )


def test_a_refresh_beside_a_lagging_reader_reads_its_window_by_index(db):
    relid = _setup(db)
    # A backlog the slow reader holds: 40 transactions of 500 updated rows, the fast reader
    # refreshed after each.
    for step in range(40):
        db.sql("UPDATE src SET v = v + 1 WHERE id BETWEEN %s AND %s", (1 + step * 50 % 1500, 500 + step * 50 % 1500))
        db.sql("SELECT pgstream.refresh_stream_table('fast')")
    # What autovacuum does to a buffer in time: statistics, and the BRIN ranges summarized.
    db.sql(f"ANALYZE pgstream_changes.rows_{relid}")
    db.sql("SELECT brin_summarize_new_values(%s::regclass)", (f"pgstream_changes.rows_{relid}_xid",))
    assert db.value(f"SELECT count(*) FROM pgstream_changes.rows_{relid}") >= 40_000
    before = _index_scans(db, relid)
    db.sql("UPDATE src SET v = v + 1 WHERE id <= 5")
    db.sql("SELECT pgstream.refresh_stream_table('fast')")
    wait_for(lambda: _index_scans(db, relid) > before, timeout=10, what="an index scan of the buffer")
    assert db.value("SELECT last_refresh_kind FROM pgstream.pgs_stream_tables WHERE pgs_name = 'fast'") == "DIFFERENTIAL"
    # Both readers are right: the fast one all along, the slow one from its whole backlog.
    db.sql("SELECT pgstream.refresh_stream_table('slow')")
    assert db.value("SELECT last_refresh_kind FROM pgstream.pgs_stream_tables WHERE pgs_name = 'slow'") == "DIFFERENTIAL"
    _assert_equal_to_their_queries(db, READERS)


def test_the_skip_check_finds_change_records_by_index(db):
    _setup(db)
    for step in range(300):
        db.sql("UPDATE src SET v = v + 1 WHERE id = %s", (step + 1,))
    db.sql("ANALYZE pgstream_changes.statements")
    db.sql("SELECT pgstream.refresh_stream_table('fast')")
    [(snapshot, pgs_id)] = db.sql(
        "SELECT consumed_snapshot::text, pgs_id FROM pgstream.pgs_stream_tables WHERE pgs_name = 'fast'"
    )
    # The function as the refresh runs it (its plan kept per session: generic). The 300 records
    # the slow reader keeps lie before the window; the lookup reads none of them.
    conn = db.connect()
    with conn.cursor() as cur:
        try:
            cur.execute("LOAD 'auto_explain'")
        except psycopg2.errors.UndefinedFile:
            pytest.skip("this server has no auto_explain (the PostgreSQL 16 wheel ships no contrib modules)")
        cur.execute("SET auto_explain.log_min_duration = 0")
        cur.execute("SET auto_explain.log_nested_statements = on")
        cur.execute("SET auto_explain.log_analyze = on")
        cur.execute("SET auto_explain.log_buffers = on")
        cur.execute("SET client_min_messages = log")
        cur.execute("SET auto_explain.log_level = notice")
        for _ in range(8):  # past the first five custom plans
            cur.execute("SELECT pgstream._unchanged_since(%s, %s::pg_snapshot)", (pgs_id, snapshot))
            assert cur.fetchone()[0] is True
        plans = [n for n in conn.notices if "pgstream_changes.statements" in n]
    assert plans, "auto_explain showed no plan of the lookup"
    last = plans[-1]
    assert "Seq Scan on statements" not in last, last
    # Ranges of the (source, xid) index per source; PostgreSQL 18 may skip-scan the index on
    # xid alone instead (its "Index Searches": one descent per source), which reads as little.
    assert "statements_source_xid_idx" in last, last
    assert "Index Cond: ((source_relid = " in last or "Index Searches:" in last, last
    conn.close()


def test_change_checks_are_never_compiled_by_jit(db):
    # The change checks run with sequential scans off; a catalog scan with no index to use (the
    # partition tree's pending detaches) then costs enough for JIT, which took 30-100 ms per
    # skipped refresh of a stream table over a partitioned source.
    if not db.value("SELECT pg_jit_available()"):
        pytest.skip("this server has no JIT provider")
    db.sql("CREATE TABLE parted (id int, region text, v int) PARTITION BY LIST (region)")
    db.sql("CREATE TABLE parted_n PARTITION OF parted FOR VALUES IN ('n')")
    db.sql("CREATE TABLE parted_s PARTITION OF parted FOR VALUES IN ('s')")
    db.sql("INSERT INTO parted SELECT i, CASE WHEN i % 2 = 0 THEN 'n' ELSE 's' END, i FROM generate_series(1, 100) i")
    db.sql("SELECT pgstream.create_stream_table('by_region', 'SELECT region, sum(v) AS s FROM parted GROUP BY region', NULL, 'DIFFERENTIAL')")
    db.sql("UPDATE parted SET v = v + 1 WHERE id <= 10")
    conn = db.connect()
    with conn.cursor() as cur:
        try:
            cur.execute("LOAD 'auto_explain'")
        except psycopg2.errors.UndefinedFile:
            pytest.skip("this server has no auto_explain (the PostgreSQL 16 wheel ships no contrib modules)")
        cur.execute("SET jit = on")  # the default; set here so that a test database's own setting cannot hide it
        cur.execute("SET auto_explain.log_min_duration = 0")
        cur.execute("SET auto_explain.log_nested_statements = on")
        cur.execute("SET client_min_messages = log")
        cur.execute("SET auto_explain.log_level = notice")
        cur.execute("SELECT pgstream.refresh_stream_table('by_region')")  # DIFFERENTIAL
        for _ in range(3):  # skipped: the skip check alone
            cur.execute("SELECT pgstream.refresh_stream_table('by_region')")
        plans = [n for n in conn.notices if "Query Text" in n]
    conn.close()
    assert any("pg_inherits" in p for p in plans), "auto_explain showed no plan of the partition checks"
    compiled = [p for p in plans if "JIT:" in p]
    assert not compiled, compiled[0]
    assert db.multiset_difference("by_region", "SELECT region, sum(v) AS s FROM parted GROUP BY region") == 0


def test_change_rows_go_once_every_reader_has_covered_them_and_not_before(db):
    relid = _setup(db)

    db.sql("UPDATE src SET v = v + 1 WHERE id <= 10")  # 20 change rows
    db.sql("SELECT pgstream.refresh_stream_table('fast')")
    assert _buffered(db, relid) == 20  # 'slow' has not read them
    running = db.connect(autocommit=False)
    with running.cursor() as cur:
        cur.execute("UPDATE src SET v = v + 1 WHERE id BETWEEN 11 AND 13")  # uncommitted: 6 rows
    db.sql("UPDATE src SET v = v + 1 WHERE id BETWEEN 21 AND 22")  # committed after it: 4 rows
    db.sql("SELECT pgstream.refresh_stream_table('fast')")
    db.sql("SELECT pgstream.refresh_stream_table('slow')")
    # Both readers covered the first 20 rows (older than every covered snapshot's xmin) and the
    # 4 committed while the other transaction ran (newer than that xmin, but visible to both).
    assert _buffered(db, relid) == 0
    running.commit()
    running.close()
    assert _buffered(db, relid) == 6
    db.sql("SELECT pgstream.refresh_stream_table('fast')")
    assert _buffered(db, relid) == 6  # 'slow' covered a snapshot in which they were still running
    db.sql("SELECT pgstream.refresh_stream_table('slow')")
    assert _buffered(db, relid) == 0
    _assert_equal_to_their_queries(db, READERS)


THIRD = "SELECT g, max(v) AS m FROM src GROUP BY g"


def test_readers_refreshed_in_turn_leave_no_change_rows_behind(db):
    relid = _setup(db)
    db.sql("SELECT pgstream.create_stream_table('third', %s, NULL, 'DIFFERENTIAL')", (THIRD,))
    readers = ["fast", "slow", "third"]
    for step in range(5):
        db.sql("UPDATE src SET v = v + 1 WHERE id BETWEEN %s AND %s", (1 + step * 7, 20 + step * 7))
        for i, name in enumerate(readers[step % 3:] + readers[:step % 3]):
            db.sql("SELECT pgstream.refresh_stream_table(%s)", (name,))
            left = _buffered(db, relid)
            # The rows stay until the last of the three has read them, and go with its refresh.
            assert (left == 0) == (i == 2), (step, name, left)
    _assert_equal_to_their_queries(db, {**READERS, "third": THIRD})


def test_a_cleanup_that_could_not_run_is_made_up_by_the_next_refresh(db):
    relid = _setup(db)

    db.sql("UPDATE src SET v = v + 1 WHERE id <= 10")  # 20 change rows
    db.sql("SELECT pgstream.refresh_stream_table('fast')")
    # The last reader's cleanup finds a stream table being created (which holds the cleanup
    # lock shared) and does nothing: every reader has covered the 20 rows, and they stay.
    creator = db.connect()
    with creator.cursor() as cur:
        cur.execute("SELECT pg_advisory_lock_shared(1885827939, 0)")
    db.sql("SELECT pgstream.refresh_stream_table('slow')")
    assert _buffered(db, relid) == 20
    creator.close()
    # The next refresh that writes its position cleans them up, though the change it read is
    # one the other reader has not covered yet.
    db.sql("UPDATE src SET v = v + 1 WHERE id BETWEEN 21 AND 23")  # 6 change rows
    db.sql("SELECT pgstream.refresh_stream_table('fast')")
    assert _buffered(db, relid) == 6
    db.sql("SELECT pgstream.refresh_stream_table('slow')")
    assert _buffered(db, relid) == 0


def test_work_tables_do_not_grow_with_every_refresh_of_a_session(db):
    _setup(db)
    conn = db.connect()
    with conn.cursor() as cur:
        # Each refresh writes 1500 change rows into the session's delta work table and deletes
        # them; 60 refreshes would leave 90 000 dead rows (about 400 pages) were it never
        # truncated.
        for _ in range(60):
            cur.execute("UPDATE src SET v = v + 1 WHERE id <= 750")
            cur.execute("SELECT pgstream.refresh_stream_table('fast')")
        cur.execute(
            "SELECT max(pg_relation_size(c.oid)) / current_setting('block_size')::int "
            "FROM pg_class c WHERE c.relnamespace = pg_my_temp_schema() AND c.relkind = 'r' "
            "AND c.relname LIKE '\\_\\_pgs\\_delta\\_%%'"
        )
        pages = cur.fetchone()[0]
    conn.close()
    assert pages is not None and pages <= 64 + 16, pages
    assert db.multiset_difference("fast", READERS["fast"]) == 0


COUNTED_QUERY = "SELECT id, g, v FROM counted WHERE v >= 0"


def _counts(db, name):
    return db.sql(
        "SELECT last_rows_inserted, last_rows_updated, last_rows_deleted FROM pgstream.pgs_stream_tables "
        "WHERE pgs_name = %s", (name,))[0]


@pytest.mark.parametrize("track_counts", ["on", "off"])
def test_inserted_updated_and_deleted_rows_are_counted_exactly(db, track_counts):
    """A keyed apply tells inserted from updated rows by the transaction's statistics counters
    (or, with track_counts off, by counting the new keys first): DIFFERENTIAL, FULL and into
    partitioned stream tables alike, a row moved to another partition (its key lacks the
    partition column) counted as updated."""
    db.sql("CREATE TABLE counted (id int PRIMARY KEY, g int, v int)")
    db.sql("INSERT INTO counted SELECT i, i % 3, i FROM generate_series(1, 20) i")
    db.sql(f"SELECT pgstream.create_stream_table('d', '{COUNTED_QUERY}', NULL, 'DIFFERENTIAL')")
    db.sql(f"SELECT pgstream.create_stream_table('f', '{COUNTED_QUERY}', NULL, 'FULL')")
    db.sql(f"SELECT pgstream.create_stream_table('p', '{COUNTED_QUERY}', NULL, 'DIFFERENTIAL', "
           "partition_by => 'HASH (id) PARTITIONS 3')")
    for name, mode in [("l", "DIFFERENTIAL"), ("lf", "FULL")]:
        db.sql(f"SELECT pgstream.create_stream_table('{name}', '{COUNTED_QUERY}', NULL, '{mode}', "
               "partition_by => 'LIST (g)')")
        for g in range(3):
            db.sql(f"SELECT pgstream.add_partition('{name}', '{name}_{g}', in_values => ARRAY['{g}'])")
    names = ("d", "f", "p", "l", "lf")
    conn = db.connect()
    with conn.cursor() as cur:
        cur.execute(f"SET track_counts = {track_counts}")
        cur.execute("UPDATE counted SET v = v + 100 WHERE id <= 3")  # 3 updated
        cur.execute("UPDATE counted SET g = (g + 1) % 3 WHERE id = 4")  # 1 updated: moves in l, lf
        cur.execute("DELETE FROM counted WHERE id IN (19, 20)")  # 2 deleted
        cur.execute("INSERT INTO counted VALUES (21, 0, 1), (22, 1, 2), (23, 2, 3)")  # 3 inserted
        cur.execute("UPDATE counted SET v = -1 WHERE id = 5")  # leaves the result: deleted
        for name in names:
            cur.execute("SELECT pgstream.refresh_stream_table(%s)", (name,))
    conn.close()
    for name in names:
        assert _counts(db, name) == (3, 4, 3), (name, _counts(db, name))
        assert db.multiset_difference(name, COUNTED_QUERY) == 0, name
    assert db.value("SELECT tableoid::regclass::text FROM l WHERE id = 4") == "l_2"


def test_a_users_unique_index_sees_a_value_freed_before_a_new_row_takes_it(db):
    """A keyed stream table is applied by one MERGE only when it has no unique index of the
    user's: a MERGE checks each row as it goes, so a new row could take a value the row it
    replaces still holds. One refresh deletes key 1 (email x) and inserts key 2 with email x,
    in both orders of the keys, DIFFERENTIAL and FULL."""
    db.sql("CREATE TABLE people (id int PRIMARY KEY, email text)")
    db.sql("INSERT INTO people VALUES (1, 'x'), (5, 'y')")
    query = "SELECT id, email FROM people"
    for mode in ("DIFFERENTIAL", "FULL"):
        db.sql(f"SELECT pgstream.create_stream_table('u_{mode}', %s, NULL, '{mode}')", (query,))
        db.sql(f"CREATE UNIQUE INDEX ON u_{mode} (email)")
    for gone, new in ((1, 2), (5, 3)):
        db.sql(f"DELETE FROM people WHERE id = {gone}; "
               f"INSERT INTO people SELECT {new}, CASE WHEN {gone} = 1 THEN 'x' ELSE 'y' END")
        for mode in ("DIFFERENTIAL", "FULL"):
            db.sql(f"SELECT pgstream.refresh_stream_table('u_{mode}')")
            assert db.multiset_difference(f"u_{mode}", query) == 0, (mode, gone, new)


@pytest.mark.parametrize("track_counts", ["on", "off"])
def test_a_filter_over_an_ungrouped_aggregate_has_no_key_and_refreshes(db, track_counts):
    """A stage over a one-row aggregate takes its empty key: applied by the one MERGE (with
    statistics counters on) or by the work tables of keys and fresh rows (off)."""
    db.sql("CREATE TABLE t (id int PRIMARY KEY, v int)")
    db.sql("INSERT INTO t SELECT g, g FROM generate_series(1, 10) g")
    query = "SELECT total FROM (SELECT sum(v) AS total FROM t) s WHERE total > 0"
    db.sql("SELECT pgstream.create_stream_table('positive', %s, NULL, 'DIFFERENTIAL')", (query,))
    conn = db.connect()
    with conn.cursor() as cur:
        cur.execute(f"SET track_counts = {track_counts}")
        for change in ("UPDATE t SET v = v + 1 WHERE id = 1", "UPDATE t SET v = -100 WHERE id = 2",
                       "UPDATE t SET v = 100 WHERE id = 2", "DELETE FROM t", "INSERT INTO t VALUES (1, 5)"):
            cur.execute(change)
            cur.execute("SELECT pgstream.refresh_stream_table('positive')")
            assert db.multiset_difference("positive", query) == 0, change
    conn.close()


def test_cleanup_frees_the_sources_no_reader_lags_on_and_keeps_the_others(db):
    """A refresh beside a lagging reader of one of its sources frees what it covered of its
    other sources, and leaves the shared source's records and rows (the laggard still needs
    them) unread; the laggard's refresh frees those."""
    db.sql("CREATE TABLE src (id int PRIMARY KEY, g int, v int)")
    db.sql("CREATE TABLE dim (g int PRIMARY KEY, label text)")
    db.sql("INSERT INTO src SELECT i, i % 10, i FROM generate_series(1, 100) i")
    db.sql("INSERT INTO dim SELECT g, 'g' || g FROM generate_series(0, 9) g")
    db.sql("SELECT pgstream.create_stream_table('fast', 'SELECT d.label, sum(s.v) AS s FROM src s "
           "JOIN dim d ON d.g = s.g GROUP BY d.label', NULL, 'DIFFERENTIAL')")
    db.sql("SELECT pgstream.create_stream_table('slow', 'SELECT id, v FROM src', NULL, 'DIFFERENTIAL')")
    src, dim = db.value("SELECT 'src'::regclass::oid"), db.value("SELECT 'dim'::regclass::oid")

    def held(relid):
        return (db.value(f"SELECT count(*) FROM pgstream_changes.rows_{relid}"),
                db.value("SELECT count(*) FROM pgstream_changes.statements WHERE source_relid = %s", (relid,)))

    for step in range(3):
        db.sql("UPDATE src SET v = v + 1 WHERE id <= 10")
        db.sql("UPDATE dim SET label = label || '+' WHERE g = %s", (step,))
        db.sql("SELECT pgstream.refresh_stream_table('fast')")
    assert held(dim) == (0, 0)
    src_rows, src_records = held(src)
    assert src_rows == 60 and src_records >= 3, held(src)
    db.sql("SELECT pgstream.refresh_stream_table('slow')")
    assert held(src) == (0, 0)
    assert db.multiset_difference("slow", "SELECT id, v FROM src") == 0
    assert db.multiset_difference("fast", "SELECT d.label, sum(s.v) AS s FROM src s JOIN dim d ON d.g = s.g GROUP BY d.label") == 0
