"""The dbt-pgstream integration flow: real dbt (in process: dbtRunner with dbt's log capture, as run_dbt_and_capture)
driving a copy of this project against a real, fresh PostgreSQL database with pg_stream_dbt.

The tests run in file order and build on each other (one project, one database):
create -> unchanged -> the small shop's marts kept DIFFERENTIAL through rounds of source changes, a re-run
and a staging view edit -> --empty (existing, fresh schema) -> reformatted (unchanged) -> logic change (recreated)
-> schedule (altered) -> --full-refresh (recreated) -> on_configuration_change continue/fail -> refresh operations
-> dbt test -> source freshness pass/warn/error -> drop operations.

Needs: PGHOST/PGPORT/PGUSER[/PGPASSWORD] and PGDATABASE naming a fresh database with
`CREATE EXTENSION pg_stream_dbt` done and a role pgstream_it_reader; DBT_PGSTREAM_SCHEMA (default
pgstream_it). scripts/dbt_integration.sh sets all that up.
"""

import json
import os
import re
import shutil
from datetime import date
from io import StringIO
from pathlib import Path

import psycopg2
import pytest
from dbt.cli.main import dbtRunner
from dbt_common.events.functions import capture_stdout_logs, stop_capture_stdout_logs

HERE = Path(__file__).resolve().parent
PACKAGE_DIR = HERE.parent
SCHEMA = os.environ.get("DBT_PGSTREAM_SCHEMA", "pgstream_it")
REPORTING = SCHEMA + "_reporting"
READER_ROLE = "pgstream_it_reader"
LOG_LINE = re.compile(r"pg_stream: (created|unchanged|altered|recreated) (\S+) \((.*)\)")

# Every stream table the project makes, with its expected schedule.
STREAM_TABLES = {
    (SCHEMA, "order_totals"): "10m",
    (SCHEMA, "big_customers"): "15m",  # the project-level +schedule default
    (SCHEMA, "customer_order_counts"): "30m",  # stream_table_name override of customer_counts
    (REPORTING, "daily_revenue"): "1h",  # stream_table_schema override
    (SCHEMA, "quoted_literals"): "@hourly",
    (SCHEMA, "customer_activity"): "20m",
    (SCHEMA, "contracted_totals"): "15m",  # enforced contract, constraints, sql_header, refresh_on_run
}
# The small shop (models/shop): staging views over three seeds, marts as stream tables (schedule from
# dbt_project.yml), listed so that each comes after the stream tables it reads.
SHOP_MARTS = ["shop_order_summary", "shop_customer_summary", "shop_monthly_revenue", "shop_order_status_counts",
              "shop_top_customers", "shop_returning_customers"]
STREAM_TABLES.update({(SCHEMA, name): "1h" for name in SHOP_MARTS})
TOTALS_SQL = f"""select customer_id, sum(amount) as total_amount, count(*) as order_count
                 from {SCHEMA}.raw_orders group by customer_id order by customer_id"""


class Project:
    """A copy of the integration project in a temp dir, with helpers to run dbt and query the database."""

    def __init__(self, root: Path):
        self.root = root
        self.conn = psycopg2.connect("")  # PG* environment variables
        self.conn.autocommit = True
        self.relids = {}

    def dbt(self, *args, expect_pass=True):
        """Runs dbt in process (as dbt's run_dbt_and_capture does); returns (results, captured log text)."""
        argv = list(args) + ["--project-dir", str(self.root), "--profiles-dir", str(self.root), "--no-use-colors"]
        buffer = StringIO()
        capture_stdout_logs(buffer)
        try:
            res = dbtRunner().invoke(argv)
        finally:
            stop_capture_stdout_logs()
        log = buffer.getvalue()
        if res.exception is not None:
            raise AssertionError(f"dbt {' '.join(args)} raised {res.exception!r}; log:\n{log}")
        assert res.success == expect_pass, (
            f"dbt {' '.join(args)}: success={res.success}, expected {expect_pass}; log:\n{log}")
        return res.result, log

    def actions(self, log):
        """The materialization's log lines as {qualified name: (action, reason)}."""
        return {m.group(2): (m.group(1), m.group(3)) for m in LOG_LINE.finditer(log)}

    def sql(self, query, *params):
        with self.conn.cursor() as cur:
            cur.execute(query, params or None)
            return cur.fetchall() if cur.description else None

    def catalog(self):
        rows = self.sql(
            "select pgs_schema, pgs_name, schedule, refresh_mode, status, pgs_relid::bigint, pgs_query_hash "
            "from pgstream.pgs_stream_tables"
        )
        return {(r[0], r[1]): r[2:] for r in rows}

    def model_path(self, name):
        return self.root / "models" / "marts" / f"{name}.sql"

    def edit_model(self, name, old, new):
        path = self.model_path(name)
        text = path.read_text()
        assert old in text, f"{old!r} not in {path}"
        path.write_text(text.replace(old, new))

    def write_model(self, name, text):
        self.model_path(name).write_text(text)


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    root = tmp_path_factory.mktemp("dbt_pgstream_it") / "project"
    ignore = shutil.ignore_patterns("target", "dbt_packages", "logs", "requirements", "__pycache__", "*.py",
                                    "package-lock.yml")
    shutil.copytree(HERE, root, ignore=ignore)
    (root / "packages.yml").write_text(f"packages:\n  - local: {PACKAGE_DIR}\n")
    p = Project(root)
    p.original = {path.stem: path.read_text() for path in (root / "models" / "marts").glob("*.sql")}
    yield p
    p.conn.close()


def expect_actions(project, log, expected):
    got = project.actions(log)
    for name, action in expected.items():
        assert name in got, f"no 'pg_stream: <action> {name}' log line in:\n{log}"
        assert got[name][0] == action, f"{name}: expected {action}, got {got[name]}"
    return got


