//! The planner's data and interface: what it asks of the database (`Catalog`), why it refuses
//! (`Unsupported`), the inputs a stage reads, the stages a query is cut into, how each is
//! identified and refreshed, and the names of the engine objects they live in (no logic beyond
//! naming; every other delta module builds on these types).

use crate::sql_text::quote_ident;
use std::collections::HashSet;

/// Where the query's own top level stands (not named in refusals).
pub const TOP_LEVEL: &str = "the query";

/// Why a query cannot be maintained differentially: the construct (as shown to users) and
/// where in the query it is (a CTE, subquery or view name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsupported {
    pub construct: String,
    pub location: Option<String>,
}

impl Unsupported {
    pub fn new(construct: impl Into<String>) -> Self {
        Unsupported {
            construct: construct.into(),
            location: None,
        }
    }

    /// Says where, unless a more precise place was said already (the top level goes unsaid).
    pub fn at(mut self, location: &str) -> Self {
        if self.location.is_none() && !location.is_empty() && location != TOP_LEVEL {
            self.location = Some(location.to_string());
        }
        self
    }
}

impl std::fmt::Display for Unsupported {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        match &self.location {
            Some(location) => write!(f, "{} (in {location})", self.construct),
            None => f.write_str(&self.construct),
        }
    }
}

/// What a relation named in a query is, as far as delta planning cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Relation {
    /// A table whose changes are captured into a change buffer.
    Table(TableInput),
    /// A view, with its definition (names schema-qualified) and its qualified name.
    View { name: String, definition: String },
    /// A relation whose changes cannot be captured, and why (e.g. "partitioned table").
    NotCapturable { reason: String },
}

/// What the planner needs to know from the database.
pub trait Catalog {
    /// The relation `name` (its parts as PostgreSQL folds them) refers to, if any.
    fn relation(&self, name: &[String]) -> Option<Relation>;
    /// Whether `name` (lower case, unqualified) is an aggregate function.
    fn is_aggregate(&self, name: &str) -> bool;
    /// The output columns (name, type) of `query` (SQL), as PostgreSQL sees it; None when the
    /// database cannot tell (tests).
    fn describe(&self, query: &str) -> Option<Vec<(String, String)>>;
    /// A key of table `relid` (its primary key, or a unique index on NOT NULL columns).
    fn table_key(&self, relid: u32) -> Option<Vec<String>>;
    /// Whether values of type `type_name` can make a key (a btree and a hash operator class).
    fn keyable(&self, type_name: &str) -> bool;
    /// The base type of domain `type_name` (with its typmod), the type a NULL of it is made as
    /// (a NOT NULL domain refuses NULL); None when it is no domain (or unknown).
    fn base_type(&self, type_name: &str) -> Option<String> {
        let _ = type_name;
        None
    }
}

/// What a plan is for.
#[derive(Debug, Clone)]
pub struct PlanRequest<'a> {
    /// The stream table the plan is for (names its auxiliary tables).
    pub names: Names,
    /// The base tables with changes to apply (None: any may have changed).
    pub changed: Option<&'a HashSet<u32>>,
    /// Render the delta terms (false when only checking that the query can be maintained).
    pub render_terms: bool,
}

/// Index of a stage in a plan (stages are refreshed in index order; the last is the root).
pub type StageIndex = usize;

/// A captured base table a stage reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableInput {
    pub relid: u32,
    /// The table as the (expanded) query names it, qualified as written: how it is read now.
    pub name: String,
    /// Its columns, in table order.
    pub columns: Vec<String>,
    /// Columns (name, type) its change buffer does not keep: read as typed NULLs from change rows.
    pub absent: Vec<(String, String)>,
}

/// What a stage reads at one occurrence (a FROM item, or the relation of a dependent filter).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    Table(TableInput),
    /// The output of a lower stage (its visible columns).
    Stage(StageIndex),
}

/// The marker an occurrence stands as in a stage's AST (a table name: a user's query could write
/// it, but expansion replaces every table reference of the query before any marker is made,
/// and substitution happens on the AST's table factors, never on text).
pub fn occurrence_marker(index: usize) -> String {
    format!("__pgs_occ_{index}__")
}

/// The occurrence index of a marker name.
pub fn marker_index(name: &str) -> Option<usize> {
    name.strip_prefix("__pgs_occ_")?
        .strip_suffix("__")?
        .parse()
        .ok()
}

/// The marker standing for the relation of occurrence-like template `index` padded with NULLs
/// in an anti-join block: an empty relation with its columns, which is not an occurrence.
pub fn null_marker(index: usize) -> String {
    format!("__pgs_null_{index}__")
}

/// The template index of a NULL-padding marker name.
pub fn null_marker_index(name: &str) -> Option<usize> {
    name.strip_prefix("__pgs_null_")?
        .strip_suffix("__")?
        .parse()
        .ok()
}

/// How one occurrence is read in a delta term.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The relation as it is now.
    Current,
    /// Rows inserted since the last refresh.
    Inserted,
    /// Rows deleted since the last refresh.
    Deleted,
    /// Rows inserted or deleted since the last refresh.
    Changed,
}

