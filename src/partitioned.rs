//! Partitioned stream tables: their `partition_by` read back from the table, the partitions the
//! engine makes, and the partitions a recreate carries over.

use crate::error::StreamError;
use crate::partitioning::PartitionSpec;
use crate::resolve;
use pgrx::prelude::*;
use pgrx::spi::{quote_identifier, quote_qualified_identifier};

/// How relation `relid` is partitioned, as a `partition_by` (`None`: not a partitioned table).
/// For HASH, the partition count is the largest modulus of its partitions.
pub fn spec_of(relid: pg_sys::Oid) -> Option<PartitionSpec> {
    let (keydef, modulus) = Spi::get_two_with_args::<String, i32>(
        "SELECT pg_catalog.pg_get_partkeydef($1), \
                (SELECT max(pg_catalog.substring(pg_catalog.lower( \
                        pg_catalog.pg_get_expr(c.relpartbound, c.oid)), \
                        '^for values with [(]modulus ([0-9]+),')::int) \
                   FROM pg_catalog.pg_inherits i JOIN pg_catalog.pg_class c ON c.oid = i.inhrelid \
                  WHERE i.inhparent = $1)",
        &[relid.into()],
    )
    .unwrap_or_else(|e| panic!("reading the partition key of relation {relid:?} failed: {e}"));
    let mut spec = PartitionSpec::parse(&keydef?).ok()?;
    if let (crate::partitioning::Strategy::Hash, Some(modulus)) = (spec.strategy, modulus) {
        spec.hash_partitions = modulus as u32;
    }
    Some(spec)
}

/// Whether a partition bound (`pg_get_expr(relpartbound)`) is one the engine makes: DEFAULT,
/// or a hash partition's. (SQL, for queries over pg_inherits joined to pg_class `c`.)
const OWN_BOUND_SQL: &str = "(pg_catalog.pg_get_expr(c.relpartbound, c.oid) = 'DEFAULT' \
     OR pg_catalog.pg_get_expr(c.relpartbound, c.oid) LIKE 'FOR VALUES WITH %')";

/// The engine's own partitions of `relid` (by their bounds, whatever they are called now), as
/// qualified names.
pub fn own_partitions_of(relid: pg_sys::Oid) -> Vec<String> {
    Spi::get_one_with_args::<Vec<String>>(
        &format!(
            "SELECT COALESCE(pg_catalog.array_agg(pg_catalog.quote_ident(n.nspname) || '.' || \
                    pg_catalog.quote_ident(c.relname) ORDER BY c.relname), '{{}}') \
               FROM pg_catalog.pg_inherits i JOIN pg_catalog.pg_class c ON c.oid = i.inhrelid \
               JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
              WHERE i.inhparent = $1 AND {OWN_BOUND_SQL}"
        ),
        &[relid.into()],
    )
    .ok()
    .flatten()
    .unwrap_or_default()
}

/// Refuses `spec` for a result without one of its columns (before anything is created).
pub fn require_result_columns(shown: &str, spec: &PartitionSpec, result_columns: &[String]) {
    for column in &spec.columns {
        if !result_columns.contains(column) {
            StreamError::InvalidParameter {
                message: format!(
                    "partition_by \"{}\" of stream table {shown} names column \"{column}\", \
                     which the query's result does not have",
                    spec.describe()
                ),
                hint: format!(
                    "Partition by columns of the result: {}.",
                    result_columns.join(", ")
                ),
            }
            .raise();
        }
    }
}

/// Makes the partitions the engine owns for partitioned stream table `schema.table`.
pub fn create_own_partitions(schema: &str, table: &str, spec: &PartitionSpec) {
    let parent = quote_qualified_identifier(schema, table);
    for partition in spec.own_partitions(table) {
        if resolve::relation_oid(schema, &partition.name).is_some() {
            StreamError::AlreadyExists {
                name: crate::catalog::display_name(schema, &partition.name),
            }
            .raise();
        }
        create_partition(schema, &partition.name, &parent, &partition.bound);
    }
}

fn create_partition(schema: &str, name: &str, parent: &str, bound: &str) {
    let statement = format!(
        "CREATE TABLE {} PARTITION OF {parent} {bound}",
        quote_qualified_identifier(schema, name)
    );
    Spi::run(&statement).unwrap_or_else(|e| panic!("creating partition {name} failed: {e}"));
}

