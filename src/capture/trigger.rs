//! The row-capture trigger, in Rust: records each data-changing statement on a source and
//! appends the rows of its transition tables to the source's change buffer with one prepared
//! INSERT (plans kept per backend, keyed by the shapes of the source and the buffer).

use super::citus;
use super::objects::{
    buffer_name, buffer_table, BUFFER_HEADER, CHANGE_SEQUENCE, NEW_ROWS, OLD_ROWS, PRIVATE_SCHEMA,
};
use crate::sql_text::quote_ident;
use pgrx::pg_sys;
use pgrx::prelude::*;
use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::{CStr, CString};
use std::ptr::NonNull;

/// What a trigger call captures.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub(super) enum Event {
    Insert,
    Update,
    Delete,
}

impl Event {
    fn tag(self) -> &'static str {
        match self {
            Event::Insert => "INSERT",
            Event::Update => "UPDATE",
            Event::Delete => "DELETE",
        }
    }
}

/// A plan kept for the life of the backend (SPI_keepplan): it lives in PostgreSQL's cache memory,
/// is re-planned by PostgreSQL when the tables it names change, and is never freed (a handful per
/// source and backend).
#[derive(Clone, Copy)]
struct KeptPlan(NonNull<pg_sys::_SPI_plan>);

/// The append statement of one (event, buffer, shapes of source and buffer).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct AppendKey {
    event: Event,
    buffer: u32,
    shape: u64,
}

thread_local! {
    static RECORD_STATEMENT: RefCell<Option<KeptPlan>> = const { RefCell::new(None) };
    static APPEND: RefCell<HashMap<AppendKey, KeptPlan>> = RefCell::new(HashMap::new());
}

/// Prepares and keeps `sql` (inside an SPI connection; transition tables registered).
fn keep(sql: &str, argtypes: &mut [pg_sys::Oid]) -> KeptPlan {
    let text = CString::new(sql).expect("generated SQL has no NUL byte");
    unsafe {
        let plan = pg_sys::SPI_prepare(text.as_ptr(), argtypes.len() as i32, argtypes.as_mut_ptr());
        let Some(plan) = NonNull::new(plan) else {
            error!(
                "pg_stream_dbt: preparing the change capture statement failed (SPI code {}): {sql}",
                std::ptr::addr_of!(pg_sys::SPI_result).read()
            )
        };
        pg_sys::SPI_keepplan(plan.as_ptr());
        KeptPlan(plan)
    }
}

fn execute(plan: KeptPlan, values: &mut [pg_sys::Datum]) {
    let mut nulls = vec![b' ' as std::ffi::c_char; values.len()];
    let code = unsafe {
        pg_sys::SPI_execute_plan(
            plan.0.as_ptr(),
            values.as_mut_ptr(),
            nulls.as_mut_ptr(),
            false,
            0,
        )
    };
    if code < 0 {
        error!("pg_stream_dbt: change capture statement failed (SPI code {code})");
    }
}

/// FNV-1a over the bytes fed to it: a stable fingerprint of table shapes.
struct Fingerprint(u64);

