"""The differential oracle's corpus on Citus: every query shape of tests/e2e/oracle_queries.py
(QUERIES, AUTO_QUERIES, NESTED_QUERIES, the fixed bugs' reproductions) as an AUTO stream table
(DIFFERENTIAL where the planner can) over the oracle's tables made distributed, reference and local on the coordinator; after rounds
of the oracle's random changes each stream table must equal, as a multiset, the same query run
on one node (a database on the coordinator with the same tables as plain tables, given the same
statements). Shapes Citus cannot run are listed with its reason and must stay a minority;
statements Citus refuses (an UPDATE of a distribution column, a ctid lookup) are skipped on
both sides. Needs CITUS_PORT naming a running coordinator (scripts/test_citus.sh)."""

import collections
import decimal
import os
import random
import sys

import psycopg2
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "e2e"))
from oracle_queries import AUTO_QUERIES, FIXED_BUGS, NESTED_QUERIES, NESTED_TABLES, QUERIES, SCHEMA  # noqa: E402
from test_differential_oracle import _create_schema, _random_statement  # noqa: E402

from test_citus import PORT  # noqa: E402

SEED = int(os.environ.get("PGS_CITUS_ORACLE_SEED", "20261206"))
ROUNDS = int(os.environ.get("PGS_CITUS_ORACLE_ROUNDS", "20"))
ONE_NODE = "citus_oracle_one_node"

# How each table of the oracle lives on Citus: distributed (by a column), reference, or left a
# plain table on the coordinator (o_flt, o_cfg). Tables distributed by an int column are co-located.
# (A distribution column takes no NULL: o_dup.x, o_t2.k and j_payments.order_id have some.)
DISTRIBUTION = [
    ("o_orders", "distributed", "id"),
    ("o_items", "distributed", "order_id"),
    ("o_cust", "reference", None),
    ("o_dup", "reference", None),
    ("o_num", "reference", None),
    ("j_customers", "reference", None),
    ("j_orders", "distributed", "id"),
    ("j_payments", "reference", None),
    ("o_kv", "reference", None),
    ("o_t2", "reference", None),
]

# Every shape once (a fixed bug's reproduction may be a nested query too).
SHAPES = list({name: (name, query) for name, query in reversed(
    QUERIES + AUTO_QUERIES + NESTED_QUERIES + [(bug["name"], bug["query"]) for bug in FIXED_BUGS])}.values())[::-1]


class Database:
    """The `sql` the oracle's schema builder calls, on one autocommit connection."""

    def __init__(self, dbname):
        self.conn = psycopg2.connect(host="127.0.0.1", port=PORT, user="postgres", dbname=dbname)
        self.conn.autocommit = True

    def sql(self, statement, params=None):
        with self.conn.cursor() as cur:
            cur.execute(statement, params)
            return cur.fetchall() if cur.description else None

    def rows(self, statement):
        """The rows of `statement` as a multiset of values compared as SQL compares them: 1.0 equals
        1.00 and -0 equals 0 (a group shows either), NaN equals NaN."""
        return collections.Counter(tuple(comparable(v) for v in row) for row in self.sql(statement))


def comparable(value):
    if isinstance(value, float):
        return "NaN" if value != value else value + 0.0  # -0.0 + 0.0 is 0.0
    if isinstance(value, decimal.Decimal) and value.is_nan():
        return "NaN"
    if isinstance(value, list):
        return tuple(comparable(v) for v in value)
    return value


def recreate_database(name):
    admin = Database("postgres")
    admin.sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    admin.sql(f"CREATE DATABASE {name}")  # local: Citus does not propagate CREATE DATABASE by default
    admin.conn.close()


def clean(citus):
    citus.sql("DROP EXTENSION IF EXISTS pg_stream_dbt CASCADE")
    for statement in reversed([s for s in SCHEMA.strip().split(";\n") if s.strip()]):
        kind, name = statement.split()[1], statement.split()[2]
        citus.sql(f"DROP {kind} IF EXISTS {name} CASCADE")
    for name, _ in SHAPES:
        citus.sql(f"DROP TABLE IF EXISTS {name} CASCADE")


@pytest.fixture
def databases():
    """The coordinator's database (Citus set up there by scripts/citus.sh) and a plain database
    beside it: one node."""
    citus = Database("postgres")
    clean(citus)
    recreate_database(ONE_NODE)
    one_node = Database(ONE_NODE)
    yield citus, one_node
    clean(citus)
    citus.conn.close()
    one_node.conn.close()
    admin = Database("postgres")
    admin.sql(f"DROP DATABASE IF EXISTS {ONE_NODE} WITH (FORCE)")
    admin.conn.close()


def distribute(citus):
    views = [s for s in SCHEMA.strip().split(";\n") if s.strip().startswith("CREATE VIEW")]
    # Views are made again over the distributed tables (Citus distributes a table only without
    # views on it).
    for statement in reversed(views):
        citus.sql("DROP VIEW " + statement.split()[2])
    for table, kind, column in DISTRIBUTION:
        if kind == "distributed":
            citus.sql("SELECT create_distributed_table(%s, %s)", (table, column))
        else:
            citus.sql("SELECT create_reference_table(%s)", (table,))
    for statement in views:
        citus.sql(statement)


