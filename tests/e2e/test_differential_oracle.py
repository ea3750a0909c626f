"""Randomized oracle for DIFFERENTIAL refresh: after random multi-statement transactions
(INSERT, UPDATE of keys, join keys and group keys, DELETE, TRUNCATE, writers committing
while refreshes run, changes in the refreshing transaction itself), every stream table must
equal its query as a multiset.

Seeded and reproducible: PGS_ORACLE_SEED picks the seed (printed on failure with the query),
PGS_ORACLE_ROUNDS the number of rounds (CI runs fewer; `make oracle` runs the full 50)."""

import collections
import os
import random
import threading

from conftest import connect

SEED = int(os.environ.get("PGS_ORACLE_SEED", "20261125"))
ROUNDS = int(os.environ.get("PGS_ORACLE_ROUNDS", "50"))

SCHEMA = """
CREATE TABLE o_cust (id int PRIMARY KEY, region text, tier int);
CREATE TABLE o_orders (id int, cust_id int, amount numeric, status text);
CREATE TABLE o_items (order_id int, sku text, qty int);
CREATE TABLE o_dup (x int, y text);
CREATE TABLE o_num (n numeric, w int);
CREATE TABLE o_flt (k float8, w int);
CREATE VIEW o_open_orders AS SELECT id, cust_id, amount FROM o_orders WHERE status IS NOT NULL;
CREATE VIEW o_order_regions AS
    SELECT o.id, o.amount, c.region FROM o_orders o JOIN o_cust c ON c.id = o.cust_id;
"""

