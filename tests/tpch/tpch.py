"""TPC-H corpus: data generation (tpchgen-cli), loading, RF1/RF2-style refresh sets, the 22 queries."""

import datetime
import decimal
import os
import pathlib
import shutil
import subprocess
import sys

import psycopg2

HERE = pathlib.Path(__file__).resolve().parent
TABLES = ["region", "nation", "part", "supplier", "partsupp", "customer", "orders", "lineitem"]


def connect(dbname="postgres", autocommit=True):
    """A connection like tests/e2e/conftest.py's: PGHOST / PGPORT / PGUSER from the env."""
    conn = psycopg2.connect(
        host=os.environ.get("PGHOST", "127.0.0.1"),
        port=os.environ.get("PGPORT", "55415"),
        user=os.environ.get("PGUSER", "postgres"),
        dbname=dbname,
    )
    conn.autocommit = autocommit
    return conn


def _read_queries():
    """(name, sql) for queries/qNN.sql, without the leading comment line."""
    queries = []
    for path in sorted((HERE / "queries").glob("q*.sql")):
        lines = path.read_text().splitlines()
        body = "\n".join(line for line in lines if not line.startswith("--")).strip()
        queries.append((path.stem, body))
    return queries


QUERIES = _read_queries()
# The queries with ORDER BY ... LIMIT (the spec's row limits): their result may be ambiguous
# under ties, and DIFFERENTIAL refuses LIMIT.
LIMITED = {"q02", "q03", "q10", "q18", "q21"}


def tpchgen_cli():
    """The tpchgen-cli binary: next to sys.executable (the venv's bin), else on PATH."""
    beside = pathlib.Path(sys.executable).parent / "tpchgen-cli"
    if beside.is_file():
        return str(beside)
    found = shutil.which("tpchgen-cli")
    if found:
        return found
    raise FileNotFoundError("tpchgen-cli not found: pip install tpchgen-cli==4.0.0")


def generate(scale, out_dir):
    """Writes <out_dir>/<table>.csv (with a header line) for scale factor `scale`."""
    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    command = [tpchgen_cli(), "csv", "--scale-factor", str(scale), "--output-dir", str(out_dir),
               "--overwrite", "--quiet"]
    subprocess.run(command, check=True)
    return out_dir


def load(conn, data_dir):
    """Creates the 8 tables (schema.sql) and loads <data_dir>/<table>.csv with COPY."""
    data_dir = pathlib.Path(data_dir)
    with conn.cursor() as cur:
        cur.execute((HERE / "schema.sql").read_text())
        for table in TABLES:
            with open(data_dir / f"{table}.csv") as f:
                cur.copy_expert(f"COPY {table} FROM STDIN WITH (FORMAT csv, HEADER true)", f)
        cur.execute("ANALYZE " + ", ".join(TABLES))
    if not conn.autocommit:
        conn.commit()


# Value domains of the spec's generator (section 4.2.3).
PRIORITIES = ["1-URGENT", "2-HIGH", "3-MEDIUM", "4-NOT SPECIFIED", "5-LOW"]
INSTRUCTIONS = ["DELIVER IN PERSON", "COLLECT COD", "NONE", "TAKE BACK RETURN"]
MODES = ["REG AIR", "AIR", "RAIL", "SHIP", "TRUCK", "MAIL", "FOB"]
SEGMENTS = ["AUTOMOBILE", "BUILDING", "FURNITURE", "MACHINERY", "HOUSEHOLD"]
WORDS = ["furiously", "special", "requests", "pending", "deposits", "carefully", "final",
         "ironic", "packages", "accounts", "blithely", "regular"]
START_DATE = datetime.date(1992, 1, 1)
LAST_ORDER_DATE = datetime.date(1998, 8, 2)  # END_DATE - 151 days
CURRENT_DATE = datetime.date(1995, 6, 17)


def _money(rng, low_cents, high_cents):
    return decimal.Decimal(rng.randint(low_cents, high_cents)) / 100


def _comment(rng, max_len):
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 6)))[:max_len]


def _pick_keys(cur, rng, table, key, count, below=None):
    """`count` distinct existing keys of `table`, each the first at or after a random point."""
    cur.execute(f"SELECT min({key}), max({key}) FROM {table}")
    low, high = cur.fetchone()
    high = min(high, below) if below is not None else high
    chosen = []
    for _ in range(count * 4):
        if len(chosen) == count:
            break
        cur.execute(f"SELECT min({key}) FROM {table} WHERE {key} >= %s AND {key} <= %s "
                    f"AND {key} <> ALL(%s)", (rng.randint(low, high), high, chosen))
        (found,) = cur.fetchone()
        if found is not None:
            chosen.append(found)
    return chosen


