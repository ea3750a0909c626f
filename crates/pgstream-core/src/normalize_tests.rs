//! Corpus for the normalized query hash: pairs that must hash equal and pairs that must differ,
//! drawn from the shapes dbt compiles models into.

use super::*;

const ORDERS: &str = r#"select customer_id, sum(amount) as total_amount, count(*) as order_count
from "analytics"."public"."raw_orders"
group by customer_id"#;

/// Pairs that differ only in formatting: white space, comments, keyword case, semicolons.
const SAME: &[(&str, &str)] = &[
    (ORDERS, "SELECT customer_id, SUM(amount) AS total_amount, COUNT(*) AS order_count FROM \"analytics\".\"public\".\"raw_orders\" GROUP BY customer_id"),
    (ORDERS, "select customer_id,\n    sum(amount)   as total_amount,\n\tcount(*) as order_count\nfrom \"analytics\".\"public\".\"raw_orders\"\ngroup by customer_id\n"),
    (ORDERS, "-- order totals per customer\nselect customer_id, sum(amount) as total_amount, count(*) as order_count\nfrom \"analytics\".\"public\".\"raw_orders\" -- the seed\ngroup by customer_id"),
    (ORDERS, "/* header\n   comment */ select customer_id, sum(amount) as total_amount, count(*) as order_count from \"analytics\".\"public\".\"raw_orders\" group by customer_id;"),
    (ORDERS, "select customer_id, sum(amount) as total_amount, count(*) as order_count from \"analytics\".\"public\".\"raw_orders\" group by customer_id;;"),
    (ORDERS, "select /* nested /* comment */ here */ customer_id, sum(amount) as total_amount, count(*) as order_count from \"analytics\".\"public\".\"raw_orders\" group by customer_id"),
    ("select a from t", "SELECT A FROM T"),
    ("select a from t", "Select a From t"),
    ("select a from t where x = 1", "select a from t where x=1"),
    ("select a::text from t", "select a :: text from t"),
    ("select a::numeric(10,2) from t", "select a::numeric( 10 , 2 ) from t"),
    ("select a from t where b ilike '%x%'", "SELECT a FROM t WHERE b ILIKE '%x%'"),
    ("select data->>'id' as id from t", "select data ->> 'id' as id from t"),
    ("select data #>> '{a,b}' from t", "select data#>>'{a,b}' from t"),
    ("select array[1,2,3] as xs", "SELECT ARRAY[1, 2, 3] AS xs"),
    ("select xs[1] from t", "select xs [1] from t"),
    ("select $$it's$$ as s", "SELECT $$it's$$   AS s"),
    ("select $tag$a -- not a comment$tag$ as s", "select $tag$a -- not a comment$tag$ as s -- a comment"),
    ("select 'a -- b' as s", "select 'a -- b' as s -- c"),
    ("select 'it''s' as s", "SELECT 'it''s' AS s"),
    ("select e'a\\'b' as s", "select E'a\\'b' as s"),
    ("with a as (select 1 as x) select x from a", "WITH a AS (\n  SELECT 1 AS x\n)\nSELECT x FROM a"),
    (
        "with orders as (select * from raw_orders), payments as (select * from raw_payments) select o.id, sum(p.amount) from orders o join payments p on p.order_id = o.id group by o.id",
        "with\norders as (\n    select * from raw_orders\n),\n\npayments as (\n    select * from raw_payments\n)\n\nselect o.id, sum(p.amount)\nfrom orders o\njoin payments p on p.order_id = o.id\ngroup by o.id",
    ),
    (
        "select id, sum(case when method = 'card' then amount else 0 end) as card_amount, sum(case when method = 'cash' then amount else 0 end) as cash_amount from payments group by id",
        "select\n    id,\n    \n    sum(case when method = 'card' then amount else 0 end) as card_amount,\n    \n    sum(case when method = 'cash' then amount else 0 end) as cash_amount\n    \nfrom payments\ngroup by id",
    ),
    ("select row_number() over (partition by a order by b desc) from t", "SELECT ROW_NUMBER() OVER (PARTITION BY a ORDER BY b DESC) FROM t"),
    ("select count(distinct a) from t", "SELECT COUNT(DISTINCT a) FROM t"),
    ("select cast(a as int) from t", "SELECT CAST(a AS INT) FROM t"),
    ("select a from t where b in (1, 2, 3)", "select a from t where b in (1,2,3)"),
    ("select a from t where exists (select 1 from u where u.id = t.id)", "select a\nfrom t\nwhere exists (\n  select 1 from u where u.id = t.id\n)"),
    ("select a from t where b is not null", "SELECT a FROM t WHERE b IS NOT NULL"),
    ("select coalesce(a, 0) from t", "select COALESCE(a,0) from t"),
    ("select a from t union all select a from u", "select a from t\nunion all\nselect a from u"),
    ("select distinct a from t order by a", "SELECT DISTINCT a FROM t ORDER BY a"),
    ("select now() - interval '1 day'", "select NOW() - INTERVAL '1 day'"),
    ("select \"Mixed Case\" from t", "SELECT \"Mixed Case\"   FROM t"),
    ("select a from t left join u on t.id = u.id", "select a from t LEFT JOIN u ON t.id = u.id"),
    ("select a from t limit 10", "select a from t\nlimit 10;"),
    ("select x from generate_series(1, 10) as g(x)", "select x from generate_series(1,10) as g (x)"),
    ("select jsonb_build_object('a', 1)", "SELECT JSONB_BUILD_OBJECT('a', 1)"),
    ("select 1.5e3 as n", "SELECT 1.5E3 AS n"),
    ("select a from t where b between 1 and 2", "select a from t where b BETWEEN 1 AND 2"),
    ("select a from weird syntax !! that sqlparser rejects ((", "SELECT a   FROM weird syntax !! that   sqlparser rejects (( -- c"),
    ("select a from t where b @@ to_tsquery('x')", "select a from t where b@@to_tsquery('x')"),
    ("select a, b from t group by 1, 2", "select a,b from t group by 1,2"),
];

