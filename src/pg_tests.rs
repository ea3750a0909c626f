//! In-database tests (`cargo pgrx test pg15`): the SQL API behaving inside PostgreSQL.

#[pgrx::pg_schema]
mod tests {
    use pgrx::prelude::*;

    fn count(sql: &str) -> i64 {
        Spi::get_one::<i64>(sql).unwrap().unwrap()
    }

    #[pg_test]
    fn full_stream_table_over_an_aggregate_follows_its_source() {
        Spi::run("CREATE TABLE orders (customer int, amount numeric)").unwrap();
        Spi::run("INSERT INTO orders VALUES (1, 10), (1, 5), (2, 7), (NULL, 1), (NULL, 1)")
            .unwrap();
        Spi::run(
            "SELECT pgstream.create_stream_table('totals', \
             'SELECT customer, sum(amount) AS total, count(*) AS n FROM orders GROUP BY customer', \
             '1m', 'FULL')",
        )
        .unwrap();
        assert_eq!(count("SELECT count(*) FROM totals"), 3);
        Spi::run("INSERT INTO orders VALUES (3, 1); UPDATE orders SET amount = 20 WHERE customer = 2; DELETE FROM orders WHERE customer IS NULL").unwrap();
        Spi::run("SELECT pgstream.refresh_stream_table('totals')").unwrap();
        let diff = count(
            "SELECT count(*) FROM ((SELECT customer, total, n FROM totals EXCEPT ALL \
               SELECT customer, sum(amount), count(*) FROM orders GROUP BY customer) UNION ALL \
              (SELECT customer, sum(amount), count(*) FROM orders GROUP BY customer EXCEPT ALL \
               SELECT customer, total, n FROM totals)) d",
        );
        assert_eq!(diff, 0);
        assert_eq!(
            count(
                "SELECT total_refreshes FROM pgstream.pgs_stream_tables WHERE pgs_name = 'totals'"
            ),
            2
        );
    }

    #[pg_test]
    fn differential_stream_table_follows_its_source() {
        Spi::run(
            "CREATE TABLE src (k int, v int); INSERT INTO src VALUES (1, 1), (1, 2), (2, NULL)",
        )
        .unwrap();
        Spi::run(
            "SELECT pgstream.create_stream_table('st', \
             'SELECT k, count(*) AS n, sum(v) AS s, max(v) AS hi FROM src GROUP BY k')",
        )
        .unwrap();
        assert_eq!(
            Spi::get_one::<String>("SELECT effective_mode FROM pgstream.pgs_stream_tables")
                .unwrap()
                .unwrap(),
            "DIFFERENTIAL"
        );
        Spi::run("INSERT INTO src VALUES (3, 3); UPDATE src SET v = 5 WHERE v = 2; DELETE FROM src WHERE k = 2")
            .unwrap();
        Spi::run("SELECT pgstream.refresh_stream_table('st')").unwrap();
        let diff = count(
            "SELECT count(*) FROM ((SELECT k, n, s, hi FROM st EXCEPT ALL \
               SELECT k, count(*), sum(v), max(v) FROM src GROUP BY k) UNION ALL \
              (SELECT k, count(*), sum(v), max(v) FROM src GROUP BY k EXCEPT ALL \
               SELECT k, n, s, hi FROM st)) d",
        );
        assert_eq!(diff, 0);
    }

