//! Delta planning for DIFFERENTIAL refresh: from a defining query's AST, the SQL that computes
//! how its result changed since the last refresh (pure, no SPI; tested with `cargo test`).
//!
//! Two shapes of query are maintained:
//! - *linear* ones (projections, filters, inner joins, UNION ALL, subqueries and CTEs of
//!   those): the change of the result is computed from the change rows of the sources by
//!   inclusion–exclusion over the occurrences of changed sources, as signed rows;
//! - *keyed* ones (GROUP BY / aggregates / HAVING, DISTINCT, UNION over linear inputs): the
//!   keys of the groups the changes touch are computed the same way, and only those groups
//!   are recomputed from the sources and replaced.

mod aggsub;
pub mod algebraic;
mod blocks;
mod expand;
mod filters;
mod render;
mod shape;
pub mod statements;
#[cfg(test)]
mod tests;

use std::collections::HashSet;

/// Bits of a row hash kept in `__pgs_row_id`: 62, so that up to 2^62 copies of one row can
/// follow it (`hash + occurrence - 1`) without overflowing bigint.
pub const HASH_MASK: &str = "4611686018427387903";

/// Name the keyed plans use for the affected-keys relation (a CTE the refresh statement defines).
pub const AFFECTED: &str = "__pgs_affected";

/// The SQL of the 62-bit hash of a text expression: the row identity of a row's first copy.
pub fn row_hash_sql(text_expr: &str) -> String {
    format!("(pg_catalog.hashtextextended({text_expr}, 0) & {HASH_MASK})")
}

/// How group keys (and DISTINCT rows) are hashed into row ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyHashing {
    /// By the key types' own hash functions, which agree with their equality as GROUP BY
    /// and DISTINCT use it (1.0 and 1.00, case-insensitive collations): PostgreSQL 14+.
    Record,
    /// By the text of the key (PostgreSQL 13, without `hash_record_extended`).
    Text,
}

/// Seed of the key hashes. Not 0 or 1: with seed 0 a NULL key element and a float 0 (or
/// -0) both hash to 0, and with seed 1 a NULL and a numeric 0 do (the types' extended hash
/// functions return the seed, or the seed - 1, for those values; a NULL element hashes to 0).
pub const KEY_HASH_SEED: i64 = 0x7067_736b; // "pgsk"

/// The SQL of the 62-bit key hash of a record expression.
pub fn key_hash_sql(record: &str, hashing: KeyHashing) -> String {
    match hashing {
        KeyHashing::Record => {
            format!("(pg_catalog.hash_record_extended({record}, {KEY_HASH_SEED}) & {HASH_MASK})")
        }
        KeyHashing::Text => row_hash_sql(&format!("({record})::text")),
    }
}

/// What a relation named in a query is, as far as delta planning cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Relation {
    /// A table whose changes are captured into a change buffer: its oid and columns, and
    /// the columns (name, type) its buffer does not keep (no DIFFERENTIAL reader reads them).
    Table {
        relid: u32,
        columns: Vec<String>,
        absent: Vec<(String, String)>,
    },
    /// A view, with its definition (names schema-qualified), expanded into the query.
    View { definition: String },
    /// A relation whose changes cannot be captured, and why (e.g. "partitioned table").
    NotCapturable { reason: String },
}

/// What the planner needs to know from the database.
pub trait Catalog {
    /// The relation `name` (its parts as PostgreSQL folds them) refers to, if any.
    fn relation(&self, name: &[String]) -> Option<Relation>;
    /// Whether `name` (lower case, unqualified) is an aggregate function.
    fn is_aggregate(&self, name: &str) -> bool;
    /// The stream table's columns (name, type) in query order, when it exists.
    fn output_columns(&self) -> Vec<(String, String)> {
        Vec::new()
    }
    /// How this server can hash group keys.
    fn key_hashing(&self) -> KeyHashing {
        KeyHashing::Record
    }
}

/// Why a query cannot be maintained differentially: the construct, as shown to users.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsupported(pub String);

impl std::fmt::Display for Unsupported {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// How a stream table's rows are identified and its changes applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// Rows are a multiset; `__pgs_row_id` = hash of the row text + occurrence - 1.
    Linear,
    /// Rows are unique per key; `__pgs_row_id` = hash of the key text.
    Keyed,
}

/// The statements' building blocks for one stream table. SQL parameters: `$1` the snapshot
/// the last refresh covered, `$2`/`$3` the transaction and the last change sequence number of
/// that refresh (so changes its own transaction made later are still taken).
#[derive(Debug, Clone)]
pub struct DeltaPlan {
    pub shape: Shape,
    /// Linear: `(__pgs_w int4, __pgs_t text, <output columns>)`, signed changed rows (`__pgs_t`
    /// the row text). Keyed: `(__pgs_k int8)`, key hashes of the groups changes touched.
    pub delta_sql: String,
    /// Keyed: the query's rows for the keys in `__pgs_affected(h)`, output columns + `__pgs_k`.
    pub fresh_sql: Option<String>,
    /// Keyed: every row of the query, output columns + `__pgs_k` (FULL refresh).
    pub full_sql: Option<String>,
    /// Oids of the captured tables the query reads.
    pub sources: Vec<u32>,
    /// Keyed GROUP BY queries of COUNT / SUM / AVG / MIN / MAX: maintained from a state table
    /// instead of recomputing the touched groups.
    pub algebraic: Option<algebraic::AlgebraicPlan>,
}

/// Plans the DIFFERENTIAL refresh of `query`. `changed`, when given, lists the sources with
/// unconsumed changes; occurrences of the others are read as they are (fewer terms).
pub fn plan(
    query: &str,
    catalog: &dyn Catalog,
    changed: Option<&HashSet<u32>>,
) -> Result<DeltaPlan, Unsupported> {
    let mut parsed = expand::parse_query(query)?;
    let mut sources = expand::expand(&mut parsed, catalog)?;
    shape::check_constructs(&parsed)?;
    aggsub::mark(&mut parsed, &mut sources, catalog)?;
    let classified = shape::classify(&parsed, catalog)?;
    let plan = render::render(
        &parsed,
        &classified,
        &sources,
        changed,
        &catalog.output_columns(),
        catalog.key_hashing(),
    )?;
    Ok(plan)
}
