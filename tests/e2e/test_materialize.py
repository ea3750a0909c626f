"""pgstream_dbt.materialize(): the create / unchanged / alter / recreate contract, config
validation, grants and comments across recreates, readers during a recreate, and races."""

import json
import threading
import time

import psycopg2
import pytest

QUERY = "select customer, sum(amount) as total from orders group by customer"
FULL = {"refresh_mode": "FULL"}


def setup_orders(db):
    db.sql("CREATE TABLE orders (customer int, amount numeric)")
    db.sql("INSERT INTO orders SELECT g % 10, g FROM generate_series(1, 100) g")


def materialize(db, query, config=None, name="totals", conn=None):
    config = dict(FULL, **(config or {}))
    statement = "SELECT pgstream_dbt.materialize(%s, %s, %s::jsonb)"
    params = (name, query, json.dumps(config))
    if conn is None:
        return db.value(statement, params)
    with conn.cursor() as cur:
        cur.execute(statement, params)
        return cur.fetchone()[0]


def test_the_lifecycle_contract(db):
    setup_orders(db)
    created = materialize(db, QUERY)
    assert created["action"] == "created" and created["stream_table"] == "public.totals"
    assert created["previous_query_hash"] is None and len(created["query_hash"]) == 64
    assert db.multiset_difference("totals", QUERY) == 0

    again = materialize(db, QUERY)
    assert again["action"] == "unchanged"
    assert again["query_hash"] == again["previous_query_hash"] == created["query_hash"]

    reformatted = "SELECT customer,\n       SUM(amount) AS total -- per customer\n  FROM orders\n GROUP BY customer;"
    assert materialize(db, reformatted)["action"] == "unchanged"

    altered = materialize(db, QUERY, {"schedule": "5m", "status": "SUSPENDED"})
    assert altered["action"] == "altered"
    assert {c["key"]: (c["from"], c["to"]) for c in altered["changes"]} == {
        "schedule": ("1m", "5m"),
        "status": ("ACTIVE", "SUSPENDED"),
    }
    assert db.sql("SELECT schedule, status FROM pgstream.pgs_stream_tables") == [("5m", "SUSPENDED")]
    # Status is left alone when the config does not mention it.
    assert materialize(db, QUERY, {"schedule": "5m"})["action"] == "unchanged"

    changed = "select customer, sum(amount) as total from orders where amount > 50 group by customer"
    recreated = materialize(db, changed, {"schedule": "5m"})
    assert recreated["action"] == "recreated" and recreated["reason"] == "query changed"
    assert recreated["previous_query_hash"] == created["query_hash"]
    assert recreated["in_place"] is True
    assert db.multiset_difference("totals", changed) == 0

    full = materialize(db, changed, {"schedule": "5m", "full_refresh": True})
    assert full["action"] == "recreated" and full["reason"] == "full refresh requested"
    assert db.value("SELECT count(*) FROM pgstream.pgs_stream_tables") == 1


def test_shape_change_swaps_in_a_new_table_keeping_grants_and_comments(db):
    setup_orders(db)
    db.sql("CREATE ROLE mat_reader")
    try:
        materialize(db, QUERY)
        db.sql("GRANT SELECT ON totals TO mat_reader")
        db.sql("COMMENT ON TABLE totals IS 'order totals'")
        db.sql("COMMENT ON COLUMN totals.total IS 'sum of amounts'")
        old_oid = db.value("SELECT 'totals'::regclass::oid")
        wider = "select customer, sum(amount) as total, count(*) as orders from orders group by customer"
        result = materialize(db, wider)
        assert result["action"] == "recreated" and result["in_place"] is False
        assert db.value("SELECT 'totals'::regclass::oid") != old_oid
        assert db.multiset_difference("totals", wider) == 0
        assert db.value("SELECT has_table_privilege('mat_reader', 'totals', 'SELECT')") is True
        assert db.value("SELECT obj_description('totals'::regclass, 'pg_class')") == "order totals"
        assert db.value("SELECT col_description('totals'::regclass, 2)") == "sum of amounts"
        assert db.sql("SELECT pgs_schema, pgs_name FROM pgstream.pgs_stream_tables") == [("public", "totals")]
        assert db.value("SELECT count(*) FROM pg_class WHERE relname LIKE '%%pgs_swap%%'") == 0
        assert db.value("SELECT to_regclass('totals_pgs_key') IS NOT NULL") is True  # keyed by customer
        db.sql("SELECT pgstream.refresh_stream_table('totals')")
    finally:
        db.sql("DROP OWNED BY mat_reader")
        db.sql("DROP ROLE mat_reader")


def test_swap_names_the_dependent_objects_it_drops(db):
    setup_orders(db)
    materialize(db, QUERY)
    db.sql("CREATE VIEW top_customers AS SELECT customer FROM totals WHERE total > 500")
    conn = db.connect()
    wider = "select customer, sum(amount) as total, min(amount) as smallest from orders group by customer"
    result = materialize(db, wider, conn=conn)
    assert result["action"] == "recreated"
    assert any("top_customers" in w for w in result["warnings"])
    assert any("top_customers" in n for n in conn.notices)
    assert db.value("SELECT to_regclass('top_customers')") is None


