"""Why a refresh was FULL or SKIPPED (last_refresh_reason, in the catalog and the monitoring
view), cost-based AUTO (pgstream.auto_full_fraction) and its opt-in for DIFFERENTIAL
(pgstream.differential_full_fraction), and capture repaired by a refresh never trusted."""

QUERY = "SELECT k, count(*) AS n, sum(v) AS s FROM src GROUP BY k"


def last(db, name="st"):
    return db.sql("SELECT last_refresh_kind, last_refresh_reason FROM pgstream.pg_stat_stream_tables "
                  "WHERE pgs_name = %s", (name,))[0]


def refresh(db, name="st"):
    db.sql("SELECT pgstream.refresh_stream_table(%s)", (name,))
    return last(db, name)


def make(db, mode):
    db.sql("CREATE TABLE src (id int PRIMARY KEY, k int, v int)")
    db.sql("INSERT INTO src SELECT g, g % 10, g FROM generate_series(1, 2000) g")
    db.sql("ANALYZE src")
    db.sql("SELECT pgstream.create_stream_table('st', %s, '1h', %s)", (QUERY, mode))


def test_auto_recomputes_when_the_change_volume_is_large_and_says_why(db):
    make(db, "AUTO")
    db.sql("UPDATE src SET v = v + 1 WHERE id <= 20")  # 40 change rows of 2000: 2 %
    assert refresh(db) == ("DIFFERENTIAL", None)
    db.sql("UPDATE src SET v = v + 1 WHERE id <= 100")  # 200 change rows: 10 %
    kind, reason = refresh(db)
    # (The count stops past the threshold of 100, at 128: a power of two.)
    assert kind == "FULL" and reason.startswith("at least 128 change rows are 6.4%") \
        and "auto_full_fraction = 0.05" in reason, reason
    assert db.multiset_difference("st", QUERY) == 0
    db.sql("SET pgstream.auto_full_fraction = 0.5")
    db.sql("UPDATE src SET v = v + 1 WHERE id <= 100")
    assert refresh(db) == ("DIFFERENTIAL", None)
    assert db.multiset_difference("st", QUERY) == 0


def test_differential_recomputes_for_volume_only_when_opted_in(db):
    make(db, "DIFFERENTIAL")
    db.sql("UPDATE src SET v = v + 1 WHERE id <= 500")  # 50 %
    assert refresh(db) == ("DIFFERENTIAL", None)
    db.sql("SET pgstream.differential_full_fraction = 0.2")
    db.sql("UPDATE src SET v = v + 1 WHERE id <= 500")
    kind, reason = refresh(db)
    assert kind == "FULL" and "pgstream.differential_full_fraction = 0.2" in reason, reason
    assert db.multiset_difference("st", QUERY) == 0
    err = db.error("SET pgstream.differential_full_fraction = -1")
    assert err.pgcode == "22023"


def test_reasons_of_full_and_skipped_refreshes(db):
    make(db, "DIFFERENTIAL")
    refresh(db)
    assert refresh(db) == ("SKIPPED", "no source changed since the last refresh")
    db.sql("TRUNCATE src; INSERT INTO src VALUES (1, 1, 1)")
    kind, reason = refresh(db)
    assert kind == "FULL" and "truncated" in reason, reason
    db.sql("CREATE TABLE other (x int)")  # DDL that changes no meaning
    db.sql("INSERT INTO src VALUES (2, 2, 2)")
    assert refresh(db) == ("DIFFERENTIAL", None)
    db.sql("ALTER TABLE src ALTER COLUMN v TYPE bigint")
    kind, reason = refresh(db)
    assert kind == "FULL" and "depends on changed" in reason, reason
    assert db.multiset_difference("st", QUERY) == 0


