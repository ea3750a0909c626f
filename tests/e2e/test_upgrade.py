"""ALTER EXTENSION pg_stream_dbt UPDATE from every earlier version: the upgraded extension has
exactly the objects of a fresh install, and stream tables created before it keep working,
DIFFERENTIAL, with the changes made before the upgrade applied after it."""

import pytest

# Every version users may have, oldest first; the last one is the current version.
EARLIER_VERSIONS = ["0.1.0", "0.2.0", "0.3.0"]

# The extension's own objects, each with what defines it (not oids or creation order).
OBJECTS_SQL = """
WITH ext AS (SELECT oid FROM pg_extension WHERE extname = 'pg_stream_dbt'),
members AS (
    SELECT d.classid, d.objid, d.objsubid FROM pg_depend d, ext
    WHERE d.refclassid = 'pg_extension'::regclass AND d.refobjid = ext.oid AND d.deptype = 'e'
)
SELECT pg_describe_object(m.classid, m.objid, m.objsubid) || E'\\n' || COALESCE(CASE
    WHEN m.classid = 'pg_proc'::regclass THEN
        (SELECT CASE WHEN p.prokind IN ('f', 'p') THEN pg_get_functiondef(p.oid) ELSE p.prokind::text END
                || ' acl ' || COALESCE(p.proacl::text, 'default')
         FROM pg_proc p WHERE p.oid = m.objid)
    WHEN m.classid = 'pg_class'::regclass THEN
        (SELECT c.relkind::text || ' acl ' || COALESCE(c.relacl::text, 'default') || ' '
                || COALESCE(pg_get_viewdef(c.oid), '') || ' '
                || COALESCE((SELECT string_agg(format('%s %s %s %s', a.attname, format_type(a.atttypid, a.atttypmod),
                                                      a.attnotnull, pg_get_expr(ad.adbin, ad.adrelid)), ', ' ORDER BY a.attnum)
                             FROM pg_attribute a LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
                             WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped), '')
                || ' ' || COALESCE((SELECT string_agg(pg_get_indexdef(i.indexrelid), ', ' ORDER BY 1)
                                    FROM pg_index i WHERE i.indrelid = c.oid), '')
         FROM pg_class c WHERE c.oid = m.objid)
    WHEN m.classid = 'pg_event_trigger'::regclass THEN
        (SELECT format('%s %s %s %s', e.evtevent, e.evtenabled::text, e.evttags, e.evtfoid::regproc)
         FROM pg_event_trigger e WHERE e.oid = m.objid)
    WHEN m.classid = 'pg_namespace'::regclass THEN
        (SELECT COALESCE(n.nspacl::text, 'default') FROM pg_namespace n WHERE n.oid = m.objid)
END, '')
FROM members m
"""


def objects(database):
    return sorted(row[0] for row in database.sql(OBJECTS_SQL))


@pytest.fixture
def fresh_database(db):
    """A second database beside `db` (which has the current version), without the extension."""
    from conftest import Database, connect
    name = db.name + "_old"
    admin = connect("postgres")
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    admin.close()
    other = Database(name)
    yield other
    other.close()
    admin = connect("postgres")
    with admin.cursor() as cur:
        cur.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    admin.close()


