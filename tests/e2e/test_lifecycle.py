"""Create, populate, refresh, alter and drop stream tables on a real cluster; contents are
compared with the defining query as multisets after every change."""

QUERY = (
    "SELECT customer, sum(amount) AS total, count(*) AS orders, count(amount) AS priced "
    "FROM orders GROUP BY customer"
)


def make_orders(db):
    db.sql("CREATE TABLE orders (id serial, customer int, amount numeric)")
    db.sql(
        "INSERT INTO orders (customer, amount) VALUES "
        "(1, 10), (1, 5), (2, 7), (NULL, 1), (NULL, NULL), (3, NULL)"
    )


def test_create_populates_and_refresh_follows_insert_update_delete(db):
    make_orders(db)
    db.sql("SELECT pgstream.create_stream_table('totals', %s, '1m', 'FULL')", (QUERY,))
    assert db.value("SELECT count(*) FROM totals") == 4
    assert db.multiset_difference("totals", QUERY) == 0

    db.sql("INSERT INTO orders (customer, amount) VALUES (4, 1), (1, 100)")
    db.sql("UPDATE orders SET amount = amount * 2 WHERE customer = 2")
    db.sql("UPDATE orders SET customer = 5 WHERE customer IS NULL AND amount IS NULL")
    db.sql("DELETE FROM orders WHERE customer = 3")
    assert db.multiset_difference("totals", QUERY) > 0, "the source change must be visible before refresh"
    db.sql("SELECT pgstream.refresh_stream_table('totals')")
    assert db.multiset_difference("totals", QUERY) == 0

    stats = db.sql(
        "SELECT total_refreshes, failed_refreshes, consecutive_errors, last_refresh_at IS NOT NULL, "
        "last_rows_inserted, last_rows_deleted FROM pgstream.pg_stat_stream_tables WHERE pgs_name = 'totals'"
    )[0]
    assert stats[0] == 2 and stats[1] == 0 and stats[2] == 0 and stats[3]
    assert stats[4] > 0 and stats[5] > 0


def test_unchanged_rows_keep_their_identity(db):
    """A grouped query is keyed by its group columns: a refresh rewrites only the group that
    changed, in place (unchanged rows keep the transaction that wrote them)."""
    make_orders(db)
    db.sql("SELECT pgstream.create_stream_table('totals', %s, '1m', 'FULL')", (QUERY,))
    identity = dict(db.sql("SELECT property, value FROM pgstream.explain_stream_table('totals')"))["row_identity"]
    assert identity.startswith("key") and "customer" in identity
    before = dict(db.sql("SELECT customer, xmin::text FROM totals WHERE customer IS NOT NULL"))
    db.sql("UPDATE orders SET amount = 99 WHERE customer = 2")
    db.sql("SELECT pgstream.refresh_stream_table('totals')")
    after = dict(db.sql("SELECT customer, xmin::text FROM totals WHERE customer IS NOT NULL"))
    assert after[1] == before[1] and after[3] == before[3]
    assert after[2] != before[2]
    assert db.sql(
        "SELECT last_rows_inserted, last_rows_deleted, last_rows_updated FROM pgstream.pgs_stream_tables"
    ) == [(0, 0, 1)]
    assert db.multiset_difference("totals", QUERY) == 0


def test_duplicate_rows_and_nulls_are_kept_as_a_multiset(db):
    db.sql("CREATE TABLE events (kind text, n int)")
    db.sql("INSERT INTO events VALUES ('a', 1), ('a', 1), ('a', 1), (NULL, NULL), (NULL, NULL), ('', NULL)")
    query = "SELECT kind, n FROM events"
    db.sql("SELECT pgstream.create_stream_table('ev', %s, '1m', 'FULL')", (query,))
    assert db.value("SELECT count(*) FROM ev") == 6
    assert db.multiset_difference("ev", query) == 0
    db.sql("DELETE FROM events WHERE ctid = (SELECT min(ctid) FROM events WHERE kind = 'a')")
    db.sql("INSERT INTO events VALUES (NULL, NULL)")
    db.sql("SELECT pgstream.refresh_stream_table('ev')")
    assert db.multiset_difference("ev", query) == 0
    assert db.value("SELECT count(*) FROM ev WHERE kind = 'a'") == 2
    assert db.value("SELECT count(*) FROM ev WHERE kind IS NULL") == 3
    assert db.value("SELECT count(DISTINCT __pgs_row_id) FROM ev") == 6