# (name, query): every construct DIFFERENTIAL maintains, over keyless tables with
# duplicates and NULLs in keys and values.
QUERIES = [
    ("q_columns", "SELECT id, cust_id, amount FROM o_orders"),
    ("q_star", "SELECT * FROM o_dup"),
    ("q_expressions", "SELECT id, amount * 2 AS doubled, CASE WHEN amount > 50 THEN 'big' ELSE 'small' END AS size, "
                      "COALESCE(status, 'none') AS st, amount::int AS whole, length(status) AS len "
                      "FROM o_orders WHERE status IS DISTINCT FROM 'void'"),
    ("q_filter_nulls", "SELECT upper(y) AS uy, x + 1 AS x1 FROM o_dup WHERE x IS NULL OR x > 2"),
    ("q_join", "SELECT o.id, c.region FROM o_orders o JOIN o_cust c ON c.id = o.cust_id"),
    ("q_join3", "SELECT o.id, c.region, i.sku, i.qty FROM o_orders o JOIN o_cust c ON c.id = o.cust_id "
                "JOIN o_items i ON i.order_id = o.id"),
    ("q_non_equi", "SELECT o.id AS oid, d.x FROM o_orders o JOIN o_dup d ON d.x * 10 > o.amount AND d.x * 5 < o.amount"),
    ("q_self_join", "SELECT a.id AS a_id, b.id AS b_id FROM o_orders a JOIN o_orders b "
                    "ON a.cust_id = b.cust_id AND a.id < b.id"),
    ("q_comma_join", "SELECT c.id, d.y FROM o_cust c, o_dup d WHERE c.tier = d.x"),
    ("q_join_using", "SELECT x, y, y2 FROM o_dup JOIN (SELECT x, y AS y2 FROM o_dup WHERE y > 'm') s USING (x)"),
    ("q_count", "SELECT cust_id, count(*) AS n FROM o_orders GROUP BY cust_id"),
    ("q_sum_avg", "SELECT status, count(amount) AS n, sum(amount) AS total, avg(amount) AS mean "
                  "FROM o_orders GROUP BY status"),
    ("q_min_max", "SELECT cust_id, min(amount) AS lo, max(amount) AS hi FROM o_orders GROUP BY cust_id"),
    ("q_other_aggs", "SELECT cust_id, count(DISTINCT status) AS statuses, "
                     "string_agg(DISTINCT status, ',' ORDER BY status) AS list, bool_and(amount > 10) AS all_big, "
                     "bool_or(status = 'paid') AS any_paid FROM o_orders GROUP BY cust_id"),
    ("q_array_agg", "SELECT x, array_agg(y ORDER BY y) AS ys FROM o_dup GROUP BY x"),
    ("q_having", "SELECT cust_id, sum(amount) AS total FROM o_orders GROUP BY cust_id HAVING count(*) > 1"),
    ("q_scalar", "SELECT count(*) AS n, sum(amount) AS total, max(amount) AS hi FROM o_orders"),
    ("q_group_expr", "SELECT amount::int / 25 AS bucket, count(*) AS n FROM o_orders GROUP BY amount::int / 25"),
    ("q_join_agg", "SELECT c.region, count(*) AS n, sum(o.amount) AS total FROM o_orders o "
                   "JOIN o_cust c ON c.id = o.cust_id GROUP BY c.region"),
    ("q_distinct", "SELECT DISTINCT cust_id, status FROM o_orders"),
    ("q_distinct_nulls", "SELECT DISTINCT y FROM o_dup"),
    ("q_union_all", "SELECT x AS v FROM o_dup UNION ALL SELECT tier FROM o_cust"),
    ("q_union", "SELECT x AS v FROM o_dup UNION SELECT tier FROM o_cust"),
    ("q_subquery", "SELECT s.id, s.big FROM (SELECT id, amount > 50 AS big FROM o_orders "
                   "WHERE status IS NOT NULL) s WHERE s.big"),
    ("q_cte", "WITH big AS (SELECT id, cust_id FROM o_orders WHERE amount > 30) "
              "SELECT big.id, c.tier FROM big JOIN o_cust c ON c.id = big.cust_id"),
    ("q_cte_agg", "WITH j AS (SELECT o.amount, c.tier FROM o_orders o JOIN o_cust c ON c.id = o.cust_id) "
                  "SELECT tier, sum(amount) AS total, count(*) AS n FROM j GROUP BY tier"),
    ("q_view", "SELECT * FROM o_open_orders"),
    ("q_view_agg", "SELECT region, count(*) AS n, sum(amount) AS total FROM o_order_regions GROUP BY region"),
    ("q_null_join_keys", "SELECT d1.y, d2.y AS y2 FROM o_dup d1 JOIN o_dup d2 ON d1.x = d2.x WHERE d1.y < d2.y"),
    ("q_keyless_dups", "SELECT x, y FROM o_dup WHERE y IS NOT NULL"),
    ("q_left_join", "SELECT o.id, c.region FROM o_orders o LEFT JOIN o_cust c ON c.id = o.cust_id"),
    ("q_left_join_filtered", "SELECT o.id, o.amount, c.tier FROM o_orders o LEFT JOIN o_cust c "
                             "ON c.id = o.cust_id AND c.tier > 1 WHERE o.amount > 20"),
    ("q_right_join", "SELECT c.id AS cid, o.id AS oid FROM o_orders o RIGHT JOIN o_cust c ON c.id = o.cust_id"),
    ("q_full_join", "SELECT c.id AS cid, d.y FROM o_cust c FULL JOIN o_dup d ON c.tier = d.x"),
    ("q_two_left_joins", "SELECT o.id, c.region, i.sku FROM o_orders o LEFT JOIN o_cust c ON c.id = o.cust_id "
                         "LEFT JOIN o_items i ON i.order_id = o.id"),
    ("q_left_join_agg", "SELECT c.region, count(o.id) AS orders, sum(o.amount) AS total FROM o_cust c "
                        "LEFT JOIN o_orders o ON o.cust_id = c.id GROUP BY c.region"),
    ("q_exists", "SELECT c.id FROM o_cust c WHERE EXISTS (SELECT 1 FROM o_orders o WHERE o.cust_id = c.id)"),
    ("q_not_exists", "SELECT c.id, c.tier FROM o_cust c WHERE c.tier IS NOT NULL AND "
                     "NOT EXISTS (SELECT 1 FROM o_orders o WHERE o.cust_id = c.id AND o.status = 'paid')"),
    ("q_in", "SELECT id, amount FROM o_orders WHERE cust_id IN (SELECT id FROM o_cust WHERE tier > 1)"),
    ("q_not_in", "SELECT x, y FROM o_dup WHERE x NOT IN (SELECT tier FROM o_cust WHERE region = 'north')"),
    ("q_num_groups", "SELECT n, count(*) AS c, sum(w) AS s, max(w) AS hi FROM o_num GROUP BY n"),
    ("q_num_other_aggs", "SELECT n, string_agg(w::text, ',' ORDER BY w) AS ws FROM o_num GROUP BY n"),
    ("q_num_distinct", "SELECT DISTINCT n FROM o_num"),
    # Float keys with NULL, 0, -0, NaN and the infinities: a NULL key element and a float 0 once
    # hashed alike (two groups, one row id).
    ("q_float_groups", "SELECT k, count(*) AS c, sum(w) AS s FROM o_flt GROUP BY k"),
    ("q_float_distinct", "SELECT DISTINCT k FROM o_flt"),
    ("q_float_pairs", "SELECT DISTINCT k, w > 4 AS big FROM o_flt"),
    ("q_agg_subquery_join", "SELECT c.region, t.total FROM o_cust c JOIN "
                            "(SELECT cust_id, sum(amount) AS total FROM o_orders GROUP BY cust_id) t ON t.cust_id = c.id"),
    ("q_agg_cte_having", "WITH t AS (SELECT cust_id, count(*) AS n, max(amount) AS hi FROM o_orders "
                         "WHERE status IS NOT NULL GROUP BY cust_id HAVING count(*) > 1) SELECT t.cust_id, t.n, t.hi FROM t"),
    ("q_agg_of_agg", "SELECT n, count(*) AS customers FROM (SELECT cust_id, count(*) AS n FROM o_orders "
                     "GROUP BY cust_id) s GROUP BY n"),
    ("q_agg_left_join", "SELECT c.id, s.qty FROM o_cust c LEFT JOIN "
                        "(SELECT order_id, sum(qty) AS qty FROM o_items GROUP BY order_id) s ON s.order_id = c.id"),
    ("q_agg_dups", "SELECT s.x, s.ys, d.y FROM (SELECT x, string_agg(y, ',' ORDER BY y) AS ys FROM o_dup GROUP BY x) s "
                   "JOIN o_dup d ON d.x = s.x"),
    ("q_exists_distinct", "SELECT DISTINCT o.status FROM o_orders o WHERE EXISTS "
                          "(SELECT 1 FROM o_items i WHERE i.order_id = o.id AND i.qty > 2)"),
    ("q_scalar_subquery", "SELECT c.id, (SELECT count(*) FROM o_orders o WHERE o.cust_id = c.id) AS n FROM o_cust c"),
]

