//! Small pieces of SQL text built in Rust: quoted identifiers and literals (pure, no SPI).

/// `name` as a double-quoted identifier (always quoted, so any name is safe and exact).
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `value` as a single-quoted string literal (standard_conforming_strings, as PostgreSQL 9.1+).
pub fn quote_literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_are_doubled() {
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(quote_literal("it's"), "'it''s'");
    }
}