impl Fingerprint {
    fn new() -> Self {
        Fingerprint(0xcbf2_9ce4_8422_2325)
    }
    fn feed(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 = (self.0 ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// One live column of a tuple descriptor: name, type, typmod.
pub(super) struct Column {
    pub name: String,
    pub type_oid: pg_sys::Oid,
    pub typmod: i32,
}

/// The live columns of `desc` from attribute number `first` (1-based) on.
pub(super) unsafe fn columns(desc: pg_sys::TupleDesc, first: usize) -> Vec<Column> {
    // Borrowed, not freed: the descriptor belongs to its relation.
    let desc = pgrx::PgTupleDesc::from_pg_unchecked(desc);
    (0..desc.len())
        .filter_map(|i| desc.get(i).map(|a| (i, a)))
        .filter(|(i, a)| i + 1 >= first && !a.attisdropped)
        .map(|(_, a)| Column {
            name: CStr::from_ptr(a.attname.data.as_ptr())
                .to_string_lossy()
                .into_owned(),
            type_oid: a.atttypid,
            typmod: a.atttypmod,
        })
        .collect()
}

fn fingerprint(fp: &mut Fingerprint, columns: &[Column]) {
    for column in columns {
        fp.feed(column.name.as_bytes());
        fp.feed(&column.type_oid.to_u32().to_le_bytes());
        fp.feed(&column.typmod.to_le_bytes());
        fp.feed(b"|");
    }
    fp.feed(b"#");
}

/// Where the rows a capture appends are read: the trigger's transition tables, or a relation
/// whose whole contents joined or left a source (a partition attached or detached).
#[derive(Clone, Copy)]
pub(super) struct RowsFrom<'a> {
    pub new_rows: &'a str,
    pub old_rows: &'a str,
}

/// The transition tables of the row-capture triggers.
const TRANSITION_TABLES: RowsFrom<'static> = RowsFrom {
    new_rows: NEW_ROWS,
    old_rows: OLD_ROWS,
};

/// The INSERT appending a statement's transition rows to `buffer`: each buffer column taken from
/// the source column of the same name, type and typmod (a varchar widened since would not fit),
/// a NULL of the buffer column's type (`type_sql`) where the source no longer has one (the
/// buffer is then out of date, which refreshes detect and recompute: the DML itself never fails).
pub(super) fn append_sql(
    event: Event,
    rows_from: RowsFrom,
    buffer: &str,
    source: &[Column],
    kept: &[Column],
    type_sql: impl Fn(&Column) -> String,
) -> String {
    let targets: Vec<String> = BUFFER_HEADER
        .iter()
        .map(|c| c.to_string())
        .chain(kept.iter().map(|c| quote_ident(&c.name)))
        .collect();
    let rows = |alias: &str, weight: i32, transition: &str| {
        let values: Vec<String> =
            kept.iter()
                .map(|k| {
                    match source.iter().find(|s| {
                        s.name == k.name && s.type_oid == k.type_oid && s.typmod == k.typmod
                    }) {
                        Some(_) => format!("{alias}.{}", quote_ident(&k.name)),
                        None => format!("NULL::{}", type_sql(k)),
                    }
                })
                .collect();
        let values = if values.is_empty() {
            String::new()
        } else {
            format!(", {}", values.join(", "))
        };
        format!(
            "SELECT pg_catalog.pg_current_xact_id(), \
             pg_catalog.nextval('{CHANGE_SEQUENCE}'::pg_catalog.regclass), '{weight}'::pg_catalog.int2{values} \
             FROM {transition} {alias}"
        )
    };
    let selects = match event {
        Event::Insert => rows("n", 1, rows_from.new_rows),
        Event::Delete => rows("o", -1, rows_from.old_rows),
        Event::Update => format!(
            "{} UNION ALL {}",
            rows("o", -1, rows_from.old_rows),
            rows("n", 1, rows_from.new_rows)
        ),
    };
    format!("INSERT INTO {buffer} ({}) {selects}", targets.join(", "))
}

/// The oid of the change buffer of `source`, if it has one.
pub(super) unsafe fn buffer_of(source: pg_sys::Oid) -> Option<pg_sys::Oid> {
    let schema = CString::new(PRIVATE_SCHEMA).expect("no NUL");
    let namespace = pg_sys::get_namespace_oid(schema.as_ptr(), true);
    if namespace == pg_sys::InvalidOid {
        return None;
    }
    let name = CString::new(buffer_name(source.to_u32())).expect("no NUL");
    let buffer = pg_sys::get_relname_relid(name.as_ptr(), namespace);
    (buffer != pg_sys::InvalidOid).then_some(buffer)
}

unsafe extern "C-unwind" {
    /// PostgreSQL's `catalog/partition.h` (not in pgrx's bindings): the oids of the partitioned
    /// tables above `relid`, nearest first.
    fn get_partition_ancestors(relid: pg_sys::Oid) -> *mut pg_sys::List;
}

/// Where the rows of a trigger call go.
enum Destination {
    /// Recorded as changes of this source: its statement record, and its buffer's rows.
    Source(pg_sys::Oid),
    /// Appended to this shard (oid, qualified name) of a Citus shard buffer; the coordinator
    /// records the statement when a refresh drains them.
    ShardBuffer(pg_sys::Oid, String),
}

/// Where the changes of the statement the trigger fired for go: the relation it fired on; for a
/// member of a captured partition tree, the source its argument names (`None` when that
/// relation has left the tree since: its writes are nobody's changes); for a shard of a Citus
/// table (a second argument says which kind), the co-located shard buffer of a distributed
/// table, or the coordinator's buffer from the coordinator's placement of a reference table
/// (`None` on the other nodes, and where the shard buffer is gone: nobody reads it).
unsafe fn destination(data: &pg_sys::TriggerData) -> Option<Destination> {
    let relation = (*data.tg_relation).rd_id;
    let trigger = &*data.tg_trigger;
    if trigger.tgnargs < 1 {
        return Some(Destination::Source(relation));
    }
    let argument = CStr::from_ptr(*trigger.tgargs).to_str().ok()?;
    let source = pg_sys::Oid::from(argument.parse::<u32>().ok()?);
    if trigger.tgnargs >= 2 {
        let kind = CStr::from_ptr(*trigger.tgargs.add(1)).to_str().ok()?;
        return match kind {
            citus::REFERENCE => citus::on_coordinator().then_some(Destination::Source(source)),
            citus::DISTRIBUTED => {
                let shard = CStr::from_ptr((*(*data.tg_relation).rd_rel).relname.data.as_ptr())
                    .to_string_lossy()
                    .into_owned();
                citus::colocated_shard_buffer(source.to_u32(), &shard)
                    .map(|(oid, name)| Destination::ShardBuffer(oid, name))
            }
            _ => None,
        };
    }
    let ancestors = pg_sys::ffi::pg_guard_ffi_boundary(|| get_partition_ancestors(relation));
    let member = pgrx::PgList::<pg_sys::Oid>::from_pg(ancestors)
        .iter_oid()
        .any(|a| a == source);
    member.then_some(Destination::Source(source))
}

/// Captures one statement on a source: its change record, and its rows when the source has a
/// change buffer (a source without one, e.g. right after a restore, records the statement only;
/// its readers recompute); or, on a shard of a Citus distributed table, its rows only.
unsafe fn capture(trigdata: *mut pg_sys::TriggerData) {
    let data = &*trigdata;
    let source_rel = data.tg_relation;
    let fired = data.tg_event & pg_sys::TRIGGER_EVENT_OPMASK;
    if fired == pg_sys::TRIGGER_EVENT_TRUNCATE {
        // Only a Citus table's TRUNCATE trigger calls this on TRUNCATE.
        let table = CStr::from_ptr((*(*source_rel).rd_rel).relname.data.as_ptr());
        citus::refuse_truncate_on_worker(&table.to_string_lossy());
        return;
    }
    let Some(destination) = destination(data) else {
        return;
    };
    let event = match fired {
        pg_sys::TRIGGER_EVENT_INSERT => Event::Insert,
        pg_sys::TRIGGER_EVENT_UPDATE => Event::Update,
        pg_sys::TRIGGER_EVENT_DELETE => Event::Delete,
        _ => return,
    };
    let (recorded, buffer) = match destination {
        Destination::Source(source) => (
            Some(source),
            buffer_of(source).map(|b| (b, buffer_table(source.to_u32()))),
        ),
        Destination::ShardBuffer(oid, name) => (None, Some((oid, name))),
    };
    // The buffer's shape, read under the lock the INSERT takes anyway, so a buffer changed by a
    // concurrent set-up is seen as it is once that commits.
    let append = buffer.and_then(|(buffer, name)| {
        let rel = pg_sys::try_table_open(buffer, pg_sys::RowExclusiveLock as pg_sys::LOCKMODE);
        if rel.is_null() {
            return None;
        }
        let kept = columns((*rel).rd_att, BUFFER_HEADER.len() + 1);
        pg_sys::table_close(rel, pg_sys::NoLock as pg_sys::LOCKMODE);
        let source_columns = columns((*source_rel).rd_att, 1);
        let mut fp = Fingerprint::new();
        fingerprint(&mut fp, &source_columns);
        fingerprint(&mut fp, &kept);
        let key = AppendKey {
            event,
            buffer: buffer.to_u32(),
            shape: fp.0,
        };
        Some((key, name, source_columns, kept))
    });

    pgrx::spi::Spi::connect_mut(|_client| {
        if pg_sys::SPI_register_trigger_data(trigdata) < 0 {
            error!("pg_stream_dbt: registering the transition tables failed");
        }
        if let Some(source) = recorded {
            let record = RECORD_STATEMENT.with(|cell| {
                *cell.borrow_mut().get_or_insert_with(|| {
                    keep(
                        &format!(
                            "INSERT INTO {PRIVATE_SCHEMA}.statements (source_relid, operation) \
                             VALUES ($1, $2) ON CONFLICT (source_relid, xid) DO NOTHING"
                        ),
                        &mut [pg_sys::OIDOID, pg_sys::TEXTOID],
                    )
                })
            });
            let tag = event
                .tag()
                .into_datum()
                .expect("a text datum is never NULL");
            execute(record, &mut [pg_sys::Datum::from(source), tag]);
        }
        if let Some((key, name, source_columns, kept)) = append {
            let plan = APPEND.with(|cell| {
                *cell.borrow_mut().entry(key).or_insert_with(|| {
                    keep(
                        &append_sql(
                            event,
                            TRANSITION_TABLES,
                            &name,
                            &source_columns,
                            &kept,
                            |c| crate::refresh::plan_catalog::type_sql(c.type_oid, c.typmod),
                        ),
                        &mut [],
                    )
                })
            });
            execute(plan, &mut []);
        }
        Ok::<_, pgrx::spi::Error>(())
    })
    .unwrap_or_else(|e| error!("pg_stream_dbt: change capture failed: {e}"));
}

/// `pgstream._capture_rows()`: the statement-level AFTER INSERT / UPDATE / DELETE trigger of a
/// source read by a DIFFERENTIAL stream table (transition tables `__pgs_new` / `__pgs_old`).
#[pg_guard]
#[no_mangle]
pub unsafe extern "C-unwind" fn pgstream_capture_rows(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    let context = (*fcinfo).context;
    if context.is_null() || (*context).type_ != pg_sys::NodeTag::T_TriggerData {
        error!("pgstream._capture_rows() must be called as a trigger");
    }
    capture(context as *mut pg_sys::TriggerData);
    // An AFTER trigger's result is ignored, but must not be SQL NULL: a null pointer it is.
    pg_sys::Datum::from(0)
}

/// The V1 calling-convention record of [`pgstream_capture_rows`].
#[no_mangle]
pub extern "C" fn pg_finfo_pgstream_capture_rows() -> &'static pg_sys::Pg_finfo_record {
    const V1: pg_sys::Pg_finfo_record = pg_sys::Pg_finfo_record { api_version: 1 };
    &V1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn column(name: &str, type_oid: u32) -> Column {
        Column {
            name: name.into(),
            type_oid: pg_sys::Oid::from(type_oid),
            typmod: -1,
        }
    }