def test_initialize_false_leaves_the_table_empty_until_refresh(db):
    make_orders(db)
    db.sql("SELECT pgstream.create_stream_table('totals', %s, '1m', 'FULL', false)", (QUERY,))
    assert db.value("SELECT count(*) FROM totals") == 0
    assert db.value("SELECT stale FROM pgstream.pg_stat_stream_tables") is True
    db.sql("SELECT pgstream.refresh_stream_table('totals')")
    assert db.multiset_difference("totals", QUERY) == 0


def test_names_quoted_qualified_and_through_search_path(db):
    db.sql('CREATE SCHEMA "Sales"')
    db.sql("CREATE SCHEMA analytics")
    make_orders(db)
    db.sql(
        "SELECT pgstream.create_stream_table('\"Sales\".\"Order Totals\"', %s, '5m', 'FULL')",
        (QUERY,),
    )
    assert db.value('SELECT count(*) FROM "Sales"."Order Totals"') == 4
    assert db.sql("SELECT pgs_schema, pgs_name FROM pgstream.pgs_stream_tables") == [
        ("Sales", "Order Totals")
    ]
    db.sql("SELECT pgstream.refresh_stream_table('\"Sales\".\"Order Totals\"')")

    conn = db.connect()
    with conn.cursor() as cur:
        cur.execute("SET search_path = analytics, public")
        cur.execute("SELECT pgstream.create_stream_table('Plain', 'SELECT 1 AS one', '1m', 'FULL')")
        cur.execute("SELECT pgstream.refresh_stream_table('plain')")
        cur.execute("SELECT pgstream.alter_stream_table('PLAIN', schedule => '10m')")
    assert db.value("SELECT pgs_schema FROM pgstream.pgs_stream_tables WHERE pgs_name = 'plain'") == "analytics"
    assert db.value("SELECT schedule FROM pgstream.pgs_stream_tables WHERE pgs_name = 'plain'") == "10m"
    db.sql("SELECT pgstream.drop_stream_table('analytics.plain')")
    assert db.value("SELECT to_regclass('analytics.plain')") is None


def test_sources_are_recorded_through_views(db):
    make_orders(db)
    db.sql("CREATE TABLE customers (id int, name text)")
    db.sql("CREATE VIEW big_orders AS SELECT o.* FROM orders o JOIN customers c ON c.id = o.customer WHERE amount > 5")
    db.sql("SELECT pgstream.create_stream_table('st', 'SELECT customer FROM big_orders', '1m', 'FULL')")
    sources = db.sql(
        "SELECT source_name, source_kind FROM pgstream.pgs_dependencies ORDER BY source_name"
    )
    assert sources == [("big_orders", "view"), ("customers", "table"), ("orders", "table")]
    health = db.sql("SELECT source_name, readers FROM pgstream.check_cdc_health() ORDER BY 1")
    assert health == [("customers", ["public.st"]), ("orders", ["public.st"])]


def test_stream_table_reading_a_stream_table(db):
    make_orders(db)
    db.sql("SELECT pgstream.create_stream_table('totals', %s, '1m', 'FULL')", (QUERY,))
    top = "SELECT customer, total FROM totals WHERE total > 5"
    db.sql("SELECT pgstream.create_stream_table('top', %s, '1m', 'FULL')", (top,))
    assert db.value("SELECT source_kind FROM pgstream.pgs_dependencies d JOIN pgstream.pgs_stream_tables s "
                    "USING (pgs_id) WHERE s.pgs_name = 'top'") == "stream table"
    db.sql("INSERT INTO orders (customer, amount) VALUES (9, 50)")
    db.sql("SELECT pgstream.refresh_stream_table('totals')")
    db.sql("SELECT pgstream.refresh_stream_table('top')")
    assert db.multiset_difference("top", "SELECT customer, sum(amount) AS total FROM orders GROUP BY customer HAVING sum(amount) > 5") == 0


