//! Running code with settings (GUCs) or a user identity changed for its span only, restored
//! afterwards, the way a function's SET clause and REFRESH MATERIALIZED VIEW do it.

use pgrx::pg_sys;
use std::ffi::{CStr, CString};

/// Runs `body` with each `(name, value)` setting in force, restoring the previous values after.
/// If `body` raises, the (sub)transaction abort restores them.
pub fn with_settings<R>(settings: &[(&CStr, &str)], body: impl FnOnce() -> R) -> R {
    let nest_level = unsafe { pg_sys::NewGUCNestLevel() };
    for (name, value) in settings {
        let value = CString::new(*value).expect("setting values have no NUL byte");
        unsafe {
            pg_sys::set_config_option(
                name.as_ptr(),
                value.as_ptr(),
                pg_sys::GucContext::PGC_USERSET,
                pg_sys::GucSource::PGC_S_SESSION,
                pg_sys::GucAction::GUC_ACTION_SAVE,
                true,
                0,
                false,
            );
        }
    }
    let result = body();
    unsafe { pg_sys::AtEOXact_GUC(true, nest_level) };
    result
}

/// Security-context flags for [`as_user`].
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Restriction {
    /// Like SECURITY DEFINER: the user's privileges.
    None,
    /// As REFRESH MATERIALIZED VIEW runs a view's query: also no SET, no temporary objects,
    /// no prepared statements, so the code run cannot leave anything behind in the session.
    RestrictedOperation,
}

/// Runs `body` as `user`, restoring the current user and security context afterwards. If
/// `body` raises, the (sub)transaction abort that follows restores them.
pub fn as_user<R>(user: pg_sys::Oid, restriction: Restriction, body: impl FnOnce() -> R) -> R {
    let mut saved_user = pg_sys::InvalidOid;
    let mut saved_context = 0;
    unsafe {
        pg_sys::GetUserIdAndSecContext(&mut saved_user, &mut saved_context);
        let mut context = saved_context | pg_sys::SECURITY_LOCAL_USERID_CHANGE as i32;
        if restriction == Restriction::RestrictedOperation {
            context |= pg_sys::SECURITY_RESTRICTED_OPERATION as i32;
        }
        pg_sys::SetUserIdAndSecContext(user, context);
    }
    let result = body();
    unsafe { pg_sys::SetUserIdAndSecContext(saved_user, saved_context) };
    result
}

/// The values of the settings a stream table pins ([`crate::query_settings::PINNED`]) in this
/// session, as `name=value`.
pub fn pinned_now() -> Vec<String> {
    let values: Vec<(String, String)> = crate::query_settings::PINNED
        .iter()
        .map(|name| {
            let value = pgrx::Spi::get_one_with_args::<String>(
                "SELECT pg_catalog.current_setting($1)",
                &[(*name).into()],
            )
            .ok()
            .flatten()
            .unwrap_or_default();
            (name.to_string(), value)
        })
        .collect();
    crate::query_settings::encode(&values)
}
