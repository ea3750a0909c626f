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

    #[pg_test(
        error = "refresh_mode DIFFERENTIAL is not available yet in this version of pg_stream_dbt"
    )]
    fn differential_is_refused_until_it_ships() {
        Spi::run("CREATE TABLE src (a int)").unwrap();
        Spi::run("SELECT pgstream.create_stream_table('st', 'SELECT a FROM src')").unwrap();
    }
}
