"""Stream tables that are partitioned tables (`partition_by`): made with the engine's own
partitions (DEFAULT for RANGE and LIST, the hash partitions for HASH), their identity index
extended by the partition columns, rows applied into (and moved between) the right partitions
by DIFFERENTIAL and FULL refreshes, partitions added with add_partition (rows moved out of the
DEFAULT one), materialize() recreating on a changed partition_by and carrying users' partitions
over a recreate, and bad input refused with nothing changed."""

import pytest

ORDERS = """
CREATE TABLE orders (id int PRIMARY KEY, customer int, status text, day date, amount numeric);
INSERT INTO orders SELECT g, g % 10, (ARRAY['placed', 'shipped', 'returned'])[g % 3 + 1],
       date '2025-01-01' + g % 60, g FROM generate_series(1, 600) g
"""
BY_DAY = "SELECT day, count(*) AS n, sum(amount) AS total FROM orders GROUP BY day"
ROWS = "SELECT id, customer, status, amount FROM orders"
PAIRS = "SELECT customer, status FROM orders"


@pytest.fixture
def orders(db):
    for statement in ORDERS.strip().split(";\n"):
        db.sql(statement)
    return db


def create(db, name, query, partition_by, mode="DIFFERENTIAL"):
    db.sql("SELECT pgstream.create_stream_table(%s, %s, '1h', %s, partition_by => %s)",
           (name, query, mode, partition_by))


def placement(db, name, column):
    """{partition: sorted distinct values of `column` in it}."""
    rows = db.sql(f"SELECT tableoid::regclass::text, array_agg(DISTINCT {column}::text ORDER BY {column}::text) "
                  f"FROM {name} GROUP BY 1")
    return dict(rows)


def refresh(db, name):
    db.sql("SELECT pgstream.refresh_stream_table(%s)", (name,))
    return db.value("SELECT last_refresh_kind FROM pgstream.pgs_stream_tables WHERE pgs_name = %s", (name,))


def test_each_strategy_makes_the_engines_partitions_and_a_fitting_identity_index(orders):
    db = orders
    create(db, "by_day", BY_DAY, "RANGE (day)")
    create(db, "o", ROWS, "list (Status)")
    create(db, "pairs", PAIRS, "HASH (customer) PARTITIONS 3")
    parts = dict(db.sql("SELECT c.relname::text, array_agg(p.relname::text ORDER BY p.relname) "
                        "FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhparent "
                        "JOIN pg_class p ON p.oid = i.inhrelid WHERE c.relkind = 'p' GROUP BY 1"))
    assert parts == {"by_day": ["by_day_default"], "o": ["o_default"], "pairs": ["pairs_p0", "pairs_p1", "pairs_p2"]}
    assert db.value("SELECT pg_get_partkeydef('o'::regclass)") == "LIST (status)"
    # The key (id) lacks the partition column: the unique index has it too. A multiset's
    # __pgs_row_id index has the partition column; a key that has it stays as it is.
    assert db.value("SELECT pg_get_indexdef('o_pgs_key'::regclass)").endswith("id, status) NULLS NOT DISTINCT")
    assert db.value("SELECT pg_get_indexdef('pairs___pgs_row_id_idx'::regclass)").endswith(
        "(__pgs_row_id, customer)")
    assert db.value("SELECT pg_get_indexdef('by_day_pgs_key'::regclass)").endswith(", day) NULLS NOT DISTINCT")
    for name, query in [("by_day", BY_DAY), ("o", ROWS), ("pairs", PAIRS)]:
        assert db.multiset_difference(name, query) == 0, name
    assert db.value("SELECT count(DISTINCT tableoid) FROM pairs") == 3
    explained = dict(db.sql("SELECT property, value FROM pgstream.explain_stream_table('pairs')"))
    assert explained["partitioning"] == ("PARTITION BY HASH (customer) PARTITIONS 3; "
                                         "the engine's partitions: public.pairs_p0, public.pairs_p1, public.pairs_p2")
    create(db, "plain", ROWS, None)
    assert "partitioning" not in dict(db.sql("SELECT property, value FROM pgstream.explain_stream_table('plain')"))
    assert db.value("SELECT relkind FROM pg_class WHERE oid = 'plain'::regclass") == "r"


