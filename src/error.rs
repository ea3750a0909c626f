//! The extension's user-facing errors and the SQLSTATE, hint and detail each one is raised with.

use crate::modes::InvalidChoice;
use crate::names::NameError;
use crate::schedule::{ScheduleError, ACCEPTED_SCHEDULES};
use pgrx::pg_sys::panic::ErrorReport;
use pgrx::{PgLogLevel, PgSqlErrorCode};

/// Every error the engine raises on purpose; PostgreSQL's own errors pass through unchanged.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error("{0}")]
    Name(#[from] NameError),
    #[error("{0}")]
    Schedule(#[from] ScheduleError),
    #[error("{0}")]
    Choice(#[from] InvalidChoice),
    #[error("argument {argument} must not be NULL")]
    NullArgument { argument: String },
    #[error("{message}")]
    InvalidParameter { message: String, hint: String },
    #[error(
        "stream table \"{name}\" cannot be refreshed DIFFERENTIAL: its query uses {construct}"
    )]
    NotDifferential { name: String, construct: String },
    #[error("relation \"{name}\" already exists")]
    AlreadyExists { name: String },
    #[error("stream table \"{name}\" does not exist")]
    NotFound { name: String },
    #[error("relation \"{name}\" is not a stream table")]
    NotAStreamTable { name: String },
    #[error("schema \"{schema}\" does not exist")]
    SchemaNotFound { schema: String },
    #[error("no schema has been selected to create stream table \"{name}\" in")]
    NoCreationSchema { name: String },
    #[error("column name \"{column}\" is reserved for pg_stream_dbt")]
    ReservedColumn { column: String },
    #[error("stream table \"{name}\" has configuration changes and on_configuration_change is 'fail': {changes}")]
    ConfigurationChangeRefused { name: String, changes: String },
    #[error("relation \"{name}\" already exists and is not a stream table (it is a {kind})")]
    NotAStreamTableToReplace { name: String, kind: String },
    #[error("stream tables would read each other in a cycle: {cycle}")]
    Cycle { cycle: String },
    #[error("must be owner of stream table \"{name}\"")]
    NotOwner { name: String },
    #[error(
        "refresh of stream table \"{name}\" gives way: a relation its query reads stayed locked by another session for {wait_ms} ms"
    )]
    RelationLocked { name: String, wait_ms: i32 },
    #[error("query for stream table \"{name}\" is not valid: {message}")]
    InvalidQuery {
        name: String,
        message: String,
        code: PgSqlErrorCode,
    },
}

impl StreamError {
    fn sqlstate(&self) -> PgSqlErrorCode {
        use PgSqlErrorCode::*;
        match self {
            StreamError::Name(NameError::TooLong { .. }) => ERRCODE_NAME_TOO_LONG,
            StreamError::Name(_) => ERRCODE_INVALID_NAME,
            StreamError::Schedule(_)
            | StreamError::Choice(_)
            | StreamError::InvalidParameter { .. } => ERRCODE_INVALID_PARAMETER_VALUE,
            StreamError::NullArgument { .. } => ERRCODE_NULL_VALUE_NOT_ALLOWED,
            StreamError::NotDifferential { .. } => ERRCODE_FEATURE_NOT_SUPPORTED,
            StreamError::AlreadyExists { .. } => ERRCODE_DUPLICATE_TABLE,
            StreamError::NotFound { .. } => ERRCODE_UNDEFINED_TABLE,
            StreamError::NotAStreamTable { .. } => ERRCODE_WRONG_OBJECT_TYPE,
            StreamError::SchemaNotFound { .. } | StreamError::NoCreationSchema { .. } => {
                ERRCODE_INVALID_SCHEMA_NAME
            }
            StreamError::ReservedColumn { .. } => ERRCODE_INVALID_TABLE_DEFINITION,
            StreamError::NotOwner { .. } => ERRCODE_INSUFFICIENT_PRIVILEGE,
            StreamError::Cycle { .. } => ERRCODE_INVALID_OBJECT_DEFINITION,
            StreamError::ConfigurationChangeRefused { .. } => {
                ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE
            }
            StreamError::NotAStreamTableToReplace { .. } => ERRCODE_DUPLICATE_TABLE,
            StreamError::RelationLocked { .. } => ERRCODE_LOCK_NOT_AVAILABLE,
            StreamError::InvalidQuery { code, .. } => *code,
        }
    }

