//! The PostgreSQL dialect: SQL text to [`StatementFacts`] with PostgreSQL's own grammar.
//!
//! ```text
//!  text ──pg_query::parse──▶ protobuf parse tree ──analyze (per RawStmt)──▶ StatementFacts
//!                  statement span ──(pg_query::scan if it may hold a comment)──▶ normalized
//! ```
//!
//! `pg_query` wraps libpg_query, which is the server's parser compiled as a library, so what
//! parses here parses in the server and vice versa (for the grammar of the bundled release,
//! 18). The one thing the classifier cannot know is session state that changes how the
//! server tokenizes: it assumes `standard_conforming_strings = on` and an ASCII-safe
//! `client_encoding` (UTF-8), and reports statements that change either
//! ([`StatementFacts::lexer_change`]) so the guard can refuse them.

mod analyze;
mod filter;
mod walk;

use std::collections::HashMap;
use std::ops::Range;
use std::sync::{Arc, Mutex, PoisonError};

use pg_query::protobuf::Token;

use crate::facts::StatementFacts;

/// The facts of every statement in `sql`, in order.
///
/// Empty, whitespace-only and comment-only text yields no statements. Text that does not
/// parse yields exactly one [`Unknown`](crate::facts::StatementClass::Unknown) statement
/// spanning the whole text, with PostgreSQL's error message: when one statement of several
/// is malformed the server would run the ones before it, so the whole string is one unit.
pub fn classify(sql: &str) -> Vec<StatementFacts> {
    let tree = match pg_query::parse(sql, 0) {
        Ok(tree) => tree,
        Err(e) => {
            let mut facts = StatementFacts::unknown(0..sql.len(), parse_error(&e));
            facts.normalized = collapse_whitespace(sql);
            return vec![facts];
        }
    };
    tree.protobuf
        .stmts
        .iter()
        .filter_map(|raw| {
            let stmt = raw.stmt.as_ref()?.node.as_ref()?;
            let span = span(sql, raw.stmt_location, raw.stmt_len);
            let mut facts = analyze::analyze(stmt, span.clone());
            facts.normalized = normalize(&sql[span.clone()]);
            Some(facts)
        })
        .collect()
}

fn parse_error(e: &pg_query::Error) -> String {
    match e {
        pg_query::Error::Parse(message) => message.clone(),
        pg_query::Error::Conversion(_) => "the text contains a NUL byte".into(),
        pg_query::Error::Decode(_) => {
            // prost stops decoding at 100 nested messages (see docs/guardrails.md, limits).
            "the statement nests too deeply for sluice to inspect (more than 100 parse-tree \
             levels)"
                .into()
        }
        other => other.to_string(),
    }
}

/// The byte range of one statement: libpg_query's location and length (0 meaning "to the
/// end"), without surrounding whitespace, clamped to the text and to char boundaries.
fn span(sql: &str, location: i32, len: i32) -> Range<usize> {
    let start = usize::try_from(location).unwrap_or(0).min(sql.len());
    let end = match usize::try_from(len) {
        Ok(0) | Err(_) => sql.len(),
        Ok(len) => start.saturating_add(len).min(sql.len()),
    };
    let (mut start, mut end) = (start, end);
    while !sql.is_char_boundary(start) {
        start -= 1;
    }
    while !sql.is_char_boundary(end) {
        end += 1;
    }
    let text = &sql[start..end];
    let trimmed_start = text.len() - text.trim_start().len();
    let trimmed_end = text.trim_end().len();
    if trimmed_start >= trimmed_end {
        return start..start;
    }
    start + trimmed_start..start + trimmed_end
}

