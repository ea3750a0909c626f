//! Catalog questions asked on every refresh, prepared once per backend (SPI plans kept for the
//! session): planning them each time cost more than running them.

use pgrx::prelude::*;
use pgrx::spi::{OwnedPreparedStatement, SpiClient, SpiTupleTable};
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

thread_local! {
    /// By the address and length of the statement's text: each caller's text is a `'static`
    /// constant.
    static KEPT: RefCell<HashMap<(usize, usize), Rc<OwnedPreparedStatement>>> =
        RefCell::new(HashMap::new());
}

/// Runs `sql` (a constant with parameters of `types`) with `args` through its kept plan on
/// `client`, and hands the rows to `read`. Run as a statement that may write, as
/// `SpiClient::update` runs one: in a snapshot of its own that sees what this transaction did
/// so far (a read-only one would reuse the caller's, older, snapshot).
pub fn select<'conn, R>(
    client: &SpiClient<'conn>,
    sql: &'static str,
    types: &[pg_sys::Oid],
    args: &[pgrx::datum::DatumWithOid],
    read: impl FnOnce(SpiTupleTable<'conn>) -> Result<R, pgrx::spi::Error>,
) -> Result<R, pgrx::spi::Error> {
    let key = (sql.as_ptr() as usize, sql.len());
    let kept = KEPT.with(|kept| kept.borrow().get(&key).cloned());
    let prepared = match kept {
        Some(prepared) => prepared,
        None => {
            let types: Vec<pgrx::PgOid> = types.iter().map(|&t| pgrx::PgOid::from(t)).collect();
            let prepared = Rc::new(client.prepare_mut(sql, &types)?.keep());
            KEPT.with(|kept| kept.borrow_mut().insert(key, prepared.clone()));
            prepared
        }
    };
    // (No borrow of the cache is held while it runs: what it calls may ask for another plan.)
    let rows = client.select(&*prepared, None, args)?;
    read(rows)
}
