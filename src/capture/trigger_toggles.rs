//! What an ALTER TABLE collected by an event trigger did that capture must know: whether it
//! enabled or disabled triggers (writes made meanwhile were not captured), and which tables it
//! attached to or detached from a partition tree (their rows joined or left it).

use pgrx::pg_sys;
use pgrx::prelude::*;
use std::ffi::CStr;

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
    let toggles = alter_table_subcommands(&args[0]).into_iter().any(|sub| {
        let tree = (*sub).parsetree;
        !tree.is_null()
            && (*tree).type_ == pg_sys::NodeTag::T_AlterTableCmd
            && toggles_triggers((*(tree as *mut pg_sys::AlterTableCmd)).subtype)
    });
    pg_sys::Datum::from(toggles)
}

/// The subcommands of a collected ALTER TABLE (empty for any other command).
unsafe fn alter_table_subcommands(
    datum: &pg_sys::NullableDatum,
) -> Vec<*mut pg_sys::CollectedATSubcmd> {
    if datum.isnull {
        return Vec::new();
    }
    let command = datum.value.cast_mut_ptr::<pg_sys::CollectedCommand>();
    if command.is_null() || (*command).type_ != pg_sys::CollectedCommandType::SCT_AlterTable {
        return Vec::new();
    }
    pgrx::PgList::<pg_sys::CollectedATSubcmd>::from_pg((*command).d.alterTable.subcmds)
        .iter_ptr()
        .collect()
}

/// `pgstream._partitions_moved(pg_ddl_command, kind text)`: the names (unqualified) of the
/// tables a collected ALTER TABLE attached (`kind` 'attach'), detached ('detach') or detached
/// concurrently or finalized ('detach concurrently': the rows left other sessions' view in an
/// earlier transaction).
#[pg_guard]
#[no_mangle]
pub unsafe extern "C-unwind" fn pgstream_partitions_moved(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    use pg_sys::AlterTableType as At;
    let args = (*fcinfo).args.as_slice(2);
    let kind = if args[1].isnull {
        String::new()
    } else {
        String::from_datum(args[1].value, false).unwrap_or_default()
    };
    let mut moved: Vec<String> = Vec::new();
    for sub in alter_table_subcommands(&args[0]) {
        let tree = (*sub).parsetree;
        if tree.is_null() || (*tree).type_ != pg_sys::NodeTag::T_AlterTableCmd {
            continue;
        }
        let cmd = &*(tree as *mut pg_sys::AlterTableCmd);
        let concurrent = cmd.subtype == At::AT_DetachPartitionFinalize
            || (!cmd.def.is_null()
                && (*cmd.def).type_ == pg_sys::NodeTag::T_PartitionCmd
                && (*(cmd.def as *mut pg_sys::PartitionCmd)).concurrent);
        let wanted = match kind.as_str() {
            "attach" => cmd.subtype == At::AT_AttachPartition,
            "detach" => cmd.subtype == At::AT_DetachPartition && !concurrent,
            "detach concurrently" => {
                (cmd.subtype == At::AT_DetachPartition && concurrent)
                    || cmd.subtype == At::AT_DetachPartitionFinalize
            }
            _ => false,
        };
        // (The subcommand's object address is not set for these on PostgreSQL 15; its RangeVar
        // names the table as written, resolved by the caller among the tables this
        // transaction changed: this function runs under the event trigger's search_path.)
        if wanted && !cmd.def.is_null() && (*cmd.def).type_ == pg_sys::NodeTag::T_PartitionCmd {
            let name = (*(cmd.def as *mut pg_sys::PartitionCmd)).name;
            if !name.is_null() && !(*name).relname.is_null() {
                moved.push(
                    CStr::from_ptr((*name).relname)
                        .to_string_lossy()
                        .into_owned(),
                );
            }
        }
    }
    moved.into_datum().expect("an array datum is never NULL")
}

/// The V1 calling-convention record of [`pgstream_partitions_moved`].
#[no_mangle]
pub extern "C" fn pg_finfo_pgstream_partitions_moved() -> &'static pg_sys::Pg_finfo_record {
    const V1: pg_sys::Pg_finfo_record = pg_sys::Pg_finfo_record { api_version: 1 };
    &V1
}

/// The V1 calling-convention record of [`pgstream_toggles_triggers`].
#[no_mangle]
pub extern "C" fn pg_finfo_pgstream_toggles_triggers() -> &'static pg_sys::Pg_finfo_record {
    const V1: pg_sys::Pg_finfo_record = pg_sys::Pg_finfo_record { api_version: 1 };
    &V1
}

/// `pgstream._changed_in_this_transaction(relation)`: whether the catalog row of `relation` was
/// written by this transaction or one of its subtransactions (ATTACH and DETACH PARTITION
/// rewrite the row of the table they move).
#[pg_extern(volatile, schema = "pgstream", name = "_changed_in_this_transaction")]
fn changed_in_this_transaction(relation: pg_sys::Oid) -> bool {
    unsafe {
        let tuple = pg_sys::SearchSysCache1(
            pg_sys::SysCacheIdentifier::RELOID as i32,
            pg_sys::Datum::from(relation),
        );
        if tuple.is_null() {
            return false;
        }
        let xmin = pg_sys::HeapTupleHeaderGetXmin((*tuple).t_data);
        pg_sys::ReleaseSysCache(tuple);
        pg_sys::TransactionIdIsCurrentTransactionId(xmin)
    }
}