    #[test]
    fn an_update_appends_old_then_new_rows_and_nulls_for_gone_columns() {
        let source = [column("id", 23), column("amount", 1700)];
        let kept = [column("id", 23), column("note", 25), column("amount", 23)];
        let sql = append_sql(
            Event::Update,
            TRANSITION_TABLES,
            "pgstream_changes.\"rows_1\"",
            &source,
            &kept,
            |c| format!("t{}", c.type_oid.to_u32()),
        );
        assert_eq!(
            sql,
            "INSERT INTO pgstream_changes.\"rows_1\" (__pgs_xid, __pgs_seq, __pgs_w, \"id\", \"note\", \"amount\") \
             SELECT pg_catalog.pg_current_xact_id(), pg_catalog.nextval('pgstream_changes.row_seq'::pg_catalog.regclass), \
             '-1'::pg_catalog.int2, o.\"id\", NULL::t25, NULL::t23 FROM __pgs_old o UNION ALL \
             SELECT pg_catalog.pg_current_xact_id(), pg_catalog.nextval('pgstream_changes.row_seq'::pg_catalog.regclass), \
             '1'::pg_catalog.int2, n.\"id\", NULL::t25, NULL::t23 FROM __pgs_new n"
        );
    }

    #[test]
    fn a_column_whose_typmod_changed_is_written_as_null() {
        // varchar(10) kept, the source widened to varchar(20): its values might not fit.
        let widened = Column {
            typmod: 24,
            ..column("name", 1043)
        };
        let kept = Column {
            typmod: 14,
            ..column("name", 1043)
        };
        let sql = append_sql(
            Event::Insert,
            TRANSITION_TABLES,
            "b",
            &[widened],
            &[kept],
            |_| "character varying(10)".into(),
        );
        assert!(
            sql.ends_with("'1'::pg_catalog.int2, NULL::character varying(10) FROM __pgs_new n"),
            "{sql}"
        );
    }
}
