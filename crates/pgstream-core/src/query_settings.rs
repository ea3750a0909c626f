//! The session settings a defining query's result may depend on (time zone, date and number
//! formats, locales), captured with the stream table and applied in every refresh, and which
//! built-in STABLE functions depend on more than their arguments and those settings (pure).

/// Settings captured at create and applied in every refresh, FULL and DIFFERENTIAL, so a
/// refresh never depends on who runs it (search_path is kept on its own). extra_float_digits
/// is not among them: every refresh prints floats with its default, 1 (the shortest text that
/// reads back exactly), because keyless row identities hash rows' text.
pub const PINNED: &[&str] = &[
    "TimeZone",
    "DateStyle",
    "IntervalStyle",
    "lc_time",
    "lc_monetary",
    "lc_numeric",
    "default_text_search_config",
];

/// `name=value` pairs as stored in the catalog, in [`PINNED`] order.
pub fn encode(values: &[(String, String)]) -> Vec<String> {
    values.iter().map(|(n, v)| format!("{n}={v}")).collect()
}

/// The pairs of [`encode`] (entries without `=` are skipped).
pub fn decode(stored: &[String]) -> Vec<(String, String)> {
    stored
        .iter()
        .filter_map(|entry| entry.split_once('='))
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

/// The settings whose value differs between `stored` and `now`, as `name: from -> to`.
pub fn differences(stored: &[(String, String)], now: &[(String, String)]) -> Vec<String> {
    now.iter()
        .filter_map(|(name, value)| {
            let before = stored
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str());
            (before != Some(value.as_str()))
                .then(|| format!("{name} {} -> {value}", before.unwrap_or("(unset)")))
        })
        .collect()
}

/// Whether built-in STABLE function `name` (called with `nargs` arguments) may return something
/// else for the same arguments under the same [`PINNED`] settings: the transaction clock, the
/// system catalogs, the session (user, backend, client, configuration), transaction ids.
/// Every other built-in STABLE function (date and time conversions, `date_trunc`, `to_char`,
/// `extract`, two-argument `age`, text casts of dates and numbers, `format`, `concat`, JSON
/// builders, ...) depends only on its arguments and those settings.
pub fn stable_builtin_reads_more(name: &str, nargs: usize) -> bool {
    const PREFIXES: &[&str] = &[
        "pg_",
        "has_",
        "to_reg",
        "current_",
        "txid_",
        "inet_client_",
        "inet_server_",
        "mxid_",
    ];
    const NAMES: &[&str] = &[
        "now",
        "transaction_timestamp",
        "statement_timestamp",
        "version",
        "obj_description",
        "col_description",
        "shobj_description",
        "format_type",
        "session_user",
        "row_security_active",
        "getpgusername",
    ];
    let name = name.to_ascii_lowercase();
    let catalog_io = name.starts_with("reg")
        && ["in", "out", "recv", "send"]
            .iter()
            .any(|s| name.ends_with(s))
        && name[3..].chars().all(|c| c.is_ascii_lowercase());
    let to_xml = [
        "query_to_xml",
        "table_to_xml",
        "cursor_to_xml",
        "schema_to_xml",
        "database_to_xml",
    ]
    .iter()
    .any(|p| name.starts_with(p));
    PREFIXES.iter().any(|p| name.starts_with(p))
        || NAMES.contains(&name.as_str())
        || (name == "age" && nargs == 1)
        || catalog_io
        || to_xml
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_round_trip_and_differences_name_what_changed() {
        let stored = vec![
            ("TimeZone".to_string(), "UTC".to_string()),
            ("DateStyle".into(), "ISO, MDY".into()),
        ];
        assert_eq!(decode(&encode(&stored)), stored);
        let now = vec![
            ("TimeZone".to_string(), "Europe/Berlin".to_string()),
            ("DateStyle".into(), "ISO, MDY".into()),
        ];
        assert_eq!(
            differences(&stored, &now),
            vec!["TimeZone UTC -> Europe/Berlin"]
        );
        assert!(differences(&stored, &stored).is_empty());
    }

    #[test]
    fn the_clock_the_catalogs_and_the_session_are_not_arguments_or_settings() {
        for (name, nargs) in [
            ("now", 0),
            ("statement_timestamp", 0),
            ("age", 1),
            ("current_setting", 1),
            ("pg_get_viewdef", 1),
            ("has_table_privilege", 2),
            ("to_regclass", 1),
            ("regclassin", 1),
            ("regprocedureout", 1),
            ("txid_current_snapshot", 0),
            ("inet_client_addr", 0),
            ("table_to_xml", 4),
        ] {
            assert!(stable_builtin_reads_more(name, nargs), "{name}");
        }
        for (name, nargs) in [
            ("date_trunc", 2),
            ("date_part", 2),
            ("age", 2),
            ("to_char", 2),
            ("timestamptz_in", 3),
            ("date_out", 1),
            ("format", 2),
            ("concat", 3),
            ("to_jsonb", 1),
            ("record_out", 1),
            ("regexp_replace", 3),
        ] {
            assert!(!stable_builtin_reads_more(name, nargs), "{name}");
        }
    }
}