# Refused in DIFFERENTIAL; under AUTO they are refreshed FULL and must be right too.
AUTO_QUERIES = [
    ("a_window", "SELECT id, rank() OVER (PARTITION BY cust_id ORDER BY amount) AS r FROM o_orders"),
    ("a_recursive", "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 3) "
                    "SELECT o.id, r.n FROM o_orders o, r WHERE o.id % 3 = r.n - 1"),
]

STATUSES = ["paid", "open", "void", None, "refund"]
SKUS = ["a", "b", "c", None]
REGIONS = ["north", "south", "east", None]
WORDS = ["apple", "kiwi", "mango", "zebra", None, "nut"]
# Equal numbers written differently: one group, one DISTINCT row.
NUMS = ["1", "1.0", "1.00", "2.5", "2.50", None]
FLOATS = [None, "0", "-0", "NaN", "Infinity", "-Infinity", "1.5"]


def _create_schema(db, rng):
    for statement in SCHEMA.strip().split(";\n"):
        if statement.strip():
            db.sql(statement)
    for i in range(1, 21):
        db.sql("INSERT INTO o_cust VALUES (%s, %s, %s)", (i, rng.choice(REGIONS), rng.choice([1, 2, 3, None])))
    for i in range(1, 61):
        db.sql("INSERT INTO o_orders VALUES (%s, %s, %s, %s)",
               (rng.randint(1, 40), rng.choice([rng.randint(1, 22), None]), rng.randint(0, 100), rng.choice(STATUSES)))
    for _ in range(80):
        db.sql("INSERT INTO o_items VALUES (%s, %s, %s)", (rng.randint(1, 40), rng.choice(SKUS), rng.randint(1, 5)))
    for _ in range(40):
        db.sql("INSERT INTO o_dup VALUES (%s, %s)", (rng.choice([1, 2, 3, 4, 5, None]), rng.choice(WORDS)))
    for _ in range(20):
        db.sql("INSERT INTO o_num VALUES (%s::numeric, %s)", (rng.choice(NUMS), rng.randint(1, 9)))
    for _ in range(20):
        db.sql("INSERT INTO o_flt VALUES (%s::float8, %s)", (rng.choice(FLOATS), rng.randint(1, 9)))