def test_add_partition_moves_rows_and_refreshes_apply_into_the_right_partitions(orders):
    db = orders
    create(db, "o", ROWS, "LIST (status)")
    create(db, "by_day", BY_DAY, "RANGE (day)")
    assert db.value("SELECT pgstream.add_partition('o', 'o_shipped', in_values => ARRAY['shipped'])") == 200
    assert db.value("SELECT pgstream.add_partition('o', 'o_lost', in_values => ARRAY['lost'])") == 0
    assert db.value("SELECT pgstream.add_partition('by_day', 'by_day_jan', from_values => ARRAY['2025-01-01'], "
                    "to_values => ARRAY['2025-02-01'])") == 31
    assert db.value("SELECT pgstream.add_partition('by_day', 'by_day_old', from_values => ARRAY['minvalue'], "
                    "to_values => ARRAY['2025-01-01'])") == 0
    assert placement(db, "o", "status") == {"o_default": ["placed", "returned"], "o_shipped": ["shipped"]}
    # Rows move between partitions as their partition column changes; new and deleted rows too.
    db.sql("UPDATE orders SET status = 'lost' WHERE id <= 10")
    db.sql("UPDATE orders SET status = 'shipped' WHERE id BETWEEN 11 AND 13 AND status <> 'shipped'")
    db.sql("UPDATE orders SET day = '2024-12-31' WHERE id BETWEEN 14 AND 16")
    db.sql("DELETE FROM orders WHERE id BETWEEN 17 AND 20")
    db.sql("INSERT INTO orders VALUES (1001, 1, 'lost', '2025-03-30', 5)")
    assert refresh(db, "o") == "DIFFERENTIAL"
    assert refresh(db, "by_day") == "DIFFERENTIAL"
    assert placement(db, "o", "status") == {
        "o_default": ["placed", "returned"], "o_shipped": ["shipped"], "o_lost": ["lost"]}
    days = placement(db, "by_day", "day")
    assert days["by_day_old"] == ["2024-12-31"]
    assert all(d.startswith("2025-01") for d in days["by_day_jan"])
    assert not any(d.startswith("2025-01") for d in days["by_day_default"])
    assert db.multiset_difference("o", ROWS) == 0
    assert db.multiset_difference("by_day", BY_DAY) == 0
    assert db.value("SELECT count(*) FROM o WHERE status = 'lost'") == 11


def test_full_refresh_mode_into_a_partitioned_stream_table(orders):
    db = orders
    create(db, "pairs", PAIRS, "HASH (status)", mode="FULL")
    create(db, "o", ROWS, "LIST (status)", mode="FULL")
    db.sql("SELECT pgstream.add_partition('o', 'o_placed', in_values => ARRAY['placed'])")
    db.sql("UPDATE orders SET status = 'placed' WHERE id % 7 = 0")
    db.sql("DELETE FROM orders WHERE id % 11 = 0")
    for name, query in [("pairs", PAIRS), ("o", ROWS)]:
        assert refresh(db, name) == "FULL"
        assert db.multiset_difference(name, query) == 0, name
    assert placement(db, "o", "status")["o_placed"] == ["placed"]


