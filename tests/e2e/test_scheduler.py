"""The scheduler on a cluster started with the library preloaded (scripts/cluster.sh sets
pgstream.min_schedule_seconds = 1 and pgstream.scheduler_interval_ms = 200)."""

import os
import signal
import subprocess
import time

import pytest

from conftest import connect, wait_for

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
# The cluster under test (scripts/cluster.sh: CLUSTER_DIR, default .cluster) and its binaries
# (PG_BIN, which scripts/test.sh and test_major.sh pass): another major's run must not read or
# restart the PostgreSQL 15 cluster.
CLUSTER_DIR = os.environ.get("CLUSTER_DIR") or os.path.join(ROOT, ".cluster")
PG_BIN = os.environ.get("PG_BIN") or "/usr/lib/postgresql/15/bin"


def scheduler_running(db):
    return db.value(
        "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'pg_stream_dbt scheduler' "
        "AND datname = current_database()"
    ) == 1


def test_a_one_second_stream_table_refreshes_by_itself(db):
    db.sql("CREATE TABLE src (a int)")
    db.sql("INSERT INTO src VALUES (1)")
    db.sql("SELECT pgstream.create_stream_table('st', 'SELECT a FROM src', '1s', 'FULL')")
    wait_for(lambda: scheduler_running(db), what="the scheduler worker")
    assert db.value("SELECT scheduler_running FROM pgstream.pg_stat_stream_tables") is True
    db.sql("INSERT INTO src VALUES (2), (3)")
    wait_for(lambda: db.value("SELECT count(*) FROM st") == 3, what="the scheduled refresh")
    assert db.multiset_difference("st", "SELECT a FROM src") == 0
    assert db.value("SELECT stale FROM pgstream.pg_stat_stream_tables") is False


def test_a_chain_of_three_refreshes_upstream_first_in_one_tick(db):
    db.sql("CREATE TABLE src (k int, v int)")
    db.sql("INSERT INTO src VALUES (1, 1), (2, 2)")
    db.sql("SELECT pgstream.create_stream_table('a', 'SELECT k, v FROM src', '1s', 'FULL')")
    db.sql("SELECT pgstream.create_stream_table('b', 'SELECT k, v * 10 AS v FROM a', '1s', 'FULL')")
    db.sql("SELECT pgstream.create_stream_table('c', 'SELECT sum(v) AS total FROM b', '1s', 'FULL')")
    for name in "abc":
        db.sql(f"SELECT pgstream.alter_stream_table('{name}', status => 'SUSPENDED')")
    db.sql("INSERT INTO src VALUES (3, 3)")
    time.sleep(1.2)  # all three are now past their schedule
    conn = db.connect(autocommit=False)
    with conn.cursor() as cur:
        for name in "cba":  # resume downstream first: order must come from dependencies
            cur.execute(f"SELECT pgstream.alter_stream_table('{name}', status => 'ACTIVE')")
    conn.commit()
    wait_for(lambda: db.value("SELECT total FROM c") == 60, what="the chain to catch up")
    times = dict(db.sql("SELECT pgs_name, last_refresh_at FROM pgstream.pgs_stream_tables"))
    assert times["a"] < times["b"] < times["c"]
    # One tick did all three: c never saw b's stale rows.
    assert db.value("SELECT min(total_refreshes) FROM pgstream.pgs_stream_tables") >= 2


def test_two_databases_are_served_at_once(db):
    other_name = db.name + "_other"
    admin = connect("postgres")
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{other_name}"')
    try:
        other = connect(other_name)
        with other.cursor() as cur:
            cur.execute("CREATE EXTENSION pg_stream_dbt")
            cur.execute("CREATE TABLE src (a int)")
            cur.execute("SELECT pgstream.create_stream_table('st', 'SELECT a FROM src', '1s', 'FULL')")
        db.sql("CREATE TABLE src (a int)")
        db.sql("SELECT pgstream.create_stream_table('st', 'SELECT a FROM src', '1s', 'FULL')")
        db.sql("INSERT INTO src VALUES (1)")
        with other.cursor() as cur:
            cur.execute("INSERT INTO src VALUES (1), (2)")

        def other_count():
            with other.cursor() as cur:
                cur.execute("SELECT count(*) FROM st")
                return cur.fetchone()[0] == 2

        wait_for(lambda: db.value("SELECT count(*) FROM st") == 1, what="database one")
        wait_for(other_count, what="database two")
        other.close()
    finally:
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE "{other_name}" WITH (FORCE)')
        admin.close()


