"""pg_dump / pg_restore of a database with stream tables: every stream table works in the restored
database with no manual step — the same rows, a correct refresh (FULL once, then DIFFERENTIAL
again), picked up by the scheduler — for custom-format dumps, plain-format dumps, and a
schema-only dump followed by a data-only one."""

import os
import subprocess
import threading

import pytest

from conftest import Database, connect, wait_for

PG_BIN = f"/usr/lib/postgresql/{os.environ.get('PG_MAJOR', '15')}/bin"
PG_BIN = os.environ.get("PG_BIN", PG_BIN)

STREAM_TABLES = [
    # (name, query, mode)
    ("per_customer", "SELECT customer, sum(amount) AS total, count(*) AS n FROM orders GROUP BY customer", "DIFFERENTIAL"),
    ("big_orders", "SELECT o.id, o.amount, c.region FROM orders o JOIN customers c ON c.name = o.customer "
                   "WHERE o.amount > 10", "DIFFERENTIAL"),
    ("regions", "SELECT region, sum(amount) AS total FROM order_regions GROUP BY region", "DIFFERENTIAL"),
    ("ranked", "SELECT id, rank() OVER (ORDER BY amount) AS r FROM orders", "AUTO"),
    ("full_copy", "SELECT * FROM customers", "FULL"),
    ("on_stream", "SELECT count(*) AS n, sum(total) AS total FROM per_customer", "DIFFERENTIAL"),
    ("by_kind", "SELECT kind, count(*) AS n FROM events GROUP BY kind", "DIFFERENTIAL"),  # a partitioned source
]


def _run(*args):
    env = dict(os.environ, PGHOST=os.environ.get("PGHOST", "127.0.0.1"),
               PGPORT=os.environ.get("PGPORT", "55415"), PGUSER=os.environ.get("PGUSER", "postgres"))
    result = subprocess.run(args, capture_output=True, text=True, env=env)
    assert result.returncode == 0, f"{' '.join(args)} failed:\n{result.stderr}"
    return result.stderr


def _populate(db):
    db.sql("CREATE TABLE customers (name text PRIMARY KEY, region text)")
    db.sql("CREATE TABLE orders (id int PRIMARY KEY, customer text, amount numeric)")
    db.sql("INSERT INTO customers SELECT 'c' || g, CASE WHEN g % 2 = 0 THEN 'north' ELSE 'south' END "
           "FROM generate_series(1, 10) g")
    db.sql("INSERT INTO orders SELECT g, 'c' || (g % 10 + 1), g FROM generate_series(1, 50) g")
    db.sql("CREATE VIEW order_regions AS SELECT o.amount, c.region FROM orders o "
           "JOIN customers c ON c.name = o.customer")
    db.sql("CREATE TABLE events (id int, kind text) PARTITION BY LIST (kind)")
    db.sql("CREATE TABLE events_a PARTITION OF events FOR VALUES IN ('a')")
    db.sql("CREATE TABLE events_rest PARTITION OF events DEFAULT")
    db.sql("INSERT INTO events SELECT g, (ARRAY['a', 'b', 'c'])[1 + g % 3] FROM generate_series(1, 30) g")
    # Created on a 1h schedule, so that no scheduler refreshes them (here before the dump, or in
    # the restored database) before the tests' own refreshes; the scheduler part sets 1s.
    for name, query, mode in STREAM_TABLES:
        db.sql("SELECT pgstream.create_stream_table(%s, %s, '1h', %s)", (name, query, mode))
    # Pending changes the dump's stream tables have not seen yet.
    db.sql("INSERT INTO orders VALUES (51, 'c1', 100)")
    db.sql("UPDATE orders SET amount = amount + 1 WHERE id <= 5")


def _check(db, changed=False):
    for name, query, _ in STREAM_TABLES:
        db.sql("SELECT pgstream.refresh_stream_table(%s)", (name,))
    for name, query, _ in STREAM_TABLES:
        assert db.multiset_difference(name, query) == 0, name


@pytest.fixture
def restored():
    """A fresh database (without the extension) to restore into; dropped afterwards."""
    name = f"restored_{os.getpid()}"
    admin = connect("postgres")
    with admin.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        cur.execute(f'CREATE DATABASE "{name}"')
    admin.close()
    yield name
    admin = connect("postgres")
    with admin.cursor() as cur:
        cur.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    admin.close()


def _assert_restored_works(db, target_name, kinds_before):
    target = Database(target_name)
    try:
        # The rows the dump held, before any refresh.
        for name, _, _ in STREAM_TABLES:
            assert target.value(f"SELECT count(*) FROM {name}") == kinds_before[name], name
        _check(target)
        kinds = dict(target.sql("SELECT pgs_name, last_refresh_kind FROM pgstream.pgs_stream_tables"))
        assert all(kind in ("FULL", "DIFFERENTIAL") for kind in kinds.values()), kinds
        # Then changes are applied differentially again.
        target.sql("INSERT INTO orders VALUES (60, 'c2', 7), (61, 'c3', 70)")
        target.sql("DELETE FROM orders WHERE id = 10")
        target.sql("UPDATE customers SET region = 'east' WHERE name = 'c4'")
        target.sql("INSERT INTO events_a VALUES (100, 'a'); UPDATE events SET kind = 'a' WHERE id = 2")
        _check(target)
        # The member triggers the dump brought along (named after the dumped database's oids)
        # are gone; the restored tree has its own.
        assert target.value("SELECT count(*) FROM pg_trigger t WHERE t.tgname LIKE 'pgstream\\_part\\_%' "
                            "AND NOT EXISTS (SELECT 1 FROM pg_partition_ancestors(t.tgrelid) a "
                            "WHERE t.tgname LIKE 'pgstream\\_part\\_' || a.relid::oid || '%')") == 0
        assert target.value("SELECT count(*) FROM pg_trigger WHERE tgrelid = 'events_a'::regclass "
                            "AND tgname LIKE 'pgstream\\_part\\_%'") == 4
        modes = {name: (kind, reason) for name, kind, reason in target.sql(
            "SELECT pgs_name, last_refresh_kind, last_refresh_reason FROM pgstream.pgs_stream_tables")}
        for name, _, mode in STREAM_TABLES:
            if mode == "DIFFERENTIAL":
                assert modes[name][0] == "DIFFERENTIAL", (name, modes[name])
        health = target.sql("SELECT source_name, status FROM pgstream.check_cdc_health() ORDER BY 1")
        assert all(status == "ok" for _, status in health), health
        # And the scheduler refreshes them on their 1s schedule.
        _set_schedules(target, "1s")
        target.sql("INSERT INTO orders VALUES (70, 'c5', 500)")
        wait_for(lambda: target.multiset_difference("per_customer", STREAM_TABLES[0][1]) == 0
                 and target.multiset_difference("on_stream", STREAM_TABLES[5][1]) == 0,
                 timeout=30, what="the scheduler to refresh the restored stream tables")
    finally:
        target.close()