def test_bad_partition_by_and_bounds_are_refused_and_change_nothing(orders):
    db = orders
    cases = [
        ("RANGE (nope)", "names column \"nope\", which the query's result does not have"),
        ("WEEKLY (day)", "unknown strategy WEEKLY"),
        ("RANGE (date_trunc('day', day))", "not a column name"),
        ("LIST (status, customer)", "exactly one column"),
        ("HASH (customer) PARTITIONS 0", "between 1 and 1024"),
    ]
    for spec, message in cases:
        error = db.error("SELECT pgstream.create_stream_table('bad', %s, partition_by => %s)", (ROWS, spec))
        assert error.pgcode == "22023", (spec, error.pgcode)
        assert message in error.pgerror, error.pgerror
        assert "partition_by" in error.pgerror or "partition" in (error.diag.message_hint or "")
    assert db.value("SELECT count(*) FROM pg_class WHERE relname LIKE 'bad%'") == 0
    assert db.value("SELECT count(*) FROM pgstream.pgs_stream_tables") == 0
    error = db.error("SELECT pgstream_dbt.materialize('bad', %s, '{\"partition_by\": \"BY DAY\"}')", (ROWS,))
    assert error.pgcode == "22023" and "partition_by" in error.pgerror, error.pgerror

    create(db, "o", ROWS, "LIST (status)")
    create(db, "pairs", PAIRS, "HASH (customer)")
    create(db, "plain", ROWS, None)
    for call, message in [
        ("SELECT pgstream.add_partition('o', 'x', from_values => ARRAY['a'], to_values => ARRAY['b'])",
         "does not match its partitioning"),
        ("SELECT pgstream.add_partition('pairs', 'x', in_values => ARRAY['a'])", "is HASH partitioned"),
        ("SELECT pgstream.add_partition('plain', 'x', in_values => ARRAY['a'])", "is not partitioned"),
        ("SELECT pgstream.add_partition('o', 'o', in_values => ARRAY['a'])", "already exists"),
    ]:
        error = db.error(call)
        assert message in error.pgerror, (call, error.pgerror)
    # Values are literals, never SQL: this is one odd value.
    assert db.value("SELECT pgstream.add_partition('o', 'x', in_values => ARRAY['shipped'', ''x'])") == 0
    assert db.value("SELECT pg_get_expr(relpartbound, oid) FROM pg_class WHERE relname = 'x'") == \
        "FOR VALUES IN ('shipped'', ''x')"
    # A bound PostgreSQL refuses: its error, and the DEFAULT partition attached as before.
    db.sql("SELECT pgstream.add_partition('o', 'o_shipped', in_values => ARRAY['shipped'])")
    error = db.error("SELECT pgstream.add_partition('o', 'o_again', in_values => ARRAY['shipped'])")
    assert error.pgcode == "42P17", error.pgerror  # would overlap partition "o_shipped"
    error = db.error("SELECT pgstream.add_partition('pairs_too', 'y', in_values => ARRAY['a'])")
    assert error.pgcode == "42P01", error.pgerror
    assert sorted(placement(db, "o", "status")) == ["o_default", "o_shipped"]
    assert db.value("SELECT to_regclass('o_again')") is None
    assert db.value("SELECT pg_get_expr(relpartbound, oid) FROM pg_class WHERE relname = 'o_default'") == "DEFAULT"
    assert db.multiset_difference("o", ROWS) == 0


def test_materialize_keeps_recreates_and_carries_partitions(orders):
    db = orders

    def materialize(query, config):
        return db.value("SELECT pgstream_dbt.materialize('o', %s, %s::jsonb)", (query, config))

    assert materialize(ROWS, '{"partition_by": "LIST (status)"}')["action"] == "created"
    db.sql("SELECT pgstream.add_partition('o', 'o_shipped', in_values => ARRAY['shipped'])")
    assert materialize(ROWS, '{"partition_by": "list(STATUS)"}')["action"] == "unchanged"
    # A new column: built beside and swapped in, users' partitions made again and filled.
    wider = ROWS.replace("amount FROM", "amount, day FROM")
    result = materialize(wider, '{"partition_by": "LIST (status)"}')
    assert (result["action"], result["in_place"]) == ("recreated", False)
    assert placement(db, "o", "status") == {"o_default": ["placed", "returned"], "o_shipped": ["shipped"]}
    assert db.value("SELECT pg_get_indexdef('o_pgs_key'::regclass)").startswith("CREATE UNIQUE INDEX o_pgs_key ON")
    assert db.multiset_difference("o", wider) == 0
    # Another partition_by: recreated, the old partitions named in a warning.
    result = materialize(wider, '{"partition_by": "HASH (id) PARTITIONS 2"}')
    assert result["action"] == "recreated"
    assert result["reason"] == "partition_by changed (LIST (status) -> HASH (id) PARTITIONS 2)"
    assert sorted(placement(db, "o", "id")) == ["o_p0", "o_p1"]
    assert db.value("SELECT to_regclass('o_shipped')") is None
    result = materialize(wider, "{}")
    assert result["reason"] == "partition_by changed (HASH (id) PARTITIONS 2 -> none)"
    assert db.value("SELECT relkind FROM pg_class WHERE oid = 'o'::regclass") == "r"
    assert db.value("SELECT count(*) FROM pg_class WHERE relname IN ('o_p0', 'o_p1', 'o_default')") == 0
    assert db.multiset_difference("o", wider) == 0