def test_deps_seed_run_creates_every_stream_table(project):
    project.dbt("deps")
    project.dbt("seed")
    _, log = project.dbt("run")
    expect_actions(project, log, {f"{s}.{n}": "created" for (s, n) in STREAM_TABLES})
    catalog = project.catalog()
    assert set(catalog) == set(STREAM_TABLES), catalog
    for key, schedule in STREAM_TABLES.items():
        assert catalog[key][0] == schedule and catalog[key][1] == "DIFFERENTIAL", (key, catalog[key])
        project.relids[key] = catalog[key][3]
    # The name override made no relation under the model's own name.
    assert project.sql("select to_regclass(%s)", f"{SCHEMA}.customer_counts") == [(None,)]
    assert project.sql(f"select customer_id, total_amount, order_count from {SCHEMA}.order_totals "
                       "order by customer_id") == project.sql(TOTALS_SQL)
    assert project.sql(f"select customer_id from {SCHEMA}.big_customers order by 1") == [(100,), (101,), (102,)]
    assert "[CREATED" in log


def test_rerun_is_unchanged(project):
    _, log = project.dbt("run")
    expect_actions(project, log, {f"{s}.{n}": "unchanged" for (s, n) in STREAM_TABLES})
    assert {k: v[3] for k, v in project.catalog().items()} == project.relids


# --- The small shop: marts over staging views, kept DIFFERENTIAL through inserts, updates and deletes ---

def shop_difference(project, name, schema=SCHEMA):
    """Rows of the mart and of its stored defining query that the other lacks, as a multiset
    (EXCEPT ALL both ways; the mart's __pgs_row_id, present when it has no key, left out)."""
    query, = project.sql("select defining_query from pgstream.pgs_stream_tables where pgs_schema = %s "
                         "and pgs_name = %s", schema, name)[0]
    columns = ", ".join(c for (c,) in project.sql(
        "select quote_ident(attname) from pg_attribute where attrelid = %s::regclass and attnum > 0 "
        "and not attisdropped and attname <> '__pgs_row_id' order by attnum", f"{schema}.{name}"))
    mart = f"select {columns} from {schema}.{name}"
    return project.sql(f"(({mart}) except all select * from ({query}) q) union all "
                       f"(select * from ({query}) q except all ({mart}))")


def assert_shop_marts_equal_their_queries(project, schema=SCHEMA):
    differences = {name: shop_difference(project, name, schema) for name in SHOP_MARTS}
    assert {name: rows for name, rows in differences.items() if rows} == {}, "marts differ from their queries"


def refresh_shop(project, expect_kind="DIFFERENTIAL"):
    """Refreshes every shop mart (readers after what they read); checks the refresh kind and contents."""
    for name in SHOP_MARTS:
        project.sql("select pgstream.refresh_stream_table(%s)", f"{SCHEMA}.{name}")
    kinds = dict(project.sql("select pgs_name, last_refresh_kind from pgstream.pgs_stream_tables "
                             "where pgs_schema = %s and pgs_name = any(%s)", SCHEMA, SHOP_MARTS))
    if expect_kind:
        assert kinds == {name: expect_kind for name in SHOP_MARTS}, kinds
    assert_shop_marts_equal_their_queries(project)


# Each round changes orders and payments (so no mart's refresh is skipped), in one transaction.
SHOP_ROUNDS = {
    "new orders with payments, a new customer without orders": """
        insert into shop_customers values (21, 'Vera', 'Ulm');
        insert into shop_orders values
            (101, 3, '2025-07-01', '2025-07-01 09:15:00', 'placed'),
            (102, 19, '2025-07-02', '2025-07-02 17:40:00', 'completed'),
            (103, 7, '2025-07-02', '2025-07-02 23:59:59', 'shipped'),
            (104, 12, '2025-06-30', '2025-06-30 12:00:00', 'return_pending');
        insert into shop_payments values
            (122, 101, 'credit_card', 4250), (123, 102, 'coupon', 1000), (124, 102, 'gift_card', 2500),
            (125, 102, 'credit_card', 1999), (126, 103, 'bank_transfer', 8800), (127, 104, 'credit_card', 3100);
    """,
    "amounts and methods corrected, orders move on, returns settle": """
        update shop_payments set amount = amount + 500 where order_id in (2, 9, 33, 101);
        update shop_payments set payment_method = 'gift_card' where payment_method = 'coupon' and order_id <= 40;
        update shop_payments set payment_method = 'credit_card', amount = 0 where id = 126;
        update shop_payments set order_id = 103 where id = 125;
        update shop_orders set status = 'completed' where status = 'shipped' and id % 3 = 0;
        update shop_orders set status = 'returned' where status = 'return_pending' and id not in (13, 77);
        update shop_orders set customer_id = 20 where id = 101;
    """,
    "orders cancelled with their payments, payments left behind, a customer leaves": """
        delete from shop_payments where order_id in (5, 17, 42, 102);
        delete from shop_orders where id in (5, 17, 42, 102, 60, 88);
        delete from shop_customers where id = 21;
        update shop_customers set first_name = 'Frederike' where id = 9;
    """,
    "busy day: new returns, a refund to zero, an order reassigned, the same rows changed twice": """
        insert into shop_orders values
            (105, 21, '2025-07-03', '2025-07-03 08:00:00', 'return_pending'),
            (106, 2, '2025-07-03', '2025-07-03 08:30:00', 'return_pending');
        insert into shop_payments values (128, 105, 'credit_card', 1500), (129, 106, 'gift_card', 700);
        update shop_orders set status = 'return_pending' where id in (11, 24, 58);
        update shop_payments set amount = 0 where order_id = 11;
        update shop_orders set customer_id = 4 where id = 77;
        update shop_orders set customer_id = null where id = 2;
        update shop_payments set amount = amount * 2 where id in (128, 129);
        update shop_payments set amount = amount - 100 where id in (128, 129);
        insert into shop_customers values (21, 'Vera', 'Ulm'), (22, 'Wim', 'Vogt');
    """,
}