def _random_statement(rng):
    """One random data change: (sql, params)."""
    kind = rng.random()
    table = rng.choice(["o_orders", "o_orders", "o_cust", "o_items", "o_dup", "o_num", "o_flt"])
    if kind < 0.02:
        return (f"TRUNCATE {table}", None)
    if table == "o_orders":
        choices = [
            ("INSERT INTO o_orders SELECT %s, %s, %s, %s FROM generate_series(1, %s)",
             (rng.randint(1, 40), rng.choice([rng.randint(1, 22), None]), rng.randint(0, 100),
              rng.choice(STATUSES), rng.choice([1, 1, 2]))),
            ("UPDATE o_orders SET amount = amount + %s WHERE id %% 7 = %s", (rng.randint(-20, 20), rng.randint(0, 6))),
            ("UPDATE o_orders SET cust_id = %s WHERE id = %s", (rng.choice([rng.randint(1, 22), None]), rng.randint(1, 40))),
            ("UPDATE o_orders SET status = %s WHERE cust_id = %s", (rng.choice(STATUSES), rng.randint(1, 22))),
            ("UPDATE o_orders SET id = id + 1 WHERE id = %s", (rng.randint(1, 40),)),
            ("DELETE FROM o_orders WHERE id = %s", (rng.randint(1, 40),)),
        ]
    elif table == "o_cust":
        choices = [
            ("INSERT INTO o_cust VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
             (rng.randint(1, 30), rng.choice(REGIONS), rng.choice([1, 2, 3, None]))),
            ("UPDATE o_cust SET region = %s WHERE id = %s", (rng.choice(REGIONS), rng.randint(1, 30))),
            ("UPDATE o_cust SET tier = %s WHERE id %% 5 = %s", (rng.choice([1, 2, 3, None]), rng.randint(0, 4))),
            ("UPDATE o_cust SET id = %s WHERE id = %s AND NOT EXISTS (SELECT 1 FROM o_cust WHERE id = %s)",
             None),  # primary-key change, filled below
            ("DELETE FROM o_cust WHERE id = %s", (rng.randint(1, 30),)),
        ]
        new_id, old_id = rng.randint(1, 30), rng.randint(1, 30)
        choices[3] = (choices[3][0], (new_id, old_id, new_id))
    elif table == "o_items":
        choices = [
            ("INSERT INTO o_items VALUES (%s, %s, %s)", (rng.randint(1, 40), rng.choice(SKUS), rng.randint(1, 5))),
            ("UPDATE o_items SET order_id = %s WHERE sku IS NOT DISTINCT FROM %s AND qty = %s",
             (rng.randint(1, 40), rng.choice(SKUS), rng.randint(1, 5))),
            ("DELETE FROM o_items WHERE order_id = %s", (rng.randint(1, 40),)),
        ]
    elif table == "o_num":
        choices = [
            ("INSERT INTO o_num VALUES (%s::numeric, %s)", (rng.choice(NUMS), rng.randint(1, 9))),
            ("UPDATE o_num SET w = w + 1 WHERE n::text = %s", (rng.choice(NUMS),)),
            ("UPDATE o_num SET n = %s::numeric WHERE w = %s", (rng.choice(NUMS), rng.randint(1, 9))),
            ("DELETE FROM o_num WHERE ctid = (SELECT min(ctid) FROM o_num WHERE n IS NOT DISTINCT FROM %s::numeric)",
             (rng.choice(NUMS),)),
        ]
    elif table == "o_flt":
        choices = [
            ("INSERT INTO o_flt VALUES (%s::float8, %s)", (rng.choice(FLOATS), rng.randint(1, 9))),
            ("UPDATE o_flt SET k = %s::float8 WHERE w = %s", (rng.choice(FLOATS), rng.randint(1, 9))),
            ("DELETE FROM o_flt WHERE ctid = (SELECT min(ctid) FROM o_flt WHERE k IS NOT DISTINCT FROM %s::float8)",
             (rng.choice(FLOATS),)),
        ]
    else:
        choices = [
            ("INSERT INTO o_dup SELECT %s, %s FROM generate_series(1, %s)",
             (rng.choice([1, 2, 3, 4, 5, None]), rng.choice(WORDS), rng.choice([1, 2, 3]))),
            ("UPDATE o_dup SET x = %s WHERE y IS NOT DISTINCT FROM %s", (rng.choice([1, 2, 3, None]), rng.choice(WORDS))),
            ("UPDATE o_dup SET y = %s WHERE x IS NOT DISTINCT FROM %s", (rng.choice(WORDS), rng.choice([1, 2, 3, 4, 5, None]))),
            ("DELETE FROM o_dup WHERE ctid = (SELECT min(ctid) FROM o_dup WHERE x IS NOT DISTINCT FROM %s)",
             (rng.choice([1, 2, 3, 4, 5, None]),)),
        ]
    return rng.choice(choices)


