"""bench/citus: stream tables on a Citus coordinator with two workers vs the same data in local
tables on that coordinator (one node), in one run. For each query shape: the median time of a
FULL refresh_stream_table and of REFRESH MATERIALIZED VIEW after a change of 0.1 % of the
orders, over Citus tables (distributed orders, reference customers) and over local copies; and
a DIFFERENTIAL refresh in both places (over Citus: the change rows drained from the buffers
beside the shards, under SHARE locks on the sources); and over Citus, a DIFFERENTIAL refresh of
a stream table that is itself a Citus table (distributed, or a reference table: its apply runs on
the workers). Never fails."""

import os
import statistics
import sys
import time

import psycopg2

PORT = int(os.environ.get("CITUS_PORT", "55480"))
SMOKE = "--smoke" in sys.argv
ROWS = int(os.environ.get("BENCH_CITUS_ROWS", "20000" if SMOKE else "1000000"))
ROUNDS = int(os.environ.get("BENCH_CITUS_ROUNDS", "2" if SMOKE else "5"))
CUSTOMERS = max(ROWS // 100, 10)

SHAPES = {
    "filter": "SELECT id, customer_id, amount FROM {o} WHERE status = 'paid' AND amount > 50",
    "aggregate": "SELECT customer_id, count(*) AS n, sum(amount) AS total FROM {o} GROUP BY customer_id",
    "join_agg": "SELECT c.region, date_trunc('month', o.created_at) AS month, count(*) AS n, sum(o.amount) AS total "
                "FROM {o} o JOIN {c} c ON c.id = o.customer_id GROUP BY 1, 2",
}
# How each shape's Citus-table stream table is distributed (None: a reference table).
DISTRIBUTIONS = {"filter": "id", "aggregate": "customer_id", "join_agg": None}
PLACES = {"citus": ("b_orders_dist", "b_customers_ref"), "local": ("b_orders_local", "b_customers_local")}


def connect():
    conn = psycopg2.connect(host="127.0.0.1", port=PORT, user="postgres", dbname="postgres")
    conn.autocommit = True
    return conn


def run(conn, statement, params=None):
    with conn.cursor() as cur:
        cur.execute(statement, params)
        return cur.fetchall() if cur.description else None


def timed(conn, statement, params=None):
    start = time.perf_counter()
    run(conn, statement, params)
    return (time.perf_counter() - start) * 1000


def setup(conn):
    run(conn, "DROP EXTENSION IF EXISTS pg_stream_dbt CASCADE")
    for orders, customers in PLACES.values():
        run(conn, f"DROP TABLE IF EXISTS {orders}, {customers} CASCADE")
    run(conn, "CREATE EXTENSION pg_stream_dbt")
    for place, (orders, customers) in PLACES.items():
        run(conn, f"CREATE TABLE {customers} (id int PRIMARY KEY, name text, region text)")
        run(conn, f"CREATE TABLE {orders} (id bigint PRIMARY KEY, customer_id int, amount numeric, "
                  "status text, created_at timestamptz)")
        if place == "citus":
            run(conn, f"SELECT create_reference_table('{customers}')")
            run(conn, f"SELECT create_distributed_table('{orders}', 'id')")
        run(conn, f"INSERT INTO {customers} SELECT g, 'customer ' || g, (ARRAY['north', 'south', 'east', 'west'])[1 + g %% 4] "
                  "FROM generate_series(1, %s) g", (CUSTOMERS,))
        run(conn, f"INSERT INTO {orders} SELECT g, 1 + g %% %s, (g %% 100) + 0.5, (ARRAY['paid', 'open', 'void'])[1 + g %% 3], "
                  "timestamptz '2025-01-01' + g * interval '1 minute' FROM generate_series(1, %s) g", (CUSTOMERS, ROWS))
        run(conn, f"ANALYZE {orders}")
        run(conn, f"ANALYZE {customers}")


def change(conn, round_no):
    """0.1 % of the orders updated, the same rows in both places."""
    for orders, _ in PLACES.values():
        run(conn, f"UPDATE {orders} SET amount = amount + 1, status = 'paid' WHERE id %% 1000 = %s", (round_no,))


def main():
    conn = connect()
    print(f"citus bench  {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}  host: {os.cpu_count()} cores  "
          f"{ROWS} orders, {CUSTOMERS} customers, {ROUNDS} rounds of a 0.1 % change")
    print("  " + run(conn, "SELECT version()")[0][0].split(" on ")[0] + ", Citus "
          + run(conn, "SELECT extversion FROM pg_extension WHERE extname = 'citus'")[0][0]
          + ", coordinator + 2 workers on this machine")
    start = time.perf_counter()
    setup(conn)
    print(f"  setup (both places): {time.perf_counter() - start:.1f} s")
    made = {}
    for shape, query in SHAPES.items():
        for place, (orders, customers) in PLACES.items():
            sql = query.format(o=orders, c=customers)
            made[(shape, place, "FULL")] = timed(conn, "SELECT pgstream.create_stream_table(%s, %s, '1h', 'FULL')",
                                                 (f"st_{shape}_{place}", sql))
            run(conn, f"CREATE MATERIALIZED VIEW mv_{shape}_{place} AS {sql}")
            run(conn, "SELECT pgstream.create_stream_table(%s, %s, '1h', 'DIFFERENTIAL')",
                (f"sd_{shape}_{place}", sql))
            if place == "citus":
                run(conn, "SELECT pgstream.create_stream_table(%s, %s, '1h', 'DIFFERENTIAL')",
                    (f"sx_{shape}_{place}", sql))
                run(conn, "SELECT pgstream.distribute_stream_table(%s, %s)",
                    (f"sx_{shape}_{place}", DISTRIBUTIONS[shape]))
    times = {}
    for round_no in range(ROUNDS):
        change(conn, round_no)
        for shape in SHAPES:
            for place in PLACES:
                times.setdefault((shape, place, "FULL"), []).append(
                    timed(conn, "SELECT pgstream.refresh_stream_table(%s)", (f"st_{shape}_{place}",)))
                times.setdefault((shape, place, "RMV"), []).append(
                    timed(conn, f"REFRESH MATERIALIZED VIEW mv_{shape}_{place}"))
                times.setdefault((shape, place, "DIFF"), []).append(
                    timed(conn, "SELECT pgstream.refresh_stream_table(%s)", (f"sd_{shape}_{place}",)))
                if place == "citus":
                    times.setdefault((shape, place, "XDIFF"), []).append(
                        timed(conn, "SELECT pgstream.refresh_stream_table(%s)", (f"sx_{shape}_{place}",)))
    def differs(name):
        view = f"mv_{name[3:]}"
        columns = ", ".join(c for (c,) in run(conn, "SELECT quote_ident(attname) FROM pg_attribute WHERE attrelid = %s::regclass "
                                                    "AND attnum > 0 AND NOT attisdropped ORDER BY attnum", (view,)))
        return run(conn, f"SELECT count(*) FROM ((SELECT {columns} FROM {name} EXCEPT ALL TABLE {view}) "
                         f"UNION ALL (TABLE {view} EXCEPT ALL SELECT {columns} FROM {name})) d")[0][0] != 0

    wrong = [name for (name,) in run(conn, "SELECT pgs_name FROM pgstream.pgs_stream_tables") if differs(name)]
    kinds = dict(run(conn, "SELECT pgs_name, last_refresh_kind || COALESCE(' (' || last_refresh_reason || ')', '') "
                           "FROM pgstream.pgs_stream_tables WHERE pgs_name LIKE 's_\\_%' AND pgs_name NOT LIKE 'st\\_%'"))

    def med(key):
        return statistics.median(times[key])

    print()
    print("Median ms per refresh after a 0.1 % change (client-side, autocommit)")
    print(f"  {'shape':<10} {'Citus FULL':>11} {'Citus RMV':>10} {'Citus DIFF':>11} {'local FULL':>11} {'local RMV':>10}"
          f" {'local DIFF':>11} {'Citus RMV/DIFF':>15} {'Citus/local DIFF':>17} {'into Citus table':>17} {'its RMV/DIFF':>13}")
    for shape in SHAPES:
        cf, cr, cd = med((shape, "citus", "FULL")), med((shape, "citus", "RMV")), med((shape, "citus", "DIFF"))
        lf, lr, ld = med((shape, "local", "FULL")), med((shape, "local", "RMV")), med((shape, "local", "DIFF"))
        cx = med((shape, "citus", "XDIFF"))
        print(f"  {shape:<10} {cf:>11.1f} {cr:>10.1f} {cd:>11.1f} {lf:>11.1f} {lr:>10.1f} {ld:>11.1f}"
              f" {cr / cd:>14.1f}x {cd / ld:>16.2f}x {cx:>17.1f} {cr / cx:>12.1f}x")
    print("  (into Citus table: the DIFFERENTIAL stream table made a Citus table itself: "
          + ", ".join(f"{shape} {'distributed by ' + c if c else 'a reference table'}" for shape, c in DISTRIBUTIONS.items()) + ")")
    print()
    print("  create_stream_table (ms, FULL, populated): " + ", ".join(
        f"{shape} {made[(shape, 'citus', 'FULL')]:.0f} on Citus / {made[(shape, 'local', 'FULL')]:.0f} local" for shape in SHAPES))
    print(f"  last refresh kinds of the DIFFERENTIAL ones: {sorted(set(kinds.values()))}; stream tables differing from their materialized view: "
          f"{wrong or 'none'}")
    run(conn, "DROP EXTENSION pg_stream_dbt CASCADE")
    for orders, customers in PLACES.values():
        run(conn, f"DROP TABLE IF EXISTS {orders}, {customers} CASCADE")
    for shape in SHAPES:
        for place in PLACES:
            run(conn, f"DROP TABLE IF EXISTS st_{shape}_{place}, sd_{shape}_{place}, sx_{shape}_{place}")


if __name__ == "__main__":
    try:
        main()
    except Exception as error:  # a benchmark reports, it does not fail the caller
        print(f"bench/citus: {type(error).__name__}: {error}")
