//! Running a refresh's statements in one snapshot: every statement of a refresh reads the same
//! committed state (its command id advanced, so it also sees what the statements before it
//! wrote), the way one statement would — through SPI_execute_snapshot, with plans kept per
//! backend (re-planned by PostgreSQL when a table they name changes).

use pgrx::pg_sys;
use pgrx::prelude::*;
use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::CString;
use std::ptr::NonNull;

/// Plans kept for the life of the backend, by statement text (bounded: cleared when full).
const MAX_KEPT_PLANS: usize = 2_000;

thread_local! {
    static PLANS: RefCell<HashMap<String, KeptPlan>> = RefCell::new(HashMap::new());
}

/// A prepared refresh statement, and whether it takes the three [`Params`].
#[derive(Clone, Copy)]
struct KeptPlan {
    plan: NonNull<pg_sys::_SPI_plan>,
    takes_params: bool,
}

/// The parameters of refresh statements: `$1` the snapshot the last refresh covered (text),
/// `$2` its transaction (text), `$3` the change sequence number it reached.
#[derive(Debug, Clone, Default)]
pub struct Params {
    pub snapshot: Option<String>,
    pub own_xid: Option<String>,
    pub own_seq: Option<i64>,
}

impl Params {
    /// The three parameters as datums and their null flags (`' '` or `'n'`), for
    /// SPI_execute_snapshot; the texts are allocated in the current memory context.
    fn datums(&self) -> (Vec<pg_sys::Datum>, Vec<std::ffi::c_char>) {
        let null = |is_null: bool| if is_null { b'n' } else { b' ' } as std::ffi::c_char;
        let text = |t: Option<&str>| match t {
            Some(t) => {
                let t = CString::new(t).expect("no NUL in a snapshot or xid");
                pg_sys::Datum::from(unsafe { pg_sys::cstring_to_text(t.as_ptr()) })
            }
            None => pg_sys::Datum::from(0),
        };
        let values = vec![
            text(self.snapshot.as_deref()),
            text(self.own_xid.as_deref()),
            pg_sys::Datum::from(self.own_seq.unwrap_or(0)),
        ];
        let nulls = vec![
            null(self.snapshot.is_none()),
            null(self.own_xid.is_none()),
            null(self.own_seq.is_none()),
        ];
        (values, nulls)
    }
}

/// A snapshot registered for one refresh; unregistered when dropped.
pub struct RefreshSnapshot {
    snapshot: pg_sys::Snapshot,
}

impl RefreshSnapshot {
    /// A copy of the current transaction snapshot, registered (what every statement of this
    /// refresh reads).
    pub fn take() -> Self {
        unsafe {
            let snapshot = pg_sys::RegisterSnapshot(pg_sys::GetTransactionSnapshot());
            RefreshSnapshot { snapshot }
        }
    }

    /// Runs `sql` in this snapshot; returns the rows it processed, and the int8 (or NULL)
    /// values of the first row's columns when it returns rows.
    pub fn run(&self, sql: &str, params: &Params) -> (u64, Vec<Option<i64>>) {
        self.execute(sql, params, |row| unsafe { read_i64s(row) })
    }

    /// Runs `sql` in this snapshot; returns the first row's columns as text.
    pub fn run_text(&self, sql: &str, params: &Params) -> Vec<Option<String>> {
        self.execute(sql, params, |row| unsafe { read_texts(row) })
            .1
    }

    fn execute<T: Default>(
        &self,
        sql: &str,
        params: &Params,
        first_row: impl Fn(usize) -> T,
    ) -> (u64, T) {
        let KeptPlan { plan, takes_params } = kept_plan(sql);
        // A statement without parameters gets none: PostgreSQL then plans it once and keeps
        // that plan (with parameters, it plans each of the first five runs anew, which for a
        // delta of many terms cost more than running it).
        let mut datums = takes_params.then(|| params.datums());
        let (values, nulls) = match &mut datums {
            Some((values, nulls)) => (values.as_mut_ptr(), nulls.as_mut_ptr()),
            None => (std::ptr::null_mut(), std::ptr::null_mut()),
        };
        unsafe {
            let code = pg_sys::SPI_execute_snapshot(
                plan.as_ptr(),
                values,
                nulls,
                self.snapshot,
                std::ptr::null_mut(),
                false,
                true,
                0,
            );
            if code < 0 {
                panic!("pg_stream_dbt: refresh statement failed (SPI code {code}): {sql}");
            }
            let processed = pg_sys::SPI_processed;
            let first = if !pg_sys::SPI_tuptable.is_null() && processed > 0 {
                first_row(0)
            } else {
                T::default()
            };
            (processed, first)
        }
    }
}

