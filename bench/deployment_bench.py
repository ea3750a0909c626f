"""bench/deployment: stream tables in a living dbt deployment (run through bench/deployment).

One generated dbt project, a shop: sources customers, products, orders, order_items, payments
(BENCH_DEPLOY_ROWS rows in all), 20 staging views, 12 marts (joins, aggregates, LEFT JOINs of
aggregates, CTE chains, count(distinct), HAVING, date_trunc on timestamptz, a mart on a mart),
materialized three ways that differ only in `+materialized`:

  stream_table       DIFFERENTIAL, schedule = one simulated minute, the extension's scheduler
  materialized_view  plus `dbt run-operation refresh_marts` every simulated minute (cron-style)
  table              only as fresh as the last `dbt run`

Each materialization gets its own database, a copy (CREATE DATABASE ... TEMPLATE) of the same
loaded data, and plays the same script: `dbt run` (creates everything), then one simulated hour
of MINUTES minutes of MINUTE_S wall seconds: a writer applies 4 batches per minute (inserts,
updates, deletes; 0.5 % of the rows in all, the same batches in every run), `dbt run` again at
minute MINUTES/3 and 2*MINUTES/3 (no change to the project), every mart read once per minute.

Server time: pg_stat_statements (track = all), top-level statements only (nested ones are in
their caller's time), of the materialization's database, by every role but the benchmark's own
writer/reader role `bench_app`: dbt's statements, the run-operations, and the scheduler
worker's statements. Change capture runs inside the writer's statements (triggers), so it is in
the writer's time, reported apart ("writes").

Staleness: every source row the writer touches gets updated_at = its batch's timestamp; every
mart carries last_updated_at = the max of its inputs' updated_at. Each batch makes a change
every mart sees (an order placed by an EU repeat customer, completed, web, card, discounted
lines of active products; one order returned; a product and a customer updated), and a mart is
always computed from one snapshot of the sources, so max(last_updated_at) names the last batch
the mart reflects, and it reflects every batch before it. The staleness of a read is then the
age, at the read, of the oldest committed batch the mart does not reflect (0 if none).
"""

import bisect
import datetime as dt
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import threading
import time
import traceback

import psycopg2

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORK = os.path.join(ROOT, "bench", ".work")
CLUSTER_DIR = os.path.join(WORK, "deploy-cluster")
PROJECTS = os.path.join(WORK, "deployment")
PG_BIN = "/usr/lib/postgresql/15/bin"
PKG = os.path.join(ROOT, "dbt-pgstream")