/// Pairs that differ in meaning: literals, identifiers, select-list order, operators, joins,
/// predicates.
const DIFFERENT: &[(&str, &str)] = &[
    (ORDERS, "select customer_id, sum(amount) as total_amount, count(*) as order_count from \"analytics\".\"public\".\"raw_orders\" where amount > 0 group by customer_id"),
    (ORDERS, "select customer_id, avg(amount) as total_amount, count(*) as order_count from \"analytics\".\"public\".\"raw_orders\" group by customer_id"),
    (ORDERS, "select customer_id, count(*) as order_count, sum(amount) as total_amount from \"analytics\".\"public\".\"raw_orders\" group by customer_id"),
    (ORDERS, "select customer_id, sum(amount) as total, count(*) as order_count from \"analytics\".\"public\".\"raw_orders\" group by customer_id"),
    (ORDERS, "select customer_id, sum(amount) as total_amount, count(*) as order_count from \"analytics\".\"staging\".\"raw_orders\" group by customer_id"),
    ("select a from t", "select b from t"),
    ("select a from t", "select a from u"),
    ("select a, b from t", "select b, a from t"),
    ("select \"A\" from t", "select a from t"),
    ("select \"A\" from t", "select \"a\" from t"),
    ("select a from t where x = 1", "select a from t where x = 2"),
    ("select a from t where x = 1", "select a from t where x <> 1"),
    ("select a from t where x < 1", "select a from t where x <= 1"),
    ("select a from t where x = 'a'", "select a from t where x = 'A'"),
    ("select a from t where x = 'a b'", "select a from t where x = 'a  b'"),
    ("select 'it''s' as s", "select 'its' as s"),
    ("select $$a$$ as s", "select $$A$$ as s"),
    ("select $$a  b$$ as s", "select $$a b$$ as s"),
    ("select a from t join u on t.id = u.id", "select a from t left join u on t.id = u.id"),
    ("select a from t left join u on t.id = u.id", "select a from t full join u on t.id = u.id"),
    ("select a from t join u on t.id = u.id", "select a from t join u on t.id = u.other_id"),
    ("select a from t union select a from u", "select a from t union all select a from u"),
    ("select a from t where b ilike '%x%'", "select a from t where b like '%x%'"),
    ("select data->>'id' from t", "select data->'id' from t"),
    ("select a::int from t", "select a::bigint from t"),
    ("select a from t order by a", "select a from t order by a desc"),
    ("select a from t limit 10", "select a from t limit 100"),
    ("select distinct a from t", "select a from t"),
    ("select count(distinct a) from t", "select count(a) from t"),
    ("select a from t where b is null", "select a from t where b is not null"),
    ("select a from t where b in (1, 2)", "select a from t where b not in (1, 2)"),
    ("select a from t where exists (select 1 from u)", "select a from t where not exists (select 1 from u)"),
    ("with a as (select 1 as x) select x from a", "with a as (select 2 as x) select x from a"),
    ("select row_number() over (partition by a order by b) from t", "select row_number() over (partition by b order by a) from t"),
    ("select array[1,2,3]", "select array[1,3,2]"),
    ("select 1.5 as n", "select 1.50 as n"),
    ("select a + b * c from t", "select (a + b) * c from t"),
    ("select a from t where b and c or d", "select a from t where b and (c or d)"),
    ("select sum(case when m = 'card' then amount else 0 end) from p", "select sum(case when m = 'cash' then amount else 0 end) from p"),
    ("select a from weird syntax !! that sqlparser rejects ((", "select a from weird syntax !! that sqlparser rejects (("),
    ("select a from t -- comment\nwhere b = 1", "select a from t -- comment where b = 1"),
    ("select e'a\\nb' as s", "select 'a\\nb' as s"),
    ("select a from \"T\"", "select a from t"),
    ("select a from t group by a having count(*) > 1", "select a from t group by a having count(*) > 2"),
    ("select 'it''s' as s", "select 'it''''s' as s"),
    ("select replace(x, '''', '''''') from t", "select replace(x, '''', '''') from t"),
    ("select \"a\"\"b\" from t", "select \"a\"\"\"\"b\" from t"),
    ("select x as \u{c4}b from t", "select x as \u{e4}b from t"),
    ("select U&'x' as s", "select U & 'x' as s"),
    ("select a\u{a0}b from t", "select a b from t"),
];