def test_refresh_runs_with_the_owners_privileges(db):
    role = db.name + "_alice"
    db.sql(f'CREATE ROLE "{role}" LOGIN')
    try:
        db.sql(f'CREATE SCHEMA alice AUTHORIZATION "{role}"')
        db.sql("CREATE TABLE secret (a int)")
        db.sql("INSERT INTO secret VALUES (1)")
        db.sql(f'GRANT SELECT ON secret TO "{role}"')
        db.sql("CREATE TABLE open_src (a int)")
        db.sql("SELECT pgstream.create_stream_table('other', 'SELECT a FROM open_src', '1s', 'FULL')")
        alice = connect(db.name)
        with alice.cursor() as cur:
            cur.execute(f'SET ROLE "{role}"')
            cur.execute("SELECT pgstream.create_stream_table('alice.mine', 'SELECT a FROM public.secret', '1s', 'FULL')")
            cur.execute("SELECT count(*) FROM alice.mine")
            assert cur.fetchone()[0] == 1
        alice.close()
        assert db.value("SELECT tableowner FROM pg_tables WHERE tablename = 'mine'") == role
        db.sql(f'REVOKE SELECT ON secret FROM "{role}"')
        db.sql("INSERT INTO secret VALUES (2)")
        error = wait_for(
            lambda: db.value("SELECT last_error FROM pgstream.pgs_stream_tables WHERE pgs_name = 'mine'"),
            what="the owner's refresh to fail",
        )
        assert "permission denied" in error
        assert db.value("SELECT count(*) FROM alice.mine") == 1
        db.sql("INSERT INTO open_src VALUES (5)")
        wait_for(lambda: db.value("SELECT count(*) FROM other") == 1, what="the worker to keep serving others")
    finally:
        db.sql("DROP SCHEMA IF EXISTS alice CASCADE")
        db.sql(f'DROP OWNED BY "{role}"')
        db.sql(f'DROP ROLE "{role}"')


def test_failing_table_is_suspended_and_resumes(db):
    db.sql("CREATE TABLE src (a int)")
    db.sql("SELECT pgstream.create_stream_table('st', 'SELECT a FROM src', '1s', 'FULL')")
    db.sql("ALTER TABLE src RENAME COLUMN a TO b")
    wait_for(
        lambda: db.value("SELECT status FROM pgstream.pgs_stream_tables") == "SUSPENDED",
        what="auto-suspend",
    )
    assert db.value("SELECT consecutive_errors FROM pgstream.pgs_stream_tables") == 3
    with open(os.path.join(CLUSTER_DIR, "server.log")) as log:
        assert "suspended after 3 consecutive failed refreshes" in log.read()
    failed = db.value("SELECT failed_refreshes FROM pgstream.pgs_stream_tables")
    time.sleep(1.5)
    assert db.value("SELECT failed_refreshes FROM pgstream.pgs_stream_tables") == failed, "suspended tables are skipped"
    db.sql("ALTER TABLE src RENAME COLUMN b TO a")
    db.sql("INSERT INTO src VALUES (7)")
    db.sql("SELECT pgstream.alter_stream_table('st', status => 'ACTIVE')")
    assert db.value("SELECT consecutive_errors FROM pgstream.pgs_stream_tables") == 0
    wait_for(lambda: db.value("SELECT count(*) FROM st") == 1, what="refresh after resume")


def test_a_relation_missing_for_a_while_does_not_suspend(db):
    """A deployment drops a view a stream table reads and makes it again (dbt's view
    materialization drops the old view's dependents with CASCADE): the failures meanwhile do not
    suspend the stream table within pgstream.missing_relation_grace of its last success."""
    db.sql("CREATE TABLE src (a int)")
    db.sql("INSERT INTO src VALUES (1)")
    db.sql("CREATE VIEW v AS SELECT a FROM src")
    db.sql("SELECT pgstream.create_stream_table('st', 'SELECT a FROM v', '1s', 'DIFFERENTIAL')")
    db.sql("DROP VIEW v")
    wait_for(lambda: db.value("SELECT consecutive_errors FROM pgstream.pgs_stream_tables") >= 5,
             what="five failed refreshes")
    assert db.value("SELECT status FROM pgstream.pgs_stream_tables") == "ACTIVE"
    assert "does not exist" in db.value("SELECT last_error FROM pgstream.pgs_stream_tables")
    db.sql("CREATE VIEW v AS SELECT a FROM src")
    db.sql("INSERT INTO src VALUES (2)")
    wait_for(lambda: db.value("SELECT count(*) FROM st") == 2, what="the refresh after the view is back")
    assert db.value("SELECT consecutive_errors FROM pgstream.pgs_stream_tables") == 0
    # Without the grace, the third failure in a row suspends it as any other.
    db.sql("ALTER SYSTEM SET pgstream.missing_relation_grace = 0")
    db.sql("SELECT pg_reload_conf()")
    try:
        time.sleep(0.5)
        db.sql("DROP VIEW v")
        wait_for(lambda: db.value("SELECT status FROM pgstream.pgs_stream_tables") == "SUSPENDED",
                 what="auto-suspend without grace")
        assert db.value("SELECT consecutive_errors FROM pgstream.pgs_stream_tables") == 3
    finally:
        db.sql("ALTER SYSTEM RESET pgstream.missing_relation_grace")
        db.sql("SELECT pg_reload_conf()")


