//! Whether a DDL command collected by an event trigger enabled or disabled triggers
//! (ALTER TABLE ... ENABLE / DISABLE TRIGGER): writes made meanwhile were not captured.

use pgrx::pg_sys;
use pgrx::prelude::*;

/// The ALTER TABLE subcommands that turn triggers on or off.
fn toggles_triggers(subtype: pg_sys::AlterTableType::Type) -> bool {
    use pg_sys::AlterTableType as At;
    [
        At::AT_EnableTrig,
        At::AT_EnableAlwaysTrig,
        At::AT_EnableReplicaTrig,
        At::AT_DisableTrig,
        At::AT_EnableTrigAll,
        At::AT_DisableTrigAll,
        At::AT_EnableTrigUser,
        At::AT_DisableTrigUser,
    ]
    .contains(&subtype)
}

/// `pgstream._toggles_triggers(pg_ddl_command)`: whether a command of
/// `pg_event_trigger_ddl_commands()` is an ALTER TABLE that enables or disables triggers.
#[pg_guard]
#[no_mangle]
pub unsafe extern "C-unwind" fn pgstream_toggles_triggers(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    let args = (*fcinfo).args.as_slice(1);
    if args[0].isnull {
        return pg_sys::Datum::from(false);
    }
    // A pg_ddl_command is a pointer to the event trigger's CollectedCommand.
    let command = args[0].value.cast_mut_ptr::<pg_sys::CollectedCommand>();
    if command.is_null() || (*command).type_ != pg_sys::CollectedCommandType::SCT_AlterTable {
        return pg_sys::Datum::from(false);
    }
    let subcommands =
        pgrx::PgList::<pg_sys::CollectedATSubcmd>::from_pg((*command).d.alterTable.subcmds);
    let toggles = subcommands.iter_ptr().any(|sub| {
        let tree = (*sub).parsetree;
        !tree.is_null()
            && (*tree).type_ == pg_sys::NodeTag::T_AlterTableCmd
            && toggles_triggers((*(tree as *mut pg_sys::AlterTableCmd)).subtype)
    });
    pg_sys::Datum::from(toggles)
}

/// The V1 calling-convention record of [`pgstream_toggles_triggers`].
#[no_mangle]
pub extern "C" fn pg_finfo_pgstream_toggles_triggers() -> &'static pg_sys::Pg_finfo_record {
    const V1: pg_sys::Pg_finfo_record = pg_sys::Pg_finfo_record { api_version: 1 };
    &V1
}