def test_alter_changes_only_what_is_given(db):
    make_orders(db)
    db.sql("SELECT pgstream.create_stream_table('totals', %s, '1m', 'FULL')", (QUERY,))
    db.sql("SELECT pgstream.alter_stream_table('totals', schedule => '*/5 * * * *')")
    assert db.sql("SELECT schedule, refresh_mode, status FROM pgstream.pgs_stream_tables") == [
        ("*/5 * * * *", "FULL", "ACTIVE")
    ]
    db.sql("SELECT pgstream.alter_stream_table('totals', status => 'suspended')")
    assert db.sql("SELECT schedule, refresh_mode, status FROM pgstream.pgs_stream_tables") == [
        ("*/5 * * * *", "FULL", "SUSPENDED")
    ]
    db.sql("SELECT pgstream.alter_stream_table('totals', refresh_mode => 'full', status => 'ACTIVE', schedule => '@hourly')")
    assert db.sql("SELECT schedule, refresh_mode, status FROM pgstream.pgs_stream_tables") == [
        ("@hourly", "FULL", "ACTIVE")
    ]
    next_at, last_at = db.sql("SELECT next_refresh_at, last_refresh_at FROM pgstream.pg_stat_stream_tables")[0]
    assert next_at > last_at and next_at.minute == 0 and next_at.second == 0


def test_drop_removes_table_and_catalog_and_refuses_when_views_depend(db):
    make_orders(db)
    db.sql("SELECT pgstream.create_stream_table('totals', %s, '1m', 'FULL')", (QUERY,))
    db.sql("CREATE VIEW on_totals AS SELECT * FROM totals")
    err = db.error("SELECT pgstream.drop_stream_table('totals')")
    assert err.pgcode == "2BP01"
    assert db.value("SELECT count(*) FROM pgstream.pgs_stream_tables") == 1
    db.sql("DROP VIEW on_totals")
    db.sql("SELECT pgstream.drop_stream_table('totals')")
    assert db.value("SELECT to_regclass('totals')") is None
    assert db.value("SELECT count(*) FROM pgstream.pgs_stream_tables") == 0
    assert db.value("SELECT count(*) FROM pgstream.pgs_dependencies") == 0


def test_plain_ddl_on_a_stream_table_keeps_the_catalog_in_step(db):
    make_orders(db)
    db.sql("CREATE SCHEMA other")
    db.sql("SELECT pgstream.create_stream_table('totals', %s, '1m', 'FULL')", (QUERY,))
    db.sql("ALTER TABLE totals RENAME TO totals2")
    db.sql("ALTER TABLE totals2 SET SCHEMA other")
    assert db.sql("SELECT pgs_schema, pgs_name FROM pgstream.pgs_stream_tables") == [("other", "totals2")]
    db.sql("SELECT pgstream.refresh_stream_table('other.totals2')")
    db.sql("DROP TABLE other.totals2")
    assert db.value("SELECT count(*) FROM pgstream.pgs_stream_tables") == 0


def test_drop_extension_leaves_stream_tables_as_plain_tables(db):
    make_orders(db)
    db.sql("SELECT pgstream.create_stream_table('totals', %s, '1m', 'FULL')", (QUERY,))
    db.sql("DROP EXTENSION pg_stream_dbt")
    assert db.value("SELECT count(*) FROM totals") == 4
    assert db.sql("SELECT nspname FROM pg_namespace WHERE nspname IN ('pgstream', 'pgstream_dbt')") == []
    assert db.value("SELECT count(*) FROM pg_event_trigger WHERE evtname LIKE 'pgstream%%'") == 0
    db.sql("CREATE EXTENSION pg_stream_dbt")
    assert db.value("SELECT count(*) FROM pgstream.pgs_stream_tables") == 0


def row_identity(db, name):
    return dict(db.sql("SELECT property, value FROM pgstream.explain_stream_table(%s)", (name,)))["row_identity"]


