//! A partitioned stream table's `partition_by`: parsing, its PARTITION BY clause and the
//! partitions the engine makes itself (pure, no SPI).

use crate::names::{split_identifiers, with_suffix};
use crate::sql_text::quote_ident;

/// What `partition_by` accepts, for error messages.
pub const ACCEPTED_PARTITION_BY: &str = "RANGE (column, ...), LIST (column) or \
     HASH (column, ...) [PARTITIONS n] over columns of the query's result, or NULL";

/// Hash partitions made when `PARTITIONS n` is not given.
pub const DEFAULT_HASH_PARTITIONS: u32 = 4;
/// The most hash partitions accepted.
pub const MAX_HASH_PARTITIONS: u32 = 1024;

/// How rows are spread over partitions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    Range,
    List,
    Hash,
}

impl Strategy {
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::Range => "RANGE",
            Strategy::List => "LIST",
            Strategy::Hash => "HASH",
        }
    }
}

/// A validated `partition_by`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionSpec {
    pub strategy: Strategy,
    /// Result columns, as stored (unquoted, case kept).
    pub columns: Vec<String>,
    /// For HASH: how many partitions the engine makes (modulus); 0 otherwise.
    pub hash_partitions: u32,
}

/// Why a `partition_by` was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid partition_by \"{text}\": {why}")]
pub struct PartitionError {
    pub text: String,
    pub why: String,
}

/// A partition the engine makes: its name and the bound after `PARTITION OF parent`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnPartition {
    pub name: String,
    pub bound: String,
}

/// Splits `text` at top-level commas (not inside double quotes).
fn split_commas(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut start, mut quoted) = (0, false);
    for (i, c) in text.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

impl PartitionSpec {
    /// Parses `RANGE (a, b)`, `LIST (a)`, `HASH ("Customer") PARTITIONS 8` (keywords in any case,
    /// columns as SQL identifiers: unquoted folded to lower case).
    pub fn parse(text: &str) -> Result<PartitionSpec, PartitionError> {
        let bad = |why: String| PartitionError {
            text: text.to_string(),
            why,
        };
        let trimmed = text.trim();
        let word_end = trimmed
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(trimmed.len());
        let strategy = match trimmed[..word_end].to_ascii_uppercase().as_str() {
            "RANGE" => Strategy::Range,
            "LIST" => Strategy::List,
            "HASH" => Strategy::Hash,
            "" => return Err(bad("expected RANGE, LIST or HASH".into())),
            other => {
                return Err(bad(format!(
                    "unknown strategy {other}; expected RANGE, LIST or HASH"
                )))
            }
        };
        let rest = trimmed[word_end..].trim_start();
        let Some(inner) = rest.strip_prefix('(') else {
            return Err(bad(format!(
                "expected a parenthesized column list after {}",
                strategy.as_str()
            )));
        };
        let mut quoted = false;
        let close = inner.char_indices().find_map(|(i, c)| {
            if c == '"' {
                quoted = !quoted;
            }
            (c == ')' && !quoted).then_some(i)
        });
        let Some(close) = close else {
            return Err(bad("unclosed column list".into()));
        };
        let mut columns = Vec::new();
        for part in split_commas(&inner[..close]) {
            let parts = split_identifiers(part).map_err(|_| {
                bad(format!(
                    "\"{}\" is not a column name (expressions are not accepted)",
                    part.trim()
                ))
            })?;
            match parts.as_slice() {
                [column] if !columns.contains(column) => columns.push(column.clone()),
                [column] => return Err(bad(format!("column \"{column}\" is named twice"))),
                _ => {
                    return Err(bad(format!(
                        "\"{}\" is not a column of the result (no qualified names)",
                        part.trim()
                    )))
                }
            }
        }
        if strategy == Strategy::List && columns.len() != 1 {
            return Err(bad("LIST partitioning takes exactly one column".into()));
        }
        let tail = inner[close + 1..].trim();
        let hash_partitions = match (strategy, tail) {
            (Strategy::Hash, "") => DEFAULT_HASH_PARTITIONS,
            (Strategy::Hash, tail) => {
                let count = tail
                    .get(..10)
                    .filter(|w| w.eq_ignore_ascii_case("PARTITIONS"))
                    .map(|_| tail[10..].trim());
                match count.and_then(|n| n.parse::<u32>().ok()) {
                    Some(n) if (1..=MAX_HASH_PARTITIONS).contains(&n) => n,
                    Some(n) => {
                        return Err(bad(format!(
                            "PARTITIONS {n}: between 1 and {MAX_HASH_PARTITIONS} hash partitions"
                        )))
                    }
                    None => return Err(bad(format!("unexpected \"{tail}\" after the columns"))),
                }
            }
            (_, "") => 0,
            (_, tail) => {
                return Err(bad(format!(
                    "unexpected \"{tail}\" after the columns (PARTITIONS is for HASH)"
                )))
            }
        };
        Ok(PartitionSpec {
            strategy,
            columns,
            hash_partitions,
        })
    }