def test_drop_removes_every_partition(orders):
    db = orders
    create(db, "o", ROWS, "LIST (status)")
    db.sql("SELECT pgstream.add_partition('o', 'o_shipped', in_values => ARRAY['shipped'])")
    db.sql("SELECT pgstream.drop_stream_table('o')")
    assert db.value("SELECT count(*) FROM pg_class WHERE relname LIKE 'o\\_%' AND relkind IN ('r', 'p')") == 0


def test_partitions_are_known_by_their_bounds_and_schemas_not_their_names(orders):
    """A renamed DEFAULT partition is still the one add_partition moves rows out of; a user's
    partition in another schema is made again there by a recreate; a LIST value that looks like a
    hash bound does not make the stream table look HASH partitioned."""
    db = orders
    create(db, "o", ROWS, "LIST (status)")
    db.sql("ALTER TABLE o_default RENAME TO o_rest")
    db.sql("CREATE SCHEMA archive")
    assert db.value("SELECT pgstream.add_partition('o', 'archive.o_shipped', in_values => ARRAY['shipped'])") == 200
    assert db.value("SELECT pgstream.add_partition('o', 'o_odd', in_values => ARRAY['for values with (modulus 5, x'])") == 0
    explained = dict(db.sql("SELECT property, value FROM pgstream.explain_stream_table('o')"))
    assert explained["partitioning"] == "PARTITION BY LIST (status); the engine's partitions: public.o_rest"
    wider = ROWS.replace("amount FROM", "amount, day FROM")
    result = db.value("SELECT pgstream_dbt.materialize('o', %s, '{\"partition_by\": \"LIST (status)\"}')", (wider,))
    assert result["action"] == "recreated", result
    assert placement(db, "o", "status") == {"o_default": ["placed", "returned"], "archive.o_shipped": ["shipped"]}
    assert db.value("SELECT to_regclass('o_odd')") is not None
    assert db.multiset_difference("o", wider) == 0


def test_bound_values_stay_literals_without_standard_conforming_strings(orders):
    db = orders
    create(db, "o", ROWS, "LIST (status)")
    db.sql("SET standard_conforming_strings = off")
    value = "\\'); DROP TABLE orders; --"
    assert db.value("SELECT pgstream.add_partition('o', 'o_odd', in_values => ARRAY[%s])", (value,)) == 0
    db.sql("SET standard_conforming_strings = on")
    assert db.value("SELECT to_regclass('orders')") is not None
    assert db.value("SELECT count(*) FROM pg_class WHERE relname = 'o_odd'") == 1


def test_list_partitions_take_null_and_keyword_like_values_range_bounds_refuse_null(orders):
    db = orders
    db.sql("UPDATE orders SET status = NULL WHERE id % 50 = 0")
    db.sql("UPDATE orders SET status = 'minvalue' WHERE id % 50 = 1")
    create(db, "o", ROWS, "LIST (status)")
    # NULL is a list value; MINVALUE in a LIST is a value like any other, not the keyword.
    assert db.value("SELECT pgstream.add_partition('o', 'o_odd', in_values => ARRAY[NULL, 'minvalue'])") == 24
    assert db.value("SELECT pg_get_expr(relpartbound, oid) FROM pg_class WHERE relname = 'o_odd'") == \
        "FOR VALUES IN (NULL, 'minvalue')"
    assert db.value("SELECT count(*) FROM o_odd WHERE status IS NULL") == 12
    db.sql("UPDATE orders SET status = NULL WHERE id = 2")
    assert refresh(db, "o") == "DIFFERENTIAL"
    assert db.value("SELECT count(*) FROM o_odd WHERE status IS NULL") == 13
    assert db.multiset_difference("o", ROWS) == 0
    create(db, "by_day", BY_DAY, "RANGE (day)")
    error = db.error("SELECT pgstream.add_partition('by_day', 'd', from_values => ARRAY[NULL], to_values => ARRAY['2025-02-01'])")
    assert error.pgcode == "22023" and "range bound of a new partition of stream table public.by_day is NULL" in error.pgerror, \
        error.pgerror
    assert "MINVALUE or MAXVALUE" in error.diag.message_hint
    assert db.value("SELECT pgstream.add_partition('by_day', 'd', from_values => ARRAY['minvalue'], "
                    "to_values => ARRAY['2025-01-11'])") == 10
    assert db.value("SELECT pg_get_expr(relpartbound, oid) FROM pg_class WHERE relname = 'd'") == \
        "FOR VALUES FROM (MINVALUE) TO ('2025-01-11')"