@pytest.mark.parametrize("version", EARLIER_VERSIONS)
def test_update_from_an_earlier_version_keeps_stream_tables_and_equals_a_fresh_install(db, fresh_database, version):
    old = fresh_database
    old.sql("CREATE EXTENSION pg_stream_dbt VERSION %s", (version,))
    assert old.value("SELECT extversion FROM pg_extension WHERE extname = 'pg_stream_dbt'") == version
    old.sql("CREATE TABLE orders (id int PRIMARY KEY, customer int, amount numeric)")
    old.sql("INSERT INTO orders SELECT g, g % 7, g FROM generate_series(1, 200) g")
    queries = {
        "totals": "SELECT customer, sum(amount) AS total, count(*) AS n FROM orders GROUP BY customer",
        "big": "SELECT id, amount FROM orders WHERE amount > 150",
        "amounts": "SELECT amount FROM orders WHERE customer = 3",  # keyless: __pgs_row_id
    }
    for name, query in queries.items():
        old.sql("SELECT pgstream.create_stream_table(%s, %s, '1h', 'DIFFERENTIAL')", (name, query))
    # The new library before ALTER EXTENSION UPDATE: refreshes (the first one verifying capture,
    # the next trusting it) work on the old version's SQL.
    for _ in range(2):
        old.sql("INSERT INTO orders SELECT max(id) + 1000, 3, 7 FROM orders")
        for name, query in queries.items():
            old.sql("SELECT pgstream.refresh_stream_table(%s)", (name,))
            assert old.multiset_difference(name, query) == 0, name
    # Changes pending at the upgrade: taken by the first refresh after it.
    old.sql("INSERT INTO orders VALUES (201, 3, 500); UPDATE orders SET amount = amount + 1 WHERE id % 5 = 0; "
            "DELETE FROM orders WHERE id % 11 = 0")

    old.sql("ALTER EXTENSION pg_stream_dbt UPDATE")
    current = db.value("SELECT extversion FROM pg_extension WHERE extname = 'pg_stream_dbt'")
    assert old.value("SELECT extversion FROM pg_extension WHERE extname = 'pg_stream_dbt'") == current != version

    fresh, upgraded = objects(db), objects(old)
    assert fresh == upgraded, (
        "only in a fresh install:\n" + "\n".join(sorted(set(fresh) - set(upgraded)))
        + "\nonly after the update:\n" + "\n".join(sorted(set(upgraded) - set(fresh))))

    for name, query in queries.items():
        old.sql("SELECT pgstream.refresh_stream_table(%s)", (name,))
        assert old.value("SELECT last_refresh_kind FROM pgstream.pgs_stream_tables WHERE pgs_name = %s",
                         (name,)) == "DIFFERENTIAL", name
        assert old.multiset_difference(name, query) == 0, name
    # And what the new version added works on the upgraded database: DISABLE TRIGGER is seen.
    old.sql("ALTER TABLE orders DISABLE TRIGGER USER; INSERT INTO orders VALUES (300, 3, 1); "
            "ALTER TABLE orders ENABLE TRIGGER USER")
    old.sql("SELECT pgstream.refresh_stream_table('amounts')")
    assert old.multiset_difference("amounts", queries["amounts"]) == 0


def test_update_keeps_who_may_execute_create_stream_table(db, fresh_database):
    """0.4.0 replaces create_stream_table (a new argument): privileges an administrator set on
    it are kept, not reset to PUBLIC's default."""
    old = fresh_database
    role = old.name + "_creator"
    old.sql(f'CREATE ROLE "{role}"')
    try:
        old.sql("CREATE EXTENSION pg_stream_dbt VERSION '0.3.0'")
        old.sql("REVOKE EXECUTE ON FUNCTION pgstream.create_stream_table(text, text, text, text, bool) FROM PUBLIC")
        old.sql(f'GRANT EXECUTE ON FUNCTION pgstream.create_stream_table(text, text, text, text, bool) TO "{role}"')
        old.sql("ALTER EXTENSION pg_stream_dbt UPDATE")
        new = "pgstream.create_stream_table(text, text, text, text, bool, text)"
        assert old.value(f"SELECT has_function_privilege('public', '{new}', 'EXECUTE')") is False
        assert old.value(f"SELECT has_function_privilege(%s, '{new}', 'EXECUTE')", (role,)) is True
        # And they are the administrator's, not the extension's initial privileges (which
        # pg_dump leaves out): those are a fresh install's.
        initial = ("SELECT initprivs::text FROM pg_init_privs WHERE classoid = 'pg_proc'::regclass "
                   f"AND objoid = '{new}'::regprocedure")
        assert old.value(initial) == db.value(initial)
    finally:
        old.sql("DROP EXTENSION IF EXISTS pg_stream_dbt CASCADE")
        old.sql(f'DROP OWNED BY "{role}"; DROP ROLE "{role}"')