def apply_shop_round(project, statements):
    """Runs one round of changes to the shop's seed tables in one transaction."""
    with project.conn.cursor() as cur:
        cur.execute("begin")
        try:
            cur.execute(f"set local search_path = {SCHEMA}")
            cur.execute(statements)
            cur.execute("commit")
        except Exception:
            cur.execute("rollback")
            raise


def test_shop_marts_are_differential_and_equal_their_queries(project):
    rows = project.sql("select pgs_name, refresh_mode, effective_mode from pgstream.pgs_stream_tables "
                       "where pgs_schema = %s and pgs_name = any(%s) order by 1", SCHEMA, SHOP_MARTS)
    assert rows == [(name, "DIFFERENTIAL", "DIFFERENTIAL") for name in sorted(SHOP_MARTS)], rows
    assert_shop_marts_equal_their_queries(project)
    # The staging views are plain views, and the marts have the shop's rows.
    assert project.sql("select count(*) from pg_views where schemaname = %s and viewname like 'stg\\_%%'",
                       SCHEMA) == [(3,)]
    assert project.sql(f"select count(*) from {SCHEMA}.shop_order_summary") == [(100,)]
    assert project.sql(f"select count(*) from {SCHEMA}.shop_customer_summary") == [(20,)]
    # shop_order_summary is partitioned by status (config partition_by); a partition of its own for
    # completed orders takes their rows out of the DEFAULT partition.
    summary = f"{SCHEMA}.shop_order_summary"
    assert project.sql("select pg_get_partkeydef(%s::regclass)", summary) == [("LIST (status)",)]
    moved, = project.sql("select pgstream.add_partition(%s, %s, in_values => array['completed'])",
                         summary, summary + "_completed")[0]
    assert moved == project.sql(f"select count(*) from {summary} where status = 'completed'")[0][0] > 0


@pytest.mark.parametrize("round_name", list(SHOP_ROUNDS))
def test_shop_marts_follow_source_changes_differentially(project, round_name):
    if round_name == list(SHOP_ROUNDS)[0]:
        refresh_shop(project)  # dbt re-created the staging views the same: still DIFFERENTIAL
    apply_shop_round(project, SHOP_ROUNDS[round_name])
    refresh_shop(project)


def test_shop_changes_reached_the_marts(project):
    """Spot checks that the rounds above changed what the marts show (their contents were compared with
    their queries after every round)."""
    customers = f"{SCHEMA}.shop_customer_summary"
    assert project.sql(f"select number_of_orders, customer_lifetime_value, first_order from {customers} "
                       "where customer_id in (21, 22) order by customer_id") == [
        (1, 29, date(2025, 7, 3)), (0, 0, None)]
    assert project.sql(f"select first_name from {customers} where customer_id = 9") == [("Frederike",)]
    assert project.sql(f"select count(*) from {SCHEMA}.shop_order_summary "
                       "where order_id in (2, 5, 17, 42, 60, 88, 102)") == [(0,)]
    assert project.sql(f"select coupon_amount from {SCHEMA}.shop_order_summary where order_id <= 40 "
                       "and coupon_amount <> 0") == []
    # return_pending fell under the HAVING threshold in round 2 and came back in round 4.
    assert project.sql(f"select orders from {SCHEMA}.shop_order_status_counts "
                       "where status = 'return_pending'") == [(7,)]
    assert project.sql(f"select count(*) from {SCHEMA}.shop_monthly_revenue "
                       "where order_month = timestamp '2025-07-01'") == [(1,)]
    # Orders that moved to or from 'completed' moved between the partitions of shop_order_summary.
    placed = dict(project.sql(f"select tableoid::regclass::text, array_agg(distinct status) "
                              f"from {SCHEMA}.shop_order_summary group by 1"))
    assert placed[f"{SCHEMA}.shop_order_summary_completed"] == ["completed"], placed
    assert "completed" not in placed[f"{SCHEMA}.shop_order_summary_default"], placed


def test_shop_rerun_is_unchanged_then_differential_again(project):
    before = {k: v for k, v in project.catalog().items() if k[1] in SHOP_MARTS}
    _, log = project.dbt("run", "-s", "path:models/shop")
    expect_actions(project, log, {f"{SCHEMA}.{name}": "unchanged" for name in SHOP_MARTS})
    assert {k: v for k, v in project.catalog().items() if k[1] in SHOP_MARTS} == before
    # dbt replaced the staging views with the same definitions: the marts stay DIFFERENTIAL.
    apply_shop_round(project, """
        insert into shop_orders values (107, 1, '2025-07-04', '2025-07-04 10:00:00', 'placed');
        insert into shop_payments values (130, 107, 'bank_transfer', 12000);
        update shop_payments set amount = amount + 1 where order_id = 1;
    """)
    refresh_shop(project)  # same views re-created: DIFFERENTIAL
    apply_shop_round(project, """
        update shop_orders set status = 'completed' where id = 107;
        delete from shop_payments where id = 130;
        insert into shop_payments values (131, 107, 'coupon', 500);
    """)
    refresh_shop(project)


