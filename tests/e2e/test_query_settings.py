"""Date, time and format functions whose result depends on session settings (TimeZone,
DateStyle, lc_time, ...) are maintained DIFFERENTIAL: the settings are captured at create and
applied in every refresh, whoever runs it; the clock, catalog readers and functions that are
not built in are refused, by name."""

import json

import pytest

MART = (
    "SELECT id, date_trunc('month', placed_at) AS month, placed_at::date AS day, "
    "to_char(placed_at, 'YYYY-MM-DD HH24') AS hour_text, extract(dow FROM placed_at) AS dow, "
    "age(shipped_at, placed_at) AS lead_time, placed_at::text AS shown "
    "FROM orders"
)


def setup_orders(db):
    db.sql("CREATE TABLE orders (id int PRIMARY KEY, placed_at timestamptz, shipped_at timestamptz)")
    db.sql("INSERT INTO orders SELECT g, timestamptz '2026-01-31 22:30:00+00' + g * interval '5 hours', "
           "timestamptz '2026-02-01 00:00:00+00' + g * interval '7 hours' FROM generate_series(1, 40) g")


def under(conn, timezone, datestyle="ISO, MDY"):
    with conn.cursor() as cur:
        cur.execute("SELECT set_config('TimeZone', %s, false), set_config('DateStyle', %s, false)",
                    (timezone, datestyle))
    return conn


def differences(db, name, query, timezone, datestyle):
    """The stream table against its query evaluated under the captured settings."""
    conn = under(db.connect(), timezone, datestyle)
    with conn.cursor() as cur:
        columns = db.stream_table_columns(name)
        cur.execute(f"SELECT count(*) FROM ((SELECT {columns} FROM {name} EXCEPT ALL SELECT * FROM ({query}) q) "
                    f"UNION ALL (SELECT * FROM ({query}) q EXCEPT ALL SELECT {columns} FROM {name})) d")
        return cur.fetchone()[0]


def test_date_functions_on_timestamptz_follow_the_captured_time_zone(db):
    setup_orders(db)
    creator = under(db.connect(), "America/New_York", "SQL, DMY")
    with creator.cursor() as cur:
        cur.execute("SELECT pgstream.create_stream_table('by_day', %s, '1m', 'DIFFERENTIAL')", (MART,))
    settings = dict(db.sql("SELECT property, value FROM pgstream.explain_stream_table('by_day')"))["settings"]
    assert "TimeZone=America/New_York" in settings and "DateStyle=SQL, DMY" in settings
    assert differences(db, "by_day", MART, "America/New_York", "SQL, DMY") == 0
    # Refreshed from sessions in other time zones, the rows stay New York's.
    for timezone in ("Asia/Tokyo", "UTC"):
        refresher = under(db.connect(), timezone)
        with refresher.cursor() as cur:
            cur.execute("INSERT INTO orders VALUES (100 + length(%s), now(), now() + interval '1 day')", (timezone,))
            cur.execute("UPDATE orders SET placed_at = placed_at + interval '3 hours' WHERE id % 3 = 0")
            cur.execute("DELETE FROM orders WHERE id % 11 = 0")
            cur.execute("SELECT pgstream.refresh_stream_table('by_day')")
        assert db.value("SELECT last_refresh_kind FROM pgstream.pgs_stream_tables") == "DIFFERENTIAL"
        assert db.value("SELECT last_rows_updated FROM pgstream.pgs_stream_tables") > 0
        assert differences(db, "by_day", MART, "America/New_York", "SQL, DMY") == 0
    assert differences(db, "by_day", MART, "UTC", "ISO, MDY") > 0  # the settings do matter


@pytest.mark.parametrize("query, named", [
    ("SELECT id, now() AS seen FROM orders", "now()"),
    ("SELECT id FROM orders WHERE placed_at > CURRENT_DATE", "CURRENT_DATE"),
    ("SELECT id, age(placed_at) AS a FROM orders", "age()"),
    ("SELECT id, current_setting('TimeZone') AS tz FROM orders", "current_setting()"),
    ("SELECT id, to_regclass('orders') AS r FROM orders", "to_regclass()"),
    ("SELECT id, lookup(id) AS l FROM orders", "lookup() (a STABLE function that is not built in"),
    ("SELECT id FROM orders WHERE placed_at > 'today'", "'today'"),
])
def test_what_reads_the_clock_catalogs_or_tables_is_refused_by_name(db, query, named):
    setup_orders(db)
    db.sql("CREATE FUNCTION lookup(int) RETURNS int STABLE LANGUAGE sql AS 'SELECT $1'")
    err = db.error("SELECT pgstream.create_stream_table('st', %s, '1m', 'DIFFERENTIAL')", (query,))
    assert err.pgcode == "0A000" and named in err.diag.message_primary, err.diag.message_primary
    assert db.value("SELECT count(*) FROM pgstream.pgs_stream_tables") == 0


def test_materialize_recreates_when_the_session_settings_change(db):
    setup_orders(db)
    config = json.dumps({"refresh_mode": "DIFFERENTIAL"})
    query = "SELECT id, placed_at::date AS day FROM orders"

    def materialize(timezone):
        conn = under(db.connect(), timezone)
        with conn.cursor() as cur:
            cur.execute("SELECT pgstream_dbt.materialize('days', %s, %s::jsonb)", (query, config))
            return cur.fetchone()[0]

    assert materialize("UTC")["action"] == "created"
    assert materialize("UTC")["action"] == "unchanged"
    moved = materialize("Asia/Tokyo")
    assert moved["action"] == "recreated" and "TimeZone UTC -> Asia/Tokyo" in moved["reason"], moved
    assert differences(db, "days", query, "Asia/Tokyo", "ISO, MDY") == 0