    /// The clause after CREATE TABLE's column list: `PARTITION BY RANGE ("a", "b")`.
    pub fn partition_by_clause(&self) -> String {
        let columns: Vec<String> = self.columns.iter().map(|c| quote_ident(c)).collect();
        format!(
            "PARTITION BY {} ({})",
            self.strategy.as_str(),
            columns.join(", ")
        )
    }

    /// How it is shown (and compared): `HASH (customer_id) PARTITIONS 4`, `RANGE (day)`.
    pub fn describe(&self) -> String {
        let columns: Vec<String> = self
            .columns
            .iter()
            .map(|c| {
                if c.chars()
                    .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '_')
                    && !c.starts_with(|ch: char| ch.is_ascii_digit())
                {
                    c.clone()
                } else {
                    quote_ident(c)
                }
            })
            .collect();
        let mut text = format!("{} ({})", self.strategy.as_str(), columns.join(", "));
        if self.strategy == Strategy::Hash {
            text.push_str(&format!(" PARTITIONS {}", self.hash_partitions));
        }
        text
    }

    /// The partitions the engine makes for stream table `table`: a DEFAULT partition
    /// `<table>_default` for RANGE and LIST (every row has a place; users add their own
    /// partitions beside it), `<table>_p0` .. for HASH.
    pub fn own_partitions(&self, table: &str) -> Vec<OwnPartition> {
        match self.strategy {
            Strategy::Range | Strategy::List => vec![OwnPartition {
                name: with_suffix(table, "_default"),
                bound: "DEFAULT".into(),
            }],
            Strategy::Hash => (0..self.hash_partitions)
                .map(|remainder| OwnPartition {
                    name: with_suffix(table, &format!("_p{remainder}")),
                    bound: format!(
                        "FOR VALUES WITH (MODULUS {}, REMAINDER {remainder})",
                        self.hash_partitions
                    ),
                })
                .collect(),
        }
    }

    /// The partition columns a unique index on `key` lacks (PostgreSQL's unique indexes on a
    /// partitioned table must contain every partition column).
    pub fn columns_missing_from(&self, key: &[String]) -> Vec<String> {
        self.columns
            .iter()
            .filter(|c| !key.contains(c))
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(text: &str) -> PartitionSpec {
        PartitionSpec::parse(text).unwrap()
    }

    #[test]
    fn strategies_columns_and_partition_counts_parse() {
        let range = spec("range (Day, \"Region, Name\")");
        assert_eq!(range.strategy, Strategy::Range);
        assert_eq!(range.columns, vec!["day", "Region, Name"]);
        assert_eq!(range.hash_partitions, 0);
        assert_eq!(
            range.partition_by_clause(),
            "PARTITION BY RANGE (\"day\", \"Region, Name\")"
        );
        assert_eq!(range.describe(), "RANGE (day, \"Region, Name\")");
        assert_eq!(spec(" LIST(region) ").describe(), "LIST (region)");
        assert_eq!(spec("hash (c)").hash_partitions, DEFAULT_HASH_PARTITIONS);
        assert_eq!(spec("HASH (c) partitions 16").hash_partitions, 16);
        assert_eq!(
            spec("HASH (c) partitions 16").describe(),
            "HASH (c) PARTITIONS 16"
        );
    }

    #[test]
    fn bad_specs_say_what_is_wrong() {
        for (text, why) in [
            ("", "expected RANGE"),
            ("INTERVAL (day)", "unknown strategy INTERVAL"),
            ("RANGE day", "parenthesized"),
            ("RANGE (day", "unclosed"),
            ("RANGE (date_trunc('day', t))", "not a column name"),
            ("RANGE (o.day)", "not a column of the result"),
            ("RANGE (day, DAY)", "named twice"),
            ("LIST (a, b)", "exactly one column"),
            ("HASH (a) PARTITIONS 0", "between 1 and 1024"),
            ("HASH (a) PARTITIONS many", "unexpected \"PARTITIONS many\""),
            ("RANGE (a) PARTITIONS 4", "PARTITIONS is for HASH"),
            ("RANGE ()", "not a column name"),
        ] {
            let err = PartitionSpec::parse(text).unwrap_err();
            assert!(err.why.contains(why), "{text}: {}", err.why);
            assert_eq!(err.text, text);
        }
    }

    #[test]
    fn own_partitions_default_or_hash_remainders() {
        let range = spec("RANGE (day)").own_partitions("daily");
        assert_eq!(
            range,
            vec![OwnPartition {
                name: "daily_default".into(),
                bound: "DEFAULT".into()
            }]
        );
        let hash = spec("HASH (c) PARTITIONS 3").own_partitions("t");
        assert_eq!(hash.len(), 3);
        assert_eq!(hash[2].name, "t_p2");
        assert_eq!(hash[2].bound, "FOR VALUES WITH (MODULUS 3, REMAINDER 2)");
        let long = "x".repeat(63);
        assert_eq!(spec("LIST (a)").own_partitions(&long)[0].name.len(), 63);
    }

    #[test]
    fn partition_columns_missing_from_a_key() {
        let s = spec("RANGE (day, region)");
        assert_eq!(
            s.columns_missing_from(&["region".into(), "customer".into()]),
            vec!["day".to_string()]
        );
        assert!(s
            .columns_missing_from(&["day".into(), "region".into()])
            .is_empty());
    }
}