def test_shop_staging_change_reaches_the_marts(project):
    """Editing a staging view changes what the marts over it mean while their own SQL stays the same:
    dbt reports them unchanged, and their next refresh follows the new view."""
    path = project.root / "models" / "shop" / "staging" / "stg_payments.sql"
    original = path.read_text()
    path.write_text(original.replace("where amount is not null",
                                     "where amount is not null and payment_method <> 'coupon'"))
    try:
        _, log = project.dbt("run", "-s", "path:models/shop")
        expect_actions(project, log, {f"{SCHEMA}.{name}": "unchanged" for name in SHOP_MARTS})
        refresh_shop(project, expect_kind=None)
        assert project.sql(f"select count(*) from {SCHEMA}.shop_order_summary where coupon_amount <> 0") == [(0,)]
    finally:
        path.write_text(original)
    project.dbt("run", "-s", "path:models/shop")
    refresh_shop(project, expect_kind=None)
    assert project.sql(f"select count(*) from {SCHEMA}.shop_order_summary where coupon_amount <> 0")[0][0] > 0


def test_quotes_dollar_quotes_backslashes_and_percents_arrive_intact(project):
    row = project.sql(f"select single_quotes, dollar_quotes, backslashes, percents from {SCHEMA}.quoted_literals")
    assert row == [("it's \"quoted\"", "dollar $tag$ 'text'", "back\\slash \\n \\\\", "100% of %s")]


def test_grants_indexes_docs_and_hooks(project):
    rel = f"{SCHEMA}.customer_activity"
    assert project.sql("select has_table_privilege(%s, %s, 'SELECT')", READER_ROLE, rel) == [(True,)]
    indexes = project.sql("select indexdef from pg_indexes where schemaname = %s and tablename = %s "
                          "and indexname like 'pgs_idx_%%' order by indexdef", SCHEMA, "customer_activity")
    assert len(indexes) == 2, indexes  # two runs, still one index per config entry
    assert any("UNIQUE" in d and "(customer_id)" in d for (d,) in indexes), indexes
    assert any("(last_order_at)" in d for (d,) in indexes), indexes
    assert project.sql("select obj_description(%s::regclass), col_description(%s::regclass, 1)", rel, rel) == [
        ("Last order per customer; it's granted, indexed and documented", "Customer identifier (unique index)")]
    hooks = project.sql(f"select hook, count(*) from {SCHEMA}.hook_log group by hook order by hook")
    assert hooks == [("post inside", 2), ("post outside", 2)], hooks
    # grants is the whole truth: a privilege granted by hand is revoked on the next run.
    project.sql(f"grant insert on {rel} to {READER_ROLE}")
    _, log = project.dbt("run", "-s", "customer_activity")
    expect_actions(project, log, {rel: "unchanged"})
    assert project.sql("select has_table_privilege(%s, %s, 'INSERT'), has_table_privilege(%s, %s, 'SELECT')",
                       READER_ROLE, rel, READER_ROLE, rel) == [(False, True)]


def test_empty_run_leaves_populated_stream_tables_as_they_are(project):
    """`dbt run --empty` (dbt 1.8+) compiles every ref as an emptied subquery: existing stream tables
    keep their rows and their stored query."""
    before = {key: (project.sql(f"select count(*) from {key[0]}.{key[1]}")[0][0], value)
              for key, value in project.catalog().items()}
    queries = dict(((r[0], r[1]), r[2]) for r in project.sql(
        "select pgs_schema, pgs_name, defining_query from pgstream.pgs_stream_tables"))
    _, log = project.dbt("run", "--empty")
    got = expect_actions(project, log, {f"{s}.{n}": "unchanged" for (s, n) in STREAM_TABLES})
    assert all("dbt --empty leaves the existing stream table as it is" in reason for _, reason in got.values()), got
    after = {key: (project.sql(f"select count(*) from {key[0]}.{key[1]}")[0][0], value)
             for key, value in project.catalog().items()}
    assert after == before
    assert all(count > 0 for count, _ in after.values()), after
    assert dict(((r[0], r[1]), r[2]) for r in project.sql(
        "select pgs_schema, pgs_name, defining_query from pgstream.pgs_stream_tables")) == queries
    # --empty also rebuilt every view model emptied (`where false limit 0`), the shop's staging views too,
    # and a DIFFERENTIAL stream table reading such a view cannot refresh (0A000, LIMIT without ORDER BY):
    # build the views again, as the next normal run would.
    project.dbt("run", "--exclude", "config.materialized:stream_table")
    for name in SHOP_MARTS:
        project.sql("select pgstream.refresh_stream_table(%s)", f"{SCHEMA}.{name}")
    assert_shop_marts_equal_their_queries(project)


def test_empty_run_on_a_fresh_schema_creates_empty_stream_tables_with_the_real_query(project):
    fresh = SCHEMA + "_empty"
    project.sql(f"drop schema if exists {fresh} cascade")
    os.environ["DBT_PGSTREAM_SCHEMA"] = fresh
    try:
        project.dbt("seed", "-s", "raw_orders")
        _, log = project.dbt("run", "--empty", "-s", "order_totals", "big_customers")
        got = expect_actions(project, log, {f"{fresh}.order_totals": "created", f"{fresh}.big_customers": "created"})
        assert "dbt --empty" in got[f"{fresh}.order_totals"][1], got
        assert project.sql(f"select count(*) from {fresh}.order_totals") == [(0,)]
        assert project.sql(f"select count(*) from {fresh}.big_customers") == [(0,)]
        stored = project.sql("select defining_query from pgstream.pgs_stream_tables where pgs_schema = %s", fresh)
        assert len(stored) == 2 and not any("limit 0" in q or "_dbt_limit_subq_" in q for (q,) in stored), stored
        # The next normal run finds the same query, and populates what the empty run created.
        _, log = project.dbt("run", "-s", "order_totals", "big_customers")
        expect_actions(project, log, {f"{fresh}.order_totals": "unchanged", f"{fresh}.big_customers": "unchanged"})
        assert project.sql(f"select customer_id, total_amount, order_count from {fresh}.order_totals "
                           "order by customer_id") == project.sql(TOTALS_SQL.replace(f"{SCHEMA}.", f"{fresh}."))
        assert project.sql(f"select count(*) from {fresh}.big_customers")[0][0] > 0
    finally:
        os.environ["DBT_PGSTREAM_SCHEMA"] = SCHEMA
        project.sql(f"drop schema if exists {fresh} cascade")