def test_row_identity_follows_the_sources_keys(db):
    """A key dropped from a source makes the stream table a multiset at its next refresh (rows
    that repeat the old key are kept); a key added makes it keyed again. Nothing is lost."""
    db.sql("CREATE TABLE items (id int PRIMARY KEY, v int); INSERT INTO items VALUES (1, 10), (2, 20)")
    query = "SELECT id, v FROM items"
    db.sql("SELECT pgstream.create_stream_table('it', %s, '1m', 'DIFFERENTIAL')", (query,))
    assert row_identity(db, "it").startswith("key")
    db.sql("ALTER TABLE items DROP CONSTRAINT items_pkey")
    db.sql("INSERT INTO items VALUES (1, 11)")
    db.sql("SELECT pgstream.refresh_stream_table('it')")
    assert row_identity(db, "it").startswith("multiset")
    assert db.multiset_difference("it", query) == 0
    assert db.value("SELECT row_key FROM pgstream.pgs_stream_tables") is None
    db.sql("DELETE FROM items WHERE v = 11; ALTER TABLE items ADD PRIMARY KEY (id)")
    db.sql("INSERT INTO items VALUES (3, 30)")
    db.sql("SELECT pgstream.refresh_stream_table('it')")
    assert db.value("SELECT row_key FROM pgstream.pgs_stream_tables") == ["id"]
    assert db.multiset_difference("it", query) == 0
    assert db.value("SELECT count(*) FROM information_schema.columns WHERE table_name = 'it' "
                    "AND column_name = '__pgs_row_id'") == 0
    db.sql("UPDATE items SET v = v + 1")
    db.sql("SELECT pgstream.refresh_stream_table('it')")
    assert db.value("SELECT last_refresh_kind FROM pgstream.pgs_stream_tables") == "DIFFERENTIAL"
    assert db.multiset_difference("it", query) == 0


def test_create_and_refresh_inside_a_plpgsql_function(db):
    """Inside PL/pgSQL (its own SPI connection active) over a table the same function created:
    creating, changing and refreshing leave the caller's execution intact."""
    db.sql("""
        CREATE FUNCTION build_totals() RETURNS bigint LANGUAGE plpgsql AS $$
        BEGIN
          CREATE TABLE fsrc (k int, v int);
          INSERT INTO fsrc VALUES (1, 1), (1, 2), (2, NULL);
          PERFORM pgstream.create_stream_table('ftotals',
            'SELECT k, count(*) AS n, sum(v) AS s, max(v) AS hi FROM fsrc GROUP BY k');
          INSERT INTO fsrc VALUES (3, 3);
          UPDATE fsrc SET v = 5 WHERE v = 2;
          DELETE FROM fsrc WHERE k = 2;
          PERFORM pgstream.refresh_stream_table('ftotals');
          RETURN (SELECT count(*) FROM ftotals);
        END $$""")
    assert db.value("SELECT build_totals()") == 2
    assert db.multiset_difference(
        "ftotals", "SELECT k, count(*) AS n, sum(v) AS s, max(v) AS hi FROM fsrc GROUP BY k") == 0


def test_full_refresh_writes_only_rows_that_differ(db):
    """FULL compares the query's rows with the table's by key in one pass: unchanged rows (a NULL
    key among them) are not written again, a value stored differently (1.0 → 1.00) is, and a
    table emptied by its query fills again."""
    db.sql("CREATE TABLE orders (customer int, amount numeric)")
    db.sql("INSERT INTO orders VALUES (1, 1.0), (2, 7), (NULL, 3), (3, 4)")
    query = "SELECT customer, sum(amount) AS total FROM orders GROUP BY customer"
    db.sql("SELECT pgstream.create_stream_table('totals', %s, '1m', 'FULL')", (query,))
    assert db.value(
        "SELECT count(*) FROM pg_index WHERE indrelid = 'totals'::regclass AND indisunique AND indisvalid"
    ) == 1, "the identity index is built after the first population"
    before = dict(db.sql("SELECT coalesce(customer, -1), xmin::text FROM totals"))
    db.sql("UPDATE orders SET amount = 1.00 WHERE customer = 1")
    db.sql("DELETE FROM orders WHERE customer = 3")
    db.sql("INSERT INTO orders VALUES (4, 5)")
    db.sql("SELECT pgstream.refresh_stream_table('totals')")
    assert db.multiset_difference("totals", query) == 0
    assert db.value("SELECT total::text FROM totals WHERE customer = 1") == "1.00"
    after = dict(db.sql("SELECT coalesce(customer, -1), xmin::text FROM totals"))
    assert after[-1] == before[-1] and after[2] == before[2], "unchanged rows stay as they were"
    assert after[1] != before[1]
    assert db.sql(
        "SELECT last_rows_inserted, last_rows_updated, last_rows_deleted FROM pgstream.pgs_stream_tables"
    ) == [(1, 1, 1)]

    db.sql("DELETE FROM orders")
    db.sql("SELECT pgstream.refresh_stream_table('totals')")
    assert db.value("SELECT count(*) FROM totals") == 0
    db.sql("INSERT INTO orders VALUES (NULL, 1), (5, 2)")
    db.sql("SELECT pgstream.refresh_stream_table('totals')")
    assert db.multiset_difference("totals", query) == 0
    assert db.error("INSERT INTO totals VALUES (5, 0)").pgcode == "23505", "the key stays unique"


