"""Stream tables on a Citus 14 cluster (scripts/citus.sh: a coordinator and two workers on
PostgreSQL 18): stream tables over distributed and reference tables are created and refreshed
FULL (never skipped: no capture on the coordinator sees the shards' writes) and DIFFERENTIAL
(row triggers on the shards, change buffers co-located with them, drained by each refresh),
under concurrent writes through any node; stream tables over those are DIFFERENTIAL; only a
single-shard or Citus local table is refused DIFFERENTIAL.
Needs CITUS_PORT (default 55480) naming a running coordinator; scripts/test_citus.sh runs it."""

import collections
import os
import random
import threading
import time

import psycopg2
import pytest

PORT = int(os.environ.get("CITUS_PORT", "55480"))

SETUP = """
CREATE TABLE orders (id bigint PRIMARY KEY, customer_id int, amount numeric, status text, created_at timestamptz);
CREATE TABLE customers (id int PRIMARY KEY, name text, region text);
SELECT create_distributed_table('orders', 'id');
SELECT create_reference_table('customers');
INSERT INTO customers SELECT g, 'customer ' || g, (ARRAY['north', 'south', NULL])[1 + g % 3] FROM generate_series(1, 20) g;
INSERT INTO orders SELECT g, 1 + g % 25, (g % 7) * 10.5, (ARRAY['paid', 'open', 'void'])[1 + g % 3],
       timestamptz '2025-01-01' + g * interval '5 hours' FROM generate_series(1, 2000) g
"""

# Shapes Citus runs, from the differential oracle's families: filter, aggregate on a column that
# is not the distribution column, join with a reference table, LEFT JOIN, DISTINCT, UNION ALL,
# a CTE chain, date functions on timestamptz.
QUERIES = {
    "c_filter": "SELECT id, amount FROM orders WHERE status = 'paid' AND amount > 20",
    "c_by_customer": "SELECT customer_id, count(*) AS n, sum(amount) AS total, max(amount) AS top FROM orders GROUP BY customer_id",
    "c_by_region": "SELECT c.region, count(*) AS n, sum(o.amount) AS total FROM orders o JOIN customers c ON c.id = o.customer_id GROUP BY c.region",
    "c_left": "SELECT c.id, c.name, count(o.id) AS orders FROM customers c LEFT JOIN orders o ON o.customer_id = c.id GROUP BY c.id, c.name",
    "c_distinct": "SELECT DISTINCT status, customer_id FROM orders",
    "c_union": "SELECT id, 'big' AS kind FROM orders WHERE amount > 50 UNION ALL SELECT id, 'void' FROM orders WHERE status = 'void'",
    "c_cte": "WITH paid AS (SELECT * FROM orders WHERE status = 'paid'), per_day AS (SELECT date_trunc('day', created_at) AS day, sum(amount) AS revenue FROM paid GROUP BY 1) SELECT day, revenue FROM per_day WHERE revenue > 0",
}


def connect():
    conn = psycopg2.connect(host="127.0.0.1", port=PORT, user="postgres", dbname="postgres")
    conn.autocommit = True
    return conn


def sql(conn, statement, params=None):
    with conn.cursor() as cur:
        cur.execute(statement, params)
        return cur.fetchall() if cur.description else None


def difference(conn, name, query):
    columns = ", ".join(c for (c,) in sql(conn, "SELECT quote_ident(attname) FROM pg_attribute WHERE attrelid = %s::regclass "
                                        "AND attnum > 0 AND NOT attisdropped AND attname <> '__pgs_row_id' ORDER BY attnum", (name,)))
    return sql(conn, f"SELECT count(*) FROM ((SELECT {columns} FROM {name} EXCEPT ALL SELECT * FROM ({query}) q) "
                     f"UNION ALL (SELECT * FROM ({query}) q EXCEPT ALL SELECT {columns} FROM {name})) d")[0][0]


# Every relation a test makes (stream tables included: DROP EXTENSION leaves them as tables).
RELATIONS = ["orders", "customers", "a", "d", "d_single", "d_parts", "per_customer", "top"] + list(QUERIES)


def clean(conn):
    sql(conn, "DROP EXTENSION IF EXISTS pg_stream_dbt CASCADE")
    sql(conn, "DROP TABLE IF EXISTS " + ", ".join(RELATIONS) + " CASCADE")