def test_shop_empty_run_on_a_fresh_schema_then_a_normal_run(project):
    """dbt's CI shape: `dbt run --empty` in a fresh schema builds the staging views emptied (`where false
    limit 0`) and the marts without rows; the next normal run rebuilds the views and fills the marts."""
    fresh = SCHEMA + "_shop_empty"
    project.sql(f"drop schema if exists {fresh} cascade")
    os.environ["DBT_PGSTREAM_SCHEMA"] = fresh
    try:
        project.dbt("seed", "-s", "path:seeds/shop")
        _, log = project.dbt("run", "--empty", "-s", "path:models/shop")
        expect_actions(project, log, {f"{fresh}.{name}": "created" for name in SHOP_MARTS})
        for name in SHOP_MARTS:
            assert project.sql(f"select count(*) from {fresh}.{name}") == [(0,)], name
        _, log = project.dbt("run", "-s", "path:models/shop")
        expect_actions(project, log, {f"{fresh}.{name}": "unchanged" for name in SHOP_MARTS})
        for name in SHOP_MARTS:
            assert project.sql(f"select count(*) from {fresh}.{name}")[0][0] > 0, name
        assert_shop_marts_equal_their_queries(project, fresh)
    finally:
        os.environ["DBT_PGSTREAM_SCHEMA"] = SCHEMA
        project.sql(f"drop schema if exists {fresh} cascade")


def test_whitespace_and_comment_change_is_unchanged(project):
    before = project.catalog()[(SCHEMA, "order_totals")]
    project.edit_model("order_totals", "SELECT\n    customer_id,",
                       "select   -- reformatted: comments and white space only\n\n\tcustomer_id ,  /* block */")
    project.edit_model("order_totals", "GROUP BY customer_id", "group   by\n customer_id")
    _, log = project.dbt("run", "-s", "order_totals")
    expect_actions(project, log, {f"{SCHEMA}.order_totals": "unchanged"})
    after = project.catalog()[(SCHEMA, "order_totals")]
    assert after == before


def test_logic_change_is_recreated_with_correct_rows(project):
    project.write_model("order_totals", project.original["order_totals"])
    project.edit_model("order_totals", "GROUP BY customer_id", "WHERE amount > 20\nGROUP BY customer_id")
    _, log = project.dbt("run", "-s", "order_totals")
    got = expect_actions(project, log, {f"{SCHEMA}.order_totals": "recreated"})
    assert got[f"{SCHEMA}.order_totals"][1] == "query changed"
    assert project.sql(f"select customer_id, total_amount, order_count from {SCHEMA}.order_totals "
                       "order by customer_id") == project.sql(
        f"select customer_id, sum(amount), count(*) from {SCHEMA}.raw_orders where amount > 20 "
        "group by customer_id order by customer_id")


def test_shape_change_is_recreated_and_back(project):
    project.write_model("order_totals", project.original["order_totals"])
    project.edit_model("order_totals", "COUNT(*) AS order_count", "COUNT(*) AS order_count,\n    MAX(amount) AS max_amount")
    _, log = project.dbt("run", "-s", "order_totals")
    expect_actions(project, log, {f"{SCHEMA}.order_totals": "recreated"})
    assert project.sql(f"select customer_id, max_amount from {SCHEMA}.order_totals order by 1") == project.sql(
        f"select customer_id, max(amount) from {SCHEMA}.raw_orders group by 1 order by 1")
    project.write_model("order_totals", project.original["order_totals"])
    _, log = project.dbt("run", "-s", "order_totals")
    expect_actions(project, log, {f"{SCHEMA}.order_totals": "recreated"})
    assert project.sql(f"select customer_id, total_amount, order_count from {SCHEMA}.order_totals "
                       "order by customer_id") == project.sql(TOTALS_SQL)


def test_schedule_change_is_altered(project):
    relid = project.catalog()[(SCHEMA, "order_totals")][3]
    project.edit_model("order_totals", "schedule='10m'", "schedule='25m'")
    _, log = project.dbt("run", "-s", "order_totals")
    got = expect_actions(project, log, {f"{SCHEMA}.order_totals": "altered"})
    assert "schedule" in got[f"{SCHEMA}.order_totals"][1]
    entry = project.catalog()[(SCHEMA, "order_totals")]
    assert entry[0] == "25m" and entry[3] == relid, entry


def test_full_refresh_is_recreated(project):
    _, log = project.dbt("run", "-s", "order_totals", "--full-refresh")
    got = expect_actions(project, log, {f"{SCHEMA}.order_totals": "recreated"})
    assert "full refresh" in got[f"{SCHEMA}.order_totals"][1]
    assert project.catalog()[(SCHEMA, "order_totals")][0] == "25m"


def test_on_configuration_change_continue_warns_and_changes_nothing(project):
    project.edit_model("order_totals", "schedule='25m'", "schedule='40m', on_configuration_change='continue'")
    _, log = project.dbt("run", "-s", "order_totals")
    expect_actions(project, log, {f"{SCHEMA}.order_totals": "unchanged"})
    assert re.search(r"pg_stream: .*not applied because on_configuration_change is 'continue'.*25m -> 40m", log), log
    assert project.catalog()[(SCHEMA, "order_totals")][0] == "25m"