def test_first_population_in_the_creating_transaction_keeps_every_index(db):
    """Created and first filled in one transaction, with indexes of the user's made in between:
    the plain ones (rebuilt after the rows), a commented one and a unique constraint's (left in
    place) all exist afterwards, valid, and the unique one still refuses a duplicate."""
    make_orders(db)
    conn = db.connect(autocommit=False)
    with conn.cursor() as cur:
        cur.execute("SELECT pgstream.create_stream_table('totals', %s, '1m', 'DIFFERENTIAL', false)", (QUERY,))
        cur.execute("CREATE INDEX totals_total ON totals (total) WHERE total > 0")
        cur.execute("CREATE INDEX totals_orders ON totals (orders)")
        cur.execute("COMMENT ON INDEX totals_orders IS 'kept'")
        cur.execute("ALTER TABLE totals ADD CONSTRAINT totals_priced UNIQUE (customer, priced)")
        cur.execute("SELECT pgstream.refresh_stream_table('totals')")
    conn.commit()
    assert db.multiset_difference("totals", QUERY) == 0
    indexes = dict(db.sql(
        "SELECT c.relname::text, i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
        "WHERE i.indrelid = 'totals'::regclass"))
    assert indexes == {"totals_pgs_key": True, "totals_total": True, "totals_orders": True,
                       "totals_priced": True}, indexes
    assert db.value("SELECT pg_get_indexdef('totals_total'::regclass)").endswith("WHERE (total > (0)::numeric)")
    assert db.value("SELECT obj_description('totals_orders'::regclass, 'pg_class')") == "kept"
    db.sql("INSERT INTO orders (customer, amount) VALUES (9, 1)")
    db.sql("SELECT pgstream.refresh_stream_table('totals')")
    assert db.multiset_difference("totals", QUERY) == 0
    assert db.error("INSERT INTO totals SELECT * FROM totals WHERE customer = 9").pgcode == "23505"


def test_full_refresh_by_composite_keys_with_nulls_of_builtin_and_other_types(db):
    """FULL matches keys by `=` where every key column has a built-in type, else by the key's
    hash and IS NOT DISTINCT FROM (a domain here): both keep rows whose key has NULLs."""
    db.sql("CREATE DOMAIN code AS text CHECK (VALUE <> '')")
    db.sql("CREATE TABLE sales (c code, region text, n int, amount numeric)")
    db.sql("INSERT INTO sales VALUES ('a', NULL, 1, 10), (NULL, 'eu', 2, 5), (NULL, NULL, 3, 1), "
           "('b', 'us', 4, 2), ('a', NULL, 5, 3), ('c', NULL, 8, 9)")
    queries = {
        "by_builtin": "SELECT region, n % 2 AS odd, sum(amount) AS total FROM sales GROUP BY region, n % 2",
        "by_domain": "SELECT c, region, sum(amount) AS total, count(*) AS k FROM sales GROUP BY c, region",
    }
    for name, query in queries.items():
        db.sql("SELECT pgstream.create_stream_table(%s, %s, '1m', 'FULL')", (name, query))
    before = {name: dict(db.sql(f"SELECT ctid::text, xmin::text FROM {name}")) for name in queries}
    db.sql("UPDATE sales SET amount = amount + 1 WHERE n = 4")
    db.sql("INSERT INTO sales VALUES (NULL, NULL, 7, 100)")
    db.sql("DELETE FROM sales WHERE n = 2")
    for name, query in queries.items():
        db.sql("SELECT pgstream.refresh_stream_table(%s)", (name,))
        assert db.multiset_difference(name, query) == 0, name
        kept = set(before[name].items()) & set(
            dict(db.sql(f"SELECT ctid::text, xmin::text FROM {name}")).items())
        assert kept, f"{name}: rows whose key (NULLs in it) did not change stay as they were"
