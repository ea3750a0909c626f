"""Stream tables that are themselves Citus tables (pgstream.distribute_stream_table): a keyed
stream table distributed by one of its columns, or made a reference table, keeps its rows on
the workers and is refreshed DIFFERENTIAL and FULL there, equal to its query after every round
of writes; what cannot be made a Citus table is refused with a clear error and left as it was.
Needs the cluster of scripts/citus.sh (scripts/test_citus.sh runs it)."""

import random

import psycopg2
import pytest

from test_citus import SETUP, clean, connect, difference, random_writes, sql, worker_counts

# (name, query, distribution column or None for a reference table). `d_amount` is distributed by
# a column its key (id) lacks: a changed amount moves the row to another shard.
CITUS_STREAM_TABLES = [
    ("d_by_customer", "SELECT customer_id, count(*) AS n, sum(amount) AS total, max(amount) AS top FROM orders GROUP BY customer_id", "customer_id"),
    ("d_amount", "SELECT id, customer_id, amount FROM orders WHERE status = 'paid' AND amount > 20", "amount"),
    ("d_distinct", "SELECT DISTINCT status, customer_id FROM orders", "customer_id"),
    ("d_per_day", "WITH paid AS (SELECT * FROM orders WHERE status = 'paid') SELECT date_trunc('day', created_at) AS day, sum(amount) AS revenue, count(*) AS n FROM paid GROUP BY 1", "day"),
    ("r_by_status", "SELECT status, count(*) AS n, sum(amount) AS total FROM orders GROUP BY status", None),
    ("r_customers", "SELECT c.id, c.name, c.region FROM customers c WHERE c.region IS NOT NULL", None),
    # NULL keys: customers.region is NULL for a third of the customers.
    ("r_by_region", "SELECT c.region, count(*) AS n FROM orders o JOIN customers c ON c.id = o.customer_id GROUP BY c.region", None),
    ("d_customer_region", "SELECT o.customer_id, c.region, count(*) AS n, sum(o.amount) AS total FROM orders o JOIN customers c ON c.id = o.customer_id GROUP BY o.customer_id, c.region", "customer_id"),
    # A one-row result (no key columns).
    ("r_paid_total", "SELECT count(*) AS n, sum(amount) AS total FROM orders WHERE status = 'paid'", None),
]
NAMES = [name for name, _, _ in CITUS_STREAM_TABLES] + ["d_by_customer_view", "d_multiset", "d_full", "d_reader", "d_parted"]


@pytest.fixture
def db():
    conn = connect()
    sql(conn, "DROP TABLE IF EXISTS " + ", ".join(NAMES) + " CASCADE")
    clean(conn)
    sql(conn, "CREATE EXTENSION pg_stream_dbt")
    for statement in SETUP.strip().split(";\n"):
        sql(conn, statement)
    yield conn
    sql(conn, "DROP EXTENSION IF EXISTS pg_stream_dbt CASCADE")
    sql(conn, "DROP TABLE IF EXISTS " + ", ".join(NAMES) + " CASCADE")
    clean(conn)
    conn.close()


def citus_kind(conn, name):
    rows = sql(conn, "SELECT partmethod, repmodel FROM pg_dist_partition WHERE logicalrelid = %s::regclass", (name,))
    return {("h", "s"): "distributed", ("n", "t"): "reference"}.get(rows[0], rows[0]) if rows else None


