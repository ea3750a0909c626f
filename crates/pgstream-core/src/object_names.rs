//! The naming contract, in one place for the Rust code and the SQL it generates (pure, no
//! SPI): the change-capture objects a source gets (buffer, reading view, triggers, the change
//! columns), the private tables and session work tables of a stream table's refreshes, and the
//! change window every refresh reads its changes through. The advisory-lock keys are in
//! [`crate::lock_keys`] (re-exported here as `locks`); stream-table and index names in
//! [`crate::names`].

use crate::delta::StageIndex;
pub use crate::lock_keys as locks;
use crate::sql_text::quote_ident;

/// Schema of the engine's private tables (change records, buffers, state); no user may read it.
pub const PRIVATE_SCHEMA: &str = "pgstream_changes";

/// The statement trigger every captured source has (`pgstream._capture_statement()`): on every
/// change, or only on TRUNCATE when row capture records the statements.
pub const STATEMENT_TRIGGER: &str = "pgstream_capture";

/// The row-capture triggers of a source read by a DIFFERENTIAL stream table, with the event
/// each fires on and the transition tables it is given (`pgstream._capture_rows()`).
pub const ROW_TRIGGERS: [(&str, &str, &str); 3] = [
    (
        "pgstream_rows_ins",
        "INSERT",
        "REFERENCING NEW TABLE AS __pgs_new",
    ),
    (
        "pgstream_rows_upd",
        "UPDATE",
        "REFERENCING OLD TABLE AS __pgs_old NEW TABLE AS __pgs_new",
    ),
    (
        "pgstream_rows_del",
        "DELETE",
        "REFERENCING OLD TABLE AS __pgs_old",
    ),
];

/// The statement trigger of a member of the partition tree of captured source `source` (its
/// argument names the source); the member's writes are recorded as the source's.
pub fn member_statement_trigger(source: u32) -> String {
    format!("pgstream_part_{source}")
}

/// The row-capture triggers of a member of the partition tree of `source`: as [`ROW_TRIGGERS`],
/// named after the source (`pgstream_part_<source>_ins`, ...).
pub fn member_row_triggers(source: u32) -> [(String, &'static str, &'static str); 3] {
    ROW_TRIGGERS.map(|(name, event, referencing)| {
        let suffix = name.trim_start_matches("pgstream_rows_");
        (
            format!("pgstream_part_{source}_{suffix}"),
            event,
            referencing,
        )
    })
}

/// The transition tables' names in the row-capture triggers.
pub const OLD_ROWS: &str = "__pgs_old";
pub const NEW_ROWS: &str = "__pgs_new";

/// The columns every change buffer starts with: the writing transaction, the change's sequence
/// number in it, and its weight (+1 a new row, -1 an old one).
pub const BUFFER_HEADER: [&str; 3] = ["__pgs_xid", "__pgs_seq", "__pgs_w"];

/// The sequence that numbers changes.
pub const CHANGE_SEQUENCE: &str = "pgstream_changes.row_seq";

/// Unquoted name of the change buffer of source `relid` (in [`PRIVATE_SCHEMA`]).
pub fn buffer_name(relid: u32) -> String {
    format!("rows_{relid}")
}

/// The change buffer of source `relid`, qualified and quoted.
pub fn buffer_table(relid: u32) -> String {
    format!("{PRIVATE_SCHEMA}.\"{}\"", buffer_name(relid))
}

/// The BRIN index on the writing transaction of the change buffer of source `relid`, qualified
/// and quoted (see [`buffer_index_sql`]).
pub fn buffer_index(relid: u32) -> String {
    format!("{PRIVATE_SCHEMA}.\"{}_xid\"", buffer_name(relid))
}

/// The index a change buffer two or more DIFFERENTIAL readers share gets: BRIN on the writing
/// transaction (rows are appended in about that order), so that a refresh reads its change
/// window from the xmin of the snapshot it last covered on (`delta::ir::CHANGE_WINDOW`) and not
/// a lagging reader's backlog. Small ranges (16 pages), summarized by autovacuum as they fill;
/// the unsummarized tail is read whole.
pub fn buffer_index_sql(relid: u32) -> String {
    format!(
        "CREATE INDEX \"{}_xid\" ON {} USING brin ({} pgstream.xid8_minmax_ops) \
         WITH (pages_per_range = 16, autosummarize = on)",
        buffer_name(relid),
        buffer_table(relid),
        BUFFER_HEADER[0]
    )
}

/// Unquoted name of the shard buffer of Citus distributed source `relid` (in [`PRIVATE_SCHEMA`]):
/// distributed like the source, each shard's changes kept on the shard's node until drained.
pub fn shard_buffer_name(relid: u32) -> String {
    format!("shard_rows_{relid}")
}

