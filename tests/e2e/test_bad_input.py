"""Every kind of bad input is refused with the right SQLSTATE, names the offending value,
says what is accepted, and leaves nothing behind."""

import pytest

SETUP = [
    "CREATE TABLE src (a int, b text)",
    "INSERT INTO src VALUES (1, 'x')",
    "SELECT pgstream.create_stream_table('existing', 'SELECT a FROM src', '1m', 'FULL')",
    "SELECT pgstream.create_stream_table('windowed', 'SELECT a, rank() OVER (ORDER BY a) AS r FROM src', '1m', 'FULL')",
]

GOOD_QUERY = "SELECT a, b FROM src"

# (call, SQLSTATE, text the message must contain, text the hint must contain or None)
CREATE_CASES = [
    ("SELECT pgstream.create_stream_table('st', %(q)s, '1m', 'INCREMENTAL')", "22023", '"INCREMENTAL"', "FULL, DIFFERENTIAL, AUTO"),
    ("SELECT pgstream.create_stream_table('st', %(q)s, '5q', 'FULL')", "22023", '"5q"', "'1h30m'"),
    ("SELECT pgstream.create_stream_table('st', %(q)s, '0s', 'FULL')", "22023", '"0s"', "cron"),
    ("SELECT pgstream.create_stream_table('st', %(q)s, '* * *', 'FULL')", "22023", '"* * *"', "5-field"),
    ("SELECT pgstream.create_stream_table('st', %(q)s, '@reboot', 'FULL')", "22023", '"@reboot"', "@hourly"),
    ("SELECT pgstream.create_stream_table('st', %(q)s, '', 'FULL')", "22023", "empty", "duration"),
    ("SELECT pgstream.create_stream_table('st', 'SELECT a, row_number() OVER () AS rn FROM src', '1m', 'DIFFERENTIAL')",
     "0A000", "cannot be refreshed DIFFERENTIAL: its query uses window function row_number()", "'AUTO'"),
    ("SELECT pgstream.create_stream_table('st', 'SELECT a FROM src LIMIT 1')", "0A000", "LIMIT / OFFSET / FETCH without ORDER BY", "'FULL'"),
    ("SELECT pgstream.create_stream_table('st', 'SELECT a, now() AS t FROM src', '1m', 'DIFFERENTIAL')",
     "0A000", "now()", "'AUTO'"),
    ("SELECT pgstream.create_stream_table('st', 'SELECT a FROM src s WHERE a > 1 OR EXISTS (SELECT 1 FROM src t WHERE t.a > s.a)', '1m', 'DIFFERENTIAL')",
     "0A000", "EXISTS / IN (subquery) inside OR", "'AUTO'"),
    ("SELECT pgstream.create_stream_table('st', 'SELECT a, count(*) AS n FROM src GROUP BY ROLLUP (a)', '1m', 'DIFFERENTIAL')",
     "0A000", "GROUPING SETS / ROLLUP / CUBE", "'AUTO'"),
    ("SELECT pgstream.create_stream_table('st', 'SELECT * FROM missing_table', '1m', 'FULL')", "42P01", "missing_table", None),
    ("SELECT pgstream.create_stream_table('st', 'SELEC a FROM src', '1m', 'FULL')", "42601", "SELEC", "one SELECT statement"),
    ("SELECT pgstream.create_stream_table('st', 'SELECT 1; DROP TABLE src', '1m', 'FULL')", "42601", "exactly one SELECT", "one SELECT statement"),
    ("SELECT pgstream.create_stream_table('st', 'DELETE FROM src', '1m', 'FULL')", "42601", "exactly one SELECT", "one SELECT statement"),
    ("SELECT pgstream.create_stream_table('st', 'SELECT a INTO newtab FROM src', '1m', 'FULL')", "0A000", "SELECT INTO", "one SELECT statement"),
    ("SELECT pgstream.create_stream_table('st', 'SELECT a, a FROM src', '1m', 'FULL')", "42701", '"a"', None),
    ("SELECT pgstream.create_stream_table('st', 'SELECT a AS __pgs_row_id FROM src', '1m', 'FULL')", "42P16", "__pgs_row_id", "reserved"),
    ("SELECT pgstream.create_stream_table('st', 'SELECT a / 0 AS boom FROM src', '1m', 'FULL')", "22012", "division by zero", None),
    ("SELECT pgstream.create_stream_table('existing', %(q)s, '1m', 'FULL')", "42P07", '"public.existing"', "drop the existing"),
    ("SELECT pgstream.create_stream_table('src', %(q)s, '1m', 'FULL')", "42P07", '"public.src"', None),
    ("SELECT pgstream.create_stream_table('nosuchschema.st', %(q)s, '1m', 'FULL')", "3F000", '"nosuchschema"', None),
    ("SELECT pgstream.create_stream_table('my table', %(q)s, '1m', 'FULL')", "42602", '"my table"', "quote"),
    ("SELECT pgstream.create_stream_table('a.b.c', %(q)s, '1m', 'FULL')", "42602", '"a.b.c"', None),
    ("SELECT pgstream.create_stream_table('1st', %(q)s, '1m', 'FULL')", "42602", '"1st"', None),
    ("SELECT pgstream.create_stream_table('\"unterminated', %(q)s, '1m', 'FULL')", "42602", "unterminated", None),
    ("SELECT pgstream.create_stream_table('', %(q)s, '1m', 'FULL')", "42602", "empty", None),
    ("SELECT pgstream.create_stream_table(repeat('x', 64), %(q)s, '1m', 'FULL')", "42622", "longer than 63", None),
    ("SELECT pgstream.create_stream_table(NULL, %(q)s, '1m', 'FULL')", "22004", "name", None),
    ("SELECT pgstream.create_stream_table('st', NULL, '1m', 'FULL')", "22004", "query", None),
    ("SELECT pgstream.create_stream_table('st', %(q)s, '1m', NULL)", "22004", "refresh_mode", None),
]