@pytest.mark.parametrize("stream_tables", ["local", "reference"])
def test_the_oracle_corpus_on_citus_equals_one_node(databases, stream_tables):
    """`local`: the stream tables are the coordinator's tables; `reference`: every one that can
    be is made a Citus reference table (pgstream.distribute_stream_table), so its refreshes
    apply on every node."""
    citus, one_node = databases
    citus.sql("CREATE EXTENSION pg_stream_dbt")
    # The same data on both sides: the schema builder draws the same numbers from the same seed.
    _create_schema(citus, random.Random(SEED))
    _create_schema(one_node, random.Random(SEED))
    distribute(citus)
    kinds = dict(citus.sql("SELECT c.relname, COALESCE(p.partmethod::text, 'local') FROM pg_class c "
                           "LEFT JOIN pg_dist_partition p ON p.logicalrelid = c.oid "
                           "WHERE c.relnamespace = 'public'::regnamespace AND c.relkind = 'r'"))
    assert kinds["o_orders"] == "h" and kinds["o_cust"] == "n" and kinds["o_cfg"] == "local", kinds

    created, refused = [], {}
    for name, query in SHAPES:
        try:
            citus.sql("SELECT pgstream.create_stream_table(%s, %s, NULL, 'AUTO')", (name, query))
            created.append((name, query))
        except psycopg2.Error as e:
            refused[name] = e.pgerror.splitlines()[0]
    # Stream tables over Citus tables are maintained DIFFERENTIAL like any other (their changes
    # captured on the shards); AUTO leaves FULL only the shapes it leaves FULL on one node.
    modes = dict(citus.sql("SELECT s.pgs_name, s.effective_mode || CASE WHEN bool_or(pgstream._citus_kind(d.source_relid) "
                           "IS NOT NULL) THEN ' over Citus' ELSE ' local' END FROM pgstream.pgs_stream_tables s "
                           "JOIN pgstream.pgs_dependencies d USING (pgs_id) GROUP BY s.pgs_name, s.effective_mode"))
    counts = collections.Counter(modes.values())
    print(f"\neffective modes: {dict(counts)}")
    assert counts["DIFFERENTIAL over Citus"] * 2 > counts["FULL over Citus"], counts
    print(f"\n{len(created)} of {len(SHAPES)} oracle shapes run on Citus; refused by Citus:")
    for name, reason in sorted(refused.items()):
        print(f"  {name}: {reason}")
    # The shapes a dbt project is made of run: at most a third is refused, and every refusal is
    # Citus's (a query it cannot plan), not the engine's.
    assert len(refused) * 3 <= len(SHAPES), refused
    assert all("pgstream" not in reason and "stream table" not in reason and "already exists" not in reason
               for reason in refused.values()), refused

    if stream_tables == "reference":
        made, kept = 0, collections.Counter()
        for name, _ in created:
            try:
                citus.sql("SELECT pgstream.distribute_stream_table(%s)", (name,))
                made += 1
            except psycopg2.Error as e:
                # A multiset, or read by another stream table: refused, and left local.
                assert e.pgcode == "0A000", e.pgerror
                kept[e.pgerror.splitlines()[0].split(" and cannot")[0].split(" has ")[-1].split(" is ")[-1]] += 1
        print(f"reference stream tables: {made} of {len(created)}; left local: {dict(kept)}")
        assert made * 3 > len(created), (made, kept)

    def check(round_no):
        for name, query in created:
            columns = ", ".join(c for (c,) in citus.sql(
                "SELECT quote_ident(attname) FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0 "
                "AND NOT attisdropped AND attname <> '__pgs_row_id' ORDER BY attnum", (name,)))
            mine = citus.rows(f"SELECT {columns} FROM {name}")
            expected = one_node.rows(query)
            assert mine == expected, (
                f"seed {SEED}, round {round_no}: stream table {name} differs from its query on one node\n"
                f"query: {query}\nonly in the stream table: {mine - expected}\nonly on one node: {expected - mine}")

    check(-1)
    rng = random.Random(SEED + 1)
    applied, skipped = 0, 0
    for round_no in range(ROUNDS):
        for _ in range(rng.randint(2, 6)):
            statement, params = _random_statement(rng, NESTED_TABLES)
            if "ctid" in statement:
                continue  # which of equal rows it takes is physical: not the same on both sides
            try:
                citus.sql(statement, params)
            except psycopg2.Error:
                skipped += 1  # Citus refuses it (distribution column update, ctid, ...): not on one node either
                continue
            one_node.sql(statement, params)
            applied += 1
        for name, _ in created:
            citus.sql("SELECT pgstream.refresh_stream_table(%s)", (name,))
        check(round_no)
    assert applied > 3 * skipped, (applied, skipped)
    # How the last round's refreshes over Citus tables went: DIFFERENTIAL, SKIPPED, or (a few)
    # FULL because Citus refused a statement of the delta (said in the reason) or by design.
    last = citus.sql("SELECT s.pgs_name, s.last_refresh_kind, COALESCE(s.last_refresh_reason, '') FROM pgstream.pgs_stream_tables s "
                     "WHERE EXISTS (SELECT 1 FROM pgstream.pgs_dependencies d WHERE d.pgs_id = s.pgs_id "
                     "AND pgstream._citus_kind(d.source_relid) IS NOT NULL)")
    kinds = collections.Counter(kind for _, kind, _ in last)
    refused = collections.Counter(reason.split(" (")[0] for _, kind, reason in last if kind == "FULL")
    print(f"last refreshes over Citus tables: {dict(kinds)}; FULL because: {dict(refused)}")
    # (SKIPPED: the round changed none of its sources; manual refreshes of DIFFERENTIAL stream
    # tables skip then, the drain having recorded every source that changed.)
    assert kinds["FULL"] * 10 <= len(last), (kinds, refused)
    assert kinds["DIFFERENTIAL"] > 0 and kinds["SKIPPED"] > 0, kinds
