//! The SQL-callable functions (`#[pg_extern]`): thin, validate input, call the engine.

mod materialize;
mod schedules;
mod stream_tables;

use crate::error::StreamError;

/// The value of a required argument, or an error naming it when it is NULL.
pub(crate) fn required<T>(value: Option<T>, argument: &str) -> T {
    value.unwrap_or_else(|| {
        StreamError::NullArgument {
            argument: argument.to_string(),
        }
        .raise()
    })
}
