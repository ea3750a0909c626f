"""Golden files for what users read: the full text (SQLSTATE, message, hint) of every refusal in
test_bad_input.py's corpus and of the partition and materialize() refusals, and
`explain_stream_table` for a corpus of dbt-like queries, in tests/e2e/golden/. A change in them is
a reviewable diff: `PGS_UPDATE_GOLDEN=1` rewrites the files instead of comparing (run it on 18
first: a major whose output differs gets its own file in golden/pg<major>/). Oids and
other numbers of five or more digits in messages are written as N (they differ between
databases)."""

import os
import re
from pathlib import Path

from test_bad_input import CREATE_CASES, GOOD_QUERY, OTHER_CASES, SETUP

GOLDEN = Path(__file__).parent / "golden"
UPDATE = bool(os.environ.get("PGS_UPDATE_GOLDEN"))

MORE_ERRORS = [
    "SELECT pgstream.create_stream_table('p', 'SELECT a, b FROM src', partition_by => 'RANGE (nope)')",
    "SELECT pgstream.create_stream_table('p', 'SELECT a, b FROM src', partition_by => 'WEEKLY (a)')",
    "SELECT pgstream.create_stream_table('p', 'SELECT a, b FROM src', partition_by => 'HASH (a) PARTITIONS 0')",
    "SELECT pgstream.add_partition('existing', 'x', in_values => ARRAY['1'])",
    "SELECT pgstream_dbt.materialize('m', 'SELECT a FROM src', '{\"schedule\": 5}')",
    "SELECT pgstream_dbt.materialize('m', 'SELECT a FROM src', '{\"refresh_mode\": \"SOMETIMES\"}')",
    "SELECT pgstream_dbt.materialize('m', 'SELECT a FROM src', '{\"no_such_key\": true}')",
    "SELECT pgstream_dbt.materialize('src', 'SELECT a FROM src', '{}')",
]

SCHEMA = """
CREATE TABLE customers (id int PRIMARY KEY, name text, region text);
CREATE TABLE orders (id int PRIMARY KEY, customer_id int REFERENCES customers, amount numeric,
                     status text, placed_at timestamptz);
CREATE TABLE payments (id int PRIMARY KEY, order_id int, method text, amount numeric);
CREATE VIEW stg_orders AS SELECT id AS order_id, customer_id, amount, status, placed_at FROM orders;
INSERT INTO customers SELECT g, 'c' || g, (ARRAY['north', 'south'])[1 + g % 2] FROM generate_series(1, 5) g;
INSERT INTO orders SELECT g, 1 + g % 5, g, (ARRAY['placed', 'shipped'])[1 + g % 2],
       timestamptz '2025-01-01' + g * interval '1 day' FROM generate_series(1, 20) g;
INSERT INTO payments SELECT g, g, 'card', g FROM generate_series(1, 20) g
"""

EXPLAINED = {
    "filter": ("SELECT id, amount FROM orders WHERE status = 'shipped'", None),
    "aggregate": ("SELECT customer_id, count(*) AS n, sum(amount) AS total FROM orders GROUP BY customer_id", None),
    "join_staging_view": ("SELECT o.order_id, c.region, o.amount FROM stg_orders o JOIN customers c ON c.id = o.customer_id", None),
    "left_join_of_aggregates": (
        "WITH paid AS (SELECT order_id, sum(amount) AS paid FROM payments GROUP BY order_id) "
        "SELECT o.id, o.amount, p.paid FROM orders o LEFT JOIN paid p ON p.order_id = o.id", None),
    "date_trunc_timestamptz": (
        "SELECT date_trunc('month', placed_at AT TIME ZONE 'UTC') AS month, sum(amount) AS revenue "
        "FROM stg_orders GROUP BY 1", None),
    "distinct": ("SELECT DISTINCT customer_id, status FROM orders", None),
    "keyless_union_all": ("SELECT amount FROM orders UNION ALL SELECT amount FROM payments", None),
    "min_max": ("SELECT status, min(amount) AS lo, max(amount) AS hi FROM orders GROUP BY status", None),
    "auto_full_now": ("SELECT id, placed_at > now() AS future FROM orders", "AUTO"),
    "partitioned": ("SELECT id, status, amount FROM orders", "LIST (status)"),
}


def normalized(text):
    return re.sub(r"\d{5,}", "N", text)


def compare(db, name, actual):
    """Compares with golden/<name>, or golden/pg<major>/<name> where that major's output differs
    (PostgreSQL 15 prints view definitions with qualified columns, for one)."""
    generic = GOLDEN / name
    own = GOLDEN / f"pg{db.value('SELECT current_setting(%s)::int / 10000', ('server_version_num',))}" / name
    if UPDATE:
        path = own if generic.exists() and generic.read_text() != actual else generic
        if path == generic and own.exists():
            own.unlink()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(actual)
        return
    path = own if own.exists() else generic
    assert path.exists(), f"{path} is missing: run with PGS_UPDATE_GOLDEN=1 to write it"
    assert actual == path.read_text(), f"{path} differs (PGS_UPDATE_GOLDEN=1 rewrites it; review the diff)"


def test_refusals_match_the_golden_file(db):
    for statement in SETUP:
        db.sql(statement)
    out = []
    for call in [c[0] for c in CREATE_CASES + OTHER_CASES] + MORE_ERRORS:
        error = db.error(call, {"q": GOOD_QUERY} if "%(q)s" in call else None)
        diag = error.diag
        shown = call.replace("%(q)s", repr(GOOD_QUERY))
        out.append(f"{shown}\n  {error.pgcode} {normalized(diag.message_primary)}\n")
        for label, text in (("DETAIL", diag.message_detail), ("HINT", diag.message_hint)):
            if text:
                out.append(f"  {label}: {normalized(text)}\n")
    compare(db, "errors.txt", "".join(out))


def test_explain_output_matches_the_golden_files(db):
    for statement in SCHEMA.strip().split(";\n"):
        db.sql(statement)
    db.sql("SET TimeZone = 'UTC'")
    for name, (query, option) in EXPLAINED.items():
        if option == "AUTO":
            db.sql("SELECT pgstream.create_stream_table(%s, %s, '1h', 'AUTO')", (name, query))
        elif option:
            db.sql("SELECT pgstream.create_stream_table(%s, %s, '1h', partition_by => %s)", (name, query, option))
        else:
            db.sql("SELECT pgstream.create_stream_table(%s, %s, '1h')", (name, query))
        rows = db.sql("SELECT property, value FROM pgstream.explain_stream_table(%s)", (name,))
        text = "".join(f"{prop}: {value}\n" for prop, value in rows if prop != "settings")
        compare(db, f"explain/{name}.txt", normalized(f"-- {query}\n" + text))
