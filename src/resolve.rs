//! Resolving user-given names to schemas, relations and stream tables, as PostgreSQL would.

use crate::catalog::{self, display_name, StreamTable};
use crate::error::{OrRaise, StreamError};
use crate::names::ObjectName;
use pgrx::prelude::*;

/// Where a new stream table named `text` goes: (schema, name). Refuses a name that is taken.
pub fn creation_target(text: &str) -> (String, String) {
    let parsed = ObjectName::parse(text).or_raise();
    let schema = creation_schema(&parsed);
    if relation_oid(&schema, &parsed.name).is_some() {
        StreamError::AlreadyExists {
            name: display_name(&schema, &parsed.name),
        }
        .raise();
    }
    (schema, parsed.name)
}

/// The schema a new relation named `parsed` goes to, as PostgreSQL decides for CREATE TABLE:
/// the schema given (which must exist), else the first existing schema of search_path.
pub fn creation_schema(parsed: &ObjectName) -> String {
    match &parsed.schema {
        Some(schema) => {
            let exists = Spi::get_one_with_args::<bool>(
                "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = $1)",
                &[schema.as_str().into()],
            )
            .ok()
            .flatten()
            .unwrap_or(false);
            if !exists {
                StreamError::SchemaNotFound {
                    schema: schema.clone(),
                }
                .raise();
            }
            schema.clone()
        }
        None => Spi::get_one::<String>("SELECT pg_catalog.current_schema()::text")
            .ok()
            .flatten()
            .unwrap_or_else(|| {
                StreamError::NoCreationSchema {
                    name: parsed.name.clone(),
                }
                .raise()
            }),
    }
}

/// The oid of relation `schema.name`, if it exists.
pub fn relation_oid(schema: &str, name: &str) -> Option<pg_sys::Oid> {
    crate::kept_plans::one::<pg_sys::Oid>(
        "SELECT c.oid FROM pg_catalog.pg_class c \
         JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = $1 AND c.relname = $2",
        &[schema.into(), name.into()],
    )
    .ok()
    .flatten()
}

/// The existing stream table named `text` (qualified, or found through search_path).
pub fn existing_stream_table(text: &str) -> StreamTable {
    let parsed = ObjectName::parse(text).or_raise();
    let relid = match &parsed.schema {
        Some(schema) => relation_oid(schema, &parsed.name),
        None => crate::kept_plans::one::<pg_sys::Oid>(
            "SELECT pg_catalog.to_regclass($1)::oid",
            &[pgrx::spi::quote_identifier(&parsed.name).as_str().into()],
        )
        .ok()
        .flatten(),
    };
    let shown = match &parsed.schema {
        Some(schema) => display_name(schema, &parsed.name),
        None => pgrx::spi::quote_identifier(&parsed.name),
    };
    let Some(relid) = relid else {
        StreamError::NotFound { name: shown }.raise()
    };
    find_stream_table(relid).unwrap_or_else(|| StreamError::NotAStreamTable { name: shown }.raise())
}

/// The stream table on relation `relid`, adopting a restored catalog first when it has none
/// (a restored dump's catalog names its tables by the oids they had where it was dumped).
pub fn find_stream_table(relid: pg_sys::Oid) -> Option<StreamTable> {
    catalog::find_by_relid(relid).or_else(|| {
        catalog::adopt_restored_rows();
        catalog::find_by_relid(relid)
    })
}

/// Raises unless the current user owns (or is a member of the role owning) the stream table;
/// returns the owning role.
pub fn require_owner(table: &StreamTable) -> pg_sys::Oid {
    let (owner, is_member) = crate::kept_plans::query(
        "SELECT c.relowner, pg_catalog.pg_has_role(c.relowner, 'MEMBER') \
         FROM pg_catalog.pg_class c WHERE c.oid = $1",
        &[table.relid.into()],
        |rows| match rows.into_iter().next() {
            Some(row) => Ok((row.get::<pg_sys::Oid>(1)?, row.get::<bool>(2)?)),
            None => Ok((None, None)),
        },
    )
    .unwrap_or((None, None));
    let Some(owner) = owner else {
        StreamError::NotFound {
            name: table.display_name(),
        }
        .raise()
    };
    if is_member != Some(true) {
        StreamError::NotOwner {
            name: table.display_name(),
        }
        .raise();
    }
    owner
}