def test_on_configuration_change_fail_fails_the_model(project):
    project.edit_model("order_totals", "on_configuration_change='continue'", "on_configuration_change='fail'")
    results, log = project.dbt("run", "-s", "order_totals", expect_pass=False)
    assert [r.status for r in results] == ["error"], results
    assert "schedule" in log and "25m" in log and "40m" in log, log
    assert project.catalog()[(SCHEMA, "order_totals")][0] == "25m"
    project.write_model("order_totals", project.original["order_totals"])
    _, log = project.dbt("run", "-s", "order_totals")
    expect_actions(project, log, {f"{SCHEMA}.order_totals": "altered"})
    assert project.catalog()[(SCHEMA, "order_totals")][0] == "10m"


def test_bad_config_fails_the_model_naming_the_key(project):
    project.edit_model("order_totals", "schedule='10m'", "schedule='every tuesday'")
    results, log = project.dbt("run", "-s", "order_totals", expect_pass=False)
    assert [r.status for r in results] == ["error"], results
    assert "schedule" in log and "every tuesday" in log, log
    project.write_model("order_totals", project.original["order_totals"])
    assert project.catalog()[(SCHEMA, "order_totals")][0] == "10m"


def test_status_config_suspends_and_resumes(project):
    key = (SCHEMA, "customer_order_counts")
    project.edit_model("customer_counts", "schedule='30m',", "schedule='30m', status='SUSPENDED',")
    _, log = project.dbt("run", "-s", "customer_counts")
    expect_actions(project, log, {f"{SCHEMA}.customer_order_counts": "altered"})
    assert project.catalog()[key][2] == "SUSPENDED"
    project.edit_model("customer_counts", "status='SUSPENDED'", "status='ACTIVE'")
    _, log = project.dbt("run", "-s", "customer_counts")
    expect_actions(project, log, {f"{SCHEMA}.customer_order_counts": "altered"})
    assert project.catalog()[key][2] == "ACTIVE"
    project.write_model("customer_counts", project.original["customer_counts"])


def test_initialize_false_creates_an_empty_stream_table(project):
    project.write_model("lazy_totals", "{{ config(materialized='stream_table', refresh_mode='FULL', "
                        "schedule='1h', initialize=false) }}\n"
                        "SELECT customer_id, COUNT(*) AS n FROM {{ ref('raw_orders') }} GROUP BY customer_id\n")
    try:
        _, log = project.dbt("run", "-s", "lazy_totals")
        expect_actions(project, log, {f"{SCHEMA}.lazy_totals": "created"})
        assert project.sql(f"select count(*) from {SCHEMA}.lazy_totals") == [(0,)]
        project.dbt("run-operation", "refresh", "--args", "{model_name: lazy_totals}")
        assert project.sql(f"select count(*) from {SCHEMA}.lazy_totals") == [(4,)]
    finally:
        project.model_path("lazy_totals").unlink()
        project.sql("select pgstream.drop_stream_table(%s)", f"{SCHEMA}.lazy_totals")


def test_refresh_operation_resolves_models_and_names(project):
    project.sql(f"insert into {SCHEMA}.raw_orders values (11, 104, 150.00, '2026-01-19 10:00'), "
                "(12, 100, 1.00, '2026-01-19 11:00')")
    assert project.sql(f"select count(*) from {SCHEMA}.order_totals where customer_id = 104") == [(0,)]
    _, log = project.dbt("run-operation", "refresh", "--args", "{model_name: order_totals}")
    assert f"pg_stream: refreshed {SCHEMA}.order_totals" in log, log
    assert project.sql(f"select customer_id, total_amount, order_count from {SCHEMA}.order_totals "
                       "order by customer_id") == project.sql(TOTALS_SQL)
    # The name override is found through the graph: model customer_counts -> customer_order_counts.
    _, log = project.dbt("run-operation", "refresh", "--args", "{model_name: customer_counts}")
    assert f"pg_stream: refreshed {SCHEMA}.customer_order_counts" in log, log
    assert project.sql(f"select orders from {SCHEMA}.customer_order_counts where customer_id = 104") == [(1,)]
    # A stream table name that is no model: schema-qualified.
    _, log = project.dbt("run-operation", "refresh", "--args", f"{{model_name: {REPORTING}.daily_revenue}}")
    assert f"pg_stream: refreshed {REPORTING}.daily_revenue" in log, log


def test_differential_refresh_applies_inserts_updates_and_deletes(project):
    # The first refresh after dbt's DDL recomputes FULL; the next ones apply changes only.
    project.dbt("run-operation", "refresh", "--args", "{model_name: order_totals}")
    project.sql(f"insert into {SCHEMA}.raw_orders values (20, 105, 40.00, '2026-01-21 08:00'), "
                "(21, 105, 2.50, '2026-01-21 09:00')")
    project.sql(f"update {SCHEMA}.raw_orders set amount = amount + 10 where id = 1")
    project.sql(f"update {SCHEMA}.raw_orders set customer_id = 105 where id = 2")
    project.sql(f"delete from {SCHEMA}.raw_orders where id = 3")
    _, log = project.dbt("run-operation", "refresh", "--args", "{model_name: order_totals}")
    assert f"pg_stream: refreshed {SCHEMA}.order_totals" in log, log
    assert project.sql("select last_refresh_kind, effective_mode from pgstream.pgs_stream_tables "
                       "where pgs_schema = %s and pgs_name = 'order_totals'", SCHEMA) == [("DIFFERENTIAL", "DIFFERENTIAL")]
    assert project.sql(f"select customer_id, total_amount, order_count from {SCHEMA}.order_totals "
                       "order by customer_id") == project.sql(TOTALS_SQL)
    assert project.sql(f"select total_amount, order_count from {SCHEMA}.order_totals where customer_id = 105") == \
        project.sql(f"select sum(amount), count(*) from {SCHEMA}.raw_orders where customer_id = 105")
    # And back: customer 105 goes away entirely, the others get their seed totals again.
    project.sql(f"delete from {SCHEMA}.raw_orders where id in (20, 21)")
    project.sql(f"update {SCHEMA}.raw_orders set amount = amount - 10 where id = 1")
    project.sql(f"update {SCHEMA}.raw_orders set customer_id = 101 where id = 2")
    project.sql(f"insert into {SCHEMA}.raw_orders values (3, 100, 15.00, '2026-01-15 12:15')")
    project.dbt("run-operation", "refresh", "--args", "{model_name: order_totals}")
    assert project.sql(f"select customer_id, total_amount, order_count from {SCHEMA}.order_totals "
                       "order by customer_id") == project.sql(TOTALS_SQL)
    assert project.sql(f"select count(*) from {SCHEMA}.order_totals where customer_id = 105") == [(0,)]