def _transaction(conn, rng):
    with conn.cursor() as cur:
        for _ in range(rng.randint(1, 5)):
            statement, params = _random_statement(rng)
            cur.execute(statement, params)
    conn.commit()


def _refresh_all(conn, names):
    with conn.cursor() as cur:
        for name in names:
            cur.execute("SELECT pgstream.refresh_stream_table(%s)", (name,))
    if not conn.autocommit:
        conn.commit()


def _check(db, tables, round_no, seed):
    for name, query in tables:
        difference = db.multiset_difference(name, query)
        assert difference == 0, (
            f"seed {seed}, round {round_no}: stream table {name} differs from its query in "
            f"{difference} rows (multiset)\nquery: {query}\n"
            f"rerun: PGS_ORACLE_SEED={seed} PGS_ORACLE_ROUNDS={round_no + 1}")


def _run_oracle(db, tables, rounds, seed):
    """Runs the rounds; returns how often each kind of refresh was the last one of a table."""
    kinds = collections.Counter()
    rng = random.Random(seed)
    names = [name for name, _ in tables]
    writer = db.connect(autocommit=False)
    refresher = db.connect(autocommit=False)
    for round_no in range(rounds):
        style = round_no % 5
        if style == 3:
            # Writers commit while the refreshes run.
            thread = threading.Thread(target=_refresh_all, args=(refresher, names))
            thread.start()
            for _ in range(3):
                _transaction(writer, rng)
            thread.join()
            _refresh_all(refresher, names)
        elif style == 4:
            # Changes, a refresh, and more changes in one transaction.
            with writer.cursor() as cur:
                for _ in range(2):
                    statement, params = _random_statement(rng)
                    if not statement.startswith("TRUNCATE"):
                        cur.execute(statement, params)
                for name in names:
                    cur.execute("SELECT pgstream.refresh_stream_table(%s)", (name,))
                statement, params = _random_statement(rng)
                cur.execute(statement, params)
            writer.commit()
            _check(db, tables, round_no, seed) if False else None
            _refresh_all(refresher, names)
        else:
            _transaction(writer, rng)
            _refresh_all(refresher, names)
        _check(db, tables, round_no, seed)
        kinds.update(kind for name, kind in db.sql(
            "SELECT pgs_name, last_refresh_kind FROM pgstream.pgs_stream_tables") if name in names)
    return kinds