@pytest.fixture
def db():
    conn = connect()
    clean(conn)
    sql(conn, "CREATE EXTENSION pg_stream_dbt")
    for statement in SETUP.strip().split(";\n"):
        sql(conn, statement)
    yield conn
    clean(conn)
    conn.close()


def random_writes(conn, rng):
    start = 10000 + rng.randint(0, 10**6) * 10
    sql(conn, "INSERT INTO orders SELECT g, %s, %s, 'open', now() FROM generate_series(%s, %s) g "
              "ON CONFLICT (id) DO NOTHING", (rng.randint(1, 25), rng.randint(0, 90), start, start + 3))
    sql(conn, "UPDATE orders SET status = %s, amount = amount + 1 WHERE id %% 17 = %s", (rng.choice(["paid", "void"]), rng.randint(0, 16)))
    sql(conn, "DELETE FROM orders WHERE id %% 31 = %s", (rng.randint(0, 30),))
    sql(conn, "UPDATE customers SET region = %s WHERE id = %s", (rng.choice(["north", "south", "east"]), rng.randint(1, 20)))


def test_full_stream_tables_over_distributed_and_reference_tables_equal_their_query(db):
    notices = []
    for name, query in QUERIES.items():
        db.notices.clear()
        sql(db, "SELECT pgstream.create_stream_table(%s, %s, '1h', 'FULL')", (name, query))
        notices += db.notices
    assert not [n for n in notices if "WARNING" in n or "pg_temp" in n], notices
    for name, query in QUERIES.items():
        assert difference(db, name, query) == 0, name
    rng = random.Random(20261205)
    for _ in range(3):
        random_writes(db, rng)
        for name, query in QUERIES.items():
            sql(db, "SELECT pgstream.refresh_stream_table(%s)", (name,))
            assert difference(db, name, query) == 0, name
    kinds = {k for (k,) in sql(db, "SELECT DISTINCT last_refresh_kind FROM pgstream.pgs_stream_tables")}
    assert kinds == {"FULL"}, kinds
    # Nothing of the change capture was put on the distributed or reference tables or their shards.
    assert sql(db, "SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'pgstream%'")[0][0] == 0
    shards = sql(db, "SELECT result FROM run_command_on_workers("
                     "$$SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'pgstream%'$$)")
    assert shards == [("0",), ("0",)], shards


def worker_counts(conn, query):
    """`query` (a count) on each worker."""
    return [int(r) for (r,) in sql(conn, f"SELECT result FROM run_command_on_workers($${query}$$)")]


def kinds_of(conn):
    return dict(sql(conn, "SELECT pgs_name, last_refresh_kind FROM pgstream.pgs_stream_tables"))


# The shapes whose delta Citus refuses to plan (its message is in the reason): recomputed.
CITUS_REFUSES_DELTA = {"c_left"}


def assert_maintained(conn):
    """The last refresh of each of QUERIES was DIFFERENTIAL, or, for a shape whose delta Citus
    cannot run, FULL saying so."""
    for name, kind, reason in sql(conn, "SELECT pgs_name, last_refresh_kind, last_refresh_reason "
                                        "FROM pgstream.pgs_stream_tables WHERE pgs_name LIKE 'c\\_%'"):
        if name in CITUS_REFUSES_DELTA and kind == "FULL":  # (a change may not reach the refused statement)
            assert reason.startswith("Citus cannot run this query's delta ("), (name, kind, reason)
        else:
            assert kind == "DIFFERENTIAL", (name, kind, reason)


