"""Partitioned tables as sources: captured at every member of their partition tree, maintained
DIFFERENTIAL through writes to the partitioned table (rows moving between partitions included),
writes to partitions directly, and ATTACH / DETACH / CREATE ... PARTITION OF (the rows they move
are recorded in the DDL's transaction); a dropped or truncated partition, a partition's triggers
switched off, and DETACH ... CONCURRENTLY make the readers recompute."""

import pytest

EVENTS = """
CREATE TABLE regions (code text PRIMARY KEY, name text);
INSERT INTO regions VALUES ('n', 'north'), ('s', 'south'), ('e', 'east'), ('w', 'west');
CREATE TABLE ev (id int, region text, amount int, note text) PARTITION BY LIST (region);
CREATE TABLE ev_n PARTITION OF ev FOR VALUES IN ('n');
CREATE TABLE ev_s PARTITION OF ev FOR VALUES IN ('s') PARTITION BY RANGE (amount);
CREATE TABLE ev_s_lo PARTITION OF ev_s FOR VALUES FROM (MINVALUE) TO (50);
CREATE TABLE ev_s_hi PARTITION OF ev_s FOR VALUES FROM (50) TO (MAXVALUE);
CREATE TABLE ev_rest PARTITION OF ev DEFAULT;
INSERT INTO ev SELECT g, (ARRAY['n', 's', 'e'])[1 + g % 3], g % 100, 'x' FROM generate_series(1, 300) g;
"""

QUERIES = {
    "by_region": "SELECT region, count(*) AS n, sum(amount) AS total, max(amount) AS top FROM ev GROUP BY region",
    "named": "SELECT e.id, r.name, e.amount FROM ev e JOIN regions r ON r.code = e.region WHERE e.amount > 20",
    "big": "SELECT id, region, amount FROM ev WHERE amount >= 90",
}


@pytest.fixture
def events(db):
    for statement in EVENTS.strip().split(";\n"):
        db.sql(statement)
    for name, query in QUERIES.items():
        db.sql("SELECT pgstream.create_stream_table(%s, %s, '1h', 'DIFFERENTIAL')", (name, query))
    return db


def refresh_all(db):
    for name in QUERIES:
        db.sql("SELECT pgstream.refresh_stream_table(%s)", (name,))
    return {name: (kind, reason) for name, kind, reason in db.sql(
        "SELECT pgs_name, last_refresh_kind, last_refresh_reason FROM pgstream.pgs_stream_tables")}


def assert_current(db):
    for name, query in QUERIES.items():
        assert db.multiset_difference(name, query) == 0, name


def assert_differential(db):
    kinds = refresh_all(db)
    assert all(kind == "DIFFERENTIAL" for kind, _ in kinds.values()), kinds
    assert_current(db)


def assert_incremental(db):
    """Refreshed DIFFERENTIAL, or SKIPPED where nothing changed since the last refresh."""
    kinds = refresh_all(db)
    assert all(kind in ("DIFFERENTIAL", "SKIPPED") for kind, _ in kinds.values()), kinds
    assert_current(db)


def member_triggers(db, table):
    return db.value("SELECT count(*) FROM pg_trigger WHERE tgrelid = %s::regclass AND tgname LIKE 'pgstream\\_part\\_%%'",
                    (table,))


def test_writes_through_the_parent_and_to_partitions_are_differential(events):
    db = events
    for name in QUERIES:
        assert db.value("SELECT value FROM pgstream.explain_stream_table(%s) WHERE property = 'effective_mode'",
                        (name,)) == "DIFFERENTIAL", name
    # Every member of the tree, sub-partitioned ones too, records for the root.
    for table in ("ev_n", "ev_s", "ev_s_lo", "ev_s_hi", "ev_rest"):
        assert member_triggers(db, table) == 4, table
    db.sql("UPDATE ev SET region = 'n' WHERE id % 10 = 1")                      # moves between partitions
    db.sql("UPDATE ev SET amount = amount + 60 WHERE region = 's' AND amount < 30")  # between sub-partitions
    db.sql("INSERT INTO ev_s_hi VALUES (1000, 's', 99, 'direct')")
    db.sql("DELETE FROM ev_n WHERE id % 7 = 0")
    db.sql("UPDATE ev_rest SET amount = 95 WHERE id < 50")
    db.sql("UPDATE ev_s SET note = 'sub' WHERE amount > 70")                     # an inner partitioned table
    db.sql("MERGE INTO ev t USING (SELECT g AS id FROM generate_series(1, 20) g) s ON t.id = s.id "
           "WHEN MATCHED AND t.amount < 10 THEN DELETE WHEN MATCHED THEN UPDATE SET amount = t.amount + 1 "
           "WHEN NOT MATCHED THEN INSERT VALUES (s.id, 'e', 1, 'merged')")
    db.sql("COPY ev FROM PROGRAM 'printf \"2001\\ts\\t91\\tcopied\\n2002\\tn\\t3\\tcopied\\n\"'")
    assert_differential(db)
    # A write in the refreshing transaction itself, and one after it.
    conn = db.connect(autocommit=False)
    with conn.cursor() as cur:
        cur.execute("INSERT INTO ev_n VALUES (3000, 'n', 99, 'own')")
        for name in QUERIES:
            cur.execute("SELECT pgstream.refresh_stream_table(%s)", (name,))
        cur.execute("DELETE FROM ev_s_lo WHERE amount < 5")
    conn.commit()
    assert_differential(db)