def test_distributed_and_reference_stream_tables_are_refreshed_differential_on_the_workers(db):
    for name, query, column in CITUS_STREAM_TABLES:
        sql(db, "SELECT pgstream.create_stream_table(%s, %s, '1h', 'DIFFERENTIAL')", (name, query))
        sql(db, "SELECT pgstream.distribute_stream_table(%s, %s)", (name, column))
        assert citus_kind(db, name) == ("distributed" if column else "reference"), name
        assert difference(db, name, query) == 0, name
    # The identity index of d_amount holds its distribution column (Citus requires it).
    index = sql(db, "SELECT pg_get_indexdef(indexrelid) FROM pg_index WHERE indrelid = 'd_amount'::regclass")[0][0]
    assert index.endswith(", id, amount) NULLS NOT DISTINCT"), index
    # The rows are on the workers' shards, none left in the coordinator's file of the tables.
    for name, _, _ in CITUS_STREAM_TABLES:
        assert sql(db, "SELECT pg_relation_size(%s)", (name,)) == [(0,)], name
    shard_rows = sum(worker_counts(db, "SELECT coalesce(sum(n_live_tup), 0) FROM pg_stat_user_tables WHERE relname LIKE 'd\\_by\\_customer\\_%'"))
    assert shard_rows > 0
    rng = random.Random(20261206)
    updated = 0
    for round_no in range(4):
        random_writes(db, rng)
        if round_no % 2:
            # DDL makes the next refresh re-analyze its query (EXPLAIN of a distributed query in
            # the refresh's transaction: Citus then executes no more locally on the coordinator).
            sql(db, "CREATE TABLE d_unrelated (a int); DROP TABLE d_unrelated")
        sql(db, "UPDATE orders SET amount = amount + 30 WHERE id %% 41 = %s AND status = 'paid'", (round_no,))
        for name, query, _ in CITUS_STREAM_TABLES:
            sql(db, "SELECT pgstream.refresh_stream_table(%s)", (name,))
            assert difference(db, name, query) == 0, (round_no, name)
        kinds = dict(sql(db, "SELECT pgs_name, last_refresh_kind || coalesce(': ' || last_refresh_reason, '') FROM pgstream.pgs_stream_tables"))
        assert set(kinds.values()) <= {"DIFFERENTIAL", "SKIPPED"}, kinds
        updated += sql(db, "SELECT coalesce(sum(last_rows_updated), 0) FROM pgstream.pg_stat_stream_tables")[0][0]
    assert updated > 0  # changed groups are counted as updated, not as a removal and an insertion
    # A change that leaves the one-row result as it is leaves its row there.
    sql(db, "INSERT INTO orders VALUES (990001, 3, 5, 'open', now())")
    sql(db, "SELECT pgstream.refresh_stream_table('r_paid_total')")
    assert sql(db, "SELECT count(*) FROM r_paid_total") == [(1,)]
    assert difference(db, "r_paid_total", dict((n, q) for n, q, _ in CITUS_STREAM_TABLES)["r_paid_total"]) == 0
    # Exact counts of a distributed refresh: one group changed in place, one new, one gone.
    sql(db, "INSERT INTO customers VALUES (901, 'new', 'west'), (902, 'gone', 'west')")
    sql(db, "INSERT INTO orders VALUES (990002, 902, 1, 'open', now())")
    sql(db, "SELECT pgstream.refresh_stream_table('d_by_customer')")
    sql(db, "UPDATE orders SET amount = amount + 1 WHERE id = (SELECT min(id) FROM orders WHERE customer_id = 5)")
    sql(db, "INSERT INTO orders VALUES (990003, 901, 1, 'open', now())")
    sql(db, "DELETE FROM orders WHERE customer_id = 902")
    sql(db, "SELECT pgstream.refresh_stream_table('d_by_customer')")
    assert sql(db, "SELECT last_refresh_kind, last_rows_inserted, last_rows_updated, last_rows_deleted "
                   "FROM pgstream.pg_stat_stream_tables WHERE pgs_name = 'd_by_customer'") == [("DIFFERENTIAL", 1, 1, 1)]


def test_full_and_auto_refreshes_of_a_distributed_stream_table_equal_the_query(db):
    query = "SELECT customer_id, count(*) AS n, sum(amount) AS total FROM orders GROUP BY customer_id"
    sql(db, "SELECT pgstream.create_stream_table('d_full', %s, '1h', 'FULL')", (query,))
    sql(db, "SELECT pgstream.distribute_stream_table('d_full', 'customer_id')")
    rng = random.Random(7)
    for mode in ["FULL", "AUTO", "FULL"]:
        sql(db, "SELECT pgstream.alter_stream_table('d_full', refresh_mode => %s)", (mode,))
        random_writes(db, rng)
        sql(db, "SELECT pgstream.refresh_stream_table('d_full')")
        assert difference(db, "d_full", query) == 0, mode
    assert sql(db, "SELECT last_refresh_kind FROM pgstream.pgs_stream_tables WHERE pgs_name = 'd_full'") == [("FULL",)]


def error_of(conn, statement, params=None):
    """(SQLSTATE, the whole message with its hint) of the error `statement` raises."""
    with pytest.raises(psycopg2.Error) as caught:
        sql(conn, statement, params)
    return caught.value.pgcode, caught.value.pgerror


