//! What kind of Citus table a stream table is asked to be (`distribution_column` /
//! `reference_table` in materialize() and the dbt config) or is.

/// A stream table made a Citus table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CitusTable {
    /// A distributed table by this column.
    DistributedBy(String),
    /// A reference table (a copy on every node).
    Reference,
}

impl CitusTable {
    /// `distributed by customer_id`, `reference table`; `none` for no Citus table.
    pub fn describe(table: &Option<CitusTable>) -> String {
        match table {
            Some(CitusTable::DistributedBy(column)) => format!("distributed by {column}"),
            Some(CitusTable::Reference) => "reference table".into(),
            None => "none".into(),
        }
    }

    /// The `distribution_column` argument of `pgstream.distribute_stream_table` (None: a
    /// reference table).
    pub fn distribution_column(&self) -> Option<&str> {
        match self {
            CitusTable::DistributedBy(column) => Some(column),
            CitusTable::Reference => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptions_name_the_column() {
        assert_eq!(
            CitusTable::describe(&Some(CitusTable::DistributedBy("c".into()))),
            "distributed by c"
        );
        assert_eq!(
            CitusTable::describe(&Some(CitusTable::Reference)),
            "reference table"
        );
        assert_eq!(CitusTable::describe(&None), "none");
        assert_eq!(CitusTable::Reference.distribution_column(), None);
    }
}