def _set_schedules(db, schedule):
    for name, _, _ in STREAM_TABLES:
        db.sql("SELECT pgstream.alter_stream_table(%s, schedule => %s)", (name, schedule))


def _row_counts(db):
    return {name: db.value(f"SELECT count(*) FROM {name}") for name, _, _ in STREAM_TABLES}


def test_custom_format_dump_and_restore(db, restored, tmp_path):
    _populate(db)
    counts = _row_counts(db)
    dump = tmp_path / "db.dump"
    _run(f"{PG_BIN}/pg_dump", "-Fc", "-f", str(dump), db.name)
    _run(f"{PG_BIN}/pg_restore", "--exit-on-error", "-d", restored, str(dump))
    _assert_restored_works(db, restored, counts)


def test_plain_format_dump_and_restore(db, restored, tmp_path):
    _populate(db)
    counts = _row_counts(db)
    dump = tmp_path / "db.sql"
    _run(f"{PG_BIN}/pg_dump", "-Fp", "-f", str(dump), db.name)
    _run(f"{PG_BIN}/psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", restored, "-f", str(dump))
    _assert_restored_works(db, restored, counts)


def test_schema_only_then_data_only(db, restored, tmp_path):
    _populate(db)
    counts = _row_counts(db)
    schema, data = tmp_path / "schema.sql", tmp_path / "data.sql"
    _run(f"{PG_BIN}/pg_dump", "--schema-only", "-f", str(schema), db.name)
    _run(f"{PG_BIN}/pg_dump", "--data-only", "-f", str(data), db.name)
    _run(f"{PG_BIN}/psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", restored, "-f", str(schema))
    _run(f"{PG_BIN}/psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", restored, "-f", str(data))
    _assert_restored_works(db, restored, counts)


def _scheduler_running(db):
    return db.value("SELECT count(*) FROM pg_stat_activity "
                    "WHERE backend_type = 'pg_stream_dbt scheduler' AND datname = current_database()") > 0


def test_two_sessions_adopting_a_restored_catalog_at_once_rebuild_capture_once(db, restored, tmp_path):
    """A session that waited for another's adoption of a restored catalog finds nothing left to
    adopt: it does not rebuild capture again (that dropped the buffers and the aggregate's state
    the first had filled, and the next refresh recomputed)."""
    _populate(db)
    dump = tmp_path / "db.dump"
    _run(f"{PG_BIN}/pg_dump", "-Fc", "-f", str(dump), db.name)
    # No scheduler worker may adopt the catalog first: these two sessions must.
    db.sql("ALTER SYSTEM SET pgstream.enabled = off")
    db.sql("SELECT pg_reload_conf()")
    try:
        wait_for(lambda: not _scheduler_running(db), what="the scheduler to stop")
        _run(f"{PG_BIN}/pg_restore", "--exit-on-error", "-d", restored, str(dump))
        target = Database(restored)
        try:
            first = target.connect(autocommit=False)
            with first.cursor() as cur:
                cur.execute("SELECT pgstream.refresh_stream_table('per_customer')")
            errors = []

            def second():
                try:
                    with target.connect().cursor() as cur:
                        cur.execute("SELECT pgstream.refresh_stream_table('big_orders')")
                except Exception as e:  # reported below
                    errors.append(e)

            worker = threading.Thread(target=second)
            worker.start()
            wait_for(lambda: target.value(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock' AND query LIKE '%big_orders%'") == 1,
                what="the second session to wait for the first's adoption")
            first.commit()
            worker.join(30)
            assert not worker.is_alive() and errors == [], errors
            assert target.value("SELECT last_refresh_kind FROM pgstream.pgs_stream_tables "
                                "WHERE pgs_name = 'per_customer'") == "FULL"
            target.sql("INSERT INTO orders VALUES (80, 'c2', 8)")
            target.sql("UPDATE orders SET amount = amount + 1 WHERE id = 3")
            target.sql("SELECT pgstream.refresh_stream_table('per_customer')")
            kind, reason = target.sql("SELECT last_refresh_kind, last_refresh_reason "
                                      "FROM pgstream.pgs_stream_tables WHERE pgs_name = 'per_customer'")[0]
            assert kind == "DIFFERENTIAL", reason
            assert target.multiset_difference("per_customer", STREAM_TABLES[0][1]) == 0
            _check(target)
        finally:
            target.close()
    finally:
        db.sql("ALTER SYSTEM RESET pgstream.enabled")
        db.sql("SELECT pg_reload_conf()")
