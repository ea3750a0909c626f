//! Names of the change-capture objects a source gets (buffer, reading view, triggers) and the
//! advisory-lock keys that serialize their set-up: the naming contract of capture.

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

/// The view through which refreshes read the buffer of source `relid` (it shows the rows only
/// to roles that may read the source), qualified and quoted.
pub fn reader_view(relid: u32) -> String {
    format!("pgstream.\"_rows_{relid}\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_source_oid() {
        assert_eq!(buffer_table(16384), "pgstream_changes.\"rows_16384\"");
        assert_eq!(reader_view(16384), "pgstream.\"_rows_16384\"");
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