def test_refresh_all_goes_in_dependency_order(project):
    # big_customers reads order_totals: new rows reach it only if order_totals refreshes first
    # (and alphabetically big_customers would come first).
    project.sql(f"insert into {SCHEMA}.raw_orders values (13, 103, 200.00, '2026-01-20 09:00')")
    _, log = project.dbt("run-operation", "refresh_all_stream_tables")
    order = re.findall(r"pg_stream: refreshed (\S+)\n", log)
    assert sorted(order) == sorted(f"{s}.{n}" for (s, n) in STREAM_TABLES), order
    assert order.index(f"{SCHEMA}.order_totals") < order.index(f"{SCHEMA}.big_customers"), order
    assert project.sql(f"select customer_id from {SCHEMA}.big_customers order by 1") == [
        (100,), (101,), (102,), (103,), (104,)]


def test_dbt_test_passes_and_healthy_test_catches_a_plain_view(project):
    results, _ = project.dbt("test")
    statuses = {r.node.name: str(r.status) for r in results}
    warned = [n for n, s in statuses.items() if s != "pass"]
    assert len(warned) == 1 and "not_a_stream_table" in warned[0] and statuses[warned[0]] == "warn", statuses
    assert any("assert_totals_correct" in n for n in statuses) and any("assert_no_errors" in n for n in statuses)
    assert sum("stream_table_healthy" in n for n in statuses) == 7, statuses


def test_wrapper_macros(project):
    _, log = project.dbt("run-operation", "assert_wrappers")
    assert "assert_wrappers: all wrapper checks passed" in log, log


# --- Contracts, constraints, sql_header, refresh_on_run, unit tests, docs, show, deprecations ---

def contracted(project):
    return project.sql(f"select customer_id, total_amount, order_count from {SCHEMA}.contracted_totals "
                       "order by customer_id")


def test_contract_constraints_and_sql_header_are_applied(project):
    # (PostgreSQL 18 also lists NOT NULLs in pg_constraint, as contype 'n': checked below instead.)
    constraints = project.sql("select conname, contype from pg_constraint where conrelid = %s::regclass "
                              "and contype <> 'n' order by conname", f"{SCHEMA}.contracted_totals")
    kinds = sorted(kind for _, kind in constraints)
    assert kinds == ["c", "c", "p"], constraints
    assert ("contracted_totals_not_negative", "c") in constraints
    assert project.sql("select attnotnull from pg_attribute where attrelid = %s::regclass "
                       "and attname = 'customer_id'", f"{SCHEMA}.contracted_totals") == [(True,)]
    assert project.sql("select obj_description(%s::regclass, 'pg_class')",
                       f"{SCHEMA}.contracted_totals") == [("header: seen",)]
    assert contracted(project) == project.sql(TOTALS_SQL)


def test_refresh_on_run_makes_a_rerun_current(project):
    project.sql(f"insert into {SCHEMA}.raw_orders values (40, 100, 5.00, '2026-02-01 10:00')")
    _, log = project.dbt("run", "-s", "contracted_totals", "order_totals")
    got = expect_actions(project, log, {f"{SCHEMA}.contracted_totals": "unchanged",
                                        f"{SCHEMA}.order_totals": "unchanged"})
    assert "refreshed (DIFFERENTIAL, refresh_on_run)" in got[f"{SCHEMA}.contracted_totals"][1], got
    assert "refresh_on_run" not in got[f"{SCHEMA}.order_totals"][1], got
    assert contracted(project) == project.sql(TOTALS_SQL)
    # The constraints stay as they were (nothing added twice).
    assert project.sql("select count(*) from pg_constraint where conrelid = %s::regclass and contype <> 'n'",
                       f"{SCHEMA}.contracted_totals") == [(3,)]


def test_a_refresh_violating_a_constraint_fails_and_applies_nothing(project):
    before = contracted(project)
    project.sql(f"insert into {SCHEMA}.raw_orders values (41, 900, -50.00, '2026-02-02 10:00')")
    _, log = project.dbt("run-operation", "pgstream_refresh", "--args", "{model_name: contracted_totals}",
                         expect_pass=False)
    assert "contracted_totals_not_negative" in log, log
    assert contracted(project) == before
    project.sql(f"delete from {SCHEMA}.raw_orders where id = 41")
    project.dbt("run-operation", "pgstream_refresh", "--args", "{model_name: contracted_totals}")
    assert contracted(project) == project.sql(TOTALS_SQL)


def test_a_broken_contract_fails_the_model_and_changes_nothing(project):
    schema_yml = project.root / "models" / "marts" / "schema.yml"
    original = schema_yml.read_text()
    relid = project.catalog()[(SCHEMA, "contracted_totals")][3]
    schema_yml.write_text(original.replace("        data_type: bigint", "        data_type: text"))
    try:
        results, log = project.dbt("run", "-s", "contracted_totals", expect_pass=False)
        assert [str(r.status) for r in results] == ["error"], results
        assert "contract" in log.lower() and "order_count" in log, log
        assert project.catalog()[(SCHEMA, "contracted_totals")][3] == relid
    finally:
        schema_yml.write_text(original)
    _, log = project.dbt("run", "-s", "contracted_totals")
    expect_actions(project, log, {f"{SCHEMA}.contracted_totals": "unchanged"})


