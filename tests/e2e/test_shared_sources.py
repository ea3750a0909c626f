"""Stream tables sharing sources, created, switched, refreshed and dropped from many sessions at
once while writers change the sources: no call fails, and every stream table left equals its
query (a first `dbt run` with threads >= 2 creates models over the same source concurrently)."""

import random
import threading
import time

# Different column sets over the same two sources, so the change buffers grow while in use.
QUERIES = [
    ("DIFFERENTIAL", "SELECT g, sum(v) AS total, count(*) AS n FROM s1 GROUP BY g"),
    ("DIFFERENTIAL", "SELECT id, v FROM s1 WHERE v % 2 = 0"),
    ("DIFFERENTIAL", "SELECT a.id, a.v, b.w FROM s1 a JOIN s2 b ON b.id = a.id"),
    ("DIFFERENTIAL", "SELECT g, max(w) AS hi FROM s2 GROUP BY g"),
    ("AUTO", "SELECT DISTINCT g FROM s2 WHERE w > 10"),
    ("DIFFERENTIAL", "SELECT b.g, count(*) AS n FROM s2 b LEFT JOIN s1 a ON a.id = b.id GROUP BY b.g"),
    ("FULL", "SELECT id, w FROM s2"),
    ("DIFFERENTIAL", "SELECT a.g, b.note FROM s1 a JOIN s2 b ON b.g = a.g WHERE a.id < 20"),
]
SESSIONS = 8
ROUNDS = 5


def _writer(db, stop, errors, seed):
    rng = random.Random(seed)
    conn = db.connect()
    try:
        with conn.cursor() as cur:
            while not stop.is_set():
                table = rng.choice(["s1", "s2"])
                key = rng.randint(1, 60)
                if table == "s1":
                    cur.execute("INSERT INTO s1 VALUES (%s, %s, %s) ON CONFLICT (id) DO UPDATE SET v = s1.v + 1",
                                (key, key % 4, rng.randint(0, 50)))
                else:
                    cur.execute("INSERT INTO s2 VALUES (%s, %s, %s, %s) ON CONFLICT (id) DO UPDATE SET w = s2.w - 1",
                                (key, key % 5, rng.randint(0, 50), rng.choice(["x", "y", None])))
                if rng.random() < 0.2:
                    cur.execute(f"DELETE FROM {table} WHERE id = %s", (rng.randint(1, 60),))
                time.sleep(0.002)
    except Exception as exc:  # noqa: BLE001 - reported by the test
        errors.append(("writer", repr(exc)))


def _session(db, index, errors, kept):
    mode, query = QUERIES[index % len(QUERIES)]
    name = f"st_{index}"
    conn = db.connect()
    try:
        with conn.cursor() as cur:
            for round_no in range(ROUNDS):
                cur.execute("SELECT pgstream.create_stream_table(%s, %s, '1m', %s)", (name, query, mode))
                cur.execute("SELECT pgstream.refresh_stream_table(%s)", (name,))
                if mode != "FULL":
                    cur.execute("SELECT pgstream.alter_stream_table(%s, refresh_mode => 'FULL')", (name,))
                    cur.execute("SELECT pgstream.refresh_stream_table(%s)", (name,))
                    cur.execute("SELECT pgstream.alter_stream_table(%s, refresh_mode => %s)", (name, mode))
                cur.execute("SELECT pgstream.refresh_stream_table(%s)", (name,))
                if round_no < ROUNDS - 1 or index % 2:
                    cur.execute("SELECT pgstream.drop_stream_table(%s)", (name,))
                else:
                    kept.append((name, query))
    except Exception as exc:  # noqa: BLE001 - reported by the test
        errors.append((name, repr(exc)))


def test_sessions_creating_and_dropping_over_shared_sources_never_fail(db):
    db.sql("CREATE TABLE s1 (id int PRIMARY KEY, g int, v int)")
    db.sql("CREATE TABLE s2 (id int PRIMARY KEY, g int, w int, note text)")
    db.sql("INSERT INTO s1 SELECT g, g % 4, g FROM generate_series(1, 40) g")
    db.sql("INSERT INTO s2 SELECT g, g % 5, g * 2, 'n' || g FROM generate_series(1, 40) g")
    errors, kept = [], []
    stop = threading.Event()
    writers = [threading.Thread(target=_writer, args=(db, stop, errors, seed)) for seed in (1, 2)]
    for writer in writers:
        writer.start()
    sessions = [threading.Thread(target=_session, args=(db, i, errors, kept)) for i in range(SESSIONS)]
    for session in sessions:
        session.start()
    for session in sessions:
        session.join(timeout=240)
    stop.set()
    for writer in writers:
        writer.join(timeout=30)
    assert not errors, errors
    assert len(kept) == SESSIONS // 2
    for name, query in kept:
        db.sql("SELECT pgstream.refresh_stream_table(%s)", (name,))
        assert db.multiset_difference(name, query) == 0, name
    # Nothing left behind by the dropped ones: capture only where a kept stream table reads.
    assert db.value("SELECT count(*) FROM pgstream.pgs_stream_tables") == len(kept)
    health = db.sql("SELECT source_name, status FROM pgstream.check_cdc_health() ORDER BY 1")
    assert health == [("s1", "ok"), ("s2", "ok")], health
