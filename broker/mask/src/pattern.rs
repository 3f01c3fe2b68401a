//! Column patterns of column rules: which RowDescription columns a rule masks whole.
//!
//! Two forms. A glob pattern has one to three dot-separated parts, `column`, `table.column` or
//! `schema.table.column`, each a glob (`*` any run, `?` one character), compared
//! ASCII-case-insensitively. `re:<regex>` is matched (unanchored, case-insensitive, ASCII
//! classes) against the column name alone; it is compiled once, here, to a DFA.
//!
//! When the engine could not resolve a column's table (an expression, a function result, table
//! OID 0), a table-qualified glob still matches on its column part: masking a computed column
//! that happens to carry a sensitive name is the safe way to be wrong. A schema part likewise
//! matches when the engine gave only a table name.

use regex_automata::dfa::{Automaton, StartKind, dense};
use regex_automata::util::syntax;
use regex_automata::{Anchored, Input};

/// Largest DFA a `re:` pattern may compile to. Column patterns are short; a pattern that needs
/// more than this is a mistake worth reporting.
const DFA_LIMIT: usize = 1 << 20;

/// A compiled column pattern.
#[derive(Debug)]
pub(crate) enum ColumnPattern {
    /// Glob parts, lowercased; `None` for an unqualified level.
    Glob {
        /// First of three parts.
        schema: Option<Vec<u8>>,
        /// First of two parts, second of three.
        table: Option<Vec<u8>>,
        /// Always present: the last part.
        column: Vec<u8>,
    },
    /// `re:` pattern against the column name.
    Regex(Box<dense::DFA<Vec<u32>>>),
}

impl ColumnPattern {
    /// Compiles a pattern as written in a rule; the error is a reason for the user.
    pub(crate) fn compile(pattern: &str) -> Result<ColumnPattern, String> {
        if let Some(regex) = pattern.strip_prefix("re:") {
            if regex.is_empty() {
                return Err("empty regular expression".into());
            }
            let dfa = dense::Builder::new()
                .configure(
                    dense::Config::new()
                        .start_kind(StartKind::Unanchored)
                        .dfa_size_limit(Some(DFA_LIMIT))
                        .determinize_size_limit(Some(DFA_LIMIT)),
                )
                .syntax(
                    syntax::Config::new()
                        .case_insensitive(true)
                        .unicode(false)
                        .utf8(false),
                )
                .build(regex)
                .map_err(|error| format!("invalid regular expression: {error}"))?;
            return Ok(ColumnPattern::Regex(Box::new(dfa)));
        }
        let parts: Vec<Vec<u8>> = pattern
            .split('.')
            .map(|part| part.as_bytes().to_ascii_lowercase())
            .collect();
        if parts.iter().any(Vec::is_empty) {
            return Err("empty part (expected column, table.column or schema.table.column)".into());
        }
        let mut parts = parts.into_iter();
        match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some(column), None, None, None) => Ok(ColumnPattern::Glob {
                schema: None,
                table: None,
                column,
            }),
            (Some(table), Some(column), None, None) => Ok(ColumnPattern::Glob {
                schema: None,
                table: Some(table),
                column,
            }),
            (Some(schema), Some(table), Some(column), None) => Ok(ColumnPattern::Glob {
                schema: Some(schema),
                table: Some(table),
                column,
            }),
            _ => Err("more than three parts (expected schema.table.column at most)".into()),
        }
    }

    /// Does this pattern select the column `name` of `table` (`schema.table`, `table`, or
    /// unknown)?
    pub(crate) fn matches(&self, name: &str, table: Option<&str>) -> bool {
        match self {
            ColumnPattern::Regex(dfa) => {
                let input = Input::new(name).anchored(Anchored::No).earliest(true);
                // A search error (a quit byte; none is configured) counts as a match: when in
                // doubt, mask.
                dfa.try_search_fwd(&input)
                    .map_or(true, |found| found.is_some())
            }
            ColumnPattern::Glob {
                schema: schema_glob,
                table: table_glob,
                column,
            } => {
                if !glob(column, name.as_bytes()) {
                    return false;
                }
                let Some(table) = table else {
                    return true;
                };
                let (schema, table) = match table.split_once('.') {
                    Some((schema, table)) => (Some(schema), table),
                    None => (None, table),
                };
                table_glob
                    .as_deref()
                    .is_none_or(|glob_| glob(glob_, table.as_bytes()))
                    && match (schema_glob.as_deref(), schema) {
                        (Some(glob_), Some(schema)) => glob(glob_, schema.as_bytes()),
                        _ => true,
                    }
            }
        }
    }
}

/// ASCII-case-insensitive glob: `*` any run (also empty), `?` exactly one byte. `pattern` is
/// lowercase. Linear backtracking on the last `*`, so no pattern is exponential.
fn glob(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(&c) if c == b'?' || c == text[t].to_ascii_lowercase() => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((star_p, star_t)) => {
                    p = star_p + 1;
                    t = star_t + 1;
                    star = Some((star_p, star_t + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::glob;

    #[test]
    fn globs() {
        assert!(glob(b"email", b"EMAIL"));
        assert!(glob(b"*", b""));
        assert!(glob(b"*_ssn", b"customer_ssn"));
        assert!(!glob(b"*_ssn", b"customer_ssn2"));
        assert!(glob(b"a?c", b"abc"));
        assert!(!glob(b"a?c", b"ac"));
        assert!(glob(b"*a*b*c*", b"xxaxxbxxcxx"));
        assert!(!glob(b"*a*b*c", b"xxaxxbxxcxx"));
        assert!(!glob(b"email", b"emails"));
    }
}