def test_attach_detach_and_new_partitions_are_applied_as_the_rows_they_move(events):
    db = events
    db.sql("CREATE TABLE ev_w (LIKE ev)")
    db.sql("INSERT INTO ev_w SELECT g, 'w', g, 'loaded' FROM generate_series(1, 40) g")
    db.sql("ALTER TABLE ev ATTACH PARTITION ev_w FOR VALUES IN ('w')")
    assert member_triggers(db, "ev_w") == 4
    db.sql("ALTER TABLE ev DETACH PARTITION ev_n")
    assert member_triggers(db, "ev_n") == 0
    db.sql("INSERT INTO ev_n VALUES (5000, 'n', 99, 'after detach')")  # no longer a source's row
    db.sql("CREATE TABLE ev_x PARTITION OF ev FOR VALUES IN ('x')")
    db.sql("INSERT INTO ev_x VALUES (1, 'x', 95, 'new partition')")
    assert_differential(db)
    # A whole subtree detached and attached again, with writes between, in one transaction;
    # and the detached partition attached back with its new row.
    db.sql("BEGIN; ALTER TABLE ev DETACH PARTITION ev_s; UPDATE ev_s SET amount = amount + 1; "
           "INSERT INTO ev VALUES (6000, 'e', 93, 'between'); "
           "ALTER TABLE ev ATTACH PARTITION ev_s FOR VALUES IN ('s'); COMMIT")
    db.sql("ALTER TABLE ev ATTACH PARTITION ev_n FOR VALUES IN ('n')")
    assert member_triggers(db, "ev_s_hi") == 4 and member_triggers(db, "ev_n") == 4
    assert_differential(db)
    # Rows routed to the default partition that a new partition must take: moved first, then
    # attached, as users do.
    db.sql("INSERT INTO ev VALUES (7000, 'q', 97, 'in default')")
    db.sql("BEGIN; CREATE TABLE ev_q (LIKE ev); "
           "WITH moved AS (DELETE FROM ev_rest WHERE region = 'q' RETURNING *) INSERT INTO ev_q SELECT * FROM moved; "
           "ALTER TABLE ev ATTACH PARTITION ev_q FOR VALUES IN ('q'); COMMIT")
    assert_differential(db)


def test_moves_in_subtransactions_and_same_named_tables_elsewhere(events):
    db = events
    # ATTACH and DETACH inside savepoints (their catalog rows are a subtransaction's).
    db.sql("CREATE TABLE ev_w (LIKE ev)")
    db.sql("INSERT INTO ev_w SELECT g, 'w', g, 'saved' FROM generate_series(1, 10) g")
    db.sql("BEGIN; SAVEPOINT a; ALTER TABLE ev ATTACH PARTITION ev_w FOR VALUES IN ('w'); RELEASE a; "
           "SAVEPOINT b; ALTER TABLE ev DETACH PARTITION ev_n; COMMIT")
    assert_differential(db)
    # A savepoint rolled back: nothing moved, nothing recorded.
    db.sql("BEGIN; SAVEPOINT a; ALTER TABLE ev DETACH PARTITION ev_w; ROLLBACK TO a; COMMIT")
    assert member_triggers(db, "ev_w") == 4
    assert_incremental(db)
    # The detached table's name taken in another schema in the same transaction: only the
    # table that left counts.
    db.sql("CREATE SCHEMA archive")
    db.sql("BEGIN; CREATE TABLE archive.ev_w (LIKE ev); "
           "INSERT INTO archive.ev_w VALUES (1, 'w', 1, 'archive'), (2, 'w', 2, 'archive'); "
           "ALTER TABLE ev DETACH PARTITION public.ev_w; COMMIT")
    assert_differential(db)
    # And attached back from a search_path that finds it first.
    db.sql("BEGIN; SET LOCAL search_path = public, archive; "
           "ALTER TABLE ev ATTACH PARTITION ev_w FOR VALUES IN ('w'); COMMIT")
    assert_differential(db)