OTHER_CASES = [
    ("SELECT pgstream.refresh_stream_table('missing')", "42P01", '"missing"', "pgs_stream_tables"),
    ("SELECT pgstream.refresh_stream_table('public.missing')", "42P01", '"public.missing"', None),
    ("SELECT pgstream.refresh_stream_table('src')", "42809", '"src"', "create_stream_table"),
    ("SELECT pgstream.drop_stream_table('missing')", "42P01", '"missing"', None),
    ("SELECT pgstream.drop_stream_table('src')", "42809", '"src"', None),
    ("SELECT pgstream.alter_stream_table('missing', schedule => '5m')", "42P01", '"missing"', None),
    ("SELECT pgstream.alter_stream_table('existing', status => 'PAUSED')", "22023", '"PAUSED"', "ACTIVE, SUSPENDED"),
    ("SELECT pgstream.alter_stream_table('existing', refresh_mode => 'FAST')", "22023", '"FAST"', "FULL, DIFFERENTIAL, AUTO"),
    ("SELECT pgstream.alter_stream_table('windowed', refresh_mode => 'DIFFERENTIAL')", "0A000", "window function rank()", "'AUTO'"),
    ("SELECT pgstream.alter_stream_table('existing', schedule => 'soon')", "22023", '"soon"', "cron"),
    ("SELECT pgstream.alter_stream_table('existing', schedule => '5m', status => 'nope')", "22023", '"nope"', None),
    ("SELECT pgstream.alter_stream_table('bad name!', schedule => '5m')", "42602", '"bad name!"', None),
]


def snapshot(db):
    return (
        db.sql("SELECT * FROM pgstream.pgs_stream_tables ORDER BY pgs_id"),
        db.sql("SELECT * FROM pgstream.pgs_dependencies ORDER BY 1, 2"),
        db.sql("SELECT oid, relname FROM pg_class WHERE relnamespace = 'public'::regnamespace ORDER BY 1"),
        db.sql("SELECT * FROM existing ORDER BY __pgs_row_id"),
    )


@pytest.mark.parametrize("call,sqlstate,message_part,hint_part", CREATE_CASES + OTHER_CASES)
def test_bad_input_is_refused_and_changes_nothing(db, call, sqlstate, message_part, hint_part):
    for statement in SETUP:
        db.sql(statement)
    before = snapshot(db)
    err = db.error(call, {"q": GOOD_QUERY})
    assert err.pgcode == sqlstate, f"{err.pgcode}: {err.pgerror}"
    assert message_part in err.diag.message_primary, err.diag.message_primary
    if hint_part is not None:
        assert err.diag.message_hint and hint_part in err.diag.message_hint, err.diag.message_hint
    assert "panic" not in err.pgerror.lower()
    assert snapshot(db) == before
    assert db.value("SELECT to_regclass('st')") is None


def test_a_second_statement_in_the_query_is_never_executed(db):
    db.sql("CREATE SEQUENCE side_effect")  # nextval() survives a rollback, so it would show
    err = db.error(
        "SELECT pgstream.create_stream_table('st', 'SELECT 1 AS one; SELECT nextval(''side_effect'')', '1m', 'FULL')"
    )
    assert err.pgcode == "42601"
    assert db.value("SELECT is_called FROM side_effect") is False
