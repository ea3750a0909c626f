"""bench/tpch.py: the work of bench/tpch (which starts the cluster and runs this with the venv's
Python; PGHOST / PGPORT / PGUSER come from the environment).

At scale factor --scale: loads TPC-H (tests/tpch/tpch.py: tpchgen-cli data, schema, COPY) into
a fresh database, creates each of the 22 queries as a stream table (refresh_mode AUTO, no
schedule of its own, so the scheduler leaves it alone) and as a materialized view with, when
the stream table has a key of plain columns (explain_stream_table's row_identity), a unique
index on that key for REFRESH MATERIALIZED VIEW CONCURRENTLY. Then, in one session:

  warm-up   a tiny refresh set, then every materialized view and every stream table
            refreshed once (not timed): the first refresh after DDL may recompute FULL, and
            the session creates its work tables;
  timed     one refresh set of BENCH_TPCH_ORDERS (1000) orders; then every stream table's
            refresh, then per view REFRESH MATERIALIZED VIEW CONCURRENTLY (against the view's
            state before the refresh set) and REFRESH MATERIALIZED VIEW; each statement in
            its own transaction, timed server side (clock_timestamp() around it in a plpgsql
            function). Views after stream tables: the engine records REFRESH ...
            CONCURRENTLY (its internal CREATE TEMP TABLE) as DDL, which would make the
            stream tables' next refresh re-derive (or, with older builds, recompute) them;
  check     each stream table against its materialized view, as multisets (EXCEPT ALL both
            ways, __pgs_row_id left out).

Prints a table and the medians of the ratios over the DIFFERENTIAL queries. Never raises on
an engine error: a failed refresh or a mismatch is printed and the run goes on.
"""

import argparse
import datetime
import os
import pathlib
import random
import re
import shutil
import statistics
import sys
import time

import psycopg2

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "tpch"))
import tpch  # noqa: E402

WORK = ROOT / "bench" / ".work"
DB = "bench_tpch"
ORDERS = int(os.environ.get("BENCH_TPCH_ORDERS", "1000"))
WARMUP_ORDERS = 10
SEED = int(os.environ.get("BENCH_TPCH_SEED", "20261130"))
KEEP = os.environ.get("BENCH_KEEP") == "1"
ONLY = os.environ.get("BENCH_TPCH_QUERIES", "").split()
ANALYZE_BUFFERS = os.environ.get("BENCH_TPCH_ANALYZE_BUFFERS") == "1"

# Server-side time of one statement, in ms (created before the stream tables: it is DDL).
TIMER = """
CREATE FUNCTION bench_ms(stmt text) RETURNS numeric LANGUAGE plpgsql AS $$
DECLARE t0 timestamptz := clock_timestamp();
BEGIN
    EXECUTE stmt;
    RETURN extract(epoch FROM clock_timestamp() - t0) * 1000;
END $$
"""


def log(message):
    print(f"[{datetime.datetime.now():%H:%M:%S}] {message}", flush=True)


def first_line(error):
    text = str(error).strip()
    return (text.splitlines() or [""])[0]


class Query:
    def __init__(self, name, sql):
        self.name, self.sql, self.mv = name, sql, f"mv_{name}"
        self.created = False
        self.create_error = None
        self.mode = self.reason = None
        self.identity = None
        self.key = None            # columns of the unique index on the matview, or None
        self.conc_note = None      # why CONCURRENTLY is n/a
        self.create_st_ms = self.create_mv_ms = self.warm_st_ms = None
        self.explain_s = None
        self.warm_kind = None
        self.diff_ms = self.rmv_ms = self.rmvc_ms = None
        self.kind = None
        self.changed = None        # rows inserted / updated / deleted by the timed refresh
        self.rows = None
        self.errors = []
        self.mismatch = None


class Bench:
    def __init__(self, conn):
        self.conn = conn

    def value(self, sql, args=None):
        with self.conn.cursor() as cur:
            cur.execute(sql, args)
            row = cur.fetchone()
            return row[0] if row else None

    def rows(self, sql, args=None):
        with self.conn.cursor() as cur:
            cur.execute(sql, args)
            return cur.fetchall()

    def lit(self, text):
        """`text` as an SQL string literal."""
        with self.conn.cursor() as cur:
            return cur.mogrify("%s", (text,)).decode()

    def timed(self, sql):
        """Runs `sql` in its own transaction (autocommit); its server-side time in ms."""
        return float(self.value("SELECT bench_ms(%s)", (sql,)))


def fmt(value, digits=1, suffix=""):
    return "-" if value is None else f"{value:.{digits}f}{suffix}"