    fn hint(&self) -> Option<String> {
        match self {
            StreamError::Name(NameError::TooLong { .. }) => {
                Some("Use a name of at most 63 bytes.".into())
            }
            StreamError::Name(_) => Some(
                "Use name or schema.name; quote parts with spaces, capitals or symbols, e.g. \"Sales\".\"Order Totals\"."
                    .into(),
            ),
            StreamError::Schedule(_) => Some(format!("Accepted: {ACCEPTED_SCHEDULES}.")),
            StreamError::Choice(c) => Some(format!("Accepted values: {}.", c.accepted)),
            StreamError::InvalidParameter { hint, .. } => Some(hint.clone()),
            StreamError::NotDifferential { .. } => Some(
                "Use refresh_mode => 'AUTO' (DIFFERENTIAL where the query allows it, FULL otherwise) or 'FULL'."
                    .into(),
            ),
            StreamError::AlreadyExists { .. } => Some(
                "Choose another name, or drop the existing relation first.".into(),
            ),
            StreamError::NotFound { .. } => {
                Some("See pgstream.pgs_stream_tables for the existing stream tables.".into())
            }
            StreamError::NotAStreamTable { .. } => Some(
                "Only tables made by pgstream.create_stream_table() can be used here.".into(),
            ),
            StreamError::NoCreationSchema { .. } => {
                Some("Qualify the name with a schema, or set search_path.".into())
            }
            StreamError::ReservedColumn { .. } => {
                Some("Rename the column in the query; names starting with __pgs_ are reserved.".into())
            }
            StreamError::InvalidQuery {
                code:
                    PgSqlErrorCode::ERRCODE_SYNTAX_ERROR | PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
                ..
            } => {
                Some(
                    "The query must be one SELECT statement (SELECT, WITH ... SELECT, VALUES or TABLE)."
                        .into(),
                )
            }
            StreamError::ConfigurationChangeRefused { .. } => Some(
                "Set on_configuration_change to 'apply' (or 'continue'), or change the config back.".into(),
            ),
            StreamError::NotAStreamTableToReplace { .. } => Some(
                "Run with full_refresh (dbt run --full-refresh) to replace it with a stream table.".into(),
            ),
            StreamError::RelationLocked { .. } => Some(
                "A scheduled refresh does not wait for DDL (it could deadlock with it): it is tried again at the next scheduler tick.".into(),
            ),
            _ => None,
        }
    }

    /// Raises this error as a PostgreSQL ERROR; never returns.
    pub fn raise(self) -> ! {
        let mut report = ErrorReport::new(self.sqlstate(), self.to_string(), "pg_stream_dbt");
        if let Some(hint) = self.hint() {
            report = report.set_hint(hint);
        }
        report.report(PgLogLevel::ERROR);
        unreachable!("ERROR reports do not return")
    }
}

/// Raises an ERROR with SQLSTATE `code`, `message` and `hint`; never returns.
pub fn raise_with_hint(code: PgSqlErrorCode, message: String, hint: &str) -> ! {
    ErrorReport::new(code, message, "pg_stream_dbt")
        .set_hint(hint)
        .report(PgLogLevel::ERROR);
    unreachable!("ERROR reports do not return")
}

/// Unwraps a result or raises its error.
pub trait OrRaise<T> {
    fn or_raise(self) -> T;
}

impl<T, E: Into<StreamError>> OrRaise<T> for Result<T, E> {
    fn or_raise(self) -> T {
        match self {
            Ok(v) => v,
            Err(e) => e.into().raise(),
        }
    }
}
