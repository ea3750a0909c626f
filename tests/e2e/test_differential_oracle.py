"""Randomized oracle for DIFFERENTIAL refresh: after random multi-statement transactions
(INSERT, UPDATE of keys, join keys and group keys, DELETE, TRUNCATE, writers committing
while refreshes run, changes in the refreshing transaction itself), every stream table must
equal its query as a multiset.

Seeded and reproducible: PGS_ORACLE_SEED picks the seed (printed on failure with the query),
PGS_ORACLE_ROUNDS the number of rounds (50 by default, what `make test` runs on PostgreSQL 15;
its smoke tiers on 18 and 16 run 10),
PGS_ORACLE_NESTED_ROUNDS those of the nested shapes (default 3/5 of that, to keep the run
under 3 minutes). The query corpus is in oracle_queries.py."""

import collections
import os
import random
import threading

import pytest

from oracle_queries import (AUTO_QUERIES, BASE_TABLES, CHAINS, FIXED_BUGS, NESTED_QUERIES, NESTED_TABLES,
                            PARTITION_STATEMENTS, PARTITIONED_SCHEMA, QUERIES, SCHEMA)

SEED = int(os.environ.get("PGS_ORACLE_SEED", "20261125"))
ROUNDS = int(os.environ.get("PGS_ORACLE_ROUNDS", "50"))
NESTED_ROUNDS = int(os.environ.get("PGS_ORACLE_NESTED_ROUNDS", str(ROUNDS * 3 // 5)))

STATUSES = ["paid", "open", "void", None, "refund"]
SKUS = ["a", "b", "c", None]
REGIONS = ["north", "south", "east", None]
WORDS = ["apple", "kiwi", "mango", "zebra", None, "nut"]
# Equal numbers written differently: one group, one DISTINCT row.
NUMS = ["1", "1.0", "1.00", "2.5", "2.50", None]
FLOATS = [None, "0", "-0", "NaN", "Infinity", "-Infinity", "1.5"]
METHODS = ["credit_card", "coupon", "bank_transfer", "gift_card", None]
DATES = ["2024-01-01", "2024-01-02", "2024-02-29", "2024-03-10", None]
# Text keys: upper and lower case, an empty string, a space, digits (o_kv's key; o_t2.k also
# takes NULL and the WORDS of o_dup.y, which some queries join to).
TEXT_KEYS = ["a", "A", "b", "", " ", "10", "9", "kiwi", "nut"]


def _create_schema(db, rng, schema=SCHEMA):
    for statement in schema.strip().split(";\n"):
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
    # Tables only the nested corpus changes (filled after the others: same data for those).
    for i in range(1, 16):
        db.sql("INSERT INTO j_customers VALUES (%s, %s, %s)", (i, rng.choice(WORDS), rng.choice(["X", "Y", None])))
    for i in range(1, 41):
        db.sql("INSERT INTO j_orders VALUES (%s, %s, %s, %s)",
               (i, rng.choice([rng.randint(1, 17), None]), rng.choice(DATES), rng.choice(STATUSES)))
    for i in range(1, 61):
        db.sql("INSERT INTO j_payments VALUES (%s, %s, %s, %s)",
               (i, rng.choice([rng.randint(1, 42), None]), rng.choice(METHODS), rng.choice([rng.randint(0, 3000), None])))
    for k in TEXT_KEYS:
        db.sql("INSERT INTO o_kv VALUES (%s, %s::numeric, %s::float8, %s)",
               (k, rng.choice(NUMS), rng.choice(FLOATS), rng.choice([rng.randint(1, 22), None])))
    for _ in range(25):
        db.sql("INSERT INTO o_t2 VALUES (%s, %s)", (rng.choice(TEXT_KEYS + WORDS), rng.choice([rng.randint(1, 9), None])))
    for _ in range(2):
        db.sql("INSERT INTO o_cfg VALUES (%s)", (rng.choice([rng.randint(1, 9), None]),))


def _random_statement(rng, tables=BASE_TABLES):
    """One random data change of one of `tables`: (sql, params)."""
    kind = rng.random()
    table = rng.choice(tables)
    if table == "o_orders partitions":
        statement = rng.choice(PARTITION_STATEMENTS)
        PARTITION_DDL["run"] += statement.startswith("DO")
        return (statement, None)
    if kind < 0.02:
        return (f"TRUNCATE {table}", None)
    if table.startswith("j_") or table in ("o_kv", "o_t2", "o_cfg"):
        return rng.choice(_nested_choices(rng, table))
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


def _nested_choices(rng, table):
    """The random changes of the tables only the nested corpus changes."""
    if table == "j_customers":
        new_id, old_id = rng.randint(1, 18), rng.randint(1, 18)
        return [
            ("INSERT INTO j_customers VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
             (rng.randint(1, 18), rng.choice(WORDS), rng.choice(["X", "Y", None]))),
            ("UPDATE j_customers SET first_name = %s WHERE id %% 3 = %s", (rng.choice(WORDS), rng.randint(0, 2))),
            ("UPDATE j_customers SET id = %s WHERE id = %s AND NOT EXISTS (SELECT 1 FROM j_customers WHERE id = %s)",
             (new_id, old_id, new_id)),
            ("DELETE FROM j_customers WHERE id = %s", (rng.randint(1, 18),)),
        ]
    if table == "j_orders":
        return [
            ("INSERT INTO j_orders VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING",
             (rng.randint(1, 45), rng.choice([rng.randint(1, 17), None]), rng.choice(DATES), rng.choice(STATUSES))),
            ("UPDATE j_orders SET customer_id = %s WHERE id = %s", (rng.choice([rng.randint(1, 17), None]), rng.randint(1, 45))),
            ("UPDATE j_orders SET status = %s, order_date = %s WHERE id %% 5 = %s",
             (rng.choice(STATUSES), rng.choice(DATES), rng.randint(0, 4))),
            ("DELETE FROM j_orders WHERE id = %s", (rng.randint(1, 45),)),
        ]
    if table == "j_payments":
        return [
            ("INSERT INTO j_payments VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING",
             (rng.randint(1, 70), rng.choice([rng.randint(1, 42), None]), rng.choice(METHODS),
              rng.choice([rng.randint(0, 3000), None]))),
            ("UPDATE j_payments SET amount = amount + %s WHERE id %% 4 = %s", (rng.randint(-500, 500), rng.randint(0, 3))),
            ("UPDATE j_payments SET payment_method = %s WHERE id = %s", (rng.choice(METHODS), rng.randint(1, 70))),
            ("UPDATE j_payments SET order_id = %s WHERE id = %s", (rng.choice([rng.randint(1, 42), None]), rng.randint(1, 70))),
            ("DELETE FROM j_payments WHERE id = %s", (rng.randint(1, 70),)),
        ]
    if table == "o_kv":
        new_k, old_k = rng.choice(TEXT_KEYS), rng.choice(TEXT_KEYS)
        return [
            ("INSERT INTO o_kv VALUES (%s, %s::numeric, %s::float8, %s) ON CONFLICT DO NOTHING",
             (rng.choice(TEXT_KEYS), rng.choice(NUMS), rng.choice(FLOATS), rng.choice([rng.randint(1, 22), None]))),
            ("UPDATE o_kv SET v = v + %s WHERE k > %s", (rng.randint(-3, 3), rng.choice(TEXT_KEYS))),
            ("UPDATE o_kv SET g = %s::numeric WHERE k = %s", (rng.choice(NUMS), rng.choice(TEXT_KEYS))),
            ("UPDATE o_kv SET f = %s::float8, v = %s WHERE k = %s",
             (rng.choice(FLOATS), rng.choice([rng.randint(1, 22), None]), rng.choice(TEXT_KEYS))),
            ("UPDATE o_kv SET k = %s WHERE k = %s AND NOT EXISTS (SELECT 1 FROM o_kv WHERE k = %s)", (new_k, old_k, new_k)),
            ("DELETE FROM o_kv WHERE k = %s", (rng.choice(TEXT_KEYS),)),
        ]
    if table == "o_t2":
        return [
            ("INSERT INTO o_t2 SELECT %s, %s FROM generate_series(1, %s)",
             (rng.choice(TEXT_KEYS + WORDS), rng.choice([rng.randint(1, 9), None]), rng.choice([1, 1, 2]))),
            ("UPDATE o_t2 SET v = %s WHERE k IS NOT DISTINCT FROM %s",
             (rng.choice([rng.randint(1, 9), None]), rng.choice(TEXT_KEYS + WORDS))),
            ("UPDATE o_t2 SET k = %s WHERE v = %s", (rng.choice(TEXT_KEYS + WORDS), rng.randint(1, 9))),
            ("DELETE FROM o_t2 WHERE ctid = (SELECT min(ctid) FROM o_t2 WHERE k IS NOT DISTINCT FROM %s)",
             (rng.choice(TEXT_KEYS + WORDS),)),
        ]
    # o_cfg: a few rows, often none (uncorrelated scalar subqueries over an empty table).
    return [
        ("INSERT INTO o_cfg VALUES (%s)", (rng.choice([rng.randint(1, 9), None]),)),
        ("UPDATE o_cfg SET v = %s WHERE ctid = (SELECT min(ctid) FROM o_cfg)", (rng.randint(1, 9),)),
        ("DELETE FROM o_cfg WHERE ctid = (SELECT min(ctid) FROM o_cfg)", None),
        ("DELETE FROM o_cfg", None),
    ]


def _transaction(conn, rng, tables=BASE_TABLES):
    with conn.cursor() as cur:
        for _ in range(rng.randint(1, 5)):
            statement, params = _random_statement(rng, tables)
            cur.execute(statement, params)
    conn.commit()


def _refresh_all(conn, names):
    with conn.cursor() as cur:
        for name in names:
            cur.execute("SELECT pgstream.refresh_stream_table(%s)", (name,))
    if not conn.autocommit:
        conn.commit()


def _check(db, tables, round_no, seed, rounds_env="PGS_ORACLE_ROUNDS"):
    for name, query in tables:
        difference = db.multiset_difference(name, query)
        assert difference == 0, (
            f"seed {seed}, round {round_no}: stream table {name} differs from its query in "
            f"{difference} rows (multiset)\nquery: {query}\n"
            f"rerun: PGS_ORACLE_SEED={SEED} {rounds_env}={round_no + 1}")


def _check_identities(db, names):
    """A table keyed by its query's key (or one row, needing none) has no __pgs_row_id
    column; a multiset has one."""
    for name in names:
        identity = dict(db.sql("SELECT property, value FROM pgstream.explain_stream_table(%s)",
                               (name,)))["row_identity"]
        row_id = db.value("SELECT count(*) FROM pg_attribute WHERE attrelid = %s::regclass "
                          "AND attname = '__pgs_row_id' AND NOT attisdropped", (name,))
        assert identity.startswith(("key", "one row", "multiset")), (name, identity)
        assert row_id == (1 if identity.startswith("multiset") else 0), (name, identity)


def _run_oracle(db, tables, rounds, seed, sources=BASE_TABLES, rounds_env="PGS_ORACLE_ROUNDS"):
    """Runs the rounds of random changes to `sources`; returns how often each kind of refresh
    was the last one of a table."""
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
                _transaction(writer, rng, sources)
            thread.join()
            _refresh_all(refresher, names)
        elif style == 4:
            # Changes, a refresh, and more changes in one transaction.
            with writer.cursor() as cur:
                for _ in range(2):
                    statement, params = _random_statement(rng, sources)
                    if not statement.startswith("TRUNCATE"):
                        cur.execute(statement, params)
                for name in names:
                    cur.execute("SELECT pgstream.refresh_stream_table(%s)", (name,))
                statement, params = _random_statement(rng, sources)
                cur.execute(statement, params)
            writer.commit()
            _check(db, tables, round_no, seed) if False else None
            _refresh_all(refresher, names)
        else:
            _transaction(writer, rng, sources)
            _refresh_all(refresher, names)
        _check(db, tables, round_no, seed, rounds_env)
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
    _check_identities(db, [name for name, _ in tables])
    _check(db, tables, -1, SEED)
    kinds = _run_oracle(db, QUERIES, ROUNDS, SEED)
    # Most refreshes applied changes (FULL only after TRUNCATE, none SKIPPED when changed).
    assert kinds["DIFFERENTIAL"] > 4 * kinds["FULL"], kinds
    _run_oracle(db, AUTO_QUERIES, max(ROUNDS // 5, 3), SEED + 2)


# The first oracle's tables, with writes to o_orders' partitions and its partition detached and
# attached back among them (counted in PARTITION_DDL).
PARTITIONED_TABLES = BASE_TABLES + ["o_orders partitions"] * 3
PARTITION_DDL = collections.Counter()


def test_partitioned_sources_equal_their_query_after_random_changes(db):
    """QUERIES over the same sources with o_orders partitioned: writes through it (moving rows
    between partitions), to its partitions directly, ATTACH and DETACH."""
    seed = SEED + 4
    _create_schema(db, random.Random(seed), PARTITIONED_SCHEMA)
    for name, query in QUERIES:
        db.sql("SELECT pgstream.create_stream_table(%s, %s, '1m', 'DIFFERENTIAL')", (name, query))
    modes = dict(db.sql("SELECT pgs_name, effective_mode FROM pgstream.pgs_stream_tables"))
    assert all(modes[name] == "DIFFERENTIAL" for name, _ in QUERIES), modes
    _check(db, QUERIES, -1, seed)
    PARTITION_DDL.clear()
    rounds = max(ROUNDS * 2 // 5, 5)
    kinds = _run_oracle(db, QUERIES, rounds, seed, PARTITIONED_TABLES)
    assert kinds["DIFFERENTIAL"] > 4 * kinds["FULL"], kinds
    # The partition is detached and attached back, each followed by refreshes and a check: by
    # the random rounds, or here where they were too few to draw it twice (a smoke run).
    names = [name for name, _ in QUERIES]
    while PARTITION_DDL["run"] < 2:
        db.sql(PARTITION_STATEMENTS[-1])
        PARTITION_DDL["run"] += 1
        refresher = db.connect(autocommit=True)
        _refresh_all(refresher, names)
        refresher.close()
        _check(db, QUERIES, rounds, seed)


def test_partitioned_stream_tables_equal_their_query_after_random_changes(db):
    """QUERIES into stream tables that are themselves partitioned (HASH on their first column,
    three partitions): changed rows move between partitions as the refresh applies them."""
    seed = SEED + 5
    _create_schema(db, random.Random(seed))
    for name, query in QUERIES:
        with db.conn.cursor() as cur:
            cur.execute(f"SELECT * FROM ({query}) q LIMIT 0")
            first = cur.description[0].name
        db.sql("SELECT pgstream.create_stream_table(%s, %s, '1m', 'DIFFERENTIAL', "
               "partition_by => format('HASH (%%I) PARTITIONS 3', %s::text))", (name, query, first))
    partitioned = db.value("SELECT count(*) FROM pgstream.pgs_stream_tables s "
                           "JOIN pg_class c ON c.oid = s.pgs_relid WHERE c.relkind = 'p'")
    assert partitioned == len(QUERIES)
    modes = dict(db.sql("SELECT pgs_name, effective_mode FROM pgstream.pgs_stream_tables"))
    assert all(modes[name] == "DIFFERENTIAL" for name, _ in QUERIES), modes
    _check(db, QUERIES, -1, seed)
    kinds = _run_oracle(db, QUERIES, max(ROUNDS // 5, 5), seed)
    assert kinds["DIFFERENTIAL"] > 4 * kinds["FULL"], kinds
    # Rows are spread over the partitions.
    assert db.value("SELECT count(DISTINCT tableoid) FROM q_columns") == 3


def test_chains_of_three_stream_tables(db):
    rng = random.Random(SEED + 1)
    _create_schema(db, rng)
    tables = []
    for chain in CHAINS:
        for name, query, composed in chain:
            db.sql("SELECT pgstream.create_stream_table(%s, %s, '1m', 'DIFFERENTIAL')", (name, query))
            tables.append((name, composed))
    _check_identities(db, [name for name, _ in tables])
    _check(db, tables, -1, SEED + 1)
    kinds = _run_oracle(db, tables, max(ROUNDS // 2, 5), SEED + 1)
    assert kinds["DIFFERENTIAL"] > 4 * kinds["FULL"], kinds


# Keyed stream tables over simple keyed shapes: an UPDATE of non-key source columns must
# update their rows in place (no delete + insert).
IN_PLACE = ["n_kv_columns", "n_kv_group", "n_jaffle_customers", "n_jaffle_orders", "n_jaffle_staging"]
NON_KEY_UPDATES = [
    "UPDATE o_kv SET v = coalesce(v, 0) + 1",
    "UPDATE j_payments SET amount = coalesce(amount, 0) + 1",
    "UPDATE j_customers SET last_name = coalesce(last_name, '') || 'z'",
]


def test_nested_shapes_equal_their_query_after_random_changes(db):
    """The nested shapes of dbt models (NESTED_QUERIES) under random changes of all sources;
    then a round of non-key UPDATEs only, applied in place by keyed tables."""
    seed = SEED + 3
    _create_schema(db, random.Random(seed))
    names = [name for name, _ in NESTED_QUERIES]
    assert {bug["name"] for bug in FIXED_BUGS} <= set(names)
    for name, query in NESTED_QUERIES:
        db.sql("SELECT pgstream.create_stream_table(%s, %s, '1m', 'DIFFERENTIAL')", (name, query))
    modes = dict(db.sql("SELECT pgs_name, effective_mode FROM pgstream.pgs_stream_tables"))
    assert all(modes[name] == "DIFFERENTIAL" for name in names), modes
    _check_identities(db, names)
    _check(db, NESTED_QUERIES, -1, seed)
    kinds = _run_oracle(db, NESTED_QUERIES, NESTED_ROUNDS, seed, NESTED_TABLES, "PGS_ORACLE_NESTED_ROUNDS")
    assert kinds["DIFFERENTIAL"] > 4 * kinds["FULL"], kinds

    # Rows to update (a TRUNCATE may have emptied the sources), refreshed; then UPDATEs of
    # non-key columns only.
    db.sql("INSERT INTO o_kv VALUES ('a', 1, 1.5, 1), ('b', 2, 0, 2) ON CONFLICT DO NOTHING")
    db.sql("INSERT INTO j_customers VALUES (1, 'ann', 'x') ON CONFLICT DO NOTHING")
    db.sql("INSERT INTO j_orders VALUES (1, 1, '2024-01-01', 'paid') ON CONFLICT DO NOTHING")
    db.sql("INSERT INTO j_payments VALUES (1, 1, 'coupon', 100) ON CONFLICT DO NOTHING")
    db.sql("UPDATE j_payments SET order_id = 1 WHERE id = 1")
    db.sql("UPDATE j_orders SET customer_id = 1 WHERE id = 1")
    refresher = db.connect()
    _refresh_all(refresher, names)
    _check(db, NESTED_QUERIES, NESTED_ROUNDS, seed)
    for statement in NON_KEY_UPDATES:
        db.sql(statement)
    _refresh_all(refresher, names)
    _check(db, NESTED_QUERIES, NESTED_ROUNDS + 1, seed)
    counts = {name: (kind, inserted, updated, deleted) for name, kind, inserted, updated, deleted in db.sql(
        "SELECT pgs_name, last_refresh_kind, last_rows_inserted, last_rows_updated, last_rows_deleted "
        "FROM pgstream.pgs_stream_tables")}
    for name in IN_PLACE:
        kind, inserted, updated, deleted = counts[name]
        assert (kind, inserted, deleted) == ("DIFFERENTIAL", 0, 0) and updated > 0, (name, counts[name])


@pytest.mark.parametrize("bug", FIXED_BUGS, ids=[bug["name"] for bug in FIXED_BUGS])
def test_fixed_bugs_stay_fixed(db, bug):
    """Each engine bug the oracle found, as its minimal reproduction."""
    for statement in bug["repro"]:
        db.sql(statement)
    assert db.multiset_difference(bug["check"], bug["expected"]) == 0, bug["bug"]