def test_differential_over_distributed_and_reference_tables_equals_the_query(db):
    """Row triggers on every shard write to change buffers co-located with the shards; a refresh
    drains them and applies the change DIFFERENTIAL, whichever node the write came through."""
    for name, query in QUERIES.items():
        sql(db, "SELECT pgstream.create_stream_table(%s, %s, '1h', 'DIFFERENTIAL')", (name, query))
    assert set(kinds_of(db).values()) == {"FULL"}  # the initial population
    # Three row triggers on every shard and placement (32 orders shards, 1 customers placement)
    # and each worker's shell copies, with the shells' TRUNCATE triggers.
    assert worker_counts(db, "SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'pgstream_rows%'") == [3 * (16 + 1 + 2) + 2] * 2
    assert sql(db, "SELECT count(DISTINCT colocationid) FROM pg_dist_partition WHERE logicalrelid IN "
                   "('orders'::regclass, format('pgstream_changes.%I', 'shard_rows_' || 'orders'::regclass::oid)::regclass)") == [(1,)]
    worker = psycopg2.connect(host="127.0.0.1", port=PORT + 1, user="postgres", dbname="postgres")
    worker.autocommit = True
    rng = random.Random(20261206)
    try:
        for round_no in range(4):
            random_writes(db, rng)
            # Through a worker (Citus syncs its metadata there): captured on the shards the same way.
            start = 900000 + round_no * 10
            sql(worker, "INSERT INTO orders SELECT g, 7, 99, 'paid', now() FROM generate_series(%s, %s) g", (start, start + 4))
            sql(worker, "UPDATE orders SET amount = amount + 2 WHERE id %% 23 = %s", (round_no,))
            sql(worker, "UPDATE customers SET name = name || '+' WHERE id = %s", (round_no + 1,))
            pending = worker_counts(db, "SELECT count(*) FROM pgstream_changes.\"shard_rows_%s\"" % sql(db, "SELECT 'orders'::regclass::oid")[0][0])
            assert sum(pending) > 0, pending
            for name, query in QUERIES.items():
                sql(db, "SELECT pgstream.refresh_stream_table(%s)", (name,))
                assert difference(db, name, query) == 0, (round_no, name)
            assert_maintained(db)
    finally:
        worker.close()
    # Drained: nothing waits beside the shards.
    orders = sql(db, "SELECT 'orders'::regclass::oid")[0][0]
    assert sum(worker_counts(db, f'SELECT count(*) FROM pgstream_changes."shard_rows_{orders}"')) == 0


def test_truncate_of_a_distributed_source_recomputes_its_readers_and_is_refused_on_a_worker(db):
    sql(db, "SELECT pgstream.create_stream_table('d', %s, '1h', 'DIFFERENTIAL')", (QUERIES["c_by_customer"],))
    sql(db, "TRUNCATE orders")
    sql(db, "INSERT INTO orders SELECT g, 1 + g % 5, g, 'paid', now() FROM generate_series(1, 50) g")
    sql(db, "SELECT pgstream.refresh_stream_table('d')")
    kind, reason = sql(db, "SELECT last_refresh_kind, last_refresh_reason FROM pgstream.pgs_stream_tables WHERE pgs_name = 'd'")[0]
    assert kind == "FULL" and "truncated" in reason, (kind, reason)
    assert difference(db, "d", QUERIES["c_by_customer"]) == 0
    sql(db, "UPDATE orders SET amount = 0 WHERE id < 10")
    sql(db, "SELECT pgstream.refresh_stream_table('d')")
    assert kinds_of(db)["d"] == "DIFFERENTIAL"
    assert difference(db, "d", QUERIES["c_by_customer"]) == 0
    # Through a worker it would not reach the coordinator (Citus fires TRUNCATE triggers on the
    # node it was issued on): refused there, nothing truncated.
    worker = psycopg2.connect(host="127.0.0.1", port=PORT + 1, user="postgres", dbname="postgres")
    worker.autocommit = True
    try:
        with pytest.raises(psycopg2.Error) as caught:
            sql(worker, "TRUNCATE orders")
        assert caught.value.pgcode == "0A000", caught.value.pgerror
        assert "HINT:  Issue the TRUNCATE on the coordinator" in caught.value.pgerror, caught.value.pgerror
    finally:
        worker.close()
    assert sql(db, "SELECT count(*) FROM orders") == [(50,)]


def test_dropping_the_last_differential_reader_removes_the_capture_from_every_shard(db):
    sql(db, "SELECT pgstream.create_stream_table('d', %s, '1h', 'DIFFERENTIAL')", (QUERIES["c_by_region"],))
    sql(db, "SELECT pgstream.create_stream_table('a', %s, '1h', 'FULL')", (QUERIES["c_filter"],))
    assert sum(worker_counts(db, "SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'pgstream%'")) > 0
    sql(db, "SELECT pgstream.drop_stream_table('d')")
    # The FULL reader needs no capture (it is never skipped): nothing is left on the shards, the
    # shard buffer and its shards are gone.
    assert worker_counts(db, "SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'pgstream%'") == [0, 0]
    assert sql(db, "SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'pgstream%'") == [(0,)]
    assert worker_counts(db, "SELECT count(*) FROM pg_class WHERE relname LIKE 'shard_rows%'") == [0, 0]
    sql(db, "INSERT INTO orders VALUES (777777, 1, 1, 'paid', now())")
    sql(db, "SELECT pgstream.refresh_stream_table('a')")
    assert difference(db, "a", QUERIES["c_filter"]) == 0