def _new_order(cur, rng, orderkey, max_cust, max_part, clerks):
    """One order and its 1-7 lineitems with the generator's value rules; returns (order, lines)."""
    orderdate = START_DATE + datetime.timedelta(days=rng.randint(0, (LAST_ORDER_DATE - START_DATE).days))
    lines, total = [], decimal.Decimal(0)
    for linenumber in range(1, rng.randint(1, 7) + 1):
        partkey = rng.randint(1, max_part)
        cur.execute("SELECT ps_suppkey FROM partsupp WHERE ps_partkey = %s ORDER BY ps_suppkey", (partkey,))
        suppkey = rng.choice([s for (s,) in cur.fetchall()])
        cur.execute("SELECT p_retailprice FROM part WHERE p_partkey = %s", (partkey,))
        quantity = rng.randint(1, 50)
        price = cur.fetchone()[0] * quantity
        discount, tax = _money(rng, 0, 10), _money(rng, 0, 8)
        shipdate = orderdate + datetime.timedelta(days=rng.randint(1, 121))
        commitdate = orderdate + datetime.timedelta(days=rng.randint(30, 90))
        receiptdate = shipdate + datetime.timedelta(days=rng.randint(1, 30))
        returnflag = rng.choice("RA") if receiptdate <= CURRENT_DATE else "N"
        linestatus = "O" if shipdate > CURRENT_DATE else "F"
        total += price * (1 + tax) * (1 - discount)
        lines.append((orderkey, partkey, suppkey, linenumber, quantity, price, discount, tax,
                      returnflag, linestatus, shipdate, commitdate, receiptdate,
                      rng.choice(INSTRUCTIONS), rng.choice(MODES), _comment(rng, 44)))
    statuses = {line[9] for line in lines}
    status = statuses.pop() if len(statuses) == 1 else "P"
    order = (orderkey, rng.randint(1, max_cust), status, total.quantize(decimal.Decimal("0.01")),
             orderdate, rng.choice(PRIORITIES), "Clerk#%09d" % rng.randint(1, clerks), 0,
             _comment(rng, 79))
    return order, lines


def refresh_set(conn, rng, n_orders):
    """One refresh set in one transaction: RF1 (n new orders with 1-7 lineitems, keys above the
    current max), RF2 (n existing orders deleted with their lineitems), and a few updates of
    orders, lineitem, customer, partsupp and part. Deterministic for a given rng state and
    database contents. Returns counts of what it did."""
    autocommit = conn.autocommit
    conn.autocommit = False
    try:
        with conn.cursor() as cur:
            done = _refresh_set(cur, rng, n_orders)
        conn.commit()
        return done
    except BaseException:
        conn.rollback()
        raise
    finally:
        conn.autocommit = autocommit


def _refresh_set(cur, rng, n_orders):
    cur.execute("SELECT (SELECT max(o_orderkey) FROM orders), (SELECT max(c_custkey) FROM customer), "
                "(SELECT max(p_partkey) FROM part), (SELECT count(*) FROM supplier)")
    max_order, max_cust, max_part, n_supp = cur.fetchone()
    n_updates = max(2, n_orders // 4)
    done = {}

    # RF2: old orders (existing before this set) and their lineitems.
    doomed = _pick_keys(cur, rng, "orders", "o_orderkey", n_orders, below=max_order)
    cur.execute("DELETE FROM lineitem WHERE l_orderkey = ANY(%s)", (doomed,))
    done["deleted_lineitems"] = cur.rowcount
    cur.execute("DELETE FROM orders WHERE o_orderkey = ANY(%s)", (doomed,))
    done["deleted_orders"] = cur.rowcount

    # Updates of existing rows.
    for key in _pick_keys(cur, rng, "orders", "o_orderkey", n_updates, below=max_order):
        cur.execute("UPDATE orders SET o_orderstatus = %s, o_totalprice = o_totalprice + %s "
                    "WHERE o_orderkey = %s", (rng.choice("FOP"), _money(rng, -5000, 5000), key))
    for key in _pick_keys(cur, rng, "orders", "o_orderkey", n_updates, below=max_order):
        cur.execute("SELECT l_linenumber FROM lineitem WHERE l_orderkey = %s ORDER BY 1", (key,))
        linenumber = rng.choice([n for (n,) in cur.fetchall()])
        cur.execute("UPDATE lineitem SET l_extendedprice = l_extendedprice + %s, l_discount = %s, "
                    "l_shipdate = l_shipdate + %s WHERE l_orderkey = %s AND l_linenumber = %s",
                    (_money(rng, -1000, 1000), _money(rng, 0, 10), rng.randint(-20, 20), key, linenumber))
    for key in _pick_keys(cur, rng, "customer", "c_custkey", n_updates):
        cur.execute("UPDATE customer SET c_mktsegment = %s, c_acctbal = %s WHERE c_custkey = %s",
                    (rng.choice(SEGMENTS), _money(rng, -99999, 999999), key))
    for key in _pick_keys(cur, rng, "part", "p_partkey", n_updates):
        cur.execute("SELECT ps_suppkey FROM partsupp WHERE ps_partkey = %s ORDER BY 1", (key,))
        suppkey = rng.choice([s for (s,) in cur.fetchall()])
        cur.execute("UPDATE partsupp SET ps_supplycost = %s, ps_availqty = %s "
                    "WHERE ps_partkey = %s AND ps_suppkey = %s",
                    (_money(rng, 100, 100000), rng.randint(1, 9999), key, suppkey))
    for key in _pick_keys(cur, rng, "part", "p_partkey", n_updates):
        cur.execute("UPDATE part SET p_retailprice = p_retailprice + %s WHERE p_partkey = %s",
                    (_money(rng, -5000, 5000), key))
    done["updated_rows_per_table"] = n_updates

    # RF1: new orders above the current max key.
    cur.execute("SELECT max(o_orderkey) FROM orders")
    next_key = (cur.fetchone()[0] or 0) + 1
    orders, lines = [], []
    for orderkey in range(next_key, next_key + n_orders):
        order, order_lines = _new_order(cur, rng, orderkey, max_cust, max_part, max(1, n_supp // 10))
        orders.append(order)
        lines.extend(order_lines)
    cur.executemany("INSERT INTO orders VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)", orders)
    cur.executemany("INSERT INTO lineitem VALUES "
                    "(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)", lines)
    done["inserted_orders"], done["inserted_lineitems"] = len(orders), len(lines)
    return done
