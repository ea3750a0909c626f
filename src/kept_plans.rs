//! Catalog questions asked on every refresh, prepared once per backend (SPI plans kept for the
//! session): planning them each time cost more than running them.

use pgrx::prelude::*;
use pgrx::spi::{OwnedPreparedStatement, SpiTupleTable};
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

thread_local! {
    /// By the address and length of the statement's text: each caller's text is a `'static`
    /// constant.
    static KEPT: RefCell<HashMap<(usize, usize), Rc<OwnedPreparedStatement>>> =
        RefCell::new(HashMap::new());
    /// Statements without parameters made at run time (a work table's name in them), by text.
    static KEPT_TEXTS: RefCell<HashMap<String, Rc<OwnedPreparedStatement>>> =
        RefCell::new(HashMap::new());
}

/// At most this many statements kept by their text: past it they are all forgotten (a work
/// table made anew for another shape has another name; a long-lived worker would keep them all).
const MAX_KEPT_TEXTS: usize = 2_000;

/// Runs `sql`, a statement without parameters or rows made at run time, through a plan kept
/// for its text (one per work table).
pub fn run_text(sql: &str) -> Result<(), pgrx::spi::Error> {
    Spi::connect_mut(|client| {
        let kept = KEPT_TEXTS.with(|kept| kept.borrow().get(sql).cloned());
        let prepared = match kept {
            Some(prepared) => prepared,
            None => {
                let prepared = Rc::new(client.prepare_mut(sql, &[])?.keep());
                KEPT_TEXTS.with(|kept| {
                    let mut kept = kept.borrow_mut();
                    if kept.len() >= MAX_KEPT_TEXTS {
                        kept.clear();
                    }
                    kept.insert(sql.to_string(), prepared.clone())
                });
                prepared
            }
        };
        client.update(&*prepared, None, &[])?;
        Ok(())
    })
}

/// Runs `sql` (a constant; its parameters typed as `args` are) with `args` through its kept
/// plan, on a connection of its own, and hands the rows to `read`. Run as a statement that may
/// write, as `SpiClient::update` runs one: in a snapshot of its own that sees what this
/// transaction did so far (a read-only one would reuse the caller's, older, snapshot).
pub fn query<R>(
    sql: &'static str,
    args: &[pgrx::datum::DatumWithOid],
    read: impl for<'conn> FnOnce(SpiTupleTable<'conn>) -> Result<R, pgrx::spi::Error>,
) -> Result<R, pgrx::spi::Error> {
    let key = (sql.as_ptr() as usize, sql.len());
    Spi::connect(|client| {
        let kept = KEPT.with(|kept| kept.borrow().get(&key).cloned());
        let prepared = match kept {
            Some(prepared) => prepared,
            None => {
                let types: Vec<pgrx::PgOid> = args
                    .iter()
                    .map(|arg| pgrx::PgOid::from(arg.oid()))
                    .collect();
                let prepared = Rc::new(client.prepare_mut(sql, &types)?.keep());
                KEPT.with(|kept| kept.borrow_mut().insert(key, prepared.clone()));
                prepared
            }
        };
        // (No borrow of the cache is held while it runs: what it calls may ask for another plan.)
        let rows = client.select(&*prepared, None, args)?;
        read(rows)
    })
}

/// The first column of the first row `sql` returns (None without a row or for NULL).
pub fn one<T: pgrx::FromDatum + pgrx::IntoDatum>(
    sql: &'static str,
    args: &[pgrx::datum::DatumWithOid],
) -> Result<Option<T>, pgrx::spi::Error> {
    query(sql, args, |rows| match rows.into_iter().next() {
        Some(row) => row.get::<T>(1),
        None => Ok(None),
    })
}

/// Runs `sql`, a statement whose rows (if any) nobody reads.
pub fn run(sql: &'static str, args: &[pgrx::datum::DatumWithOid]) -> Result<(), pgrx::spi::Error> {
    query(sql, args, |_| Ok(()))
}
