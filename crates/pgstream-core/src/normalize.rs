//! Normalized query text and its SHA-256 hash, so formatting-only edits of a dbt model do not
//! count as changes (pure, no SPI).
//!
//! The query is parsed with sqlparser's PostgreSQL dialect and printed back from the AST; that
//! text (or, when sqlparser cannot parse the query, the original text) is then reduced to its
//! tokens: comments and white space dropped, unquoted words folded to lower case as
//! PostgreSQL folds them, string literals, dollar quotes and quoted identifiers kept verbatim,
//! tokens joined by one space, trailing semicolons removed.

use sha2::{Digest, Sha256};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;

/// The canonical text of `sql`.
pub fn normalize_query(sql: &str) -> String {
    match Parser::parse_sql(&PostgreSqlDialect {}, sql) {
        Ok(statements) if statements.len() == 1 => {
            let mut tokens = canonical_tokens(&statements[0].to_string());
            // sqlparser prints a value holding '' the same as one holding ' (and likewise
            // for "" in identifiers), so the literal and quoted tokens of the original text,
            // which formatting does not change, are part of the canonical form too.
            let quoted: Vec<String> = canonical_tokens(sql)
                .into_iter()
                .filter(|t| is_quoted(t))
                .collect();
            if !quoted.is_empty() {
                tokens.push("--quoted:".to_string());
                tokens.extend(quoted);
            }
            tokens.join(" ")
        }
        _ => canonical_tokens(sql).join(" "),
    }
}

/// Whether a token is a string literal (with any prefix), a quoted identifier or a
/// dollar-quoted string.
fn is_quoted(token: &str) -> bool {
    token.contains('\'')
        || token.starts_with('"')
        || (token.starts_with('$') && !token[1..].starts_with(|c: char| c.is_ascii_digit()))
}