/// Pairs that hash differently only when `left` and `right` are different strings; checks
/// the table itself is not a no-op.
#[test]
fn the_corpus_is_large_enough() {
    assert!(SAME.len() >= 40, "{} equal pairs", SAME.len());
    let distinct_pairs = DIFFERENT.iter().filter(|(a, b)| a != b).count();
    assert!(distinct_pairs >= 40, "{distinct_pairs} differing pairs");
}

#[test]
fn formatting_only_changes_hash_equal() {
    for (left, right) in SAME {
        assert_eq!(
            query_hash(left),
            query_hash(right),
            "should hash equal:\n  {left}\n  {right}\n  -> {}\n  -> {}",
            normalize_query(left),
            normalize_query(right)
        );
    }
}

#[test]
fn meaningful_changes_hash_differently() {
    for (left, right) in DIFFERENT.iter().filter(|(a, b)| a != b) {
        assert_ne!(
            query_hash(left),
            query_hash(right),
            "should hash differently:\n  {left}\n  {right}\n  -> {}",
            normalize_query(left)
        );
    }
}

#[test]
fn hash_is_lower_case_sha256_hex_and_stable() {
    let hash = query_hash("select 1");
    assert_eq!(hash.len(), 64);
    assert!(hash
        .chars()
        .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
    assert_eq!(hash, query_hash("SELECT 1;"));
}

#[test]
fn unparsable_text_still_normalizes() {
    assert_eq!(
        normalize_query("SELEC  a -- x\n FROM \"T\" WHERE s = 'A  b'"),
        "selec a from \"T\" where s = 'A  b'"
    );
    // Unterminated quotes and comments do not panic.
    for text in [
        "select 'abc",
        "select \"abc",
        "select $$abc",
        "select /* abc",
        "",
        ";",
    ] {
        let _ = query_hash(text);
    }
}

/// Every text of three hostile fragments tokenizes without panicking (sqlparser's tokenizer
/// fails on many of them, and its failures are read again by hand).
#[test]
fn no_text_of_hostile_fragments_panics() {
    const FRAGMENTS: &[&str] = &[
        " ", "\n", "\r", "--", "-", "/*", "*/", "/", "'", "\"", "$", "$$", "$a$", "$1", "$🙂$",
        "E'", "U&'", "X'", "B\"", "\\", "\\xc3", "1", "0x", "1e", ".", "_", "a", "é", "&>", "?-",
        ":", ":=", ";", "(", "\u{0}", "\u{a0}",
    ];
    for a in FRAGMENTS {
        for b in FRAGMENTS {
            for c in FRAGMENTS {
                let text = format!("{a}{b}{c}");
                let tokens = canonical_tokens(&text);
                assert!(tokens.iter().all(|t| !t.is_empty()), "{text:?}: {tokens:?}");
            }
        }
    }
}