def test_capture_left_on_the_shards_after_the_last_differential_reader_does_not_let_full_readers_skip(db):
    """The row triggers cannot go while someone reads the table; the shard buffer does. Until a
    later set-up takes the triggers away, the table counts as not captured (its FULL readers are
    not skipped), not as captured by triggers that write nowhere."""
    sql(db, "SELECT pgstream.create_stream_table('d', %s, '1h', 'DIFFERENTIAL')", (QUERIES["c_filter"],))
    sql(db, "SELECT pgstream.create_stream_table('a', %s, '1s', 'FULL')", (QUERIES["c_by_region"],))
    reader = connect()
    reader.autocommit = False
    try:
        sql(reader, "SELECT count(*) FROM orders")  # holds a lock DROP TRIGGER would wait for
        sql(db, "SELECT pgstream.drop_stream_table('d')")
        assert sum(worker_counts(db, "SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'pgstream_rows%'")) > 0
        assert sql(db, "SELECT pgstream._statements_captured('orders'::regclass)") == [(False,)]
    finally:
        reader.rollback()
        reader.close()
    sql(db, "INSERT INTO orders SELECT g, 5, 1000, 'paid', now() FROM generate_series(60001, 60010) g")
    deadline = time.time() + 30
    while difference(db, "a", QUERIES["c_by_region"]) != 0:
        assert time.time() < deadline, sql(db, "SELECT last_refresh_kind, last_refresh_reason FROM pgstream.pgs_stream_tables")
        time.sleep(0.5)
    sql(db, "SELECT pgstream.refresh_stream_table('a')")  # a later set-up takes the leftovers away
    assert worker_counts(db, "SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'pgstream%'") == [0, 0]


def test_differential_over_a_distributed_partitioned_table_is_refused(db):
    sql(db, "CREATE TABLE d_parts (id int, day date, v int) PARTITION BY RANGE (day)")
    sql(db, "CREATE TABLE d_parts_2025 PARTITION OF d_parts FOR VALUES FROM ('2025-01-01') TO ('2026-01-01')")
    try:
        sql(db, "SELECT create_distributed_table('d_parts', 'id')")
        with pytest.raises(psycopg2.Error) as caught:
            sql(db, "SELECT pgstream.create_stream_table('d', 'SELECT day, sum(v) AS v FROM d_parts GROUP BY day', '1h', 'DIFFERENTIAL')")
        assert caught.value.pgcode == "0A000", caught.value.pgerror
        assert "d_parts, a Citus partitioned table" in caught.value.pgerror, caught.value.pgerror
    finally:
        sql(db, "DROP TABLE d_parts")


def test_differential_over_a_single_shard_table_is_refused_and_auto_falls_back_to_full(db):
    sql(db, "CREATE TABLE d_single (id int, v int)")
    try:
        sql(db, "SELECT create_distributed_table('d_single', NULL)")
        with pytest.raises(psycopg2.Error) as caught:
            sql(db, "SELECT pgstream.create_stream_table('d', 'SELECT count(*) AS n FROM d_single', '1h', 'DIFFERENTIAL')")
        assert caught.value.pgcode == "0A000", caught.value.pgerror
        assert "d_single, a Citus single-shard or local table" in caught.value.pgerror, caught.value.pgerror
        sql(db, "SELECT pgstream.create_stream_table('a', 'SELECT count(*) AS n FROM d_single', '1h', 'AUTO')")
        mode, reason = sql(db, "SELECT effective_mode, mode_reason FROM pgstream.pgs_stream_tables WHERE pgs_name = 'a'")[0]
        assert mode == "FULL" and "Citus single-shard or local table" in reason, (mode, reason)
    finally:
        sql(db, "SELECT pgstream.drop_stream_table(pgs_name) FROM pgstream.pgs_stream_tables")
        sql(db, "DROP TABLE d_single")