def test_differential_equals_full_recompute_after_random_changes(db):
    rng = random.Random(SEED)
    _create_schema(db, rng)
    for name, query in QUERIES:
        db.sql("SELECT pgstream.create_stream_table(%s, %s, '1m', 'DIFFERENTIAL')", (name, query))
    for name, query in AUTO_QUERIES:
        db.sql("SELECT pgstream.create_stream_table(%s, %s, '1m', 'AUTO')", (name, query))
    modes = dict(db.sql("SELECT pgs_name, effective_mode FROM pgstream.pgs_stream_tables"))
    assert all(modes[name] == "DIFFERENTIAL" for name, _ in QUERIES), modes
    assert all(modes[name] == "FULL" for name, _ in AUTO_QUERIES), modes
    tables = QUERIES + AUTO_QUERIES
    _check(db, tables, -1, SEED)
    kinds = _run_oracle(db, QUERIES, ROUNDS, SEED)
    # Most refreshes applied changes (FULL only after TRUNCATE, none SKIPPED when changed).
    assert kinds["DIFFERENTIAL"] > 4 * kinds["FULL"], kinds
    _run_oracle(db, AUTO_QUERIES, max(ROUNDS // 5, 3), SEED + 2)


CHAINS = [
    # (first, second reading first, third reading second), each checked against the
    # composed query over the base tables.
    [("c1_orders", "SELECT o.id, o.cust_id, o.amount, c.region FROM o_orders o JOIN o_cust c ON c.id = o.cust_id",
      "SELECT o.id, o.cust_id, o.amount, c.region FROM o_orders o JOIN o_cust c ON c.id = o.cust_id"),
     ("c2_regions", "SELECT region, count(*) AS n, sum(amount) AS total FROM c1_orders GROUP BY region",
      "SELECT c.region, count(*) AS n, sum(o.amount) AS total FROM o_orders o JOIN o_cust c ON c.id = o.cust_id GROUP BY c.region"),
     ("c3_sizes", "SELECT DISTINCT n FROM c2_regions WHERE total > 0",
      "SELECT DISTINCT count(*) AS n FROM o_orders o JOIN o_cust c ON c.id = o.cust_id GROUP BY c.region HAVING sum(o.amount) > 0")],
    [("d1_dup", "SELECT x, y FROM o_dup WHERE x IS NOT NULL", "SELECT x, y FROM o_dup WHERE x IS NOT NULL"),
     ("d2_pairs", "SELECT a.x, a.y, b.y AS y2 FROM d1_dup a JOIN d1_dup b ON a.x = b.x",
      "SELECT a.x, a.y, b.y AS y2 FROM o_dup a JOIN o_dup b ON a.x = b.x WHERE a.x IS NOT NULL AND b.x IS NOT NULL"),
     ("d3_counts", "SELECT x, count(*) AS n FROM d2_pairs GROUP BY x",
      "SELECT a.x, count(*) AS n FROM o_dup a JOIN o_dup b ON a.x = b.x WHERE a.x IS NOT NULL GROUP BY a.x")],
]


def test_chains_of_three_stream_tables(db):
    rng = random.Random(SEED + 1)
    _create_schema(db, rng)
    tables = []
    for chain in CHAINS:
        for name, query, composed in chain:
            db.sql("SELECT pgstream.create_stream_table(%s, %s, '1m', 'DIFFERENTIAL')", (name, query))
            tables.append((name, composed))
    _check(db, tables, -1, SEED + 1)
    kinds = _run_oracle(db, tables, max(ROUNDS // 2, 5), SEED + 1)
    assert kinds["DIFFERENTIAL"] > 4 * kinds["FULL"], kinds
