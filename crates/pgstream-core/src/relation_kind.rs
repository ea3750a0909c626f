//! What kind of relation an oid names (pg_class.relkind) and what kind of source a stream
//! table reads, as the catalog records them and as messages and DDL name them (pure, no SPI).

use std::fmt;

/// A relation's kind, from its `pg_class.relkind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RelationKind {
    Table,
    PartitionedTable,
    View,
    MaterializedView,
    ForeignTable,
    Sequence,
    Index,
    CompositeType,
    /// A relkind none of the above covers (TOAST tables, future kinds).
    Other,
}

const ALL: [RelationKind; 9] = [
    RelationKind::Table,
    RelationKind::PartitionedTable,
    RelationKind::View,
    RelationKind::MaterializedView,
    RelationKind::ForeignTable,
    RelationKind::Sequence,
    RelationKind::Index,
    RelationKind::CompositeType,
    RelationKind::Other,
];

impl RelationKind {
    /// The kind of `pg_class.relkind` `code` (`r`, `p`, `v`, ...).
    pub fn from_relkind(code: &str) -> Self {
        match code {
            "r" => Self::Table,
            "p" => Self::PartitionedTable,
            "v" => Self::View,
            "m" => Self::MaterializedView,
            "f" => Self::ForeignTable,
            "S" => Self::Sequence,
            "i" | "I" => Self::Index,
            "c" => Self::CompositeType,
            _ => Self::Other,
        }
    }

    /// How messages and the catalog (`pgs_dependencies.source_kind`) name it.
    pub fn describe(self) -> &'static str {
        match self {
            Self::Table => "table",
            Self::PartitionedTable => "partitioned table",
            Self::View => "view",
            Self::MaterializedView => "materialized view",
            Self::ForeignTable => "foreign table",
            Self::Sequence => "sequence",
            Self::Index => "index",
            Self::CompositeType => "composite type",
            Self::Other => "relation",
        }
    }

    /// The kind a catalog's `source_kind` text names (`Other` for text no kind describes).
    pub fn from_description(text: &str) -> Self {
        ALL.into_iter()
            .find(|kind| kind.describe() == text)
            .unwrap_or(Self::Other)
    }

    /// The object type `DROP <type>` takes for it, where a stream table may replace one.
    pub fn drop_keyword(self) -> Option<&'static str> {
        match self {
            Self::Table | Self::PartitionedTable => Some("TABLE"),
            Self::View => Some("VIEW"),
            Self::MaterializedView => Some("MATERIALIZED VIEW"),
            Self::ForeignTable => Some("FOREIGN TABLE"),
            _ => None,
        }
    }
}

/// What a stream table reads: another stream table, or a relation of some kind
/// (`pgs_dependencies.source_kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SourceKind {
    StreamTable,
    Relation(RelationKind),
}

impl SourceKind {
    /// How the catalog and messages name it.
    pub fn describe(self) -> &'static str {
        match self {
            Self::StreamTable => "stream table",
            Self::Relation(kind) => kind.describe(),
        }
    }

    /// The kind a catalog's `source_kind` text names.
    pub fn from_description(text: &str) -> Self {
        match text {
            "stream table" => Self::StreamTable,
            other => Self::Relation(RelationKind::from_description(other)),
        }
    }

    /// A view: read through, its own rows never change (the capture is on what it reads).
    pub fn is_view(self) -> bool {
        self == Self::Relation(RelationKind::View)
    }
}

impl fmt::Display for RelationKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.describe())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptions_round_trip_and_name_the_catalog_values() {
        for kind in ALL {
            assert_eq!(RelationKind::from_description(kind.describe()), kind);
        }
        // The values 0.1.0 to 0.4.0 stored in pgs_dependencies.source_kind.
        for (code, stored) in [
            ("r", "table"),
            ("p", "partitioned table"),
            ("v", "view"),
            ("m", "materialized view"),
            ("f", "foreign table"),
        ] {
            assert_eq!(RelationKind::from_relkind(code).describe(), stored);
        }
        assert_eq!(RelationKind::from_description("toast"), RelationKind::Other);
        for kind in [
            SourceKind::StreamTable,
            SourceKind::Relation(RelationKind::View),
            SourceKind::Relation(RelationKind::PartitionedTable),
        ] {
            assert_eq!(SourceKind::from_description(kind.describe()), kind);
        }
        assert!(SourceKind::from_description("view").is_view());
        assert!(!SourceKind::StreamTable.is_view());
    }

    #[test]
    fn only_relations_a_stream_table_may_replace_have_a_drop_keyword() {
        assert_eq!(RelationKind::PartitionedTable.drop_keyword(), Some("TABLE"));
        assert_eq!(
            RelationKind::MaterializedView.drop_keyword(),
            Some("MATERIALIZED VIEW")
        );
        assert_eq!(RelationKind::Sequence.drop_keyword(), None);
        assert_eq!(RelationKind::from_relkind("t"), RelationKind::Other);
    }
}