def test_writes_and_tree_changes_in_one_transaction_beside_a_refreshing_session(events):
    import threading
    db = events
    db.sql("CREATE TABLE ev_w (LIKE ev)")
    db.sql("INSERT INTO ev_w SELECT g, 'w', g, 'w' FROM generate_series(1, 10) g")
    stop = threading.Event()
    errors = []

    def refresh_loop():
        conn = db.connect(autocommit=False)
        while not stop.is_set():
            try:
                with conn.cursor() as cur:
                    for name in QUERIES:
                        cur.execute("SELECT pgstream.refresh_stream_table(%s)", (name,))
                conn.commit()
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append(repr(e))
                conn.rollback()

    thread = threading.Thread(target=refresh_loop)
    thread.start()
    try:
        for i in range(6):
            db.sql(f"BEGIN; INSERT INTO ev VALUES ({10000 + i}, 'n', 91, 'loop'); "
                   "UPDATE ev_s_hi SET amount = amount + 1 WHERE id % 5 = 0; "
                   + ("ALTER TABLE ev ATTACH PARTITION ev_w FOR VALUES IN ('w'); " if i % 2 == 0
                      else "ALTER TABLE ev DETACH PARTITION ev_w; ")
                   + "DELETE FROM ev_n WHERE id % 11 = 0; COMMIT")
    finally:
        stop.set()
        thread.join()
    assert not errors, errors
    # The last transaction detached a partition: a refresh after it recomputes (FULL), by design,
    # unless the refreshing session got to it before it stopped; either way the stream tables are
    # current, and the next writes are differential again.
    refresh_all(db)
    assert_current(db)
    db.sql("INSERT INTO ev VALUES (20000, 'n', 92, 'after')")
    assert_incremental(db)


def test_a_dropped_or_truncated_partition_makes_readers_recompute(events):
    db = events
    db.sql("DROP TABLE ev_n")
    kinds = refresh_all(db)
    assert all(kind == "FULL" and "partition" in reason for kind, reason in kinds.values()), kinds
    assert_current(db)
    db.sql("TRUNCATE ev_s_lo")
    kinds = refresh_all(db)
    assert all(kind == "FULL" for kind, _ in kinds.values()), kinds
    assert_current(db)
    db.sql("INSERT INTO ev_s_lo VALUES (1, 's', 1, 'again')")
    assert_differential(db)


def test_a_partition_whose_triggers_were_off_makes_readers_recompute(events):
    db = events
    db.sql("ALTER TABLE ev_s_hi DISABLE TRIGGER ALL")
    # Left off as the user asked (a bulk load), like on any table.
    assert db.value("SELECT count(*) FROM pg_trigger WHERE tgrelid = 'ev_s_hi'::regclass "
                    "AND tgname LIKE 'pgstream\\_part\\_%' AND tgenabled = 'D'") == 4
    db.sql("INSERT INTO ev_s_hi VALUES (8000, 's', 99, 'unseen')")
    db.sql("ALTER TABLE ev_s_hi ENABLE TRIGGER ALL")
    kinds = refresh_all(db)
    assert all(kind == "FULL" for kind, _ in kinds.values()), kinds
    assert_current(db)
    # The refresh put the triggers back as they must be (ENABLE ALWAYS).
    assert db.value("SELECT count(*) FROM pg_trigger WHERE tgrelid = 'ev_s_hi'::regclass "
                    "AND tgname LIKE 'pgstream\\_part\\_%' AND tgenabled = 'A'") == 4
    db.sql("INSERT INTO ev_s_hi VALUES (8001, 's', 99, 'seen')")
    assert_differential(db)


def test_detach_concurrently_makes_readers_recompute(events):
    db = events
    # (Not possible where a default partition exists: from the sub-partitioned member.)
    db.sql("ALTER TABLE ev_s DETACH PARTITION ev_s_lo CONCURRENTLY")
    kinds = refresh_all(db)
    assert all(kind == "FULL" for kind, _ in kinds.values()), kinds
    assert_current(db)
    assert member_triggers(db, "ev_s_lo") == 0
    db.sql("INSERT INTO ev_s_lo VALUES (9000, 's', 9, 'detached')")
    db.sql("INSERT INTO ev VALUES (9001, 'e', 99, 'kept')")
    assert_differential(db)