SMOKE = "--smoke" in sys.argv[1:]
ROWS = int(os.environ.get("BENCH_DEPLOY_ROWS", "20000" if SMOKE else "1000000"))
MINUTE_S = int(os.environ.get("BENCH_DEPLOY_MINUTE_S", "2" if SMOKE else "3"))
MINUTES = int(os.environ.get("BENCH_DEPLOY_MINUTES", "12" if SMOKE else "60"))
MATS = os.environ.get("BENCH_DEPLOY_MATS", "stream_table materialized_view table").split()
THREADS = int(os.environ.get("BENCH_DEPLOY_THREADS", "2"))
PORT = int(os.environ.get("BENCH_PGPORT", "55430"))
KEEP = os.environ.get("BENCH_KEEP") == "1"
# The stream tables' schedule (default: one simulated minute). A schedule of one interval
# leaves a mart up to the interval plus a refresh behind; a shorter one keeps it within.
ST_SCHEDULE = os.environ.get("BENCH_DEPLOY_ST_SCHEDULE", f"{MINUTE_S}s")
BATCHES_PER_MINUTE = 4
N_BATCHES = MINUTES * BATCHES_PER_MINUTE
RUN_AT = [0, MINUTES // 3, 2 * MINUTES // 3]  # simulated minutes of the dbt runs
SEED = 20261205
SHORT = {"stream_table": "st", "materialized_view": "mv", "table": "tbl"}
EU = ["DE", "FR", "NL", "ES", "IT", "SE", "PL"]
COUNTRIES = EU + ["US", "GB", "CA", "BR", "JP"]

DBT = os.path.join(ROOT, ".venvs", "dbt-1.11", "bin", "dbt")
if not os.access(DBT, os.X_OK):
    DBT = os.path.join(os.path.dirname(sys.executable), "dbt")

ENV = dict(os.environ)
ENV.update({"PGHOST": "127.0.0.1", "PGPORT": str(PORT), "PGUSER": "postgres", "PGDATABASE": "postgres",
            "CLUSTER_DIR": CLUSTER_DIR, "DBT_SEND_ANONYMOUS_USAGE_STATS": "false", "DO_NOT_TRACK": "1"})
ENV.pop("RUST_BACKTRACE", None)
ENV.pop("RUST_LIB_BACKTRACE", None)

T0 = time.time()


def say(msg):
    print(f"==> [{time.time() - T0:6.1f}s] {msg}", flush=True)


def sh(cmd, check=True, timeout=1800, **kw):
    return subprocess.run(cmd, check=check, env=ENV, timeout=timeout, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, **kw)


def connect(db="postgres", user="postgres", app="bench"):
    c = psycopg2.connect(host="127.0.0.1", port=PORT, user=user, dbname=db, application_name=app)
    c.autocommit = True
    return c


def q(conn, sql, args=None):
    with conn.cursor() as cur:
        cur.execute(sql, args)
        return cur.fetchall() if cur.description else None


# --------------------------------------------------------------------------- cluster

def cluster_start():
    sh([os.path.join(ROOT, "scripts", "cluster.sh"), "start"])
    with open(os.path.join(CLUSTER_DIR, "data", "postgresql.conf"), "a") as f:
        f.write("""
# bench/deployment: server time per statement, including those of functions and of the
# scheduler's background worker
shared_preload_libraries = 'pg_stream_dbt,pg_stat_statements'
pg_stat_statements.track = all
pg_stat_statements.max = 20000
pg_stat_statements.track_utility = on
shared_buffers = 512MB
max_wal_size = 4GB
""")
    sh(["runuser", "-u", "postgres", "--", "env", "-u", "RUST_BACKTRACE", "-u", "RUST_LIB_BACKTRACE",
        f"{PG_BIN}/pg_ctl", "-D", os.path.join(CLUSTER_DIR, "data"),
        "-l", os.path.join(CLUSTER_DIR, "server.log"), "-w", "restart"])


def cluster_stop():
    if os.path.exists(os.path.join(CLUSTER_DIR, "data", "postmaster.pid")):
        sh([os.path.join(ROOT, "scripts", "cluster.sh"), "stop"], check=False)


# --------------------------------------------------------------------------- data

def sizes():
    nc = max(100, ROWS * 5 // 100)
    np_ = max(50, ROWS // 200)
    no = ROWS * 25 // 100
    ni = ROWS * 45 // 100
    npay = ROWS - nc - np_ - no - ni
    return {"customers": nc, "products": np_, "orders": no, "order_items": ni, "payments": npay}


def load_template(admin):
    n = sizes()
    q(admin, "DROP DATABASE IF EXISTS deploy_tmpl WITH (FORCE)")
    q(admin, "CREATE DATABASE deploy_tmpl")
    roles = q(admin, "SELECT 1 FROM pg_roles WHERE rolname = 'bench_app'")
    if not roles:
        q(admin, "CREATE ROLE bench_app LOGIN SUPERUSER")
    c = connect("deploy_tmpl")
    countries = "ARRAY[" + ",".join(f"'{x}'" for x in COUNTRIES) + "]"
    q(c, f"""
CREATE SCHEMA raw;
CREATE TABLE raw.customers (id int PRIMARY KEY, name text NOT NULL, email text NOT NULL,
    country text NOT NULL, segment text NOT NULL, signed_up_at timestamptz NOT NULL, updated_at timestamptz NOT NULL);
CREATE TABLE raw.products (id int PRIMARY KEY, name text NOT NULL, category text NOT NULL,
    price numeric(10,2) NOT NULL, is_active boolean NOT NULL, updated_at timestamptz NOT NULL);
CREATE TABLE raw.orders (id int PRIMARY KEY, customer_id int NOT NULL, status text NOT NULL,
    channel text NOT NULL, ordered_at timestamptz NOT NULL, updated_at timestamptz NOT NULL);
CREATE TABLE raw.order_items (id bigint PRIMARY KEY, order_id int NOT NULL, product_id int NOT NULL,
    quantity int NOT NULL, unit_price numeric(10,2) NOT NULL, discount numeric(4,2) NOT NULL, updated_at timestamptz NOT NULL);
CREATE TABLE raw.payments (id bigint PRIMARY KEY, order_id int NOT NULL, method text NOT NULL,
    amount numeric(10,2) NOT NULL, status text NOT NULL, paid_at timestamptz NOT NULL, updated_at timestamptz NOT NULL);
GRANT ALL ON SCHEMA raw TO PUBLIC;

INSERT INTO raw.customers
SELECT g, 'customer ' || g, 'Customer' || g || '@example.com', ({countries})[1 + (g * 7) % {len(COUNTRIES)}],
       (ARRAY['consumer','consumer','small_business','enterprise','student'])[1 + (g * 11) % 5],
       timestamptz '2023-01-01' + (g % 700) * interval '1 day' + (g * 37 % 86400) * interval '1 second',
       timestamptz '2024-12-31'
FROM generate_series(1, {n['customers']}) g;
INSERT INTO raw.products
SELECT g, 'product ' || g,
       (ARRAY['books','games','music','tools','garden','kitchen','toys','sports'])[1 + (g * 5) % 8],
       1 + ((g * 37) % 20000) / 100.0, g % 10 <> 0, timestamptz '2024-12-31'
FROM generate_series(1, {n['products']}) g;
INSERT INTO raw.orders
SELECT g, 1 + (g * 7919) % {n['customers']},
       (ARRAY['completed','completed','completed','completed','completed','shipped','shipped','placed',
              'returned','return_pending','cancelled'])[1 + (g * 13) % 11],
       (ARRAY['web','app','store','marketplace'])[1 + (g * 3) % 4],
       timestamptz '2024-01-01' + (g % 365) * interval '1 day' + (g * 17 % 86400) * interval '1 second',
       timestamptz '2024-12-31'
FROM generate_series(1, {n['orders']}) g;
INSERT INTO raw.order_items
SELECT g, 1 + (g - 1) % {n['orders']}, 1 + (g * 31) % {n['products']}, 1 + g % 4,
       1 + ((g * 53) % 10000) / 100.0, CASE WHEN g % 5 = 0 THEN 0.10 ELSE 0 END, timestamptz '2024-12-31'
FROM generate_series(1, {n['order_items']}) g;
INSERT INTO raw.payments
SELECT g, 1 + (g - 1) % {n['orders']},
       (ARRAY['credit_card','credit_card','debit_card','paypal','bank_transfer','gift_card','coupon'])[1 + (g * 3) % 7],
       5 + ((g * 71) % 30000) / 100.0,
       (ARRAY['succeeded','succeeded','succeeded','succeeded','succeeded','succeeded','succeeded','succeeded',
              'refunded','failed'])[1 + (g * 7) % 10],
       timestamptz '2024-01-01' + (g % 365) * interval '1 day', timestamptz '2024-12-31'
FROM generate_series(1, {n['payments']}) g;
CREATE INDEX ON raw.orders (customer_id);
CREATE INDEX ON raw.order_items (order_id);
CREATE INDEX ON raw.order_items (product_id);
CREATE INDEX ON raw.payments (order_id);
""")
    q(c, "VACUUM ANALYZE")
    # Heartbeat customers: EU, at least 3 orders (so they are in top_customers too).
    eu = ",".join(f"'{x}'" for x in EU)
    hb = [r[0] for r in q(c, f"""
        SELECT c.id FROM raw.customers c JOIN raw.orders o ON o.customer_id = c.id
        WHERE c.country IN ({eu}) AND o.status IN ('completed', 'shipped')
        GROUP BY c.id HAVING count(*) >= 3 ORDER BY c.id LIMIT 20""")]
    active = [r[0] for r in q(c, "SELECT id FROM raw.products WHERE is_active ORDER BY id LIMIT 50")]
    c.close()
    return n, hb, active


# --------------------------------------------------------------------------- the writes

def plan_batches(n, heartbeat_customers, active_products):
    """The fixed write script: N_BATCHES lists of SQL statements (with a %(ts)s placeholder),
    the same for every materialization. Returns (batches, counts of changed rows)."""
    rng = random.Random(SEED)
    per_batch = max(8, round(ROWS * 0.005 / N_BATCHES))
    next_id = {k: v + 1 for k, v in n.items()}
    deleted_orders = set()
    counts = {"insert": 0, "update": 0, "delete": 0}
    statuses = ["succeeded", "refunded", "failed"]
    batches = []

    def initial(table):
        return rng.randint(1, n[table])

    def new_order(stmts, customer, status, channel, lines, method, amount, discount):
        oid = next_id["orders"]
        next_id["orders"] += 1
        stmts.append(f"INSERT INTO raw.orders VALUES ({oid}, {customer}, '{status}', '{channel}', %(ts)s, %(ts)s)")
        for _ in range(lines):
            iid = next_id["order_items"]
            next_id["order_items"] += 1
            prod = rng.choice(active_products)
            stmts.append(f"INSERT INTO raw.order_items VALUES ({iid}, {oid}, {prod}, {rng.randint(1, 3)}, "
                         f"{rng.randint(500, 9000) / 100:.2f}, {discount}, %(ts)s)")
        pid = next_id["payments"]
        next_id["payments"] += 1
        stmts.append(f"INSERT INTO raw.payments VALUES ({pid}, {oid}, '{method}', {amount:.2f}, 'succeeded', %(ts)s, %(ts)s)")
        counts["insert"] += 2 + lines
        return 2 + lines

    for b in range(N_BATCHES):
        stmts = []
        done = 0
        # The heartbeat every mart sees (see the module's docstring).
        done += new_order(stmts, rng.choice(heartbeat_customers), "completed", "web", 2, "credit_card",
                          rng.randint(10000, 30000) / 100, "0.10")
        o = initial("orders")
        while o in deleted_orders:
            o = initial("orders")
        stmts.append(f"UPDATE raw.orders SET status = 'returned', updated_at = %(ts)s WHERE id = {o}")
        stmts.append(f"UPDATE raw.products SET price = price + 0.01, updated_at = %(ts)s WHERE id = {initial('products')}")
        seg = rng.choice(["consumer", "small_business", "enterprise", "student"])
        stmts.append(f"UPDATE raw.customers SET segment = '{seg}', updated_at = %(ts)s WHERE id = {initial('customers')}")
        counts["update"] += 3
        done += 3
        while done < per_batch:
            r = rng.random()
            if r < 0.30:  # a new order from anyone
                done += new_order(stmts, initial("customers"), rng.choice(["placed", "completed", "shipped"]),
                                  rng.choice(["web", "app", "store", "marketplace"]), rng.randint(1, 3),
                                  rng.choice(["credit_card", "paypal", "gift_card"]), rng.randint(500, 20000) / 100, "0")
            elif r < 0.50:
                stmts.append(f"UPDATE raw.orders SET status = '{rng.choice(['shipped', 'completed', 'cancelled', 'return_pending'])}', "
                             f"updated_at = %(ts)s WHERE id = {initial('orders')}")
                counts["update"] += 1
                done += 1
            elif r < 0.65:
                stmts.append(f"UPDATE raw.payments SET status = '{rng.choice(statuses)}', updated_at = %(ts)s "
                             f"WHERE id = {initial('payments')}")
                counts["update"] += 1
                done += 1
            elif r < 0.80:
                stmts.append(f"UPDATE raw.order_items SET quantity = quantity + 1, updated_at = %(ts)s "
                             f"WHERE id = {initial('order_items')}")
                counts["update"] += 1
                done += 1
            elif r < 0.90:
                stmts.append(f"DELETE FROM raw.order_items WHERE id = {initial('order_items')}")
                counts["delete"] += 1
                done += 1
            elif r < 0.96:
                stmts.append(f"DELETE FROM raw.payments WHERE id = {initial('payments')}")
                counts["delete"] += 1
                done += 1
            else:  # an order purged with its lines and payments
                o = initial("orders")
                deleted_orders.add(o)
                stmts.append(f"DELETE FROM raw.order_items WHERE order_id = {o}")
                stmts.append(f"DELETE FROM raw.payments WHERE order_id = {o}")
                stmts.append(f"DELETE FROM raw.orders WHERE id = {o}")
                counts["delete"] += 4  # about: one order, ~2 lines, ~1 payment
                done += 4
        batches.append(stmts)
    return batches, counts, per_batch


# --------------------------------------------------------------------------- the dbt project

STAGING = {
    "stg_customers": """select
    id as customer_id,
    name as customer_name,
    lower(email) as email,
    country as country_code,
    segment,
    signed_up_at,
    date_trunc('month', signed_up_at) as signup_month,
    updated_at
from {{ source('shop', 'customers') }}""",
    "stg_products": """select
    id as product_id,
    name as product_name,
    category,
    price::numeric(12, 2) as list_price,
    is_active,
    updated_at
from {{ source('shop', 'products') }}""",
    "stg_orders": """select
    id as order_id,
    customer_id,
    status as order_status,
    channel,
    ordered_at,
    date_trunc('day', ordered_at) as order_day,
    updated_at
from {{ source('shop', 'orders') }}
where status <> 'cancelled'""",
    "stg_order_items": """select
    id as order_item_id,
    order_id,
    product_id,
    quantity,
    unit_price,
    discount,
    (quantity * unit_price * (1 - discount))::numeric(14, 2) as line_amount,
    updated_at
from {{ source('shop', 'order_items') }}""",
    "stg_payments": """select
    id as payment_id,
    order_id,
    method as payment_method,
    amount::numeric(12, 2) as amount,
    status as payment_status,
    paid_at,
    updated_at
from {{ source('shop', 'payments') }}""",
    "stg_customers_eu": "select * from {{ ref('stg_customers') }}\nwhere country_code in (" + ", ".join(f"'{x}'" for x in EU) + ")",
    "stg_products_active": "select * from {{ ref('stg_products') }}\nwhere is_active",
    "stg_orders_completed": "select * from {{ ref('stg_orders') }}\nwhere order_status in ('completed', 'shipped')",
    "stg_orders_returned": "select * from {{ ref('stg_orders') }}\nwhere order_status in ('returned', 'return_pending')",
    "stg_orders_online": "select * from {{ ref('stg_orders') }}\nwhere channel in ('web', 'app')",
    "stg_orders_recent": "select * from {{ ref('stg_orders') }}\nwhere ordered_at >= timestamptz '2024-06-01 00:00:00+00'",
    "stg_orders_monthly": """select
    order_id,
    customer_id,
    channel,
    order_status,
    date_trunc('month', ordered_at) as order_month,
    updated_at
from {{ ref('stg_orders') }}""",
    "stg_order_lines": """select
    items.order_item_id,
    items.order_id,
    items.product_id,
    products.category,
    items.quantity,
    items.line_amount,
    items.updated_at,
    products.updated_at as product_updated_at
from {{ ref('stg_order_items') }} as items
inner join {{ ref('stg_products') }} as products
    on products.product_id = items.product_id""",
    "stg_order_items_discounted": "select * from {{ ref('stg_order_items') }}\nwhere discount > 0",
    "stg_payments_succeeded": "select * from {{ ref('stg_payments') }}\nwhere payment_status = 'succeeded'",
    "stg_payments_refunded": "select * from {{ ref('stg_payments') }}\nwhere payment_status = 'refunded'",
    "stg_payments_card": "select * from {{ ref('stg_payments') }}\nwhere payment_method in ('credit_card', 'debit_card')",
    "stg_payments_large": "select * from {{ ref('stg_payments') }}\nwhere amount >= 100",
    "stg_customer_segments": """select
    customer_id,
    country_code,
    case
        when segment in ('enterprise', 'small_business') then 'B2B'
        else 'B2C'
    end as segment_group,
    updated_at
from {{ ref('stg_customers') }}""",
    "stg_product_price_bands": """select
    product_id,
    category,
    case
        when list_price < 20 then 'low'
        when list_price < 100 then 'mid'
        else 'high'
    end as price_band,
    updated_at
from {{ ref('stg_products') }}""",
}

PAYMENT_STATUSES = ["succeeded", "refunded", "failed"]

MARTS = {
    "fct_orders": """-- one row per order: its lines and payments (LEFT JOINs of aggregates, CTE chain)
with orders as (

    select * from {{ ref('stg_orders') }}

),

order_lines as (

    select
        order_id,
        count(*) as line_count,
        sum(quantity) as units,
        sum(line_amount) as gross_amount,
        max(updated_at) as lines_updated_at
    from {{ ref('stg_order_items') }}
    group by order_id

),

order_payments as (

    select
        order_id,
        count(*) as payment_count,
        sum(case when payment_status = 'succeeded' then amount else 0 end) as paid_amount,
        sum(case when payment_status = 'refunded' then amount else 0 end) as refunded_amount,
        max(updated_at) as payments_updated_at
    from {{ ref('stg_payments') }}
    group by order_id

),

final as (

    select
        orders.order_id,
        orders.customer_id,
        orders.order_status,
        orders.channel,
        orders.order_day,
        coalesce(order_lines.line_count, 0) as line_count,
        coalesce(order_lines.units, 0) as units,
        coalesce(order_lines.gross_amount, 0) as gross_amount,
        coalesce(order_payments.paid_amount, 0) as paid_amount,
        coalesce(order_payments.refunded_amount, 0) as refunded_amount,
        greatest(orders.updated_at, order_lines.lines_updated_at, order_payments.payments_updated_at) as last_updated_at
    from orders
    left join order_lines
        on orders.order_id = order_lines.order_id
    left join order_payments
        on orders.order_id = order_payments.order_id

)

select * from final""",
    "dim_customers": """-- one row per customer: orders and lifetime value
with customers as (

    select * from {{ ref('stg_customers') }}

),

customer_orders as (

    select
        customer_id,
        min(order_day) as first_order_day,
        max(order_day) as most_recent_order_day,
        count(order_id) as number_of_orders,
        max(updated_at) as orders_updated_at
    from {{ ref('stg_orders') }}
    group by customer_id

),

customer_payments as (

    select
        orders.customer_id,
        sum(payments.amount) as lifetime_value,
        max(greatest(orders.updated_at, payments.updated_at)) as payments_updated_at
    from {{ ref('stg_payments_succeeded') }} as payments
    inner join {{ ref('stg_orders') }} as orders
        on payments.order_id = orders.order_id
    group by orders.customer_id

)

select
    customers.customer_id,
    customers.customer_name,
    customers.country_code,
    customers.segment,
    customers.signup_month,
    customer_orders.first_order_day,
    customer_orders.most_recent_order_day,
    coalesce(customer_orders.number_of_orders, 0) as number_of_orders,
    coalesce(customer_payments.lifetime_value, 0) as lifetime_value,
    greatest(customers.updated_at, customer_orders.orders_updated_at, customer_payments.payments_updated_at) as last_updated_at
from customers
left join customer_orders
    on customers.customer_id = customer_orders.customer_id
left join customer_payments
    on customers.customer_id = customer_payments.customer_id""",
    "top_customers": """-- repeat customers with money spent (a mart on a mart)
select
    customer_id,
    customer_name,
    country_code,
    number_of_orders,
    lifetime_value,
    last_updated_at
from {{ ref('dim_customers') }}
where number_of_orders >= 3
  and lifetime_value > 0""",
    "daily_revenue": """-- revenue per day of completed orders (date_trunc on timestamptz in the staging view)
select
    orders.order_day,
    count(distinct orders.order_id) as orders,
    sum(lines.quantity) as units,
    sum(lines.line_amount) as revenue,
    max(greatest(orders.updated_at, lines.updated_at)) as last_updated_at
from {{ ref('stg_orders_completed') }} as orders
inner join {{ ref('stg_order_items') }} as lines
    on lines.order_id = orders.order_id
group by orders.order_day""",
    "monthly_revenue_by_channel": """-- paid revenue per month and channel
select
    orders.order_month,
    orders.channel,
    count(distinct orders.order_id) as paid_orders,
    count(distinct orders.customer_id) as paying_customers,
    sum(payments.amount) as revenue,
    max(greatest(orders.updated_at, payments.updated_at)) as last_updated_at
from {{ ref('stg_orders_monthly') }} as orders
inner join {{ ref('stg_payments_succeeded') }} as payments
    on payments.order_id = orders.order_id
where orders.order_status in ('completed', 'shipped')
group by orders.order_month, orders.channel""",
    "product_performance": """-- per product: units, revenue, orders (LEFT JOIN of an aggregate)
with sales as (

    select
        product_id,
        sum(quantity) as units_sold,
        sum(line_amount) as revenue,
        count(distinct order_id) as orders,
        max(updated_at) as sales_updated_at
    from {{ ref('stg_order_items') }}
    group by product_id

)

select
    products.product_id,
    products.product_name,
    products.category,
    bands.price_band,
    products.list_price,
    coalesce(sales.units_sold, 0) as units_sold,
    coalesce(sales.revenue, 0) as revenue,
    coalesce(sales.orders, 0) as orders,
    greatest(products.updated_at, sales.sales_updated_at) as last_updated_at
from {{ ref('stg_products') }} as products
inner join {{ ref('stg_product_price_bands') }} as bands
    on bands.product_id = products.product_id
left join sales
    on sales.product_id = products.product_id""",
    "category_sales_by_month": """-- revenue per category and month of completed orders
select
    lines.category,
    orders.order_month,
    sum(lines.quantity) as units,
    sum(lines.line_amount) as revenue,
    count(distinct orders.order_id) as orders,
    max(greatest(lines.updated_at, lines.product_updated_at, orders.updated_at)) as last_updated_at
from {{ ref('stg_order_lines') }} as lines
inner join {{ ref('stg_orders_monthly') }} as orders
    on orders.order_id = lines.order_id
where orders.order_status in ('completed', 'shipped')
group by lines.category, orders.order_month""",
    "payment_method_summary": """-- per payment method: amounts per status (sum(case) in a Jinja loop)
select
    payment_method,
    count(*) as payments,
    {% for status in """ + json.dumps(PAYMENT_STATUSES) + """ -%}
    sum(case when payment_status = '{{ status }}' then amount else 0 end) as {{ status }}_amount,
    {% endfor -%}
    max(updated_at) as last_updated_at
from {{ ref('stg_payments') }}
group by payment_method""",
    "customer_country_revenue": """-- paid revenue per country and segment group
select
    customers.country_code,
    customers.segment_group,
    count(distinct customers.customer_id) as customers,
    sum(payments.amount) as revenue,
    max(greatest(customers.updated_at, orders.updated_at, payments.updated_at)) as last_updated_at
from {{ ref('stg_customer_segments') }} as customers
inner join {{ ref('stg_orders_completed') }} as orders
    on orders.customer_id = customers.customer_id
inner join {{ ref('stg_payments_succeeded') }} as payments
    on payments.order_id = orders.order_id
group by customers.country_code, customers.segment_group""",
    "returns_by_product": """-- returned units and amount per product
select
    lines.product_id,
    lines.category,
    count(distinct orders.order_id) as returned_orders,
    sum(lines.quantity) as returned_units,
    sum(lines.line_amount) as returned_amount,
    max(greatest(orders.updated_at, lines.updated_at)) as last_updated_at
from {{ ref('stg_orders_returned') }} as orders
inner join {{ ref('stg_order_lines') }} as lines
    on lines.order_id = orders.order_id
group by lines.product_id, lines.category""",
    "order_status_counts": """-- orders per status, statuses with at least 5 orders (HAVING)
select
    order_status,
    count(*) as orders,
    count(distinct customer_id) as customers,
    max(updated_at) as last_updated_at
from {{ ref('stg_orders') }}
group by order_status
having count(*) >= 5""",
    "eu_discounted_sales": """-- EU customers' discounted sales of active products, per country and category
select
    customers.country_code,
    products.category,
    count(distinct orders.order_id) as orders,
    sum(items.line_amount) as revenue,
    max(greatest(customers.updated_at, orders.updated_at, items.updated_at, products.updated_at)) as last_updated_at
from {{ ref('stg_customers_eu') }} as customers
inner join {{ ref('stg_orders_completed') }} as orders
    on orders.customer_id = customers.customer_id
inner join {{ ref('stg_order_items_discounted') }} as items
    on items.order_id = orders.order_id
inner join {{ ref('stg_products_active') }} as products
    on products.product_id = items.product_id
group by customers.country_code, products.category""",
    "online_card_payments": """-- large card payments of online orders per channel and method
select
    orders.channel,
    payments.payment_method,
    count(*) as payments,
    sum(payments.amount) as amount,
    max(greatest(orders.updated_at, payments.updated_at)) as last_updated_at
from {{ ref('stg_orders_online') }} as orders
inner join {{ ref('stg_payments_card') }} as payments
    on payments.order_id = orders.order_id
inner join {{ ref('stg_payments_large') }} as large
    on large.payment_id = payments.payment_id
group by orders.channel, payments.payment_method""",
}

REFRESH_MACRO = """{#- refresh_marts: REFRESH MATERIALIZED VIEW of every materialized_view model, readers after what they read (cron-style). -#}
{% macro refresh_marts() %}
  {%- if execute -%}
    {%- set mvs = {} -%}
    {%- for node in graph.nodes.values() if node.resource_type == 'model' and node.config.materialized == 'materialized_view' -%}
      {%- do mvs.update({node.unique_id: node}) -%}
    {%- endfor -%}
    {%- set done = [] -%}
    {%- set refreshed = [] -%}
    {%- for _ in range(mvs | length) -%}
      {%- for uid, node in mvs.items() if uid not in done -%}
        {%- set waiting = [] -%}
        {%- for dep in node.depends_on.nodes if dep in mvs and dep not in done -%}
          {%- do waiting.append(dep) -%}
        {%- endfor -%}
        {%- if waiting | length == 0 -%}
          {%- do done.append(uid) -%}
          {%- set rel = adapter.get_relation(database=node.database, schema=node.schema, identifier=node.alias) -%}
          {%- if rel is not none -%}
            {%- call statement('refresh_' ~ node.name, auto_begin=True) -%}
              refresh materialized view {{ rel }}
            {%- endcall -%}
            {%- do adapter.commit() -%}
            {%- do refreshed.append(node.name) -%}
          {%- endif -%}
        {%- endif -%}
      {%- endfor -%}
    {%- endfor -%}
    {{ log("refresh_marts: refreshed " ~ refreshed | length ~ " materialized view(s)", info=true) }}
  {%- endif -%}
{% endmacro %}
"""


def write_project(mat):
    d = os.path.join(PROJECTS, mat)
    shutil.rmtree(d, ignore_errors=True)
    for sub in ["models/staging", "models/marts", "macros"]:
        os.makedirs(os.path.join(d, sub))
    extra = ""
    if mat == "stream_table":
        extra = f"      +schedule: '{ST_SCHEDULE}'\n      +refresh_mode: DIFFERENTIAL\n"
    name = f"shop_{SHORT[mat]}"
    with open(os.path.join(d, "dbt_project.yml"), "w") as f:
        f.write(f"""name: '{name}'
version: '1.0.0'
config-version: 2
profile: 'deploy'
model-paths: ["models"]
macro-paths: ["macros"]
flags:
  send_anonymous_usage_stats: false
models:
  {name}:
    staging:
      +materialized: view
    marts:
      +materialized: {mat}
{extra}""")
    with open(os.path.join(d, "packages.yml"), "w") as f:
        f.write(f"packages:\n  - local: {PKG}\n")
    with open(os.path.join(d, "profiles.yml"), "w") as f:
        f.write(f"""deploy:
  target: default
  outputs:
    default:
      type: postgres
      host: 127.0.0.1
      port: {PORT}
      user: postgres
      password: postgres
      dbname: deploy_{SHORT[mat]}
      schema: analytics
      threads: {THREADS}
""")
    with open(os.path.join(d, "models", "staging", "sources.yml"), "w") as f:
        f.write("version: 2\nsources:\n  - name: shop\n    schema: raw\n    tables:\n"
                + "".join(f"      - name: {t}\n" for t in ["customers", "products", "orders", "order_items", "payments"]))
    for name_, sql in STAGING.items():
        with open(os.path.join(d, "models", "staging", f"{name_}.sql"), "w") as f:
            f.write(sql + "\n")
    for name_, sql in MARTS.items():
        with open(os.path.join(d, "models", "marts", f"{name_}.sql"), "w") as f:
            f.write(sql + "\n")
    with open(os.path.join(d, "macros", "refresh_marts.sql"), "w") as f:
        f.write(REFRESH_MACRO)
    p = sh([DBT, "deps", "--project-dir", d, "--profiles-dir", d], check=False, cwd=d)
    if p.returncode != 0:
        print(p.stdout)
    return d


def dbt(project, *args):
    t0 = time.time()
    p = subprocess.run([DBT, *args, "--project-dir", project, "--profiles-dir", project], env=ENV, cwd=project,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=1800)
    wall = time.time() - t0
    ok = p.returncode == 0
    if not ok:
        print(f"!! dbt {' '.join(args)} exit {p.returncode}:\n" + "\n".join(p.stdout.splitlines()[-30:]), flush=True)
    return t0, wall, ok, p.stdout


# --------------------------------------------------------------------------- measurements

def server_ms(admin, dbname):
    """Top-level statement time in database dbname by every role but bench_app (pg_stat_statements)."""
    r = q(admin, """
        SELECT coalesce(sum(total_exec_time), 0), coalesce(sum(calls), 0)
        FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid
        WHERE d.datname = %s AND s.toplevel AND s.userid <> 'bench_app'::regrole""", (dbname,))
    w = q(admin, """
        SELECT coalesce(sum(total_exec_time), 0)
        FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid
        WHERE d.datname = %s AND s.toplevel AND s.userid = 'bench_app'::regrole
          AND s.query NOT ILIKE '%%last_updated_at%%' AND s.query NOT ILIKE '%%pgstream.pgs_stream_tables%%'""", (dbname,))
    rmv = q(admin, """
        SELECT coalesce(sum(total_exec_time), 0), coalesce(sum(calls), 0)
        FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid
        WHERE d.datname = %s AND s.toplevel AND s.userid <> 'bench_app'::regrole
          AND s.query ILIKE '%%refresh materialized view%%'""", (dbname,))
    # dbt's statements carry its query comment ({"app": "dbt", ...}); the scheduler's do not.
    dbt_ = q(admin, """
        SELECT coalesce(sum(total_exec_time), 0)
        FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid
        WHERE d.datname = %s AND s.toplevel AND s.userid <> 'bench_app'::regrole
          AND s.query LIKE '%%"app": "dbt"%%'""", (dbname,))
    return {"ms": float(r[0][0]), "calls": int(r[0][1]), "writes_ms": float(w[0][0]),
            "rmv_ms": float(rmv[0][0]), "rmv_calls": int(rmv[0][1]), "dbt_ms": float(dbt_[0][0])}


def diff(a, b):
    return {k: b[k] - a[k] for k in a}


class Hour:
    """One materialization's simulated hour: writer, reader, refresh-kind poller, cadence."""

    def __init__(self, mat, project, batches, marts):
        self.mat, self.project, self.batches, self.marts = mat, project, batches, marts
        self.db = f"deploy_{SHORT[mat]}"
        self.batch_ts = []      # the timestamp written into updated_at, per batch
        self.batch_commit = []  # wall time of the commit, per batch
        self.reads = []         # (mart, read wall time, watermark or None, error)
        self.refreshes = []     # (wall time, mart, kind, duration ms) from the poller
        self.missed_polls = 0
        self.reasons = []       # (wall time, mart, kind, reason) of refreshes that were not DIFFERENTIAL
        self.failures = []      # (wall time, mart, new failures, error)
        self.stop = threading.Event()
        self.errors = []
        self.cadence = {"due": 0, "done": 0, "skipped_busy": 0, "skipped_run": 0, "failed": 0, "walls": []}
        self.running_dbt = threading.Event()

    def start_clock(self):
        self.t_start = time.time()

    def at(self, minute):
        return self.t_start + minute * MINUTE_S

    def sleep_until(self, t):
        while not self.stop.is_set():
            d = t - time.time()
            if d <= 0:
                return True
            time.sleep(min(d, 0.05))
        return False

    def writer(self):
        try:
            c = connect(self.db, "bench_app", "bench-writer")
            c.autocommit = False
            for i, stmts in enumerate(self.batches):
                if not self.sleep_until(self.t_start + i * MINUTE_S / BATCHES_PER_MINUTE):
                    break
                ts = dt.datetime.now(dt.timezone.utc)
                with c.cursor() as cur:
                    for s in stmts:
                        cur.execute(s, {"ts": ts})
                c.commit()
                self.batch_ts.append(ts)
                self.batch_commit.append(time.time())
            c.close()
        except Exception as e:  # noqa: BLE001
            self.errors.append(f"writer: {e}")
            traceback.print_exc()

    def reader(self):
        c = connect(self.db, "bench_app", "bench-reader")
        q(c, "SET lock_timeout = '30s'")
        for m in range(MINUTES):
            if not self.sleep_until(self.at(m + 0.5)):
                break
            for mart in self.marts:
                t_read = time.time()
                try:
                    w = q(c, f"SELECT max(last_updated_at), count(*) FROM analytics.{mart}")[0][0]
                    self.reads.append((mart, t_read, w, None))
                except Exception as e:  # noqa: BLE001 - a missing relation during a dbt run is a result
                    self.reads.append((mart, t_read, None, str(e).splitlines()[0]))
        c.close()

    def poller(self):
        c = connect(self.db, "bench_app", "bench-poller")
        last = {}
        while not self.stop.is_set():
            try:
                rows = q(c, """SELECT pgs_name, total_refreshes, last_refresh_kind, last_refresh_duration_ms,
                                      last_refresh_reason, failed_refreshes, status, last_error
                               FROM pgstream.pgs_stream_tables WHERE pgs_schema = 'analytics'""")
            except Exception:  # noqa: BLE001
                rows = []
            now = time.time()
            for name, total, kind, dur, reason, failed, status, err in rows:
                prev = last.get(name)
                if prev is not None and total > prev[0]:
                    if total > prev[0] + 1:
                        self.missed_polls += total - prev[0] - 1
                    self.refreshes.append((now, name, kind, dur))
                    if kind != "DIFFERENTIAL":
                        self.reasons.append((now, name, kind, reason))
                if prev is not None and failed > prev[1]:
                    self.failures.append((now, name, failed - prev[1], (err or "").splitlines()[0][:160]))
                if status != "ACTIVE" and (prev is None or prev[2] == "ACTIVE"):
                    self.failures.append((now, name, 0, f"status {status}"))
                last[name] = (total, failed, status)
            time.sleep(0.1)
        c.close()

    def cadence_loop(self):
        """materialized_view: `dbt run-operation refresh_marts` at every simulated minute, like
        a cron job that never overlaps itself: a minute that passes while the previous
        run-operation is still going, or while a dbt run is, is skipped."""
        m = 1
        while m < MINUTES:
            if not self.sleep_until(self.at(m)):
                break
            self.cadence["due"] += 1
            if self.running_dbt.is_set():
                self.cadence["skipped_run"] += 1
                m += 1
                continue
            t0, wall, ok, _ = dbt(self.project, "run-operation", "refresh_marts")
            self.cadence["walls"].append(wall)
            self.cadence["done" if ok else "failed"] += 1
            nxt = int((time.time() - self.t_start) / MINUTE_S) + 1  # the next minute still ahead
            passed = min(nxt, MINUTES) - (m + 1)
            if passed > 0:
                self.cadence["due"] += passed
                self.cadence["skipped_busy"] += passed
            m = max(m + 1, nxt)


def watermark_staleness(hour):
    """Per read: (mart, read time, seconds since the oldest committed batch the mart does not reflect)."""
    out = []
    ts = hour.batch_ts
    for mart, t_read, w, err in hour.reads:
        if err is not None or w is None:
            continue
        k = bisect.bisect_right(ts, w)  # batches 0..k-1 are reflected
        if k < len(ts) and hour.batch_commit[k] < t_read:
            out.append((mart, t_read, t_read - hour.batch_commit[k]))
        else:
            out.append((mart, t_read, 0.0))
    return out


def check_stream_tables(conn, project):
    """After the hour: refresh every stream table once more and compare it with its query."""
    bad = []
    # The scheduler off first (pgstream.enabled, reload: its workers exit), then one refresh per
    # transaction, readers after what they read. (Refreshing them all in ONE transaction while
    # the scheduler runs deadlocked on the engine's advisory locks in a trial run.)
    q(conn, "ALTER SYSTEM SET pgstream.enabled = off")
    q(conn, "SELECT pg_reload_conf()")
    for _ in range(100):
        if not q(conn, "SELECT pgstream.scheduler_running()")[0][0]:
            break
        time.sleep(0.1)
    try:
        for (name,) in q(conn, "SELECT format('%I.%I', pgs_schema, pgs_name) FROM pgstream.pgs_stream_tables "
                               "ORDER BY pgs_id"):
            q(conn, "SELECT pgstream.refresh_stream_table(%s)", (name,))
    finally:
        q(conn, "ALTER SYSTEM RESET pgstream.enabled")
        q(conn, "SELECT pg_reload_conf()")
    for mart in MARTS:
        path = None
        for root, _, files in os.walk(os.path.join(project, "target", "compiled")):
            if f"{mart}.sql" in files:
                path = os.path.join(root, f"{mart}.sql")
        if not path:
            bad.append(f"{mart}: no compiled SQL")
            continue
        with open(path) as f:
            sql = f.read()
        cols = [r[0] for r in q(conn, """SELECT column_name FROM information_schema.columns
            WHERE table_schema = 'analytics' AND table_name = %s AND column_name NOT LIKE '\\_\\_pgs\\_%%'
            ORDER BY ordinal_position""", (mart,))]
        cl = ", ".join(f'"{c}"' for c in cols)
        n = q(conn, f"""SELECT (SELECT count(*) FROM ((SELECT {cl} FROM analytics.{mart}) EXCEPT ALL
                                                    (SELECT {cl} FROM ({sql}) q)) a),
                               (SELECT count(*) FROM ((SELECT {cl} FROM ({sql}) q) EXCEPT ALL
                                                    (SELECT {cl} FROM analytics.{mart})) b)""")[0]
        if n[0] or n[1]:
            bad.append(f"{mart}: {n[0]} extra, {n[1]} missing rows")
    return bad


def play(mat, admin, batches):
    res = {"mat": mat, "runs": [], "notes": []}
    db = f"deploy_{SHORT[mat]}"
    q(admin, f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
    q(admin, f"CREATE DATABASE {db} TEMPLATE deploy_tmpl")
    c = connect(db)
    if mat == "stream_table":
        q(c, "CREATE EXTENSION pg_stream_dbt")
    q(c, "CREATE SCHEMA analytics")
    project = write_project(mat)
    marts = list(MARTS)
    hour = Hour(mat, project, batches, marts)

    s0 = server_ms(admin, db)
    t_run, wall, ok, out = dbt(project, "run")
    res["runs"].append({"minute": 0, "wall": wall, "ok": ok})
    s1 = server_ms(admin, db)
    say(f"{mat}: first dbt run {wall:.1f} s ({'ok' if ok else 'FAILED'}), server {s1['ms'] - s0['ms']:.0f} ms")
    if mat == "stream_table":
        modes = q(c, """SELECT pgs_name, effective_mode FROM pgstream.pgs_stream_tables ORDER BY 1""")
        res["modes"] = dict(modes)
        not_diff = [n for n, m in modes if m != "DIFFERENTIAL"]
        if not_diff:
            res["notes"].append("not DIFFERENTIAL: " + ", ".join(not_diff))
        st0 = q(c, "SELECT coalesce(sum(total_refresh_time_ms), 0), coalesce(sum(total_refreshes), 0) "
                   "FROM pgstream.pgs_stream_tables")[0]

    hour.start_clock()
    threads = [threading.Thread(target=hour.writer), threading.Thread(target=hour.reader)]
    if mat == "stream_table":
        threads.append(threading.Thread(target=hour.poller))
    if mat == "materialized_view":
        threads.append(threading.Thread(target=hour.cadence_loop))
    for t in threads:
        t.start()
    run_windows = [(hour.t_start - wall, hour.t_start)]
    for minute in RUN_AT[1:]:
        hour.sleep_until(hour.at(minute))
        hour.running_dbt.set()
        s_a = server_ms(admin, db)
        t_run, wall, ok, out = dbt(project, "run")
        s_b = server_ms(admin, db)
        hour.running_dbt.clear()
        run_windows.append((t_run, t_run + wall))
        msgs = {}
        try:
            with open(os.path.join(project, "target", "run_results.json")) as f:
                for r in json.load(f)["results"]:
                    if r["unique_id"].split(".")[-1] in MARTS:
                        msgs[r["message"]] = msgs.get(r["message"], 0) + 1
        except Exception:  # noqa: BLE001
            pass
        res["runs"].append({"minute": minute, "wall": wall, "ok": ok, "server_ms": s_b["ms"] - s_a["ms"],
                            "messages": msgs})
        say(f"{mat}: dbt run at minute {minute}: {wall:.1f} s ({'ok' if ok else 'FAILED'}), "
            f"server {s_b['ms'] - s_a['ms']:.0f} ms during it; marts: {msgs}")
    hour.sleep_until(hour.at(MINUTES))
    hour.stop.set()
    for t in threads:
        t.join()
    s2 = server_ms(admin, db)
    res["first_run"] = diff(s0, s1)
    res["hour"] = diff(s1, s2)
    res["first_run"]["wall"] = res["runs"][0]["wall"]
    res["stale"] = watermark_staleness(hour)
    res["run_windows"] = run_windows
    # reads while a dbt run is going on (they may find a relation dropped by dbt's cascade)
    in_run = lambda t: any(a <= t <= b for a, b in run_windows[1:])  # noqa: E731
    res["stale_outside_runs"] = [s for mart, t, s in res["stale"] if not in_run(t)]
    res["read_errors"] = [(m, e) for m, _, _, e in hour.reads if e]
    res["reads"] = len(hour.reads)
    res["batches"] = len(hour.batch_ts)
    res["cadence"] = hour.cadence
    res["errors"] = hour.errors
    if mat == "stream_table":
        st1 = q(c, "SELECT coalesce(sum(total_refresh_time_ms), 0), coalesce(sum(total_refreshes), 0), "
                   "coalesce(sum(failed_refreshes), 0) FROM pgstream.pgs_stream_tables")[0]
        res["ext_refresh_ms"] = float(st1[0]) - float(st0[0])
        res["ext_refreshes"] = int(st1[1]) - int(st0[1])
        res["ext_failed"] = int(st1[2])
        errs = q(c, "SELECT pgs_name, last_error FROM pgstream.pgs_stream_tables WHERE last_error IS NOT NULL")
        if errs:
            res["notes"].append("last errors: " + "; ".join(f"{n}: {e}" for n, e in errs))
        # refresh kinds per window: after run 1 / from run 2's start / from run 3's start
        windows = {}
        bounds = [w[0] for w in run_windows[1:]]
        for t, name, kind, dur in hour.refreshes:
            k = bisect.bisect_right(bounds, t)
            windows.setdefault(k, {}).setdefault(kind, 0)
            windows[k][kind] += 1
        res["kinds"] = windows
        res["missed_polls"] = hour.missed_polls
        rel = lambda t: (t - hour.t_start) / MINUTE_S  # noqa: E731 - simulated minute of a wall time
        res["reasons"] = [(rel(t), n, k, why) for t, n, k, why in hour.reasons]
        res["failures"] = [(rel(t), n, k, e) for t, n, k, e in hour.failures]
        res["suspended"] = [r[0] for r in q(c, "SELECT pgs_name FROM pgstream.pgs_stream_tables WHERE status <> 'ACTIVE'")]
        res["poll_ms"] = sum(d or 0 for _, _, _, d in hour.refreshes)
        try:
            res["check"] = check_stream_tables(c, project)
        except Exception as e:  # noqa: BLE001
            res["check"] = [f"check failed: {e}"]
    c.close()
    if not KEEP:
        q(admin, f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
    return res


# --------------------------------------------------------------------------- report

def pct(xs, p):
    if not xs:
        return None
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def f1(x, nd=1):
    return "-" if x is None else f"{x:.{nd}f}"


def report(results, meta):
    print()
    print(f"deployment benchmark {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {meta['host']}, "
          f"PostgreSQL {meta['pg']}, {meta['dbt']}")
    n = meta["sizes"]
    print(f"  sources {sum(n.values())} rows ({', '.join(f'{k} {v}' for k, v in n.items())}); "
          f"{len(STAGING)} staging views, {len(MARTS)} marts; dbt threads {THREADS}")
    print(f"  simulated hour: {MINUTES} minutes of {MINUTE_S} s; {N_BATCHES} write batches of ~{meta['per_batch']} rows "
          f"({meta['counts']['insert']} inserts, {meta['counts']['update']} updates, ~{meta['counts']['delete']} deletes = "
          f"{100 * sum(meta['counts'].values()) / sum(n.values()):.2f} % of the rows); dbt run at minutes "
          f"{', '.join(map(str, RUN_AT))}; every mart read once per minute")
    print(f"  stream_table: schedule '{ST_SCHEDULE}' (1 simulated minute = {MINUTE_S} s), DIFFERENTIAL; materialized_view: "
          f"`dbt run-operation refresh_marts` every minute; table: rebuilt by the dbt runs only")
    print()
    by = {r["mat"]: r for r in results}
    st = by.get("stream_table")
    hdr = (f"  {'materialization':<18} {'server ms':>9} {'x st':>6} {'of it dbt':>9} {'first run':>9} "
           f"{'writes':>7} {'dbt run wall s':>18} {'staleness s: median':>19} {'p90':>5} {'max':>5} "
           f"{'max outside runs':>16} {'read errors':>11}")
    print(hdr)
    for m in MATS:
        r = by.get(m)
        if not r:
            continue
        ms = r["hour"]["ms"]
        ratio = f"{ms / st['hour']['ms']:.2f}" if st and st["hour"]["ms"] else "-"
        walls = " / ".join(f"{x['wall']:.1f}" for x in r["runs"])
        st_s = [s for _, _, s in r["stale"]]
        out_s = r["stale_outside_runs"]
        print(f"  {m:<18} {ms:>9.0f} {ratio:>6} {r['hour']['dbt_ms']:>9.0f} {r['first_run']['ms']:>9.0f} "
              f"{r['hour']['writes_ms']:>7.0f} {walls:>18} {f1(statistics.median(st_s) if st_s else None):>19} "
              f"{f1(pct(st_s, 90)):>5} {f1(max(st_s) if st_s else None):>5} {f1(max(out_s) if out_s else None):>16} "
              f"{len(r['read_errors']):>11}")
    print(f"  server ms: pg_stat_statements, top-level statements in the hour after the first dbt run, every role but the")
    print(f"  benchmark's (dbt runs, run-operations, the scheduler); x st: that / stream_table's; of it dbt: statements")
    print(f"  carrying dbt's query comment; first run: the same for the first `dbt run` (creates everything); writes: the")
    print(f"  writer's statements (change capture triggers included), apart; dbt run wall: at minutes "
          f"{' / '.join(map(str, RUN_AT))}; staleness: per read of a mart, the age of the oldest committed source batch")
    print(f"  it does not reflect (1 simulated minute = {MINUTE_S} s); max outside runs: reads not during a dbt run")
    print()
    for m in MATS:
        r = by.get(m)
        if not r:
            continue
        print(f"  {m}:")
        for x in r["runs"][1:]:
            print(f"    dbt run at minute {x['minute']}: {x['wall']:.1f} s wall, {x['server_ms']:.0f} server ms "
                  f"during it (everything in the database), marts: {x['messages']}")
        if m == "stream_table":
            print(f"    extension's accounting: {r['ext_refreshes']} refreshes, {r['ext_refresh_ms']:.0f} ms "
                  f"(total_refresh_time_ms), failed {r['ext_failed']}; poller saw {sum(sum(k.values()) for k in r['kinds'].values())} "
                  f"(missed {r['missed_polls']})")
            names = {0: "after the first run", 1: f"from the run at minute {RUN_AT[1]}", 2: f"from the run at minute {RUN_AT[2]}"}
            for k in sorted(r["kinds"]):
                print(f"    refresh kinds {names.get(k, k)}: {r['kinds'][k]}")
            later = {}
            for k, v in r["kinds"].items():
                if k >= 1:
                    for kind, cnt in v.items():
                        later[kind] = later.get(kind, 0) + cnt
            held = bool(later) and set(later) == {"DIFFERENTIAL"}
            print(f"    every refresh after a no-change dbt run DIFFERENTIAL: {'YES' if held else 'NO'} {later}")
            for minute, name, kind, why in r["reasons"]:
                print(f"    {kind} refresh of {name} at minute {minute:.1f}: {why}")
            fails = {}
            for minute, name, k, e in r["failures"]:
                fails.setdefault(e, []).append(f"{name}@{minute:.1f}")
            for e, where in fails.items():
                print(f"    failed refreshes ({len(where)}): {e}: {', '.join(where[:6])}{' ...' if len(where) > 6 else ''}")
            if r["suspended"]:
                print(f"    SUSPENDED at the end: {', '.join(r['suspended'])}")
            print(f"    stream tables equal to their queries after the hour: "
                  f"{'yes' if not r['check'] else 'NO: ' + '; '.join(r['check'])}")
        if m == "materialized_view":
            c = r["cadence"]
            walls = c["walls"]
            print(f"    refresh_marts run-operations: {c['done']} done of {c['due']} due ({c['skipped_busy']} skipped: "
                  f"previous still running, {c['skipped_run']} during a dbt run, {c['failed']} failed); "
                  f"wall median {f1(statistics.median(walls) if walls else None)} s; "
                  f"REFRESH MATERIALIZED VIEW {r['hour']['rmv_calls']} x, {r['hour']['rmv_ms']:.0f} ms")
        if r["read_errors"]:
            errs = {}
            for mart, e in r["read_errors"]:
                errs[e] = errs.get(e, 0) + 1
            print(f"    read errors: {errs}")
        worst = {}
        for mart, _, s in r["stale"]:
            worst[mart] = max(worst.get(mart, 0), s)
        print("    max staleness per mart, s: " + ", ".join(f"{k} {v:.1f}" for k, v in worst.items()))
        for note in r["notes"] + r["errors"]:
            print(f"    note: {note}")
    print()
    if st:
        st_ms = st["hour"]["ms"]
        st_s = [s for _, _, s in st["stale"]]
        for m in ["table", "materialized_view"]:
            r = by.get(m)
            if not r:
                continue
            ok = r["hour"]["ms"] >= 10 * st_ms
            print(f"  target: stream_table server time <= 1/10 of {m}: {'MET' if ok else 'NOT MET'} "
                  f"(stream_table {st_ms:.0f} ms, {m} {r['hour']['ms']:.0f} ms: stream_table spends "
                  f"{st_ms / r['hour']['ms'] if r['hour']['ms'] else 0:.2f}x {m}'s)")
        if "table" in by:
            r = by["table"]
            per_run = statistics.mean([x["server_ms"] for x in r["runs"][1:]]) if len(r["runs"]) > 1 else None
            if per_run:
                proj = per_run * MINUTES
                print(f"  table kept one minute stale instead (a dbt run every minute, projected from its "
                      f"{len(r['runs']) - 1} runs in the hour: {per_run:.0f} ms each): {proj:.0f} ms/hour, "
                      f"{proj / st_ms if st_ms else 0:.1f}x stream_table")
        if "materialized_view" in by:
            r = by["materialized_view"]
            c = r["cadence"]
            if c["done"]:
                # Every refresh_marts that ran refreshed each view once: its server time per
                # cycle (REFRESH MATERIALIZED VIEW statements), had one run every minute, plus
                # the hour's dbt runs as measured.
                per_cycle = r["hour"]["rmv_ms"] / c["done"]
                proj = per_cycle * MINUTES + (r["hour"]["ms"] - r["hour"]["rmv_ms"])
                print(f"  materialized_view kept one minute stale instead (refresh_marts every minute, "
                      f"projected from its {c['done']} cycles: {per_cycle:.0f} ms each, wall median "
                      f"{f1(statistics.median(c['walls']) if c['walls'] else None)} s against a {MINUTE_S} s minute): "
                      f"{proj:.0f} ms/hour, {proj / st_ms if st_ms else 0:.1f}x stream_table")
        mx = max(st_s) if st_s else None
        print(f"  stream_table marts at most one schedule interval ({MINUTE_S} s) stale at every read: "
              f"{'YES' if mx is not None and mx <= MINUTE_S else 'NO'} (max {f1(mx)} s, "
              f"{sum(1 for s in st_s if s > MINUTE_S)} of {len(st_s)} reads over)")
    print(f"  took {time.time() - T0:.0f} s")


# --------------------------------------------------------------------------- main

def main():
    results = []
    try:
        os.makedirs(PROJECTS, exist_ok=True)
        say(f"cluster on 127.0.0.1:{PORT} in {CLUSTER_DIR}")
        cluster_start()
        admin = connect()
        q(admin, "CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        n, hb, active = load_template(admin)
        say(f"template database loaded: {n}")
        batches, counts, per_batch = plan_batches(n, hb, active)
        versions = sh([sys.executable, "-c", "import importlib.metadata as m; "
                       "print(m.version('dbt-core'), m.version('dbt-postgres'))"], check=False).stdout.split()
        meta = {"pg": q(admin, "SHOW server_version")[0][0], "host": f"{os.cpu_count()} cores",
                "dbt": f"dbt-core {versions[0]} + dbt-postgres {versions[1]}" if len(versions) == 2 else DBT,
                "sizes": n, "counts": counts, "per_batch": per_batch}
        for mat in MATS:
            say(f"{mat}: start")
            try:
                results.append(play(mat, admin, batches))
            except Exception:  # noqa: BLE001
                print(f"!! {mat} aborted:", flush=True)
                traceback.print_exc(file=sys.stdout)
            say(f"{mat}: done")
        report(results, meta)
    except Exception:  # noqa: BLE001 - a benchmark prints, it never fails
        print("!! benchmark aborted:", flush=True)
        traceback.print_exc(file=sys.stdout)
    finally:
        if KEEP:
            say(f"kept the cluster on port {PORT} and {PROJECTS} (BENCH_KEEP=1)")
        else:
            cluster_stop()
            shutil.rmtree(PROJECTS, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
