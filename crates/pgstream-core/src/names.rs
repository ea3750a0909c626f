//! Stream-table names: parsing `schema.name` with PostgreSQL's identifier rules (pure, no SPI).

/// Longest identifier PostgreSQL keeps (NAMEDATALEN - 1 bytes).
pub const MAX_IDENTIFIER_BYTES: usize = 63;

/// `name` followed by `suffix`, `name` cut (at a character boundary) so the whole fits in
/// [`MAX_IDENTIFIER_BYTES`].
pub fn with_suffix(name: &str, suffix: &str) -> String {
    let mut cut = name
        .len()
        .min(MAX_IDENTIFIER_BYTES.saturating_sub(suffix.len()));
    while !name.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}{suffix}", &name[..cut])
}

/// The name of stream table `table`'s identity index: `<table>_pgs_key` for a keyed table,
/// `<table>___pgs_row_id_idx` (PostgreSQL's own choice) for a multiset.
pub fn identity_index_name(table: &str, keyed: bool) -> String {
    with_suffix(
        table,
        if keyed {
            "_pgs_key"
        } else {
            "___pgs_row_id_idx"
        },
    )
}

/// A name as the user wrote it, split into its parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectName {
    pub schema: Option<String>,
    pub name: String,
}

/// Why a name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("stream table name must not be empty")]
    Empty,
    #[error("invalid stream table name \"{text}\": {why}")]
    Invalid { text: String, why: String },
    #[error("stream table name \"{text}\" has {parts} parts; expected name or schema.name")]
    TooManyParts { text: String, parts: usize },
    #[error("identifier \"{ident}\" is longer than {MAX_IDENTIFIER_BYTES} bytes")]
    TooLong { ident: String },
}

impl ObjectName {
    /// Parses `name`, `schema.name`, `"Quoted Name"`, `"Sales"."Order Totals"`.
    /// Unquoted parts are folded to lower case, as PostgreSQL does.
    pub fn parse(text: &str) -> Result<ObjectName, NameError> {
        let parts = split_identifiers(text)?;
        match parts.as_slice() {
            [name] => Ok(ObjectName {
                schema: None,
                name: name.clone(),
            }),
            [schema, name] => Ok(ObjectName {
                schema: Some(schema.clone()),
                name: name.clone(),
            }),
            _ => Err(NameError::TooManyParts {
                text: text.to_string(),
                parts: parts.len(),
            }),
        }
    }
}

/// Splits a dotted identifier chain like PostgreSQL's `parse_ident()` (strict mode).
pub fn split_identifiers(text: &str) -> Result<Vec<String>, NameError> {
    if text.trim().is_empty() {
        return Err(NameError::Empty);
    }
    let bad = |why: &str| NameError::Invalid {
        text: text.to_string(),
        why: why.to_string(),
    };
    let chars: Vec<char> = text.chars().collect();
    let mut parts = Vec::new();
    let mut i = 0;
    loop {
        while i < chars.len() && chars[i].is_whitespace() {
            i += 1;
        }
        if i >= chars.len() {
            return Err(bad("expected an identifier"));
        }
        let mut ident = String::new();
        if chars[i] == '"' {
            i += 1;
            loop {
                match chars.get(i) {
                    None => return Err(bad("unterminated quoted identifier")),
                    Some('"') if chars.get(i + 1) == Some(&'"') => {
                        ident.push('"');
                        i += 2;
                    }
                    Some('"') => {
                        i += 1;
                        break;
                    }
                    Some(c) => {
                        ident.push(*c);
                        i += 1;
                    }
                }
            }
            if ident.is_empty() {
                return Err(bad("quoted identifier must not be empty"));
            }
        } else {
            let first = chars[i];
            if !(first.is_alphabetic() || first == '_') {
                return Err(bad(&format!(
                    "an unquoted identifier cannot start with '{first}' (quote it with double quotes)"
                )));
            }
            while i < chars.len()
                && (chars[i].is_alphanumeric() || chars[i] == '_' || chars[i] == '$')
            {
                ident.push(chars[i].to_ascii_lowercase());
                i += 1;
            }
        }
        if ident.len() > MAX_IDENTIFIER_BYTES {
            return Err(NameError::TooLong { ident });
        }
        parts.push(ident);
        while i < chars.len() && chars[i].is_whitespace() {
            i += 1;
        }
        match chars.get(i) {
            None => return Ok(parts),
            Some('.') => i += 1,
            Some(c) => {
                return Err(bad(&format!(
                "unexpected character '{c}' (quote names with spaces or symbols in double quotes)"
            )))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_index_names_fit_in_an_identifier() {
        assert_eq!(identity_index_name("totals", true), "totals_pgs_key");
        assert_eq!(
            identity_index_name("totals", false),
            "totals___pgs_row_id_idx"
        );
        let long = "é".repeat(40); // 80 bytes
        let name = identity_index_name(&long, true);
        assert!(name.len() <= MAX_IDENTIFIER_BYTES && name.ends_with("_pgs_key"));
        assert!(name.starts_with('é'));
    }

    fn parsed(text: &str) -> (Option<String>, String) {
        let n = ObjectName::parse(text).unwrap();
        (n.schema, n.name)
    }

    #[test]
    fn plain_and_qualified_names() {
        assert_eq!(parsed("orders"), (None, "orders".into()));
        assert_eq!(parsed("Orders"), (None, "orders".into()));
        assert_eq!(
            parsed("Analytics.Order_Totals"),
            (Some("analytics".into()), "order_totals".into())
        );
        assert_eq!(parsed(" a . b "), (Some("a".into()), "b".into()));
        assert_eq!(parsed("t$1"), (None, "t$1".into()));
    }

    #[test]
    fn quoted_names_keep_case_and_symbols() {
        assert_eq!(
            parsed("\"Sales\".\"Order Totals\""),
            (Some("Sales".into()), "Order Totals".into())
        );
        assert_eq!(parsed("\"a\"\"b\""), (None, "a\"b".into()));
        assert_eq!(parsed("\"x.y\""), (None, "x.y".into()));
    }

    #[test]
    fn invalid_names_are_refused() {
        for text in [
            "", " ", "1abc", "a b", "a.", ".a", "a..b", "\"\"", "\"open", "a;drop", "a-b", "a.b.c",
        ] {
            assert!(
                ObjectName::parse(text).is_err(),
                "{text:?} should be refused"
            );
        }
        assert!(matches!(
            ObjectName::parse(&"x".repeat(64)),
            Err(NameError::TooLong { .. })
        ));
        assert!(ObjectName::parse(&"x".repeat(63)).is_ok());
    }
}
