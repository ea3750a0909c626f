//! The pure half of the scheduler: which stream tables are due, in which order.

pub mod dispatch;
pub mod plan;