/// Gives `root` and every table in its partition (or inheritance) tree the owner of `model`
/// (ALTER TABLE ... OWNER TO does not recurse to partitions).
pub fn give_owner_of(model: pg_sys::Oid, root: pg_sys::Oid) {
    let statements = Spi::get_one_with_args::<Vec<String>>(
        "WITH RECURSIVE tree(oid) AS (SELECT $2::pg_catalog.oid UNION ALL \
             SELECT i.inhrelid FROM pg_catalog.pg_inherits i JOIN tree t ON i.inhparent = t.oid) \
         SELECT COALESCE(pg_catalog.array_agg(pg_catalog.format('ALTER TABLE %s OWNER TO %I', n.oid::pg_catalog.regclass, \
                                          pg_catalog.pg_get_userbyid(o.relowner))), '{}') \
         FROM tree JOIN pg_catalog.pg_class n ON n.oid = tree.oid, pg_catalog.pg_class o \
         WHERE o.oid = $1 AND o.relowner <> n.relowner",
        &[model.into(), root.into()],
    )
    .unwrap_or_else(|e| panic!("reading the owners of a partition tree failed: {e}"))
    .unwrap_or_default();
    for statement in statements {
        Spi::run(&statement).unwrap_or_else(|e| panic!("{statement} failed: {e}"));
    }
}

/// A partition of an existing stream table that is not one the engine makes: its schema, name
/// and bound (`FOR VALUES ...`).
pub struct UserPartition {
    pub schema: String,
    pub name: String,
    pub bound: String,
}

/// The partitions of `relid` other than the engine's own (the ones users added), in name order.
pub fn user_partitions(relid: pg_sys::Oid) -> Vec<UserPartition> {
    Spi::connect(|client| {
        client
            .select(
                &format!(
                    "SELECT n.nspname::text, c.relname::text, \
                            pg_catalog.pg_get_expr(c.relpartbound, c.oid) \
                       FROM pg_catalog.pg_inherits i \
                       JOIN pg_catalog.pg_class c ON c.oid = i.inhrelid \
                       JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
                      WHERE i.inhparent = $1 AND NOT {OWN_BOUND_SQL} ORDER BY 2"
                ),
                None,
                &[relid.into()],
            )
            .map(|rows| {
                rows.filter_map(|r| {
                    Some(UserPartition {
                        schema: r.get::<String>(1).ok()??,
                        name: r.get::<String>(2).ok()??,
                        bound: r.get::<String>(3).ok()??,
                    })
                })
                .collect()
            })
    })
    .unwrap_or_else(|e| panic!("reading partitions of relation {relid:?} failed: {e}"))
}

/// Gives the new partitioned stream table `schema.parent` a partition like each of `carried`
/// (in the carried partition's schema, under a temporary name, as the old ones still hold
/// theirs); returns (schema, temporary, final) names for [`rename_carried`] once the old table
/// is gone.
pub fn carry_partitions(
    schema: &str,
    parent: &str,
    carried: &[UserPartition],
) -> Vec<(String, String, String)> {
    let parent = quote_qualified_identifier(schema, parent);
    carried
        .iter()
        .enumerate()
        .map(|(n, partition)| {
            let temporary =
                crate::names::with_suffix(&format!("__pgs_part_{n}_{}", partition.name), "");
            create_partition(&partition.schema, &temporary, &parent, &partition.bound);
            (partition.schema.clone(), temporary, partition.name.clone())
        })
        .collect()
}

/// Renames partitions from the temporary names [`carry_partitions`] gave to their final ones.
pub fn rename_carried(renames: &[(String, String, String)]) {
    for (schema, from, to) in renames {
        let statement = format!(
            "ALTER TABLE {} RENAME TO {}",
            quote_qualified_identifier(schema, from),
            quote_identifier(to)
        );
        Spi::run(&statement).unwrap_or_else(|e| panic!("renaming partition {from} failed: {e}"));
    }
}

/// A bound value as SQL: a quoted literal (cast by PostgreSQL to the partition column's type),
/// NULL for a missing one (a LIST partition may take NULL), and in a RANGE bound MINVALUE /
/// MAXVALUE as keywords (in a LIST they are values like any other).
fn bound_value(value: Option<&str>, range: bool) -> String {
    match value {
        None => "NULL".into(),
        Some(value)
            if range
                && ["MINVALUE", "MAXVALUE"]
                    .iter()
                    .any(|k| value.trim().eq_ignore_ascii_case(k)) =>
        {
            value.trim().to_ascii_uppercase()
        }
        // PostgreSQL's own quoting (E'' with doubled backslashes where needed): a literal
        // whatever standard_conforming_strings says.
        Some(value) => pgrx::spi::quote_literal(value),
    }
}