def test_in_place_recreate_keeps_dependent_views(db):
    setup_orders(db)
    materialize(db, QUERY)
    db.sql("CREATE VIEW top_customers AS SELECT customer FROM totals WHERE total > 500")
    result = materialize(db, QUERY.replace("sum(amount)", "sum(amount * 2)"))
    assert result["action"] == "recreated" and result["in_place"] is True and result["warnings"] == []
    assert db.value("SELECT count(*) FROM top_customers") > 0


@pytest.mark.parametrize("wider", [False, True], ids=["in_place", "swap"])
def test_reader_keeps_seeing_rows_during_a_recreate(db, wider):
    setup_orders(db)
    db.sql("CREATE TABLE delay (seconds float8)")
    db.sql("INSERT INTO delay VALUES (0)")
    db.sql(
        "CREATE FUNCTION slow_pass() RETURNS bool LANGUAGE plpgsql VOLATILE AS "
        "$$ BEGIN PERFORM pg_sleep((SELECT seconds FROM delay)); RETURN true; END $$"
    )
    materialize(db, QUERY)
    db.sql("UPDATE delay SET seconds = 1.5")
    extra = ", count(*) as n" if wider else ""
    new_query = f"select customer, sum(amount) + 1 as total{extra} from orders where (select slow_pass()) group by customer"
    seen, errors, stop = [], [], threading.Event()

    def read():
        conn = db.connect()
        with conn.cursor() as cur:
            while not stop.is_set():
                try:
                    cur.execute("SELECT count(*) FROM totals")
                    seen.append(cur.fetchone()[0])
                except psycopg2.Error as exc:
                    errors.append(exc)
                time.sleep(0.02)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        result = materialize(db, new_query, conn=db.connect())
    finally:
        time.sleep(0.2)
        stop.set()
        reader.join()
    assert result["action"] == "recreated" and result["in_place"] is (not wider)
    assert not errors, errors
    assert len(seen) > 10 and min(seen) == 10, seen


def test_concurrent_materialize_of_one_model_creates_once(db):
    setup_orders(db)
    first = db.connect(autocommit=False)
    assert materialize(db, QUERY, conn=first)["action"] == "created"
    results = []

    def second():
        results.append(materialize(db, QUERY, conn=db.connect()))

    worker = threading.Thread(target=second)
    worker.start()
    time.sleep(0.5)
    assert worker.is_alive(), "the second call must wait for the first to commit"
    first.commit()
    worker.join(timeout=30)
    assert results and results[0]["action"] == "unchanged"


def test_on_configuration_change_continue_and_fail(db):
    setup_orders(db)
    materialize(db, QUERY)
    conn = db.connect()
    kept = materialize(db, QUERY, {"schedule": "7m", "on_configuration_change": "continue"}, conn=conn)
    assert kept["action"] == "unchanged" and "schedule: 1m -> 7m" in kept["warnings"][0]
    assert any("on_configuration_change is 'continue'" in n for n in conn.notices)
    assert db.value("SELECT schedule FROM pgstream.pgs_stream_tables") == "1m"
    err = db.error(
        "SELECT pgstream_dbt.materialize('totals', %s, %s::jsonb)",
        (QUERY, json.dumps({"refresh_mode": "FULL", "schedule": "7m", "on_configuration_change": "fail"})),
    )
    assert err.pgcode == "55000" and "schedule: 1m -> 7m" in err.diag.message_primary
    assert db.value("SELECT schedule FROM pgstream.pgs_stream_tables") == "1m"
    # A query change still recreates under 'fail'.
    changed = QUERY.replace("sum", "max")
    assert materialize(db, changed, {"on_configuration_change": "fail"})["action"] == "recreated"


BAD_CONFIGS = [
    ({"schedul": "1m"}, "schedul", "schedule, refresh_mode, initialize"),
    ({"schedule": "soon"}, "schedule", "cron"),
    ({"schedule": 60}, "schedule", "duration"),
    ({"refresh_mode": "FAST"}, "refresh_mode", "FULL, DIFFERENTIAL, AUTO"),
    ({"initialize": "yes"}, "initialize", "true or false"),
    ({"full_refresh": "true"}, "full_refresh", "true or false"),
    ({"on_configuration_change": "ignore"}, "on_configuration_change", "apply, continue, fail"),
    ({"status": "PAUSED"}, "status", "ACTIVE, SUSPENDED"),
    ({"distribution_column": "customer", "reference_table": True}, "distribution_column", "not both"),
    ({"reference_table": "yes"}, "reference_table", "true or false"),
]