def fmt_ratio(value):
    """A ratio: one decimal from 1 on (3.2x), two from 0.1 (0.26x), three below (0.004x)."""
    if value is None:
        return "-"
    return f"{value:.1f}x" if value >= 1 else f"{value:.2f}x" if value >= 0.1 else f"{value:.3f}x"


def ratio(num, den):
    if num is None or den is None or den <= 0:
        return None
    return num / den


def parse_key(identity, mv_columns):
    """The key columns from row_identity ("key (a, b): ..."), or (None, why not)."""
    if identity is None:
        return None, "no row identity"
    if identity.startswith("one row"):
        return None, "one row, no key"
    if identity.startswith("multiset"):
        return None, "multiset, no key"
    match = re.match(r"key \((.*)\):", identity)
    if not match:
        return None, f"row identity not understood: {identity}"
    key = []
    for part in match.group(1).split(","):
        part = part.strip()
        name = part[1:-1].replace('""', '"') if part.startswith('"') and part.endswith('"') else part
        if name not in mv_columns:
            return None, f"key not plain columns: {match.group(1)}"
        key.append(name)
    return key, None


def quote_ident(name):
    return '"' + name.replace('"', '""') + '"'


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", default=os.environ.get("BENCH_TPCH_SCALE", "1"))
    args = parser.parse_args()
    scale = args.scale

    queries = [Query(name, sql) for name, sql in tpch.QUERIES if not ONLY or name in ONLY]
    admin = tpch.connect("postgres")
    version = None
    with admin.cursor() as cur:
        cur.execute("SHOW server_version")
        version = cur.fetchone()[0]
        cur.execute("SET client_min_messages = warning")
        cur.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
        cur.execute(f"CREATE DATABASE {DB}")
    admin.close()

    header = (f"TPC-H benchmark {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M UTC}, "
              f"{os.cpu_count()} cores, PostgreSQL {version}, scale factor {scale}, "
              f"refresh set of {ORDERS} orders (seed {SEED})"
              + (", change buffers analyzed before the refreshes" if ANALYZE_BUFFERS else ""))
    log(header)

    data_dir = WORK / f"tpch-data-sf{scale}"
    t0 = time.monotonic()
    tpch.generate(scale, data_dir)
    log(f"generated {data_dir} in {time.monotonic() - t0:.1f} s")

    conn = tpch.connect(DB)
    bench = Bench(conn)
    with conn.cursor() as cur:
        cur.execute("SET client_min_messages = warning")
        cur.execute("CREATE EXTENSION pg_stream_dbt")
    t0 = time.monotonic()
    tpch.load(conn, data_dir)
    sizes = dict(bench.rows("SELECT relname, reltuples::bigint FROM pg_class "
                            "WHERE relname IN ('orders', 'lineitem')"))
    log(f"loaded in {time.monotonic() - t0:.1f} s: {sizes.get('orders')} orders, "
        f"{sizes.get('lineitem')} lineitems")
    if not KEEP:
        shutil.rmtree(data_dir, ignore_errors=True)
    with conn.cursor() as cur:
        cur.execute(TIMER)

    # Create: the stream table (AUTO, no schedule of its own), the materialized view, its index.
    for q in queries:
        try:
            q.create_st_ms = bench.timed(
                f"SELECT pgstream.create_stream_table({bench.lit(q.name)}, {bench.lit(q.sql)}, "
                "schedule => NULL, refresh_mode => 'AUTO')")
            q.created = True
        except psycopg2.Error as error:
            q.create_error = first_line(error)
        try:
            q.create_mv_ms = bench.timed(f"CREATE MATERIALIZED VIEW {q.mv} AS {q.sql}")
        except psycopg2.Error as error:
            q.errors.append(f"CREATE MATERIALIZED VIEW failed: {first_line(error)}")
            q.mv = None
        if q.created:
            q.mode, q.reason = bench.rows(
                "SELECT effective_mode, mode_reason FROM pgstream.pgs_stream_tables WHERE pgs_name = %s",
                (q.name,))[0]
            t0 = time.monotonic()
            q.identity = bench.value(
                "SELECT value FROM pgstream.explain_stream_table(%s) WHERE property = 'row_identity'",
                (q.name,))
            q.explain_s = time.monotonic() - t0
        if q.mv is not None:
            mv_columns = [name for (name,) in bench.rows(
                "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0 "
                "AND NOT attisdropped", (q.mv,))]
            if q.created:
                q.key, q.conc_note = parse_key(q.identity, mv_columns)
            else:
                q.conc_note = "no stream table"
            if q.key:
                try:
                    with conn.cursor() as cur:
                        cur.execute(f"CREATE UNIQUE INDEX ON {q.mv} ("
                                    + ", ".join(map(quote_ident, q.key)) + ")")
                except psycopg2.Error as error:
                    q.conc_note = f"unique index failed: {first_line(error)}"
                    q.key = None
        state = (f"{q.mode}" + (f" ({q.reason})" if q.reason else "")) if q.created \
            else f"refused: {q.create_error}"
        log(f"{q.name}: created in {fmt(q.create_st_ms)} ms (matview {fmt(q.create_mv_ms)} ms), {state}; "
            f"{q.identity} (explain_stream_table {fmt(q.explain_s, 2)} s); CONCURRENTLY " + (f"on ({', '.join(q.key)})" if q.key else f"n/a: {q.conc_note}"))

    def refresh_streams(timed):
        for q in queries:
            if not q.created:
                continue
            try:
                ms = bench.timed(f"SELECT pgstream.refresh_stream_table({bench.lit(q.name)})")
                kind, ins, upd, dele = bench.rows(
                    "SELECT last_refresh_kind, last_rows_inserted, last_rows_updated, last_rows_deleted "
                    "FROM pgstream.pg_stat_stream_tables WHERE pgs_name = %s", (q.name,))[0]
                if timed:
                    q.diff_ms, q.kind = ms, kind
                    q.changed = "/".join("-" if n is None else str(n) for n in (ins, upd, dele))
                    log(f"{q.name}: refresh_stream_table {kind} {fmt(ms)} ms")
                else:
                    q.warm_st_ms, q.warm_kind = ms, kind
            except psycopg2.Error as error:
                q.errors.append(f"{'timed' if timed else 'warm-up'} refresh_stream_table failed: "
                                + str(error).strip().replace("\n", " | "))
                if timed:
                    q.kind = "ERROR"
                log(f"{q.name}: refresh_stream_table failed: {first_line(error)}")

    def refresh_views(timed):
        # CONCURRENTLY first: it works against the view's state before the refresh set (the
        # blocking REFRESH rewrites the whole view whatever it held).
        for q in queries:
            if q.mv is None:
                continue
            if q.key:
                try:
                    ms = bench.timed(f"REFRESH MATERIALIZED VIEW CONCURRENTLY {q.mv}")
                    if timed:
                        q.rmvc_ms = ms
                except psycopg2.Error as error:
                    q.errors.append(f"REFRESH MATERIALIZED VIEW CONCURRENTLY failed: {first_line(error)}")
            try:
                ms = bench.timed(f"REFRESH MATERIALIZED VIEW {q.mv}")
                if timed:
                    q.rmv_ms = ms
            except psycopg2.Error as error:
                q.errors.append(f"REFRESH MATERIALIZED VIEW failed: {first_line(error)}")
            if timed:
                log(f"{q.mv}: RMVC {fmt(q.rmvc_ms)} ms, RMV {fmt(q.rmv_ms)} ms")

    def ddl_pending():
        """DDL records not yet consumed (each makes the next refresh re-derive, or recompute)."""
        try:
            return bench.value("SELECT count(*) FROM pgstream_changes.statements WHERE source_relid = 0")
        except psycopg2.Error:
            return None

    # Warm-up: a tiny refresh set, everything refreshed once (the first refresh after DDL may
    # be FULL). Materialized views first, for the reason given at the top.
    rng = random.Random(SEED)
    done = tpch.refresh_set(conn, rng, WARMUP_ORDERS)
    log(f"warm-up refresh set: {done}")
    t0 = time.monotonic()
    refresh_views(timed=False)
    refresh_streams(timed=False)
    log(f"warm-up refreshes done in {time.monotonic() - t0:.1f} s")
    with conn.cursor() as cur:
        cur.execute("CHECKPOINT")

    # The timed refresh set and refreshes.
    t0 = time.monotonic()
    done = tpch.refresh_set(conn, rng, ORDERS)
    log(f"timed refresh set applied in {time.monotonic() - t0:.1f} s (client side, one statement per row): {done}")
    if ANALYZE_BUFFERS:
        ms = bench.timed("DO $$ DECLARE r record; BEGIN FOR r IN SELECT c.oid::regclass AS t FROM pg_class c "
                         "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'pgstream_changes' "
                         "AND c.relname LIKE 'rows\\_%' AND c.relkind = 'r' LOOP "
                         "EXECUTE format('ANALYZE %s', r.t); END LOOP; END $$")
        log(f"BENCH_TPCH_ANALYZE_BUFFERS=1: analyzed the change buffers in {ms:.1f} ms")
    pending = ddl_pending()
    if pending:
        log(f"warning: {pending} DDL record(s) pending: the stream tables' next refresh "
            "re-derives their queries (or recomputes FULL)")
    refresh_streams(timed=True)
    refresh_views(timed=True)

    # Check: stream table = materialized view, as multisets.
    for q in queries:
        if not q.created or q.mv is None:
            continue
        columns = ", ".join(quote_ident(name) for (name,) in bench.rows(
            "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0 "
            "AND NOT attisdropped ORDER BY attnum", (q.mv,)))
        try:
            only_st, only_mv, q.rows = bench.rows(
                f"SELECT (SELECT count(*) FROM (SELECT {columns} FROM {q.name} EXCEPT ALL "
                f"SELECT {columns} FROM {q.mv}) d), (SELECT count(*) FROM (SELECT {columns} FROM {q.mv} "
                f"EXCEPT ALL SELECT {columns} FROM {q.name}) d), (SELECT count(*) FROM {q.mv})")[0]
            if only_st or only_mv:
                q.mismatch = f"{only_st} rows only in the stream table, {only_mv} only in the matview"
        except psycopg2.Error as error:
            q.mismatch = f"check failed: {first_line(error)}"

    report(header, queries)
    conn.close()


