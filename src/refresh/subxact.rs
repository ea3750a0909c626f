//! Running a closure in an internal subtransaction, so an error can be caught and the
//! transaction stays usable (what a PL/pgSQL EXCEPTION block does).

use pgrx::pg_sys::panic::CaughtError;
use pgrx::prelude::*;

/// Runs `body` in a subtransaction: committed into the surrounding transaction on success,
/// rolled back (and the error returned) on failure.
pub fn in_subtransaction<R>(
    body: impl FnOnce() -> R + std::panic::UnwindSafe,
) -> Result<R, Box<CaughtError>> {
    let (memory_context, resource_owner) =
        unsafe { (pg_sys::CurrentMemoryContext, pg_sys::CurrentResourceOwner) };
    unsafe {
        pg_sys::BeginInternalSubTransaction(std::ptr::null());
        pg_sys::MemoryContextSwitchTo(memory_context);
    }
    let result = PgTryBuilder::new(move || Ok(body()))
        .catch_others(|caught| Err(Box::new(caught)))
        .execute();
    unsafe {
        if result.is_ok() {
            pg_sys::ReleaseCurrentSubTransaction();
        } else {
            pg_sys::RollbackAndReleaseCurrentSubTransaction();
        }
        pg_sys::MemoryContextSwitchTo(memory_context);
        pg_sys::CurrentResourceOwner = resource_owner;
    }
    result
}

/// The message of a caught error, for the catalog.
pub fn error_message(caught: &CaughtError) -> String {
    match caught {
        CaughtError::PostgresError(e) | CaughtError::ErrorReport(e) => e.message().to_string(),
        CaughtError::RustPanic { ereport, .. } => ereport.message().to_string(),
    }
}

/// Whether a caught error says that a relation does not exist (SQLSTATE 42P01): a source dropped,
/// often for a moment only (a deployment re-creating views).
pub fn missing_relation(caught: &CaughtError) -> bool {
    let code = match caught {
        CaughtError::PostgresError(e) | CaughtError::ErrorReport(e) => e.sql_error_code(),
        CaughtError::RustPanic { ereport, .. } => ereport.sql_error_code(),
    };
    code == PgSqlErrorCode::ERRCODE_UNDEFINED_TABLE
}