def test_a_full_reader_is_skipped_only_when_no_partition_changed(db):
    from test_change_capture import next_scheduled, settled
    for statement in EVENTS.strip().split(";\n"):
        db.sql(statement)
    query = "SELECT region, count(*) AS n FROM ev GROUP BY region"
    db.sql("SELECT pgstream.create_stream_table('counts', %s, '1s', 'FULL')", (query,))
    assert member_triggers(db, "ev_s_lo") == 1  # a statement trigger only: no row capture
    settled(db, "counts")
    db.sql("INSERT INTO ev_s_lo VALUES (1, 's', 1, 'direct')")
    assert next_scheduled(db, "counts") == "FULL"
    assert db.multiset_difference("counts", query) == 0
    assert next_scheduled(db, "counts") == "SKIPPED"
    # Switched to DIFFERENTIAL: every member gets row capture; back to FULL: it goes again.
    db.sql("SELECT pgstream.alter_stream_table('counts', schedule => '1h', refresh_mode => 'DIFFERENTIAL')")
    assert member_triggers(db, "ev_s_lo") == 4
    db.sql("SELECT pgstream.refresh_stream_table('counts')")  # recomputes once: its first as DIFFERENTIAL
    db.sql("UPDATE ev_s_lo SET note = 'changed', amount = amount - 1")
    db.sql("SELECT pgstream.refresh_stream_table('counts')")
    assert db.value("SELECT last_refresh_kind FROM pgstream.pgs_stream_tables") == "DIFFERENTIAL"
    assert db.multiset_difference("counts", query) == 0
    db.sql("SELECT pgstream.alter_stream_table('counts', refresh_mode => 'FULL')")
    assert member_triggers(db, "ev_s_lo") == 1


def test_trees_that_cannot_be_captured_are_recomputed_and_triggers_go_with_the_readers(db):
    for statement in EVENTS.strip().split(";\n"):
        db.sql(statement)
    db.sql("CREATE UNLOGGED TABLE ev_u PARTITION OF ev FOR VALUES IN ('u')")
    db.sql("SELECT pgstream.create_stream_table('counts', 'SELECT region, count(*) AS n FROM ev GROUP BY region', "
           "'1h', 'AUTO')")
    assert db.value("SELECT effective_mode FROM pgstream.pgs_stream_tables") == "FULL"
    assert db.value("SELECT status FROM pgstream.check_cdc_health() WHERE source_name = 'ev'") == \
        "not capturable (unlogged partition): readers always recompute"
    db.sql("DROP TABLE ev_u")
    db.sql("SELECT pgstream.drop_stream_table('counts')")
    db.sql("SELECT pgstream.create_stream_table('counts', 'SELECT region, count(*) AS n FROM ev GROUP BY region', "
           "'1h', 'DIFFERENTIAL')")
    assert member_triggers(db, "ev_n") == 4
    db.sql("SELECT pgstream.drop_stream_table('counts')")
    assert db.value("SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'pgstream%'") == 0
    # DROP EXTENSION takes member triggers along.
    db.sql("SELECT pgstream.create_stream_table('counts', 'SELECT region, count(*) AS n FROM ev GROUP BY region', "
           "'1h', 'DIFFERENTIAL')")
    db.sql("DROP EXTENSION pg_stream_dbt CASCADE")
    assert db.value("SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'pgstream%'") == 0
    db.sql("INSERT INTO ev VALUES (1, 'n', 1, 'after')")


def test_a_users_trigger_named_like_a_member_trigger_changes_nothing(events):
    db = events
    db.sql("CREATE FUNCTION noop() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NULL; END $$")
    db.sql("CREATE TABLE other (a int)")
    db.sql("CREATE TRIGGER pgstream_part_99999999999 AFTER INSERT ON other FOR EACH STATEMENT EXECUTE FUNCTION noop()")
    db.sql("ALTER TABLE other DISABLE TRIGGER ALL")
    db.sql("DROP TABLE other")
    assert_differential(db)


def test_a_plain_owner_attaches_and_detaches_its_own_partitions(db):
    db.sql("CREATE ROLE part_owner LOGIN")
    db.sql("GRANT CREATE ON SCHEMA public TO part_owner")
    try:
        db.sql("SET ROLE part_owner")
        for statement in EVENTS.strip().split(";\n"):
            db.sql(statement)
        db.sql("SELECT pgstream.create_stream_table('counts', 'SELECT region, sum(amount) AS total FROM ev "
               "GROUP BY region', '1h', 'DIFFERENTIAL')")
        db.sql("CREATE TABLE ev_w (LIKE ev)")
        db.sql("INSERT INTO ev_w VALUES (1, 'w', 5, 'w')")
        db.sql("ALTER TABLE ev ATTACH PARTITION ev_w FOR VALUES IN ('w')")
        db.sql("ALTER TABLE ev DETACH PARTITION ev_n")
        db.sql("SELECT pgstream.refresh_stream_table('counts')")
        assert db.value("SELECT last_refresh_kind FROM pgstream.pgs_stream_tables") == "DIFFERENTIAL"
        assert db.multiset_difference("counts", "SELECT region, sum(amount) AS total FROM ev GROUP BY region") == 0
    finally:
        db.sql("RESET ROLE")
        db.sql("DROP OWNED BY part_owner CASCADE")
        db.sql("DROP ROLE part_owner")
