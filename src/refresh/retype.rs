//! A stream table's columns follow its query's types after DDL changed them (a widened
//! varchar, a numeric given another scale): emptied and retyped before it is recomputed.

use super::plan_catalog::describe_columns;
use crate::catalog::StreamTable;
use crate::sql_text::quote_ident;
use pgrx::prelude::*;

/// Retypes the columns of `table` whose type differs from what its query now returns (run as
/// its owner, before a FULL refresh recomputes every row); returns whether it did.
pub fn follow_query_types(table: &StreamTable) -> bool {
    let Some(wanted) = describe_columns(&table.defining_query) else {
        return false;
    };
    let Some(kept) = describe_columns(&format!("SELECT * FROM {}", table.qualified())) else {
        return false;
    };
    let changes: Vec<String> = wanted
        .iter()
        .filter(|(name, wanted_type)| {
            kept.iter()
                .any(|(kept_name, kept_type)| kept_name == name && kept_type != wanted_type)
        })
        .map(|(name, wanted_type)| {
            format!(
                "ALTER COLUMN {} TYPE {wanted_type} USING NULL",
                quote_ident(name)
            )
        })
        .collect();
    if changes.is_empty() {
        return false;
    }
    let qualified = table.qualified();
    crate::capture::setup::as_engine_ddl(|| {
        for sql in [
            format!("TRUNCATE {qualified}"),
            format!("ALTER TABLE {qualified} {}", changes.join(", ")),
        ] {
            Spi::run(&sql).unwrap_or_else(|e| {
                panic!(
                    "retyping the columns of {} failed: {e}\n{sql}",
                    table.display_name()
                )
            });
        }
    });
    // Done as the engine's own DDL (no DDL record of its own), yet stream tables reading this
    // one must analyze theirs again (their column types follow in turn): recorded for them.
    crate::catalog::record_ddl("ALTER TABLE");
    pgrx::log!(
        "pg_stream_dbt: the column types of {}'s query changed; its columns follow ({})",
        table.display_name(),
        changes.join(", ")
    );
    true
}