def test_scheduler_stops_when_disabled_and_resumes(db):
    db.sql("CREATE TABLE src (a int)")
    db.sql("SELECT pgstream.create_stream_table('st', 'SELECT a FROM src', '1s', 'FULL')")
    wait_for(lambda: scheduler_running(db), what="the scheduler")
    try:
        db.sql("ALTER SYSTEM SET pgstream.enabled = off")
        db.sql("SELECT pg_reload_conf()")
        wait_for(lambda: not scheduler_running(db), what="the scheduler to stop")
        db.sql("INSERT INTO src VALUES (1)")
        time.sleep(1.5)
        assert db.value("SELECT count(*) FROM st") == 0
        assert db.value("SELECT scheduler_running FROM pgstream.pg_stat_stream_tables") is False
    finally:
        db.sql("ALTER SYSTEM RESET pgstream.enabled")
        db.sql("SELECT pg_reload_conf()")
    wait_for(lambda: db.value("SELECT count(*) FROM st") == 1, timeout=30, what="the scheduler to resume")


def test_terminated_worker_comes_back(db):
    db.sql("CREATE TABLE src (a int)")
    db.sql("SELECT pgstream.create_stream_table('st', 'SELECT a FROM src', '1s', 'FULL')")
    wait_for(lambda: scheduler_running(db), what="the scheduler")
    pid = db.value(
        "SELECT pid FROM pg_stat_activity WHERE backend_type = 'pg_stream_dbt scheduler' "
        "AND datname = current_database()"
    )
    db.sql("SELECT pg_terminate_backend(%s)", (pid,))
    wait_for(
        lambda: db.value(
            "SELECT pid FROM pg_stat_activity WHERE backend_type = 'pg_stream_dbt scheduler' "
            "AND datname = current_database()"
        ) not in (None, pid),
        timeout=30,
        what="a new worker",
    )
    db.sql("INSERT INTO src VALUES (1)")
    wait_for(lambda: db.value("SELECT count(*) FROM st") == 1, what="refresh by the new worker")


def test_drop_extension_stops_the_worker_and_create_starts_it(db):
    db.sql("CREATE TABLE src (a int)")
    db.sql("SELECT pgstream.create_stream_table('st', 'SELECT a FROM src', '1s', 'FULL')")
    wait_for(lambda: scheduler_running(db), what="the scheduler")
    db.sql("DROP EXTENSION pg_stream_dbt")
    wait_for(lambda: not scheduler_running(db), what="the worker to leave")
    db.sql("CREATE EXTENSION pg_stream_dbt")
    db.sql("SELECT pgstream.create_stream_table('st2', 'SELECT a FROM src', '1s', 'FULL')")
    wait_for(lambda: scheduler_running(db), what="the worker to come back")