def test_unit_tests_docs_and_show_work_on_stream_tables(project):
    results, _ = project.dbt("test", "--select", "test_type:unit")
    assert sorted((r.node.name, str(r.status)) for r in results) == [
        ("big_customers_reads_a_stream_table", "pass"), ("order_totals_sums_per_customer", "pass")], results
    project.dbt("docs", "generate")
    catalog = json.loads((project.root / "target" / "catalog.json").read_text())
    node = catalog["nodes"]["model.dbt_pgstream_integration_tests.order_totals"]
    assert set(node["columns"]) == {"customer_id", "total_amount", "order_count"}, node["columns"]
    _, log = project.dbt("show", "--select", "order_totals", "--limit", "3")
    assert "total_amount" in log and "customer_id" in log, log


def test_deprecated_names_and_operation_warn_but_work(project):
    _, log = project.dbt("run", "-s", "customer_counts")
    assert "stream_table_name / stream_table_schema are deprecated" in log, log
    _, log = project.dbt("run-operation", "refresh", "--args", "{model_name: order_totals}")
    assert "`refresh` is deprecated" in log and f"pg_stream: refreshed {SCHEMA}.order_totals" in log, log


def _freshness(project, expect_pass=True):
    results, log = project.dbt("source", "freshness", expect_pass=expect_pass)
    results = getattr(results, "results", results)
    assert len(results) == 1, results
    return str(results[0].status)


def test_source_freshness_pass_warn_error_and_staleness(project):
    # Suspended, so a running scheduler leaves the simulated age alone.
    project.sql("select pgstream.alter_stream_table(%s, status => 'SUSPENDED')", f"{SCHEMA}.order_totals")
    age = f"update pgstream.pgs_stream_tables set last_refresh_at = now() - %s::interval " \
          f"where pgs_schema = '{SCHEMA}' and pgs_name = 'order_totals'"
    try:
        assert _freshness(project) == "pass"
        project.sql(age, "30 minutes")
        assert _freshness(project) == "warn"
        project.sql(age, "2 hours")
        assert _freshness(project, expect_pass=False) == "error"
        # Two hours without a refresh on a 10m schedule: stale, so stream_table_healthy fails.
        results, _ = project.dbt("test", "-s", "order_totals,test_name:stream_table_healthy", expect_pass=False)
        assert [str(r.status) for r in results] == ["fail"], results
        # customer_order_counts allows a day of staleness (max_staleness).
        project.sql(age.replace("'order_totals'", "'customer_order_counts'"), "2 hours")
        results, _ = project.dbt("test", "-s", "customer_counts,test_name:stream_table_healthy")
        assert [str(r.status) for r in results] == ["pass"], results
    finally:
        project.sql("select pgstream.alter_stream_table(%s, status => 'ACTIVE')", f"{SCHEMA}.order_totals")
    project.dbt("run-operation", "refresh", "--args", "{model_name: order_totals}")
    assert _freshness(project) == "pass"


def test_errors_make_healthy_and_no_errors_tests_fail(project):
    # Suspended, so a running scheduler does not refresh it (which would clear the simulated errors).
    project.sql("select pgstream.alter_stream_table(%s, status => 'SUSPENDED')", f"{SCHEMA}.big_customers")
    project.sql(f"update pgstream.pgs_stream_tables set consecutive_errors = 2, last_error = 'simulated' "
                f"where pgs_schema = '{SCHEMA}' and pgs_name = 'big_customers'")
    try:
        results, _ = project.dbt("test", "-s", "big_customers,test_name:stream_table_healthy", "assert_no_errors",
                                 expect_pass=False)
        assert sorted(str(r.status) for r in results) == ["fail", "fail"], results
    finally:
        project.sql(f"update pgstream.pgs_stream_tables set consecutive_errors = 0, last_error = null "
                    f"where pgs_schema = '{SCHEMA}' and pgs_name = 'big_customers'")
        project.sql("select pgstream.alter_stream_table(%s, status => 'ACTIVE')", f"{SCHEMA}.big_customers")


def test_drop_operations_leave_no_stream_table(project):
    project.sql("select pgstream.create_stream_table(%s, %s, refresh_mode => 'FULL')",
                f"{SCHEMA}.made_outside_dbt", f"select count(*) as n from {SCHEMA}.raw_orders")
    _, log = project.dbt("run-operation", "drop_dbt_stream_tables")
    assert f"pg_stream: dropped {len(STREAM_TABLES)} stream table(s) of this project" in log, log
    assert set(project.catalog()) == {(SCHEMA, "made_outside_dbt")}
    for schema, name in STREAM_TABLES:
        assert project.sql("select to_regclass(%s)", f'"{schema}"."{name}"') == [(None,)]
    _, log = project.dbt("run-operation", "drop_all_stream_tables")
    assert "pg_stream: dropped 1 stream table(s)" in log, log
    assert project.catalog() == {}


def test_name_taken_by_a_view_needs_full_refresh(project):
    project.sql(f"create view {SCHEMA}.order_totals as select 1 as customer_id")
    results, log = project.dbt("run", "-s", "order_totals", expect_pass=False)
    assert [r.status for r in results] == ["error"], results
    assert "order_totals" in log and project.catalog() == {}
    _, log = project.dbt("run", "-s", "order_totals", "--full-refresh")
    got = project.actions(log)[f"{SCHEMA}.order_totals"]
    assert got[0] in ("created", "recreated"), got
    assert project.sql(f"select customer_id, total_amount, order_count from {SCHEMA}.order_totals "
                       "order by customer_id") == project.sql(TOTALS_SQL)
    assert set(project.catalog()) == {(SCHEMA, "order_totals")}