/// The shard buffer of source `relid`, qualified and quoted.
pub fn shard_buffer_table(relid: u32) -> String {
    format!("{PRIVATE_SCHEMA}.\"{}\"", shard_buffer_name(relid))
}

/// Names of the engine objects of stream table `id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Names {
    pub id: i64,
}

impl Names {
    /// The temporary table a DIFFERENTIAL refresh of this stream table copies the change rows
    /// of `relid` in its window into first (`__pgs_w` and the buffer's columns), analyzed, so
    /// the terms read a small table the planner knows the size of instead of the whole buffer
    /// through the window predicate. Named per stream table: stream tables of different
    /// owners refreshed in one session (a scheduler worker) never share one.
    pub fn delta_table(&self, relid: u32) -> String {
        format!(
            "pg_temp.{}",
            quote_ident(&format!("__pgs_delta_{}_{relid}", self.id))
        )
    }

    /// Unquoted name of the auxiliary table holding the output of inner stage `stage` (in
    /// [`PRIVATE_SCHEMA`]).
    pub fn aux_name(&self, stage: StageIndex) -> String {
        format!("aux_{}_{stage}", self.id)
    }

    /// The auxiliary table holding the output of inner stage `stage`, qualified and quoted.
    pub fn aux_table(&self, stage: StageIndex) -> String {
        format!("{PRIVATE_SCHEMA}.{}", quote_ident(&self.aux_name(stage)))
    }

    /// The state table of an algebraically maintained stage.
    pub fn state_table(&self, stage: StageIndex) -> String {
        format!(
            "{PRIVATE_SCHEMA}.{}",
            quote_ident(&format!("{}_state", self.aux_name(stage)))
        )
    }

    /// The session work table of the keys a stage's refresh recomputes (`__pgs_k<i>`, in the
    /// order of the stage's key columns).
    pub fn affected(&self, stage: StageIndex) -> String {
        format!(
            "pg_temp.{}",
            quote_ident(&format!("__pgs_aff_{}_{stage}", self.id))
        )
    }

    /// The session work table of the groups whose MIN / MAX an algebraic refresh rescans.
    pub fn rescan(&self, stage: StageIndex) -> String {
        format!(
            "pg_temp.{}",
            quote_ident(&format!("__pgs_resc_{}_{stage}", self.id))
        )
    }

    /// The session work table holding the changes a stage's refresh made (`__pgs_w` +1/-1 and
    /// its columns), read by the stages above it.
    pub fn change_set(&self, stage: StageIndex) -> String {
        format!(
            "pg_temp.{}",
            quote_ident(&format!("__pgs_chg_{}_{stage}", self.id))
        )
    }
}

/// The change rows of base table `relid` no earlier refresh of this stream table covered: not
/// visible in the snapshot it covered (`$1`), nor its own transaction's (`$2`) up to the change
/// sequence number it reached (`$3`). Written against the buffer alias `__pgs_b`. The SQL
/// side's twin is `pgstream._covered` (sql/capture.sql), held equal by an in-database test; it
/// is written out here so that a new library refreshes a database not yet updated. Its first
/// conjunct follows from the second (a transaction before the snapshot's xmin is visible in it)
/// and is there for the buffer's BRIN index on `__pgs_xid` (`xid8 >=` is leakproof, so the
/// planner uses it through the security-barrier view): a refresh reads its window, not the rows
/// a lagging reader of the same source still holds.
pub const CHANGE_WINDOW: &str =
    "__pgs_b.__pgs_xid >= pg_catalog.pg_snapshot_xmin($1::pg_catalog.pg_snapshot) \
     AND NOT pg_catalog.pg_visible_in_snapshot(__pgs_b.__pgs_xid, $1::pg_catalog.pg_snapshot) \
     AND NOT COALESCE(__pgs_b.__pgs_xid = $2::pg_catalog.xid8 \
     AND __pgs_b.__pgs_seq <= $3::pg_catalog.int8, false)";

/// The view through which refreshes read the change buffer of source `relid` (it shows the
/// rows only to roles that may read the source), qualified and quoted.
pub fn change_view(relid: u32) -> String {
    format!("pgstream.{}", quote_ident(&format!("_rows_{relid}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_source_oid() {
        assert_eq!(buffer_table(16384), "pgstream_changes.\"rows_16384\"");
        assert_eq!(change_view(16384), "pgstream.\"_rows_16384\"");
        assert_eq!(
            shard_buffer_table(16384),
            "pgstream_changes.\"shard_rows_16384\""
        );
        assert_eq!(member_statement_trigger(7), "pgstream_part_7");
        let rows: Vec<String> = member_row_triggers(7).into_iter().map(|t| t.0).collect();
        assert_eq!(
            rows,
            [
                "pgstream_part_7_ins",
                "pgstream_part_7_upd",
                "pgstream_part_7_del"
            ]
        );
    }
}
