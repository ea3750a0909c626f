"""bench/lagging_reader: median ms of a DIFFERENTIAL refresh of a join after a 10-row change, for a
source that another (never refreshed) DIFFERENTIAL stream table also reads, beside a source read
by that one stream table only; per round, as the lagging reader's backlog grows. Never fails."""

import os
import statistics
import sys
import time

import psycopg2

SMOKE = "--smoke" in sys.argv
ROWS = int(os.environ.get("BENCH_LAG_ROWS", "20000" if SMOKE else "100000"))
REFRESHES = int(os.environ.get("BENCH_LAG_REFRESHES", "30" if SMOKE else "300"))
ROUNDS = 3


def main():
    conn = psycopg2.connect(host="127.0.0.1", port=int(os.environ.get("PGPORT", "55428")), user="postgres", dbname="postgres")
    conn.autocommit = True
    cur = conn.cursor()

    def run(statement, params=None):
        cur.execute(statement, params)
        return cur.fetchall() if cur.description else None

    run("DROP EXTENSION IF EXISTS pg_stream_dbt CASCADE")
    run("DROP TABLE IF EXISTS lag_c, lag_shared, lag_alone, lag_j_shared, lag_j_alone, lag_hourly CASCADE")
    run("CREATE EXTENSION pg_stream_dbt")
    run("CREATE TABLE lag_c (id int PRIMARY KEY, region text)")
    run("INSERT INTO lag_c SELECT g, 'r' || g % 5 FROM generate_series(1, 1000) g")
    for t in ("lag_shared", "lag_alone"):
        run(f"CREATE TABLE {t} (id bigint PRIMARY KEY, customer_id int, amount numeric, status text)")
        run(f"INSERT INTO {t} SELECT g, 1 + g %% 1000, g %% 100, 'paid' FROM generate_series(1, %s) g", (ROWS,))
        run(f"ANALYZE {t}")
        run("SELECT pgstream.create_stream_table(%s, %s, '1h', 'DIFFERENTIAL')",
            (f"lag_j_{t[4:]}", f"SELECT o.id, o.amount, c.region FROM {t} o JOIN lag_c c ON c.id = o.customer_id WHERE o.status = 'paid'"))
    # The lagging reader: created, populated, never refreshed again.
    run("SELECT pgstream.create_stream_table('lag_hourly', 'SELECT status, count(*) AS n, sum(amount) AS total "
        "FROM lag_shared GROUP BY status', '1h', 'DIFFERENTIAL')")
    print(f"lagging reader bench  {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}  {ROWS} rows, "
          f"{ROUNDS} rounds of {REFRESHES} refreshes after a 10-row change")
    print("  " + run("SELECT version()")[0][0].split(" on ")[0])
    print(f"  {'round':<6} {'backlog rows':>13} {'shared ms':>10} {'alone ms':>9} {'shared/alone':>13}")
    step = 0
    for round_no in range(1, ROUNDS + 1):
        times = {"shared": [], "alone": []}
        for _ in range(REFRESHES):
            step += 1
            ids = [1 + (step * 10 + k * 7919) % ROWS for k in range(10)]
            for t in ("shared", "alone"):
                run(f"UPDATE lag_{t} SET amount = amount + 1 WHERE id = ANY(%s)", (ids,))
                start = time.perf_counter()
                run("SELECT pgstream.refresh_stream_table(%s)", (f"lag_j_{t}",))
                times[t].append((time.perf_counter() - start) * 1000)
        backlog = run("SELECT count(*) FROM pgstream_changes.statements")[0][0]
        shared, alone = statistics.median(times["shared"]), statistics.median(times["alone"])
        print(f"  {round_no:<6} {backlog:>13} {shared:>10.2f} {alone:>9.2f} {shared / alone:>12.2f}x")
    wrong = run("SELECT count(*) FROM ((TABLE lag_j_shared EXCEPT ALL SELECT o.id, o.amount, c.region FROM lag_shared o "
                "JOIN lag_c c ON c.id = o.customer_id WHERE o.status = 'paid') UNION ALL (SELECT o.id, o.amount, c.region "
                "FROM lag_shared o JOIN lag_c c ON c.id = o.customer_id WHERE o.status = 'paid' EXCEPT ALL TABLE lag_j_shared)) d")[0][0]
    print(f"  lag_j_shared equal to its query: {'yes' if wrong == 0 else f'NO ({wrong} rows differ)'}")
    run("DROP EXTENSION pg_stream_dbt CASCADE")


if __name__ == "__main__":
    try:
        main()
    except Exception as error:  # a benchmark reports, it does not fail the caller
        print(f"bench/lagging_reader: {type(error).__name__}: {error}")