/// The `FOR VALUES` clause of a new RANGE or LIST partition from its values.
pub fn bound_clause(
    shown: &str,
    spec: &PartitionSpec,
    in_values: Option<&[Option<String>]>,
    from_values: Option<&[Option<String>]>,
    to_values: Option<&[Option<String>]>,
) -> String {
    use crate::partitioning::Strategy;
    let range = spec.strategy == Strategy::Range;
    let list = |values: &[Option<String>]| {
        values
            .iter()
            .map(|v| bound_value(v.as_deref(), range))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let refuse = |message: String| -> ! {
        StreamError::InvalidParameter {
            message,
            hint: format!(
                "{shown} is partitioned by {}: give {}.",
                spec.describe(),
                match spec.strategy {
                    Strategy::List => "in_values (the list values of the new partition, NULL allowed)",
                    Strategy::Range =>
                        "from_values and to_values (one value, MINVALUE or MAXVALUE per partition column each)",
                    Strategy::Hash => "nothing: its hash partitions cover every row",
                }
            ),
        }
        .raise()
    };
    let has_null =
        |values: Option<&[Option<String>]>| values.is_some_and(|v| v.iter().any(Option::is_none));
    match (spec.strategy, in_values, from_values, to_values) {
        (Strategy::List, Some(values), None, None) if !values.is_empty() => {
            format!("FOR VALUES IN ({})", list(values))
        }
        (Strategy::Range, None, from, to) if has_null(from) || has_null(to) => refuse(format!(
            "a range bound of a new partition of stream table {shown} is NULL"
        )),
        (Strategy::Range, None, Some(from), Some(to))
            if from.len() == spec.columns.len() && to.len() == spec.columns.len() =>
        {
            format!("FOR VALUES FROM ({}) TO ({})", list(from), list(to))
        }
        (Strategy::Hash, ..) => refuse(format!(
            "stream table {shown} is HASH partitioned; partitions cannot be added to it"
        )),
        _ => refuse(format!(
            "the bound of a new partition of stream table {shown} does not match its partitioning"
        )),
    }
}

/// Adds partition `schema.name` with `bound` to partitioned stream table `table` (whose refresh
/// lock the caller holds), moving the rows it takes from the engine's DEFAULT partition:
/// PostgreSQL refuses a partition whose rows sit in the default one. Returns the rows moved.
pub fn add_partition(
    table: &crate::catalog::StreamTable,
    schema: &str,
    name: &str,
    bound: &str,
) -> i64 {
    let parent = table.qualified();
    let run = |statement: &str| {
        Spi::run(statement).unwrap_or_else(|e| {
            panic!(
                "adding partition {name} to {} failed: {e}",
                table.display_name()
            )
        })
    };
    let default = Spi::get_one_with_args::<String>(
        "SELECT pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(c.relname) \
           FROM pg_catalog.pg_inherits i JOIN pg_catalog.pg_class c ON c.oid = i.inhrelid \
           JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
          WHERE i.inhparent = $1 AND pg_catalog.pg_get_expr(c.relpartbound, c.oid) = 'DEFAULT'",
        &[table.relid.into()],
    )
    .ok()
    .flatten();
    // Owned like the stream table whoever adds it (a member of its owning role may): its
    // refreshes, later add_partition calls and recreates detach, attach and drop it as that owner.
    let create = || {
        create_partition(schema, name, &parent, bound);
        let partition = resolve::relation_oid(schema, name).expect("the new partition exists");
        give_owner_of(table.relid, partition);
    };
    let Some(default) = default else {
        create();
        return 0;
    };
    let partition = quote_qualified_identifier(schema, name);
    run(&format!("ALTER TABLE {parent} DETACH PARTITION {default}"));
    create();
    let constraint = Spi::get_one_with_args::<String>(
        "SELECT pg_catalog.pg_get_partition_constraintdef($1::pg_catalog.regclass)",
        &[partition.as_str().into()],
    )
    .ok()
    .flatten()
    .expect("a partition of a partitioned table has a partition constraint");
    let columns = Spi::get_one_with_args::<String>(
        "SELECT string_agg(pg_catalog.quote_ident(attname), ', ' ORDER BY attnum) \
           FROM pg_catalog.pg_attribute WHERE attrelid = $1 AND attnum > 0 AND NOT attisdropped",
        &[table.relid.into()],
    )
    .ok()
    .flatten()
    .unwrap_or_default();
    let moved = Spi::connect_mut(|client| {
        client
            .update(
                &format!(
                    "WITH moved AS (DELETE FROM {default} WHERE {constraint} RETURNING {columns}) \
                     INSERT INTO {partition} ({columns}) SELECT {columns} FROM moved"
                ),
                None,
                &[],
            )
            .map(|t| t.len() as i64)
    })
    .unwrap_or_else(|e| panic!("moving rows into partition {name} failed: {e}"));
    run(&format!(
        "ALTER TABLE {parent} ATTACH PARTITION {default} DEFAULT"
    ));
    moved
}