@pytest.mark.parametrize("config,key,accepted", BAD_CONFIGS)
def test_bad_config_is_refused_naming_the_key_before_anything_changes(db, config, key, accepted):
    setup_orders(db)
    for existing in (False, True):
        if existing:
            materialize(db, QUERY)
        before = db.sql("SELECT * FROM pgstream.pgs_stream_tables")
        err = db.error(
            "SELECT pgstream_dbt.materialize('totals', %s, %s::jsonb)",
            (QUERY.replace("sum", "max"), json.dumps(dict(FULL, **config))),
        )
        assert err.pgcode == "22023", err.pgerror
        assert f'"{key}"' in err.diag.message_primary
        assert accepted in err.diag.message_hint
        assert db.sql("SELECT * FROM pgstream.pgs_stream_tables") == before


def test_other_bad_input(db):
    setup_orders(db)
    err = db.error("SELECT pgstream_dbt.materialize('orders', 'select 1 as one', '{\"refresh_mode\": \"FULL\"}')")
    assert err.pgcode == "42P07" and "is not a stream table (it is a table)" in err.diag.message_primary
    assert "full_refresh" in err.diag.message_hint
    assert db.error("SELECT pgstream_dbt.materialize('st', 'select 1 as one', '[]')").pgcode == "22023"
    err = db.error("SELECT pgstream_dbt.materialize('st', 'select 1 as one, rank() over () as r', '{}')")
    assert err.pgcode == "0A000" and "window function rank()" in err.diag.message_primary
    assert db.error("SELECT pgstream_dbt.materialize('no such.st', 'select 1 as one', '{}')").pgcode == "42602"
    assert db.error("SELECT pgstream_dbt.materialize(NULL, 'select 1 as one', '{}')").pgcode == "22004"
    assert db.error("SELECT pgstream_dbt.materialize('st', 'select nope', '{\"refresh_mode\": \"FULL\"}')").pgcode == "42703"
    assert db.value("SELECT count(*) FROM pgstream.pgs_stream_tables") == 0
    assert db.value("SELECT to_regclass('st')") is None


def test_a_citus_table_asked_for_without_citus_is_refused_and_nothing_is_left(db):
    setup_orders(db)
    for config in ({"distribution_column": "customer"}, {"reference_table": True}):
        err = db.error("SELECT pgstream_dbt.materialize('totals', %s, %s::jsonb)", (QUERY, json.dumps(config)))
        assert err.pgcode == "0A000" and err.diag.message_primary == "Citus is not installed in this database", err.pgerror
        assert db.value("SELECT to_regclass('totals')") is None
    materialize(db, QUERY)
    err = db.error("SELECT pgstream.distribute_stream_table('totals', 'customer')")
    assert err.pgcode == "0A000" and "CREATE EXTENSION citus" in err.diag.message_hint, err.pgerror
    assert db.error("SELECT pgstream.distribute_stream_table(NULL)").pgcode == "22004"


def test_full_refresh_replaces_a_plain_table_of_that_name(db):
    setup_orders(db)
    db.sql("CREATE TABLE old_model AS SELECT 1 AS x")
    result = materialize(db, QUERY, {"full_refresh": True}, name="old_model")
    assert result["action"] == "recreated" and "replaces the existing table" in result["reason"]
    assert db.multiset_difference("old_model", QUERY) == 0


def test_quoted_schema_qualified_names(db):
    setup_orders(db)
    db.sql('CREATE SCHEMA "Mart"')
    result = materialize(db, QUERY, name='"Mart"."Order Totals"')
    assert result["action"] == "created" and result["stream_table"] == '"Mart"."Order Totals"'
    assert materialize(db, QUERY, name='"Mart"."Order Totals"')["action"] == "unchanged"


def test_normalize_and_hash_functions(db):
    assert db.value("SELECT pgstream_dbt.normalize_query('SELECT A -- c\n FROM t;')") == "select a from t"
    assert db.value("SELECT pgstream_dbt.query_hash('select a from t') = pgstream_dbt.query_hash('SELECT  a FROM t')") is True
    assert db.value("SELECT pgstream_dbt.query_hash('select \"A\" from t') = pgstream_dbt.query_hash('select a from t')") is False


def test_stream_tables_reading_a_swapped_table_follow_it(db):
    setup_orders(db)
    materialize(db, QUERY, name="up")
    materialize(db, "select customer, total from up where total > 100", name="down")
    result = materialize(db, QUERY.replace("as total", "as total, count(*) as n"), name="up")
    assert result["in_place"] is False and result["readers"] == ["public.down"]
    new_oid = db.value("SELECT 'up'::regclass::oid")
    assert db.value(
        "SELECT d.source_relid FROM pgstream.pgs_dependencies d JOIN pgstream.pgs_stream_tables s "
        "USING (pgs_id) WHERE s.pgs_name = 'down'"
    ) == new_oid
    db.sql("INSERT INTO orders VALUES (3, 1000)")
    db.sql("SELECT pgstream.refresh_stream_table('up')")
    db.sql("SELECT pgstream.refresh_stream_table('down')")
    assert db.multiset_difference("down", "select customer, total from up where total > 100") == 0