def test_what_cannot_be_made_a_citus_table_is_refused_and_left_as_it_was(db):
    sql(db, "SELECT pgstream.create_stream_table('d_by_customer', 'SELECT customer_id, count(*) AS n FROM orders GROUP BY customer_id', '1h')")
    code, message = error_of(db, "SELECT pgstream.distribute_stream_table('d_by_customer', 'nope')")
    assert code == "42703" and 'column "nope" of stream table' in message and "HINT:  distribution_column names one of its columns: customer_id, n." in message, message
    # A multiset has no key its rows could be found by on the shards.
    sql(db, "SELECT pgstream.create_stream_table('d_multiset', 'SELECT customer_id, amount FROM orders', '1h')")
    code, message = error_of(db, "SELECT pgstream.distribute_stream_table('d_multiset', 'customer_id')")
    assert code == "0A000" and "has no key" in message and "HINT:  Only a stream table whose result has a key" in message, message
    # Read by another stream table: its capture triggers are the coordinator's.
    sql(db, "SELECT pgstream.create_stream_table('d_reader', 'SELECT count(*) AS n FROM d_by_customer', '1h')")
    code, message = error_of(db, "SELECT pgstream.distribute_stream_table('d_by_customer', 'customer_id')")
    assert code == "0A000" and "is read by stream table" in message and "d_reader" in message, message
    sql(db, "SELECT pgstream.drop_stream_table('d_reader')")
    sql(db, "SELECT pgstream.create_stream_table('d_parted', 'SELECT customer_id, count(*) AS n FROM orders GROUP BY customer_id', '1h', partition_by => 'HASH (customer_id) PARTITIONS 2')")
    code, message = error_of(db, "SELECT pgstream.distribute_stream_table('d_parted')")
    assert code == "0A000" and "is partitioned" in message, message
    for name in ["d_by_customer", "d_multiset", "d_parted"]:
        assert citus_kind(db, name) is None, name
    sql(db, "SELECT pgstream.distribute_stream_table('d_by_customer', 'customer_id')")
    code, message = error_of(db, "SELECT pgstream.distribute_stream_table('d_by_customer')")
    assert code == "0A000" and "is a Citus table already" in message, message
    assert citus_kind(db, "d_by_customer") == "distributed"
    # Only its owner may distribute it.
    sql(db, "DROP ROLE IF EXISTS citus_mallory")
    sql(db, "CREATE ROLE citus_mallory")
    try:
        sql(db, "SET ROLE citus_mallory")
        code, message = error_of(db, "SELECT pgstream.distribute_stream_table('d_multiset')")
        assert code == "42501", message
    finally:
        sql(db, "RESET ROLE")
        sql(db, "DROP ROLE citus_mallory")
    assert citus_kind(db, "d_multiset") is None


def test_dropping_a_distributed_stream_table_drops_its_shards(db):
    sql(db, "SELECT pgstream.create_stream_table('d_by_customer', 'SELECT customer_id, count(*) AS n FROM orders GROUP BY customer_id', '1h')")
    sql(db, "SELECT pgstream.distribute_stream_table('d_by_customer', 'customer_id')")
    shards = "SELECT count(*) FROM pg_class WHERE relname LIKE 'd\\_by\\_customer\\_%' AND relkind = 'r'"
    assert min(worker_counts(db, shards)) > 0
    sql(db, "SELECT pgstream.drop_stream_table('d_by_customer')")
    assert worker_counts(db, shards) == [0, 0]
    assert sql(db, "SELECT count(*) FROM pg_dist_partition WHERE logicalrelid::text = 'd_by_customer'") == [(0,)]


def materialize(conn, name, query, config):
    return sql(conn, "SELECT pgstream_dbt.materialize(%s, %s, %s::jsonb)", (name, query, config))[0][0]


