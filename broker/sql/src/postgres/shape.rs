//! A statement's shape: its tokens, from PostgreSQL's own scanner, with every constant's value
//! blanked. Texts of one shape parse to the same tree except for constant values, so facts
//! that never looked at a constant's value hold for every text of the shape.
//!
//! ```text
//!  select abalance from t where aid = 42;   ─┐
//!  SELECT abalance FROM t WHERE aid = 7 ;   ─┼─▶ different shapes (keywords are kept as written)
//!  select abalance from t where aid = 9;    ─┘─▶ the first one's shape
//! ```
//!
//! Why that holds: the grammar sees token kinds and the text of keywords, identifiers and
//! operators, and puts a constant's value only into the constant node it makes. The exception
//! is Unicode escapes: the value of a `UESCAPE '...'` constant decides what the `U&"..."`
//! identifier before it means, so a text with `U&` tokens has no shape.
//!
//! Whether the analysis looked at a constant's value is tracked here too ([`note_read`]): the
//! trivially-true evaluator and the readers of `SET`/`set_config`/option values call it.

use std::cell::Cell;

use pg_query::protobuf::Token;

/// The shape of a one-statement text, and where its statement starts and ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Shape {
    /// Tokens with constants blanked, separated by NUL (which no token contains).
    pub key: Box<str>,
    /// The byte offset of the first token that is not a comment.
    pub start: usize,
    /// The byte offset of the trailing `;`, if the text ends with one.
    pub semicolon: Option<usize>,
}

/// The shape of `sql`, or `None` when it has none: the scanner refuses the text, it holds more
/// than one statement (a `;` before the last token), or it uses Unicode escapes.
pub(crate) fn shape(sql: &str) -> Option<Shape> {
    let tokens = pg_query::scan_tokens(sql).ok()?;
    let mut key = String::with_capacity(sql.len() + tokens.len());
    let mut semicolon = None;
    let mut first = None;
    for token in &tokens {
        if semicolon.is_some() {
            // Anything but a comment after a `;` is a second statement.
            if !is_comment(token.token) {
                return None;
            }
            continue;
        }
        let start = usize::try_from(token.start).ok()?;
        let end = usize::try_from(token.end).ok()?;
        let text = sql.get(start..end)?;
        if !is_comment(token.token) {
            first.get_or_insert(start);
        }
        let blank = match Token::try_from(token.token) {
            Ok(Token::SqlComment | Token::CComment) => continue,
            Ok(Token::Iconst) => "\u{1}i",
            Ok(Token::Fconst) => "\u{1}f",
            Ok(Token::Sconst) => "\u{1}s",
            Ok(Token::Bconst) => "\u{1}b",
            Ok(Token::Xconst) => "\u{1}x",
            Ok(Token::Usconst | Token::Uident | Token::Uescape) => return None,
            Ok(Token::Ascii59) => {
                semicolon = Some(start);
                continue;
            }
            _ => text,
        };
        key.push_str(blank);
        key.push('\0');
    }
    Some(Shape {
        key: key.into_boxed_str(),
        start: first.unwrap_or(0),
        semicolon,
    })
}

fn is_comment(token: i32) -> bool {
    token == Token::SqlComment as i32 || token == Token::CComment as i32
}

thread_local! {
    /// Whether the analysis running on this thread has looked at a constant's value.
    static READ: Cell<bool> = const { Cell::new(false) };
}

/// Records that the facts being computed depend on a constant's value.
pub(crate) fn note_read() {
    READ.with(|read| read.set(true));
}

/// Runs `analysis` and says whether it looked at any constant's value.
pub(crate) fn tracking<T>(analysis: impl FnOnce() -> T) -> (T, bool) {
    READ.with(|read| read.set(false));
    let out = analysis();
    (out, READ.with(|read| read.replace(false)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(sql: &str) -> Option<Box<str>> {
        shape(sql).map(|s| s.key)
    }

    #[test]
    fn constants_are_blanked_and_everything_else_kept() {
        let a = key("select abalance from t where aid = 42").unwrap();
        assert_eq!(a, key("select abalance from t where aid = 7").unwrap());
        assert_eq!(
            a,
            key("select  abalance\nfrom t /* c */ where aid=9 -- x").unwrap()
        );
        assert_ne!(a, key("select abalance from t where aid = 4.2").unwrap());
        assert_ne!(a, key("select abalance from t where aid = '42'").unwrap());
        assert_ne!(a, key("SELECT abalance from t where aid = 42").unwrap());
        assert_ne!(a, key("select abalance from u where aid = 42").unwrap());
        assert_ne!(a, key("select abalance from t where aid = $1").unwrap());
        assert_eq!(
            key("select 'a'").unwrap(),
            key("select $$it's; drop table t$$").unwrap()
        );
    }

    #[test]
    fn one_statement_only() {
        assert_eq!(shape("select 1;").unwrap().semicolon, Some(8));
        assert_eq!(shape("select 1 ; -- done").unwrap().semicolon, Some(9));
        assert_eq!(shape("select 1").unwrap().semicolon, None);
        assert!(shape("select 1; select 2").is_none());
        assert!(shape("select 1;;").is_none());
    }

    #[test]
    fn unicode_escapes_have_no_shape() {
        assert!(shape(r#"select * from U&"d!0061ta" UESCAPE '!'"#).is_none());
        assert!(shape(r"select U&'d\0061ta'").is_none());
    }

    #[test]
    fn texts_the_scanner_refuses_have_no_shape() {
        assert!(shape("select 'unterminated").is_none());
        assert!(shape("select 1\0").is_none());
    }

    #[test]
    fn tracking_reports_reads_and_resets() {
        let ((), read) = tracking(note_read);
        assert!(read);
        let ((), read) = tracking(|| ());
        assert!(!read);
    }
}