def report(header, queries):
    print()
    print(header)
    print("times in ms, server side, each in its own transaction; DIFF = pgstream.refresh_stream_table "
          "(DIFFERENTIAL or FULL, see kind);")
    print("RMV = REFRESH MATERIALIZED VIEW; RMVC = ... CONCURRENTLY (unique index on the stream table's key); "
          "changed = rows the refresh inserted/updated/deleted")
    print()
    line = "{:<5} {:<12} {:<12} {:>9} {:>9} {:>9} {:>9} {:>10} {:>6} {:>12}  {}"
    print(line.format("query", "mode", "kind", "DIFF ms", "RMV ms", "RMVC ms", "RMV/DIFF", "RMVC/DIFF",
                      "rows", "changed", "check"))
    for q in queries:
        check = "ok" if q.created and q.mv and not q.mismatch and not q.errors else \
            ("MISMATCH" if q.mismatch else ("ERROR" if q.errors or not q.created else "-"))
        rmvc = fmt(q.rmvc_ms) if q.key else "n/a"
        rmvc_ratio = fmt_ratio(ratio(q.rmvc_ms, q.diff_ms)) if q.key else "n/a"
        print(line.format(q.name, q.mode or "refused", q.kind or "-", fmt(q.diff_ms), fmt(q.rmv_ms), rmvc,
                          fmt_ratio(ratio(q.rmv_ms, q.diff_ms)), rmvc_ratio,
                          "-" if q.rows is None else q.rows, q.changed or "-", check))
    print()
    for mode in ("DIFFERENTIAL", "FULL"):
        chosen = [q for q in queries if q.mode == mode and q.diff_ms]
        if not chosen:
            continue
        rmv = [ratio(q.rmv_ms, q.diff_ms) for q in chosen if q.rmv_ms is not None]
        rmvc = [ratio(q.rmvc_ms, q.diff_ms) for q in chosen if q.rmvc_ms is not None]
        print(f"median over the {len(chosen)} {mode} queries: RMV/DIFF "
              + (fmt_ratio(statistics.median(rmv)) if rmv else "-")
              + ", RMVC/DIFF " + (f"{fmt_ratio(statistics.median(rmvc))} ({len(rmvc)} with a key)" if rmvc else "-")
              + f"; DIFF total {sum(q.diff_ms for q in chosen):.0f} ms, RMV total "
              + f"{sum(q.rmv_ms or 0 for q in chosen):.0f} ms")
    notes = [q for q in queries if q.reason or q.conc_note]
    if notes:
        print()
        for q in notes:
            parts = []
            if q.reason:
                parts.append(f"FULL because {q.reason}")
            if q.conc_note and not q.key:
                parts.append(f"CONCURRENTLY n/a: {q.conc_note}")
            print(f"  {q.name}: " + "; ".join(parts))
    print()
    print("initial population (ms): query, create_stream_table, CREATE MATERIALIZED VIEW, warm-up refresh (kind)")
    for q in queries:
        print(f"  {q.name}  {fmt(q.create_st_ms):>10} {fmt(q.create_mv_ms):>10} {fmt(q.warm_st_ms):>10} "
              f"({q.warm_kind or '-'})")
    problems = [q for q in queries if q.errors or q.mismatch or not q.created]
    if problems:
        print()
        for q in problems:
            if not q.created:
                print(f"REFUSED {q.name}: {q.create_error}")
            if q.mismatch:
                note = " (ORDER BY ... LIMIT: ties at the cut-off may differ)" if q.name in tpch.LIMITED else ""
                print(f"MISMATCH {q.name}: {q.mismatch}{note}")
            for error in q.errors:
                print(f"ERROR {q.name}: {error}")
    else:
        print()
        print("every stream table equals its materialized view")


if __name__ == "__main__":
    main()