/// How the rows of a stage's output (an auxiliary table, or the stream table) are identified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    /// Unique by these output columns: a unique index on (key hash, columns) NULLS NOT DISTINCT;
    /// an update whose key survives is applied in place.
    Key(Vec<String>),
    /// A multiset: `__pgs_row_id` = hash of the row text + copy number - 1.
    Multiset,
}

/// Why this identity (shown by explain).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityChoice {
    pub identity: Identity,
    pub reason: String,
}

/// Seed of key hashes. Not 0 or 1: with seed 0 a NULL key element and a float 0 (or -0) both
/// hash to 0, and with seed 1 a NULL and a numeric 0 do (the types' extended hash functions
/// return the seed, or the seed - 1, for those values; a NULL element hashes to 0).
pub const KEY_HASH_SEED: i64 = 0x7067_736b; // "pgsk"

/// Bits of a row hash kept in `__pgs_row_id`: 62, so that up to 2^62 copies of one row can
/// follow it (`hash + occurrence - 1`) without overflowing bigint.
pub const HASH_MASK: &str = "4611686018427387903";

/// The SQL of the key hash of `columns` as read through `alias` (None: unqualified): the
/// leading column of a keyed table's unique index, and what lookups match first.
pub fn key_hash_sql(alias: Option<&str>, columns: &[String]) -> String {
    let listed: Vec<String> = columns
        .iter()
        .map(|c| match alias {
            Some(a) => format!("{a}.{}", quote_ident(c)),
            None => quote_ident(c),
        })
        .collect();
    format!(
        "pg_catalog.hash_record_extended(ROW({}), {KEY_HASH_SEED})",
        if listed.is_empty() {
            "0".to_string()
        } else {
            listed.join(", ")
        }
    )
}

/// The SQL matching a row of `left` to a row of `right` with the same key (an index lookup on
/// the key hash, then the key columns compared with NULLs equal).
pub fn key_match_sql(left: &str, right: &str, columns: &[String]) -> String {
    key_match_between_sql((left, columns), (right, columns))
}

/// [`key_match_sql`] between key columns named differently on each side: `(alias, columns)`.
pub fn key_match_between_sql(left: (&str, &[String]), right: (&str, &[String])) -> String {
    let mut parts = vec![format!(
        "{} = {}",
        key_hash_sql(Some(left.0), left.1),
        key_hash_sql(Some(right.0), right.1)
    )];
    parts.extend(left.1.iter().zip(right.1).map(|(l, r)| {
        format!(
            "{}.{} IS NOT DISTINCT FROM {}.{}",
            left.0,
            quote_ident(l),
            right.0,
            quote_ident(r)
        )
    }));
    parts.join(" AND ")
}

/// The SQL keeping the rows of a large relation read as `outer` (`(alias, key columns)`) whose
/// key a row of the small work table `work` (read as `(alias, key columns)`) has: the key
/// hashes as an `IN`, which PostgreSQL runs from the work table's distinct hashes as lookups in
/// the relation's key index, then the keys compared with NULLs equal. (The two in one `EXISTS`
/// made it read the whole relation: `IS NOT DISTINCT FROM` is no equality, so such a semi-join
/// cannot start from the work table.)
pub fn keys_in_work_sql(outer: (&str, &[String]), work: &str, inner: (&str, &[String])) -> String {
    format!(
        "{} IN (SELECT {} FROM {work} {}) AND EXISTS (SELECT 1 FROM {work} {} WHERE {})",
        key_hash_sql(Some(outer.0), outer.1),
        key_hash_sql(Some(inner.0), inner.1),
        inner.0,
        inner.0,
        key_match_between_sql(inner, outer),
    )
}

/// The SQL of the 62-bit hash of a text expression: a multiset row's identity (first copy).
pub fn row_hash_sql(text_expr: &str) -> String {
    format!("(pg_catalog.hashtextextended({text_expr}, 0) & {HASH_MASK})")
}

pub use crate::object_names::{change_view, Names, CHANGE_WINDOW};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_round_trip_and_names_are_quoted() {
        assert_eq!(marker_index(&occurrence_marker(12)), Some(12));
        assert_eq!(marker_index("__pgs_occ_x__"), None);
        let names = Names { id: 7 };
        assert_eq!(names.aux_table(2), "pgstream_changes.\"aux_7_2\"");
        assert_eq!(names.state_table(2), "pgstream_changes.\"aux_7_2_state\"");
        assert_eq!(names.change_set(0), "pg_temp.\"__pgs_chg_7_0\"");
        assert_eq!(
            key_match_sql("t", "s", &["k".into()]),
            "pg_catalog.hash_record_extended(ROW(t.\"k\"), 1885827947) = \
             pg_catalog.hash_record_extended(ROW(s.\"k\"), 1885827947) \
             AND t.\"k\" IS NOT DISTINCT FROM s.\"k\""
        );
    }
}