impl Drop for RefreshSnapshot {
    fn drop(&mut self) {
        // After an error the transaction's abort releases it.
        unsafe {
            if pg_sys::IsTransactionState() {
                pg_sys::UnregisterSnapshot(self.snapshot);
            }
        }
    }
}

/// Whether `sql` may refer to the [`Params`] (`$1` to `$3`). (Text that only looks like one, in
/// a literal, costs a statement planned for each of its first runs, nothing else.)
fn takes_params(sql: &str) -> bool {
    ["$1", "$2", "$3"].iter().any(|p| sql.contains(p))
}

/// The kept plan of `sql`, prepared once per backend: with three parameters (text, text, int8)
/// when it refers to them, none otherwise.
fn kept_plan(sql: &str) -> KeptPlan {
    if let Some(plan) = PLANS.with(|p| p.borrow().get(sql).copied()) {
        return plan;
    }
    let text = CString::new(sql).expect("generated SQL has no NUL byte");
    let mut types = [pg_sys::TEXTOID, pg_sys::TEXTOID, pg_sys::INT8OID];
    let takes_params = takes_params(sql);
    let plan = unsafe {
        let plan = pg_sys::SPI_prepare(
            text.as_ptr(),
            if takes_params { 3 } else { 0 },
            types.as_mut_ptr(),
        );
        let Some(plan) = NonNull::new(plan) else {
            panic!(
                "pg_stream_dbt: preparing a refresh statement failed (SPI code {}): {sql}",
                std::ptr::addr_of!(pg_sys::SPI_result).read()
            )
        };
        pg_sys::SPI_keepplan(plan.as_ptr());
        plan
    };
    PLANS.with(|p| {
        let mut plans = p.borrow_mut();
        if plans.len() >= MAX_KEPT_PLANS {
            for (_, old) in plans.drain() {
                unsafe { pg_sys::SPI_freeplan(old.plan.as_ptr()) };
            }
        }
        let kept = KeptPlan { plan, takes_params };
        plans.insert(sql.to_string(), kept);
        kept
    })
}

/// The first row's columns as int8 (NULL, or not an integer: None).
unsafe fn read_i64s(row: usize) -> Vec<Option<i64>> {
    let table = &*pg_sys::SPI_tuptable;
    let desc = table.tupdesc;
    let natts = (*desc).natts as usize;
    let tuple = *table.vals.add(row);
    (1..=natts)
        .map(|i| {
            let mut isnull = false;
            let datum = pg_sys::SPI_getbinval(tuple, desc, i as i32, &mut isnull);
            let type_oid = pg_sys::SPI_gettypeid(desc, i as i32);
            if isnull {
                None
            } else if type_oid == pg_sys::INT8OID {
                Some(datum.value() as i64)
            } else if type_oid == pg_sys::INT4OID {
                Some(datum.value() as i32 as i64)
            } else {
                None
            }
        })
        .collect()
}

/// The first row's columns as text.
unsafe fn read_texts(row: usize) -> Vec<Option<String>> {
    let table = &*pg_sys::SPI_tuptable;
    let desc = table.tupdesc;
    let natts = (*desc).natts as usize;
    let tuple = *table.vals.add(row);
    (1..=natts)
        .map(|i| {
            let value = pg_sys::SPI_getvalue(tuple, desc, i as i32);
            if value.is_null() {
                None
            } else {
                Some(
                    std::ffi::CStr::from_ptr(value)
                        .to_string_lossy()
                        .into_owned(),
                )
            }
        })
        .collect()
}

/// Runs `body` inside an SPI connection (the snapshot statements need one).
pub fn connected<R>(body: impl FnOnce() -> R) -> R {
    let mut body = Some(body);
    Spi::connect_mut(|_client| Ok::<_, pgrx::spi::Error>(body.take().expect("called once")()))
        .unwrap_or_else(|e| panic!("pg_stream_dbt: SPI connection failed: {e}"))
}
