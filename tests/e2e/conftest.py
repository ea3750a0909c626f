"""Fixtures for the end-to-end tests: a fresh database with pg_stream_dbt per test, on the
throwaway cluster that scripts/cluster.sh started (PGHOST / PGPORT / PGUSER from the env)."""

import itertools
import os
import time

import psycopg2
import psycopg2.errors
import pytest

_counter = itertools.count()


def connect(dbname, autocommit=True):
    conn = psycopg2.connect(
        host=os.environ.get("PGHOST", "127.0.0.1"),
        port=os.environ.get("PGPORT", "55415"),
        user=os.environ.get("PGUSER", "postgres"),
        dbname=dbname,
    )
    conn.autocommit = autocommit
    return conn


def wait_for(check, timeout=20, what="condition"):
    """Polls `check` until it returns something true; returns that, or fails after `timeout`."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


class Database:
    """One test database; `sql` runs a statement in autocommit and returns its rows."""

    def __init__(self, name):
        self.name = name
        self.conn = connect(name)
        self._extra = []

    def connect(self, autocommit=True):
        conn = connect(self.name, autocommit)
        self._extra.append(conn)
        return conn

    def sql(self, statement, params=None):
        with self.conn.cursor() as cur:
            cur.execute(statement, params)
            return cur.fetchall() if cur.description else None

    def value(self, statement, params=None):
        rows = self.sql(statement, params)
        return rows[0][0] if rows else None

    def error(self, statement, params=None):
        """Runs a statement that must fail; returns the psycopg2 error."""
        with pytest.raises(psycopg2.Error) as caught:
            self.sql(statement, params)
        return caught.value

    def multiset_difference(self, stream_table, query):
        """Rows in one but not the other, counted with multiplicity (EXCEPT ALL both ways)."""
        columns = self.stream_table_columns(stream_table)
        return self.value(
            f"SELECT count(*) FROM ("
            f"(SELECT {columns} FROM {stream_table} EXCEPT ALL SELECT * FROM ({query}) q) "
            f"UNION ALL "
            f"(SELECT * FROM ({query}) q EXCEPT ALL SELECT {columns} FROM {stream_table})) d"
        )

    def stream_table_columns(self, stream_table):
        names = self.sql(
            "SELECT quote_ident(attname) FROM pg_attribute WHERE attrelid = %s::regclass "
            "AND attnum > 0 AND NOT attisdropped AND attname <> '__pgs_row_id' ORDER BY attnum",
            (stream_table,),
        )
        return ", ".join(n for (n,) in names)

    def close(self):
        for conn in self._extra + [self.conn]:
            if not conn.closed:
                conn.close()


@pytest.fixture
def db():
    name = f"e2e_{os.getpid()}_{next(_counter)}"
    admin = connect("postgres")
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    database = Database(name)
    database.sql("CREATE EXTENSION pg_stream_dbt")
    admin.close()
    yield database
    database.close()
    admin = connect("postgres")  # a new one: some tests restart the server
    with admin.cursor() as cur:
        cur.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    admin.close()
