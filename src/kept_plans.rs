//! Catalog questions asked on every refresh, prepared once per backend (SPI plans kept for the
//! session): planning them each time cost more than running them.

use pgrx::prelude::*;
use pgrx::spi::{OwnedPreparedStatement, SpiClient, SpiTupleTable};
use std::cell::RefCell;
use std::collections::HashMap;

thread_local! {
    /// By the address of the statement's text: each caller's text is a `'static` constant.
    static KEPT: RefCell<HashMap<usize, OwnedPreparedStatement>> = RefCell::new(HashMap::new());
}

/// Runs `sql` (a constant, read-only, with parameters of `types`) with `args` through its kept
/// plan on `client`, and hands the rows to `read`.
pub fn select<'conn, R>(
    client: &SpiClient<'conn>,
    sql: &'static str,
    types: &[pg_sys::Oid],
    args: &[pgrx::datum::DatumWithOid],
    read: impl FnOnce(SpiTupleTable<'conn>) -> Result<R, pgrx::spi::Error>,
) -> Result<R, pgrx::spi::Error> {
    let key = sql.as_ptr() as usize;
    KEPT.with(|kept| {
        if !kept.borrow().contains_key(&key) {
            let types: Vec<pgrx::PgOid> = types.iter().map(|&t| pgrx::PgOid::from(t)).collect();
            let prepared = client.prepare(sql, &types)?.keep();
            kept.borrow_mut().insert(key, prepared);
        }
        let kept = kept.borrow();
        let prepared = kept.get(&key).expect("kept just now");
        let rows = client.select(prepared, None, args)?;
        read(rows)
    })
}
