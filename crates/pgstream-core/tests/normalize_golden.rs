//! Golden test: the canonical text and hash of every query in `testdata/normalize_golden.json`.

// Query hashes are stored in users' catalogs (pgs_stream_tables.pgs_query_hash) and
// materialize() recreates a stream table whose stored hash differs from its model's: a
// normalization change that changes a hash rebuilds that stream table after an upgrade. The
// expected values were recorded with the hand-written lexer normalize.rs had before it used
// sqlparser's tokenizer (releases up to 0.3.0); the corpus is the SQL of the repository's tests, examples, benchmarks and dbt models plus hostile
// hand-written cases. Regenerate only for a deliberate, documented hash change:
// `PGS_UPDATE_NORMALIZE_GOLDEN=1 cargo test -p pgstream-core --test normalize_golden`.

use pgstream_core::normalize::{normalize_query, query_hash};
use serde_json::Value;
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;
use std::path::PathBuf;

const UPDATE_VARIABLE: &str = "PGS_UPDATE_NORMALIZE_GOLDEN";

fn golden_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("testdata/normalize_golden.json")
}

/// One corpus entry: where the query comes from and its text.
struct Entry {
    from: String,
    sql: String,
    expected: Option<(String, String)>,
}

fn read_corpus() -> Vec<Entry> {
    let text = std::fs::read_to_string(golden_path()).expect("reading the golden file");
    let value: Value = serde_json::from_str(&text).expect("the golden file is JSON");
    let field =
        |entry: &Value, name: &str| entry.get(name).and_then(Value::as_str).map(String::from);
    value
        .as_array()
        .expect("the golden file is an array")
        .iter()
        .map(|entry| Entry {
            from: field(entry, "from").expect("from"),
            sql: field(entry, "sql").expect("sql"),
            expected: field(entry, "canonical").zip(field(entry, "hash")),
        })
        .collect()
}

/// The file as the update writes it: one object per entry, keys in a fixed order.
fn rendered(entries: &[Entry]) -> String {
    let quoted = |s: &str| serde_json::to_string(s).expect("a string serializes");
    let objects: Vec<String> = entries
        .iter()
        .map(|e| {
            format!(
                "{{\n  \"from\": {},\n  \"sql\": {},\n  \"canonical\": {},\n  \"hash\": {}\n}}",
                quoted(&e.from),
                quoted(&e.sql),
                quoted(&normalize_query(&e.sql)),
                quoted(&query_hash(&e.sql))
            )
        })
        .collect();
    format!("[\n{}\n]\n", objects.join(",\n"))
}

#[test]
fn canonical_texts_and_hashes_match_the_golden_file() {
    let entries = read_corpus();
    if std::env::var_os(UPDATE_VARIABLE).is_some() {
        std::fs::write(golden_path(), rendered(&entries)).expect("writing the golden file");
        return;
    }
    let mut differing = Vec::new();
    for entry in &entries {
        let (canonical, hash) = entry.expected.clone().expect("expected values recorded");
        let actual = normalize_query(&entry.sql);
        if actual != canonical || query_hash(&entry.sql) != hash {
            differing.push(format!(
                "{}:\n  sql:      {:?}\n  expected: {:?}\n  actual:   {:?}",
                entry.from, entry.sql, canonical, actual
            ));
        }
    }
    assert!(
        differing.is_empty(),
        "{} of {} queries normalize differently (their stored hashes would change):\n{}",
        differing.len(),
        entries.len(),
        differing.join("\n")
    );
}

#[test]
fn the_corpus_is_large_and_covers_both_paths() {
    let entries = read_corpus();
    assert!(entries.len() >= 1000, "{} entries", entries.len());
    let hand_written = entries.iter().filter(|e| e.from == "hand-written").count();
    assert!(hand_written >= 200, "{hand_written} hand-written entries");
    // Both ways normalize_query goes: sqlparser's AST printed back, and the raw text.
    let parsed = entries
        .iter()
        .filter(
            |e| matches!(Parser::parse_sql(&PostgreSqlDialect {}, &e.sql), Ok(s) if s.len() == 1),
        )
        .count();
    assert!(parsed >= 1000, "{parsed} queries sqlparser parses");
    assert!(
        entries.len() - parsed >= 250,
        "{} it does not",
        entries.len() - parsed
    );
}