def test_a_refresh_that_repairs_missing_row_capture_recomputes(db):
    make(db, "DIFFERENTIAL")
    db.sql("SELECT pgstream.refresh_stream_table('st')")
    db.sql("DROP TRIGGER pgstream_rows_ins ON src")  # by hand: inserts are not captured now
    db.sql("INSERT INTO src SELECT g, 3, g FROM generate_series(3001, 3010) g")
    kind, reason = refresh(db)
    # (The drop counts as a truncation of the source, for every reader; the refresh that puts
    # the trigger back would recompute anyway: "capture of a source was missing".)
    assert kind == "FULL" and "triggers disabled or dropped" in reason, reason
    assert db.multiset_difference("st", QUERY) == 0
    db.sql("INSERT INTO src VALUES (4000, 4, 4)")  # captured again
    assert refresh(db) == ("DIFFERENTIAL", None)
    assert db.multiset_difference("st", QUERY) == 0


def test_auto_becoming_differential_after_ddl_recomputes_once_then_applies_changes(db):
    """An AUTO stream table refreshed FULL (its view used a window function) whose view is
    redefined into a shape the planner can maintain: the refresh after the DDL decides
    DIFFERENTIAL anew, but nothing was covered in that mode yet, so it recomputes and says why;
    the one after applies changes."""
    db.sql("CREATE TABLE src (id int PRIMARY KEY, k int, v int)")
    db.sql("INSERT INTO src SELECT g, g % 10, g FROM generate_series(1, 200) g")
    db.sql("CREATE VIEW ranked AS SELECT id, k, v, rank() OVER (ORDER BY v) AS r FROM src")
    db.sql("SELECT pgstream.create_stream_table('st', 'SELECT k, count(*) AS n, max(r) AS top FROM ranked GROUP BY k', "
           "'1h', 'AUTO')")
    assert db.value("SELECT effective_mode FROM pgstream.pgs_stream_tables") == "FULL"
    db.sql("CREATE OR REPLACE VIEW ranked AS SELECT id, k, v, v::bigint AS r FROM src")
    kind, reason = refresh(db)
    assert db.value("SELECT effective_mode FROM pgstream.pgs_stream_tables") == "DIFFERENTIAL"
    assert (kind, reason) == ("FULL", "what its query depends on changed (DDL)"), (kind, reason)
    db.sql("UPDATE src SET v = v + 1000 WHERE id <= 5")
    assert refresh(db)[0] == "DIFFERENTIAL"
    assert db.multiset_difference("st", "SELECT k, count(*) AS n, max(v::bigint) AS top FROM src GROUP BY k") == 0


def test_private_tables_of_another_shape_are_made_anew_by_one_full_refresh(db):
    """A newer planner may cut a query into other inner stages than the one that made its
    private tables (COUNT(DISTINCT) kept from counts since 0.4.0): a table of the same name with
    other columns is not read, the refresh recomputes FULL once, saying why, and makes it anew."""
    query = "SELECT k, count(DISTINCT v % 7) AS kinds, sum(v) AS s FROM src GROUP BY k"
    db.sql("CREATE TABLE src (id int PRIMARY KEY, k int, v int)")
    db.sql("INSERT INTO src SELECT g, g % 10, g FROM generate_series(1, 500) g")
    db.sql("SELECT pgstream.create_stream_table('st', %s, '1h', 'DIFFERENTIAL')", (query,))
    pgs_id = db.value("SELECT pgs_id FROM pgstream.pgs_stream_tables WHERE pgs_name = 'st'")
    aux = f"pgstream_changes.aux_{pgs_id}_0"
    db.sql("UPDATE src SET v = v + 1 WHERE id <= 50")
    assert refresh(db) == ("DIFFERENTIAL", None)
    # As an earlier version would have left it: another column list under the same name.
    db.sql(f"ALTER TABLE {aux} ADD COLUMN made_by_an_earlier_plan int")
    db.sql("UPDATE src SET v = v + 1 WHERE id <= 50")
    kind, reason = refresh(db)
    assert kind == "FULL" and "made for another plan of its query" in reason, reason
    assert db.multiset_difference("st", query) == 0
    assert "made_by_an_earlier_plan" not in {
        r[0] for r in db.sql("SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass", (aux,))
    }
    db.sql("DELETE FROM src WHERE id % 9 = 0")
    assert refresh(db) == ("DIFFERENTIAL", None)
    assert db.multiset_difference("st", query) == 0
