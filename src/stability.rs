//! What can make a query's result change without any source row changing: the first function
//! or value in its analyzed tree that is neither IMMUTABLE nor a built-in STABLE function that
//! depends only on its arguments and the settings a stream table pins (query_settings).

use crate::query_settings::stable_builtin_reads_more;
use pgrx::pg_sys;
use std::ffi::{c_void, CStr};

struct Walk {
    /// What was found (a function, a value), for messages.
    found: Option<String>,
}

/// What in the stored query of view `view` can change by itself, if anything.
pub fn changing_part_of_view(view: pg_sys::Oid) -> Option<String> {
    unsafe {
        let relation = pg_sys::relation_open(view, pg_sys::AccessShareLock as _);
        let query = pg_sys::get_view_query(relation);
        let mut walk = Walk { found: None };
        walker(query.cast(), (&mut walk as *mut Walk).cast());
        pg_sys::relation_close(relation, pg_sys::AccessShareLock as _);
        walk.found
    }
}

#[pgrx::pg_guard]
unsafe extern "C-unwind" fn walker(node: *mut pg_sys::Node, context: *mut c_void) -> bool {
    if node.is_null() {
        return false;
    }
    let walk = &mut *(context as *mut Walk);
    match (*node).type_ {
        pg_sys::NodeTag::T_Query => {
            return pg_sys::query_tree_walker(node.cast(), Some(walker), context, 0);
        }
        pg_sys::NodeTag::T_SQLValueFunction => {
            let value = &*(node as *mut pg_sys::SQLValueFunction);
            walk.found = Some(sql_value_function_name(value.op).to_string());
            return true;
        }
        pg_sys::NodeTag::T_NextValueExpr => {
            walk.found = Some("nextval()".into());
            return true;
        }
        _ => {}
    }
    if pg_sys::check_functions_in_node(node, Some(function_changes), context) {
        return true;
    }
    pg_sys::expression_tree_walker(node, Some(walker), context)
}

/// Whether function `funcid` can return something else for the same arguments and settings.
#[pgrx::pg_guard]
unsafe extern "C-unwind" fn function_changes(funcid: pg_sys::Oid, context: *mut c_void) -> bool {
    let walk = &mut *(context as *mut Walk);
    let volatility = pg_sys::func_volatile(funcid) as u8;
    if volatility == pg_sys::PROVOLATILE_IMMUTABLE {
        return false;
    }
    let name_ptr = pg_sys::get_func_name(funcid);
    let name = if name_ptr.is_null() {
        format!("function {}", funcid.to_u32())
    } else {
        CStr::from_ptr(name_ptr).to_string_lossy().into_owned()
    };
    let built_in = funcid.to_u32() < pg_sys::FirstNormalObjectId;
    let nargs = pg_sys::get_func_nargs(funcid).max(0) as usize;
    let changes = volatility != pg_sys::PROVOLATILE_STABLE
        || !built_in
        || stable_builtin_reads_more(&name, nargs);
    if changes {
        let kind = match (volatility, built_in) {
            (pg_sys::PROVOLATILE_VOLATILE, _) => "volatile",
            (_, false) => "a STABLE function that is not built in (it may read tables)",
            _ => "it reads the clock, the catalogs or the session",
        };
        walk.found = Some(format!("{name}() ({kind})"));
    }
    changes
}

fn sql_value_function_name(op: pg_sys::SQLValueFunctionOp::Type) -> &'static str {
    use pg_sys::SQLValueFunctionOp::*;
    match op {
        SVFOP_CURRENT_DATE => "CURRENT_DATE",
        SVFOP_CURRENT_TIME | SVFOP_CURRENT_TIME_N => "CURRENT_TIME",
        SVFOP_CURRENT_TIMESTAMP | SVFOP_CURRENT_TIMESTAMP_N => "CURRENT_TIMESTAMP",
        SVFOP_LOCALTIME | SVFOP_LOCALTIME_N => "LOCALTIME",
        SVFOP_LOCALTIMESTAMP | SVFOP_LOCALTIMESTAMP_N => "LOCALTIMESTAMP",
        SVFOP_CURRENT_ROLE => "CURRENT_ROLE",
        SVFOP_CURRENT_USER => "CURRENT_USER",
        SVFOP_USER => "USER",
        SVFOP_SESSION_USER => "SESSION_USER",
        SVFOP_CURRENT_CATALOG => "CURRENT_CATALOG",
        _ => "CURRENT_SCHEMA",
    }
}