def test_materialize_makes_and_keeps_the_citus_table_its_config_asks_for(db):
    """What dbt's `distribution_column` / `reference_table` configs do: create it distributed,
    leave it alone while the config stays, recreate it when the distribution changes."""
    query = "SELECT customer_id, count(*) AS n, sum(amount) AS total FROM orders GROUP BY customer_id"
    result = materialize(db, "d_by_customer", query, '{"distribution_column": "customer_id"}')
    assert result["action"] == "created", result
    assert citus_kind(db, "d_by_customer") == "distributed"
    assert difference(db, "d_by_customer", query) == 0
    result = materialize(db, "d_by_customer", query, '{"distribution_column": "customer_id"}')
    assert result["action"] == "unchanged", result
    random_writes(db, random.Random(3))
    sql(db, "SELECT pgstream.refresh_stream_table('d_by_customer')")
    assert sql(db, "SELECT last_refresh_kind FROM pgstream.pgs_stream_tables WHERE pgs_name = 'd_by_customer'") == [("DIFFERENTIAL",)]
    assert difference(db, "d_by_customer", query) == 0
    sql(db, "COMMENT ON TABLE d_by_customer IS 'per customer'")
    sql(db, "GRANT SELECT ON d_by_customer TO PUBLIC")
    sql(db, "CREATE VIEW d_by_customer_view AS SELECT * FROM d_by_customer")
    result = materialize(db, "d_by_customer", query, '{"reference_table": true}')
    assert result["action"] == "recreated", result
    # Built beside, swapped in, then made a reference table: grants and comments carried, the
    # view on the old table named in the warnings.
    assert "view d_by_customer_view" in str(result["warnings"]), result
    assert sql(db, "SELECT obj_description('d_by_customer'::regclass, 'pg_class')") == [("per customer",)]
    assert sql(db, "SELECT has_table_privilege('public', 'd_by_customer', 'SELECT')") == [(True,)]
    assert result["reason"] == "distribution changed (distributed by customer_id -> reference table)", result
    assert citus_kind(db, "d_by_customer") == "reference"
    assert difference(db, "d_by_customer", query) == 0
    result = materialize(db, "d_by_customer", query, '{"reference_table": true, "on_configuration_change": "fail"}')
    assert result["action"] == "unchanged", result
    code, message = error_of(db, "SELECT pgstream_dbt.materialize('d_by_customer', %s, '{\"on_configuration_change\": \"fail\"}')", (query,))
    assert code == "55000" and "distribution: reference table -> none" in message, message
    result = materialize(db, "d_by_customer", query, "{}")
    assert result["action"] == "recreated", result
    assert citus_kind(db, "d_by_customer") is None
    assert difference(db, "d_by_customer", query) == 0
    # A query change of a distributed stream table recreates it distributed.
    materialize(db, "d_by_customer", query, '{"distribution_column": "customer_id"}')
    other = query.replace("sum(amount)", "max(amount)")
    result = materialize(db, "d_by_customer", other, '{"distribution_column": "customer_id"}')
    assert result["action"] == "recreated" and result["reason"] == "query changed", result
    assert citus_kind(db, "d_by_customer") == "distributed"
    assert difference(db, "d_by_customer", other) == 0
    code, message = error_of(db, "SELECT pgstream_dbt.materialize('d_multiset', 'SELECT customer_id FROM orders', '{\"reference_table\": true}')")
    assert code == "0A000" and "has no key" in message, message
    assert sql(db, "SELECT count(*) FROM pg_class WHERE relname = 'd_multiset'") == [(0,)]  # nothing left behind


def test_a_distributed_stream_table_follows_its_sources_key_and_refuses_to_lose_it(db):
    """Its sources' primary key changes: the refresh gives it the new key, its identity index
    still holding the distribution column; a result left without a key is refused, not applied."""
    query = "SELECT id, customer_id, amount FROM orders WHERE amount > 20"
    sql(db, "SELECT pgstream.create_stream_table('d_amount', %s, '1h', 'DIFFERENTIAL')", (query,))
    sql(db, "SELECT pgstream.distribute_stream_table('d_amount', 'amount')")
    sql(db, "ALTER TABLE orders DROP CONSTRAINT orders_pkey")
    sql(db, "ALTER TABLE orders ADD PRIMARY KEY (id, customer_id)")
    sql(db, "UPDATE orders SET amount = amount + 100 WHERE id % 50 = 0")
    sql(db, "SELECT pgstream.refresh_stream_table('d_amount')")
    assert difference(db, "d_amount", query) == 0
    index = sql(db, "SELECT pg_get_indexdef(indexrelid) FROM pg_index WHERE indrelid = 'd_amount'::regclass")[0][0]
    assert index.endswith(", id, customer_id, amount) NULLS NOT DISTINCT"), index
    sql(db, "ALTER TABLE orders DROP CONSTRAINT orders_pkey")
    sql(db, "UPDATE orders SET amount = amount + 1 WHERE id % 50 = 1")
    before = sql(db, "SELECT count(*), sum(amount) FROM d_amount")
    code, message = error_of(db, "SELECT pgstream.refresh_stream_table('d_amount')")
    assert code == "55000" and "no longer has a key" in message, message
    # Nothing applied: the rows of the last refresh stay, distributed as they were.
    assert citus_kind(db, "d_amount") == "distributed"
    assert sql(db, "SELECT count(*), sum(amount) FROM d_amount") == before