def test_concurrent_writes_on_every_node_during_refreshes_lose_nothing(db):
    """Writers on the coordinator and on a worker while refreshes drain and apply: a refresh
    holds its Citus sources' writers off while it reads, so what it drains is what it reads."""
    for name in ("c_by_region", "c_filter", "c_cte"):
        sql(db, "SELECT pgstream.create_stream_table(%s, %s, '1h', 'DIFFERENTIAL')", (name, QUERIES[name]))
    stop = threading.Event()
    failures = []

    def writer(port, seed):
        conn = psycopg2.connect(host="127.0.0.1", port=port, user="postgres", dbname="postgres")
        conn.autocommit = True
        rng = random.Random(seed)
        try:
            while not stop.is_set():
                try:
                    random_writes(conn, rng)
                except psycopg2.errors.DeadlockDetected:
                    pass  # rolled back as a whole: on neither side
        except Exception as e:  # noqa: BLE001 - reported below
            failures.append(repr(e))
        finally:
            conn.close()

    threads = [threading.Thread(target=writer, args=(port, seed)) for port, seed in ((PORT, 1), (PORT + 1, 2), (PORT + 2, 3))]
    for t in threads:
        t.start()
    refresher = connect()
    kinds = collections.Counter()
    try:
        deadline = time.time() + 20
        while time.time() < deadline:
            for name in ("c_by_region", "c_filter", "c_cte"):
                sql(refresher, "SELECT pgstream.refresh_stream_table(%s)", (name,))
                kinds[kinds_of(refresher)[name]] += 1
    finally:
        stop.set()
        for t in threads:
            t.join()
        refresher.close()
    assert not failures, failures
    for name in ("c_by_region", "c_filter", "c_cte"):
        sql(db, "SELECT pgstream.refresh_stream_table(%s)", (name,))
        assert difference(db, name, QUERIES[name]) == 0, name
    assert kinds["DIFFERENTIAL"] * 2 >= sum(kinds.values()), kinds
    assert_maintained(db)


def test_scheduled_refreshes_follow_writes_and_readers_above_are_differential(db):
    """The scheduler refreshes a FULL stream table over a distributed table on every schedule
    (its source's writes are not captured, so it is never skipped); a stream table reading that
    one (a table on the coordinator) is captured and maintained DIFFERENTIAL."""
    sql(db, "SELECT pgstream.create_stream_table('per_customer', %s, '1s', 'FULL')", (QUERIES["c_by_customer"],))
    sql(db, "SELECT pgstream.create_stream_table('top', 'SELECT customer_id, total FROM per_customer WHERE n > 70', "
            "'1s', 'DIFFERENTIAL')")
    assert sql(db, "SELECT effective_mode FROM pgstream.pgs_stream_tables WHERE pgs_name = 'top'") == [("DIFFERENTIAL",)]
    sql(db, "INSERT INTO orders SELECT g, 3, 1000, 'paid', now() FROM generate_series(50001, 50200) g")
    deadline = time.time() + 30
    while time.time() < deadline:
        if difference(db, "per_customer", QUERIES["c_by_customer"]) == 0 and \
                difference(db, "top", "SELECT customer_id, total FROM per_customer WHERE n > 70") == 0 and \
                sql(db, "SELECT count(*) FROM top WHERE customer_id = 3")[0][0] == 1:
            break
        time.sleep(0.5)
    else:
        pytest.fail(f"not refreshed within 30 s: {sql(db, 'SELECT pgs_name, last_refresh_kind, last_refresh_reason, last_error FROM pgstream.pgs_stream_tables')}")
    kinds = dict(sql(db, "SELECT pgs_name, last_refresh_kind FROM pgstream.pgs_stream_tables"))
    assert kinds["per_customer"] == "FULL" and kinds["top"] in ("DIFFERENTIAL", "SKIPPED"), kinds


def test_refreshes_of_two_readers_of_one_distributed_table_do_not_wait_for_each_other(db):
    """A source that cannot be captured is not set up again by every refresh (its set-up lock,
    held to the end of the refresh's transaction, would make its readers' refreshes queue)."""
    for name in ("c_filter", "c_by_customer"):
        sql(db, "SELECT pgstream.create_stream_table(%s, %s, '1h', 'FULL')", (name, QUERIES[name]))
    for name in ("c_filter", "c_by_customer"):  # past the DDL of their creation (read again once)
        sql(db, "SELECT pgstream.refresh_stream_table(%s)", (name,))
    other = connect()
    try:
        other.autocommit = False
        sql(other, "SELECT pgstream.refresh_stream_table('c_filter')")  # its transaction stays open
        sql(db, "SET lock_timeout = '3s'")
        sql(db, "SELECT pgstream.refresh_stream_table('c_by_customer')")
        assert difference(db, "c_by_customer", QUERIES["c_by_customer"]) == 0
    finally:
        other.rollback()
        other.close()
        sql(db, "RESET lock_timeout")
