//! Undoing what `dbt run --empty` does to a model's SQL: every `ref()` and `source()` rendered as
//! `(select * from <relation> where false limit 0) _dbt_limit_subq_<name>` is put back to
//! `<relation>`, byte for byte as a normal run renders it (pure, no SPI).

use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::keywords::Keyword;
use sqlparser::tokenizer::{Token, TokenWithSpan, Tokenizer};

/// The alias prefix dbt gives the emptied subquery of a relation.
const LIMIT_ALIAS_PREFIX: &str = "_dbt_limit_subq_";

/// `query` with every relation dbt's `--empty` wrapped restored, and how many were. A text the
/// tokenizer cannot read is returned as it is (PostgreSQL judges it later).
pub fn restore_empty_refs(query: &str) -> (String, usize) {
    let Ok(tokens) = Tokenizer::new(&PostgreSqlDialect {}, query).tokenize_with_location() else {
        return (query.to_string(), 0);
    };
    let offsets = LineOffsets::new(query);
    // The meaningful tokens, with their byte ranges in `query`.
    let words: Vec<(&Token, usize, usize)> = tokens
        .iter()
        .filter(|t| !matches!(t.token, Token::Whitespace(_) | Token::EOF))
        .map(|t| {
            let (start, end) = offsets.range(t);
            (&t.token, start, end)
        })
        .collect();
    let mut out = String::with_capacity(query.len());
    let mut copied = 0;
    let mut restored = 0;
    let mut i = 0;
    while i < words.len() {
        if let Some((relation, next)) = wrapped_relation(&words, i) {
            out.push_str(&query[copied..words[i].1]);
            out.push_str(&query[relation.0..relation.1]);
            copied = words[next - 1].2;
            restored += 1;
            i = next;
        } else {
            i += 1;
        }
    }
    out.push_str(&query[copied..]);
    (out, restored)
}

/// At `i`, dbt's emptied relation `( select * from NAME where false limit 0 ) ALIAS`: the byte
/// range of NAME and the index after ALIAS.
fn wrapped_relation(words: &[(&Token, usize, usize)], i: usize) -> Option<((usize, usize), usize)> {
    let keyword = |at: usize, wanted: Keyword| matches!(words.get(at), Some((Token::Word(w), _, _)) if w.keyword == wanted && w.quote_style.is_none());
    if !matches!(words.get(i), Some((Token::LParen, _, _)))
        || !keyword(i + 1, Keyword::SELECT)
        || !matches!(words.get(i + 2), Some((Token::Mul, _, _)))
        || !keyword(i + 3, Keyword::FROM)
    {
        return None;
    }
    // NAME: identifiers separated by periods.
    let mut j = i + 4;
    let first = j;
    loop {
        match words.get(j) {
            Some((Token::Word(_), _, _)) => j += 1,
            _ => return None,
        }
        match words.get(j) {
            Some((Token::Period, _, _)) => j += 1,
            _ => break,
        }
    }
    let name = (words[first].1, words[j - 1].2);
    let tail_ok = keyword(j, Keyword::WHERE)
        && keyword(j + 1, Keyword::FALSE)
        && keyword(j + 2, Keyword::LIMIT)
        && matches!(words.get(j + 3), Some((Token::Number(n, _), _, _)) if n == "0")
        && matches!(words.get(j + 4), Some((Token::RParen, _, _)));
    if !tail_ok {
        return None;
    }
    match words.get(j + 5) {
        Some((Token::Word(alias), _, _))
            if alias.quote_style.is_none() && alias.value.starts_with(LIMIT_ALIAS_PREFIX) =>
        {
            Some((name, j + 6))
        }
        _ => None,
    }
}

/// Byte offsets of line starts, to turn the tokenizer's (line, column) into byte offsets.
struct LineOffsets<'a> {
    text: &'a str,
    starts: Vec<usize>,
}

impl<'a> LineOffsets<'a> {
    fn new(text: &'a str) -> Self {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        LineOffsets { text, starts }
    }

    /// The byte offset of 1-based `line` and character `column`.
    fn offset(&self, line: u64, column: u64) -> usize {
        let start = self
            .starts
            .get((line.max(1) - 1) as usize)
            .copied()
            .unwrap_or(self.text.len());
        self.text[start..]
            .char_indices()
            .nth((column.max(1) - 1) as usize)
            .map(|(i, _)| start + i)
            .unwrap_or(self.text.len())
    }

    fn range(&self, token: &TokenWithSpan) -> (usize, usize) {
        let span = token.span;
        (
            self.offset(span.start.line, span.start.column),
            self.offset(span.end.line, span.end.column),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn empty(relation: &str, name: &str) -> String {
        format!("(select * from {relation} where false limit 0) _dbt_limit_subq_{name}")
    }

    #[test]
    fn refs_and_sources_come_back_as_a_normal_run_renders_them() {
        let normal = "with orders as (\n  select * from \"db\".\"shop\".\"stg_orders\"\n),\n\
                      payments as (select * from \"db\".\"raw\".\"payments\" where amount > 0)\n\
                      select o.id, sum(p.amount) as total -- 'where false limit 0'\n\
                      from orders o join payments p on p.order_id = o.id group by o.id";
        let emptied = normal
            .replace(
                "\"db\".\"shop\".\"stg_orders\"",
                &empty("\"db\".\"shop\".\"stg_orders\"", "stg_orders"),
            )
            .replace(
                "\"db\".\"raw\".\"payments\"",
                &empty("\"db\".\"raw\".\"payments\"", "payments"),
            );
        assert_ne!(emptied, normal);
        assert_eq!(restore_empty_refs(&emptied), (normal.to_string(), 2));
    }

    #[test]
    fn text_that_only_looks_like_it_stays() {
        for query in [
            "select 'x' as s from (select * from t where false limit 0) sub",
            "select * from t where false limit 0",
            "select '(select * from \"a\" where false limit 0) _dbt_limit_subq_a' as s",
            "select * from (select * from t where false limit 1) _dbt_limit_subq_t",
            "sélect ünïcode from (select * from \"ä\" where false limit 0) \"_dbt_limit_subq_ä\"",
        ] {
            assert_eq!(restore_empty_refs(query), (query.to_string(), 0), "{query}");
        }
    }

    #[test]
    fn multibyte_text_before_a_ref_keeps_its_bytes() {
        let emptied = format!(
            "select 'größe' as g, x from {}",
            empty("\"s\".\"tëst\"", "tëst")
        );
        assert_eq!(
            restore_empty_refs(&emptied),
            ("select 'größe' as g, x from \"s\".\"tëst\"".to_string(), 1)
        );
    }
}