/// SHA-256 (lower-case hex) of the canonical text of `sql`.
pub fn query_hash(sql: &str) -> String {
    let digest = Sha256::digest(normalize_query(sql).as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Characters PostgreSQL allows in operator names.
fn is_operator_char(c: char) -> bool {
    "+-*/<>=~!@#%^&|`?".contains(c)
}

/// As PostgreSQL's scanner: letters, `_` and any non-ASCII character start an identifier.
fn is_word_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || !c.is_ascii()
}

fn is_word_char(c: char) -> bool {
    is_word_start(c) || c.is_ascii_digit() || c == '$'
}

/// Splits SQL into tokens the way PostgreSQL's scanner would for the purpose of comparison.
/// Never fails: unterminated quotes or comments run to the end of the text.
///
/// Written by hand rather than on sqlparser's tokenizer, on purpose: the hash of this text is
/// stored with every stream table (`pgs_query_hash`), so it must not move with a dependency's
/// tokenizer. A version on sqlparser's (branch `normalize-tokenizer`) gave the same tokens on
/// the golden corpus (`testdata/normalize_golden.json`, 1 360 queries) and 3M random
/// fragments, but needed a fallback lexer for five of its quirks (`&>`, `--` after an operator,
/// CR ending a comment, `E'\xc3\xa9'` refused, ...) and was longer than this one.
pub fn canonical_tokens(sql: &str) -> Vec<String> {
    let chars: Vec<char> = sql.chars().collect();
    let mut tokens: Vec<String> = Vec::new();
    let mut i = 0;
    let n = chars.len();
    let collect = |from: usize, to: usize| -> String { chars[from..to.min(n)].iter().collect() };
    while i < n {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c.is_ascii_whitespace() || c == '\u{b}' {
            i += 1;
        } else if c == '-' && next == Some('-') {
            while i < n && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            // Block comments nest in PostgreSQL.
            let mut depth = 0;
            while i < n {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
        } else if c == '\'' {
            // A string right after an E/e prefix word uses backslash escapes.
            let backslash_escapes = matches!(tokens.last(), Some(t) if t == "e")
                && i > 0
                && matches!(chars[i - 1], 'e' | 'E');
            let start = i;
            i += 1;
            while i < n {
                let escaped_by_backslash = backslash_escapes && chars[i] == '\\';
                let doubled_quote = chars[i] == '\'' && chars.get(i + 1) == Some(&'\'');
                if escaped_by_backslash || doubled_quote {
                    i += 2;
                } else if chars[i] == '\'' {
                    i += 1;
                    break;
                } else {
                    i += 1;
                }
            }
            let literal = collect(start, i);
            // Keep a prefix (E, U&, B, X, N) attached to its string.
            let after_prefix = start > 0
                && (is_word_char(chars[start - 1]) || tokens.last().is_some_and(|t| t == "u&"));
            if i > start && after_prefix {
                if let Some(prefix) = tokens.pop() {
                    tokens.push(format!("{prefix}{literal}"));
                    continue;
                }
            }
            tokens.push(literal);
        } else if c == '"' {
            let start = i;
            i += 1;
            while i < n {
                if chars[i] == '"' && chars.get(i + 1) == Some(&'"') {
                    i += 2;
                } else if chars[i] == '"' {
                    i += 1;
                    break;
                } else {
                    i += 1;
                }
            }
            tokens.push(collect(start, i));
        } else if c == '$' && next.is_some_and(|d| d.is_ascii_digit()) {
            let start = i;
            i += 1;
            while i < n && chars[i].is_ascii_digit() {
                i += 1;
            }
            tokens.push(collect(start, i));
        } else if c == '$' && dollar_tag_end(&chars, i).is_some() {
            let tag_end = dollar_tag_end(&chars, i).expect("checked");
            let tag: String = collect(i, tag_end);
            let start = i;
            i = tag_end;
            loop {
                if i >= n {
                    break;
                }
                if chars[i] == '$' && collect(i, i + tag.chars().count()) == tag {
                    i += tag.chars().count();
                    break;
                }
                i += 1;
            }
            tokens.push(collect(start, i));
        } else if is_word_start(c) {
            let start = i;
            while i < n && is_word_char(chars[i]) {
                i += 1;
            }
            let word = collect(start, i).to_ascii_lowercase();
            // U&'...' (a Unicode-escape string) is one token; U & '...' is three.
            if word == "u" && chars.get(i) == Some(&'&') && chars.get(i + 1) == Some(&'\'') {
                tokens.push("u&".to_string());
                i += 1;
                continue;
            }
            tokens.push(word);
        } else if c.is_ascii_digit() || (c == '.' && next.is_some_and(|d| d.is_ascii_digit())) {
            let start = i;
            while i < n
                && (chars[i].is_ascii_alphanumeric()
                    || chars[i] == '.'
                    || chars[i] == '_'
                    || ((chars[i] == '+' || chars[i] == '-') && matches!(chars[i - 1], 'e' | 'E')))
            {
                i += 1;
            }
            tokens.push(collect(start, i).to_ascii_lowercase());
        } else if is_operator_char(c) {
            let start = i;
            while i < n
                && is_operator_char(chars[i])
                && !(chars[i] == '-' && chars.get(i + 1) == Some(&'-'))
                && !(chars[i] == '/' && chars.get(i + 1) == Some(&'*'))
            {
                i += 1;
            }
            tokens.push(collect(start, i));
        } else if c == ':' {
            let start = i;
            while i < n && chars[i] == ':' {
                i += 1;
            }
            tokens.push(collect(start, i));
        } else {
            tokens.push(c.to_string());
            i += 1;
        }
    }
    while tokens.last().is_some_and(|t| t == ";") {
        tokens.pop();
    }
    tokens
}

/// If a dollar-quote opening tag (`$$` or `$tag$`) starts at `i`, the index just past it.
fn dollar_tag_end(chars: &[char], i: usize) -> Option<usize> {
    let mut j = i + 1;
    if chars.get(j).is_some_and(|c| c.is_ascii_digit()) {
        return None;
    }
    while j < chars.len() && chars[j] != '$' {
        if !is_word_char(chars[j]) || chars[j] == '$' {
            return None;
        }
        j += 1;
    }
    (j < chars.len()).then_some(j + 1)
}

#[cfg(test)]
#[path = "normalize_tests.rs"]
mod tests;