def test_recreate_names_the_stream_table_drops_views_on_partitions_and_keeps_owners(orders):
    db = orders
    role = db.name + "_owner"
    db.sql(f'CREATE ROLE "{role}"')
    try:
        db.sql(f'GRANT SELECT ON orders TO "{role}"; GRANT CREATE ON SCHEMA public TO "{role}"')
        db.sql(f'SET ROLE "{role}"')
        create(db, "o", ROWS, "LIST (status)")
        db.sql("RESET ROLE")
        # The superuser adds a partition: it is owned like the stream table all the same.
        db.sql("SELECT pgstream.add_partition('o', 'o_shipped', in_values => ARRAY['shipped'])")
        db.sql("CREATE VIEW shipped_view AS SELECT * FROM o_shipped")

        def owners():
            return dict(db.sql("SELECT relname::text, pg_get_userbyid(relowner)::text FROM pg_class "
                               "WHERE relname IN ('o', 'o_default', 'o_shipped')"))

        assert owners() == {"o": role, "o_default": role, "o_shipped": role}
        # A new query without the partition column: refused under the stream table's own name.
        error = db.error("SELECT pgstream_dbt.materialize('o', 'SELECT id, amount FROM orders', "
                         "'{\"partition_by\": \"LIST (status)\"}')")
        assert error.pgcode == "22023" and "of stream table public.o names column \"status\"" in error.pgerror, error.pgerror
        assert "__pgs_swap" not in error.pgerror
        # Recreated (by the superuser, as dbt's runner might): the view on a partition goes with
        # the old table, named in a warning; the new table and partitions keep their owner.
        db.conn.notices.clear()
        wider = ROWS.replace("amount FROM", "amount, day FROM")
        result = db.value("SELECT pgstream_dbt.materialize('o', %s, '{\"partition_by\": \"LIST (status)\"}')", (wider,))
        assert result["action"] == "recreated", result
        assert any("shipped_view" in n for n in db.conn.notices), db.conn.notices
        assert db.value("SELECT to_regclass('shipped_view')") is None
        assert owners() == {"o": role, "o_default": role, "o_shipped": role}
        assert db.multiset_difference("o", wider) == 0
    finally:
        db.sql("RESET ROLE")
        db.sql("DROP VIEW IF EXISTS shipped_view")
        db.sql("SELECT pgstream.drop_stream_table('o')")
        db.sql(f'DROP OWNED BY "{role}"; DROP ROLE "{role}"')


def test_on_configuration_change_governs_a_partition_by_change(orders):
    db = orders

    def materialize(config):
        return db.value("SELECT pgstream_dbt.materialize('o', %s, %s::jsonb)", (ROWS, config))

    assert materialize('{"partition_by": "LIST (status)"}')["action"] == "created"
    error = db.error("SELECT pgstream_dbt.materialize('o', %s, %s::jsonb)",
                     (ROWS, '{"partition_by": "HASH (id)", "on_configuration_change": "fail"}'))
    assert "partition_by: LIST (status) -> HASH (id) PARTITIONS 4" in error.pgerror, error.pgerror
    result = materialize('{"partition_by": "HASH (id)", "on_configuration_change": "continue"}')
    assert result["action"] == "unchanged" and "partition_by: LIST (status) -> HASH" in result["warnings"][0], result
    assert db.value("SELECT pg_get_partkeydef('o'::regclass)") == "LIST (status)"
    assert materialize('{"partition_by": "HASH (id)"}')["action"] == "recreated"
    assert db.value("SELECT pg_get_partkeydef('o'::regclass)") == "HASH (id)"