/// The statement with comments replaced by a space and every whitespace run (inside
/// literals too) collapsed to one space. Only text that may hold a comment is scanned.
fn normalize(text: &str) -> String {
    if !text.contains("--") && !text.contains("/*") {
        return collapse_whitespace(text);
    }
    let Ok(scan) = pg_query::scan(text) else {
        return collapse_whitespace(text);
    };
    let mut without_comments = String::with_capacity(text.len());
    let mut copied = 0;
    for token in &scan.tokens {
        if token.token != Token::SqlComment as i32 && token.token != Token::CComment as i32 {
            continue;
        }
        let (Ok(start), Ok(end)) = (usize::try_from(token.start), usize::try_from(token.end))
        else {
            continue;
        };
        if let (Some(before), true) = (text.get(copied..start), end <= text.len()) {
            without_comments.push_str(before);
            without_comments.push(' ');
            copied = end;
        }
    }
    without_comments.push_str(text.get(copied..).unwrap_or_default());
    collapse_whitespace(&without_comments)
}

fn collapse_whitespace(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A thread-safe, bounded cache of [`classify`] results keyed by exact statement text.
///
/// Eviction is by generations rather than strict LRU: entries live in a "young" map; when it
/// holds half the capacity it becomes the "old" map (the previous old map is dropped) and a
/// new young map starts. A hit in the old map moves the entry to the young one. So the cache
/// never holds more than `capacity` entries, and anything used within the last
/// `capacity / 2` insertions survives. Texts longer than [`Classifier::MAX_CACHED_LEN`] are
/// classified but not kept, which bounds the memory to about `capacity` x that length.
#[derive(Debug)]
pub struct Classifier {
    capacity: usize,
    generations: Mutex<Generations>,
}

#[derive(Debug, Default)]
struct Generations {
    young: HashMap<Box<str>, Arc<[StatementFacts]>>,
    old: HashMap<Box<str>, Arc<[StatementFacts]>>,
}

impl Classifier {
    /// The default number of cached texts.
    pub const DEFAULT_CAPACITY: usize = 4096;
    /// Texts longer than this many bytes are not cached (bulk `INSERT`s are rarely repeated).
    pub const MAX_CACHED_LEN: usize = 16 * 1024;

    /// A cache holding up to `capacity` texts (at least 2).
    pub fn new(capacity: usize) -> Self {
        Classifier {
            capacity: capacity.max(2),
            generations: Mutex::new(Generations::default()),
        }
    }

    /// The facts of every statement in `sql`, from the cache when this exact text was seen.
    pub fn classify(&self, sql: &str) -> Arc<[StatementFacts]> {
        if let Some(hit) = self.lookup(sql) {
            return hit;
        }
        let facts: Arc<[StatementFacts]> = classify(sql).into();
        if sql.len() <= Self::MAX_CACHED_LEN {
            self.insert(sql, facts.clone());
        }
        facts
    }

    /// How many texts are cached now.
    pub fn len(&self) -> usize {
        let g = self.lock();
        g.young.len() + g.old.len()
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Generations> {
        // The maps stay consistent even if a holder panicked: every critical section is a
        // single map operation.
        self.generations
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn lookup(&self, sql: &str) -> Option<Arc<[StatementFacts]>> {
        let mut g = self.lock();
        if let Some(hit) = g.young.get(sql) {
            return Some(hit.clone());
        }
        let (key, value) = g.old.remove_entry(sql)?;
        self.rotate_if_full(&mut g);
        g.young.insert(key, value.clone());
        Some(value)
    }

    fn insert(&self, sql: &str, facts: Arc<[StatementFacts]>) {
        let mut g = self.lock();
        if g.young.contains_key(sql) {
            return;
        }
        g.old.remove(sql);
        self.rotate_if_full(&mut g);
        g.young.insert(sql.into(), facts);
    }

    fn rotate_if_full(&self, g: &mut Generations) {
        if g.young.len() >= self.capacity / 2 {
            g.old = std::mem::take(&mut g.young);
        }
    }
}

impl Default for Classifier {
    fn default() -> Self {
        Classifier::new(Classifier::DEFAULT_CAPACITY)
    }
}

#[cfg(test)]
mod tests;