    #[pg_test(
        error = "stream table \"public.st\" cannot be refreshed DIFFERENTIAL: its query uses window function rank()"
    )]
    fn differential_refuses_what_it_cannot_maintain() {
        Spi::run("CREATE TABLE src (a int)").unwrap();
        Spi::run(
            "SELECT pgstream.create_stream_table('st', 'SELECT a, rank() OVER (ORDER BY a) FROM src')",
        )
        .unwrap();
    }

    #[pg_test]
    fn quoted_and_qualified_names_are_honoured() {
        Spi::run("CREATE SCHEMA \"Sales\"; CREATE TABLE t (a int); INSERT INTO t VALUES (1), (1)")
            .unwrap();
        Spi::run(
            "SELECT pgstream.create_stream_table('\"Sales\".\"Order Totals\"', 'SELECT a FROM t', '1m', 'FULL')",
        )
        .unwrap();
        assert_eq!(count("SELECT count(*) FROM \"Sales\".\"Order Totals\""), 2);
        assert_eq!(
            Spi::get_one::<String>(
                "SELECT pgs_schema || '/' || pgs_name FROM pgstream.pgs_stream_tables"
            )
            .unwrap()
            .unwrap(),
            "Sales/Order Totals"
        );
    }

    #[pg_test]
    fn sources_come_from_postgres_analysis_through_views() {
        Spi::run("CREATE TABLE a (id int); CREATE TABLE b (id int); CREATE VIEW v AS SELECT a.id FROM a JOIN b USING (id)").unwrap();
        Spi::run("SELECT pgstream.create_stream_table('st', 'SELECT id FROM v WHERE id > 0', '1m', 'FULL')").unwrap();
        assert_eq!(
            Spi::get_one::<String>(
                "SELECT string_agg(source_name || ':' || source_kind, ',' ORDER BY source_name) FROM pgstream.pgs_dependencies"
            )
            .unwrap()
            .unwrap(),
            "a:table,b:table,v:view"
        );
    }

    #[pg_test]
    fn alter_with_nulls_keeps_current_values() {
        Spi::run("CREATE TABLE t (a int)").unwrap();
        Spi::run("SELECT pgstream.create_stream_table('st', 'SELECT a FROM t', '30s', 'FULL')")
            .unwrap();
        Spi::run("SELECT pgstream.alter_stream_table('st')").unwrap();
        Spi::run("SELECT pgstream.alter_stream_table('st', status => 'SUSPENDED')").unwrap();
        assert_eq!(
            Spi::get_one::<String>("SELECT schedule || ' ' || refresh_mode || ' ' || status FROM pgstream.pgs_stream_tables")
                .unwrap()
                .unwrap(),
            "30s FULL SUSPENDED"
        );
    }

    #[pg_test]
    fn next_refresh_at_follows_durations_and_cron() {
        assert_eq!(
            Spi::get_one::<String>(
                "SELECT pgstream.next_refresh_at('1h30m', '2026-01-01 00:00:00+00')::text"
            )
            .unwrap()
            .unwrap(),
            Spi::get_one::<String>("SELECT '2026-01-01 01:30:00+00'::timestamptz::text")
                .unwrap()
                .unwrap()
        );
        assert_eq!(
            Spi::get_one::<String>(
                "SELECT pgstream.next_refresh_at('*/15 * * * *', '2026-01-01 00:07:00+00')::text"
            )
            .unwrap()
            .unwrap(),
            Spi::get_one::<String>("SELECT '2026-01-01 00:15:00+00'::timestamptz::text")
                .unwrap()
                .unwrap()
        );
        assert!(
            !Spi::get_one::<bool>("SELECT pgstream.is_valid_schedule('soon')")
                .unwrap()
                .unwrap()
        );
    }

    #[pg_test(error = "column name \"__pgs_row_id\" is reserved for pg_stream_dbt")]
    fn reserved_column_names_are_refused() {
        Spi::run(
            "SELECT pgstream.create_stream_table('st', 'SELECT 1 AS __pgs_row_id', '1m', 'FULL')",
        )
        .unwrap();
    }

    #[pg_test]
    fn without_preload_the_view_says_no_scheduler_runs() {
        Spi::run("CREATE TABLE t (a int)").unwrap();
        Spi::run("SELECT pgstream.create_stream_table('st', 'SELECT a FROM t', '1m', 'FULL')")
            .unwrap();
        assert!(!Spi::get_one::<bool>(
            "SELECT scheduler_running FROM pgstream.pg_stat_stream_tables"
        )
        .unwrap()
        .unwrap());
        // Manual refresh works without the scheduler.
        Spi::run("INSERT INTO t VALUES (1); SELECT pgstream.refresh_stream_table('st')").unwrap();
        assert_eq!(count("SELECT count(*) FROM st"), 1);
    }

    /// The delta SQL's change window (delta::ir::CHANGE_WINDOW) and the SQL one
    /// (pgstream._covered) say the same of every change row: visible or not in the covered
    /// snapshot, the reader's own transaction or not, before or after its sequence number, with
    /// and without an own transaction.
    #[pg_test]
    fn the_delta_change_window_is_the_sql_one() {
        Spi::run(
            "CREATE TEMP TABLE buffer AS SELECT x::text::xid8 AS __pgs_xid, s::int8 AS __pgs_seq \
             FROM generate_series(100, 106) x, generate_series(1, 3) s",
        )
        .unwrap();
        let disagree = format!(
            "SELECT count(*) FILTER (WHERE ({}) IS DISTINCT FROM NOT pgstream._covered(\
                 __pgs_b.__pgs_xid, $1::pg_catalog.pg_snapshot, __pgs_b.__pgs_seq, \
                 $2::pg_catalog.xid8, $3::pg_catalog.int8)), \
             count(*) FILTER (WHERE {}) FROM buffer __pgs_b",
            crate::delta::ir::CHANGE_WINDOW,
            crate::delta::ir::CHANGE_WINDOW
        );
        let mut uncovered_counts = std::collections::BTreeSet::new();
        for snapshot in ["103:105:103", "100:100:", "107:107:", "101:106:102,104"] {
            for own_xid in [None, Some("104"), Some("103")] {
                for own_seq in [None, Some(2i64)] {
                    let (differ, uncovered) = Spi::connect(|client| {
                        let row = client
                            .select(
                                &disagree,
                                None,
                                &[snapshot.into(), own_xid.into(), own_seq.into()],
                            )?
                            .first();
                        Ok::<_, pgrx::spi::Error>((
                            row.get::<i64>(1)?.unwrap(),
                            row.get::<i64>(2)?.unwrap(),
                        ))
                    })
                    .unwrap();
                    assert_eq!(differ, 0, "{snapshot} {own_xid:?} {own_seq:?}");
                    uncovered_counts.insert(uncovered);
                }
            }
        }
        // The grid tells covered from uncovered rows in many ways, not all or nothing.
        assert!(uncovered_counts.len() > 3, "{uncovered_counts:?}");
    }

    /// The cleanup of buffered change rows keeps rows a DIFFERENTIAL reader's position does not
    /// cover, also when that position names no own transaction (a NULL comparison once read
    /// as covered).
    #[pg_test]
    fn buffered_rows_a_position_without_own_transaction_does_not_cover_are_kept() {
        Spi::run("CREATE TABLE src (id int PRIMARY KEY, v int)").unwrap();
        Spi::run(
            "SELECT pgstream.create_stream_table('st', 'SELECT id, v FROM src', NULL, 'DIFFERENTIAL')",
        )
        .unwrap();
        Spi::run("INSERT INTO src VALUES (1, 1), (2, 2)").unwrap();
        let rows = || {
            count(&format!(
                "SELECT count(*) FROM pgstream_changes.\"{}\"",
                buffer_name()
            ))
        };
        assert_eq!(rows(), 2);
        // A position whose snapshot has this transaction (which wrote the rows) running, no own
        // transaction, and a sequence number past the rows'.
        Spi::run(
            "UPDATE pgstream.pgs_stream_tables SET consumed_snapshot = pg_catalog.format('%s:%s:%s', \
                 x, x::text::int8 + 1, x)::pg_snapshot, consumed_own_xid = NULL, consumed_own_seq = 1000000 \
             FROM (SELECT pg_current_xact_id() AS x) me WHERE pgs_name = 'st'",
        )
        .unwrap();
        Spi::run("SELECT pgstream._forget_consumed_rows('src'::regclass)").unwrap();
        assert_eq!(rows(), 2);
        // Covered by the snapshot: forgotten.
        Spi::run(
            "UPDATE pgstream.pgs_stream_tables SET consumed_snapshot = pg_catalog.format('%s:%s:', \
                 x::text::int8 + 1, x::text::int8 + 1)::pg_snapshot \
             FROM (SELECT pg_current_xact_id() AS x) me WHERE pgs_name = 'st'",
        )
        .unwrap();
        Spi::run("SELECT pgstream._forget_consumed_rows('src'::regclass)").unwrap();
        assert_eq!(rows(), 0);
    }

    fn buffer_name() -> String {
        Spi::get_one::<String>("SELECT 'rows_' || 'src'::regclass::oid")
            .unwrap()
            .unwrap()
    }
}