@pytest.mark.skipif(os.geteuid() != 0, reason="restarting the cluster needs root (runuser)")
def test_server_restart_and_crash_bring_the_scheduler_back(db):
    db.sql("CREATE TABLE src (a int)")
    db.sql("SELECT pgstream.create_stream_table('st', 'SELECT a FROM src', '1s', 'FULL')")
    db.close()
    data = os.path.join(CLUSTER_DIR, "data")
    log = os.path.join(CLUSTER_DIR, "server.log")
    subprocess.run(
        ["runuser", "-u", "postgres", "--", "env", "-u", "RUST_BACKTRACE", os.path.join(PG_BIN, "pg_ctl"),
         "-D", data, "-l", log, "-m", "fast", "-w", "restart"],
        check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    db.conn = connect(db.name)
    wait_for(lambda: scheduler_running(db), timeout=30, what="the scheduler after a restart")
    db.sql("INSERT INTO src VALUES (1)")
    wait_for(lambda: db.value("SELECT count(*) FROM st") == 1, what="refresh after restart")
    pid = db.value(
        "SELECT pid FROM pg_stat_activity WHERE backend_type = 'pg_stream_dbt scheduler' "
        "AND datname = current_database()"
    )
    os.kill(pid, signal.SIGKILL)  # a crash: the postmaster resets the whole cluster
    time.sleep(1)
    db.conn = wait_for(lambda: _try_connect(db.name), timeout=30, what="the server after the crash")
    wait_for(lambda: scheduler_running(db), timeout=30, what="the scheduler after a crash")
    db.sql("INSERT INTO src VALUES (2)")
    wait_for(lambda: db.value("SELECT count(*) FROM st") == 2, what="refresh after crash")


def _try_connect(name):
    try:
        return connect(name)
    except Exception:  # noqa: BLE001 - the server is still recovering
        return None


def test_a_calculated_table_refreshes_as_often_as_its_readers(db):
    db.sql("CREATE TABLE src (a int)")
    db.sql("SELECT pgstream.create_stream_table('base', 'SELECT a FROM src', NULL, 'FULL')")
    db.sql("SELECT pgstream.create_stream_table('lonely', 'SELECT a FROM src', 'calculated', 'FULL')")
    assert db.sql("SELECT pgs_name, schedule FROM pgstream.pgs_stream_tables ORDER BY 1") == [
        ("base", "CALCULATED"),
        ("lonely", "CALCULATED"),
    ]
    assert db.sql(
        "SELECT pgs_name, effective_schedule, next_refresh_at, stale FROM pgstream.pg_stat_stream_tables ORDER BY 1"
    ) == [("base", None, None, False), ("lonely", None, None, False)]
    db.sql("SELECT pgstream.create_stream_table('top', 'SELECT count(*) AS n FROM base', '1s', 'FULL')")
    assert db.value("SELECT effective_schedule FROM pgstream.pg_stat_stream_tables WHERE pgs_name = 'base'") == "1s"
    db.sql("INSERT INTO src VALUES (1), (2)")
    wait_for(lambda: db.value("SELECT n FROM top") == 2, what="the calculated table and its reader")
    time.sleep(1.5)
    assert db.value("SELECT count(*) FROM lonely") == 0, "no reader, no schedule"
    assert db.value("SELECT total_refreshes FROM pgstream.pgs_stream_tables WHERE pgs_name = 'lonely'") == 1


def test_a_scheduled_refresh_gives_way_to_a_deployment_replacing_nested_views(db):
    """dbt's view materialization renames the view it replaces away (ACCESS EXCLUSIVE), renames
    the new one in, and drops the old one CASCADE, which locks the views built on it. A scheduled
    refresh of a stream table over the outer view holds that view while it waits for the inner
    one: the two wait for each other. The refresh must give way (wait briefly, try again at a
    later tick), never the deployment, and not count it as a failure."""
    db.sql("CREATE TABLE src (a int PRIMARY KEY)")
    db.sql("INSERT INTO src VALUES (1)")
    db.sql("CREATE VIEW inner_v AS SELECT a FROM src")
    db.sql("CREATE VIEW outer_v AS SELECT a FROM inner_v")
    db.sql("SELECT pgstream.create_stream_table('st', 'SELECT a FROM outer_v', '1s', 'DIFFERENTIAL')")
    wait_for(lambda: scheduler_running(db), what="the scheduler worker")
    writer = db.connect()
    deployer = db.connect(autocommit=False)
    for round_ in (2, 3):
        with deployer.cursor() as cur:
            cur.execute("CREATE VIEW inner_v__tmp AS SELECT a FROM src")
            cur.execute("ALTER VIEW inner_v RENAME TO inner_v__backup")
            cur.execute("ALTER VIEW inner_v__tmp RENAME TO inner_v")
            with writer.cursor() as w:  # a change, so the next refresh is not skipped
                w.execute("INSERT INTO src VALUES (%s)", (round_,))
            time.sleep(2.5)  # a scheduled refresh starts meanwhile and waits for inner_v
            cur.execute("DROP VIEW inner_v__backup CASCADE")
            cur.execute("CREATE VIEW outer_v AS SELECT a FROM inner_v")
        deployer.commit()
    wait_for(lambda: db.value("SELECT count(*) FROM st") == 3, what="the refresh after the deployment")
    assert db.multiset_difference("st", "SELECT a FROM outer_v") == 0
    row = db.sql("SELECT failed_refreshes, consecutive_errors, status FROM pgstream.pgs_stream_tables")[0]
    assert row == (0, 0, "ACTIVE")
