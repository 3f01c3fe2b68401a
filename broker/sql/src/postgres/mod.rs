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
pub mod lineage;
mod shape;
mod walk;

use std::collections::HashMap;
use std::ops::Range;
use std::sync::{Arc, Mutex, PoisonError};

use pg_query::protobuf::Token;

use crate::facts::{StatementClass, StatementFacts};

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

/// A thread-safe, bounded cache of [`classify`] results, keyed by exact statement text and by
/// statement shape.
///
/// A text seen before is a lookup. A new text of a shape seen before (the same statement with
/// other constants, such as `select ... where aid = 42` after `... aid = 7`) costs a scan
/// instead of a parse, when the first text's facts did not depend on any constant's value
/// (see `shape.rs`): one plain `SELECT`/`INSERT`/`UPDATE`/`DELETE` whose filters compare
/// columns with constants, without side-effecting functions or session changes. Anything
/// else is parsed every time it is new.
///
/// Eviction is by generations rather than strict LRU: entries live in a "young" map; when it
/// holds half the capacity it becomes the "old" map (the previous old map is dropped) and a
/// new young map starts. A hit in the old map moves the entry to the young one. So each map
/// never holds more than `capacity` entries, and anything used within the last
/// `capacity / 2` insertions survives. Texts longer than [`Classifier::MAX_CACHED_LEN`] are
/// classified but not kept, which bounds the memory to about `capacity` x that length.
#[derive(Debug)]
pub struct Classifier {
    capacity: usize,
    texts: Mutex<Generations<Arc<[StatementFacts]>>>,
    shapes: Mutex<Generations<Arc<StatementFacts>>>,
}

#[derive(Debug)]
struct Generations<V> {
    young: HashMap<Box<str>, V>,
    old: HashMap<Box<str>, V>,
}

impl<V> Default for Generations<V> {
    fn default() -> Self {
        Generations {
            young: HashMap::new(),
            old: HashMap::new(),
        }
    }
}

impl<V: Clone> Generations<V> {
    fn get(&mut self, key: &str, capacity: usize) -> Option<V> {
        if let Some(hit) = self.young.get(key) {
            return Some(hit.clone());
        }
        let (key, value) = self.old.remove_entry(key)?;
        self.rotate_if_full(capacity);
        self.young.insert(key, value.clone());
        Some(value)
    }

    fn insert(&mut self, key: &str, value: V, capacity: usize) {
        if self.young.contains_key(key) {
            return;
        }
        self.old.remove(key);
        self.rotate_if_full(capacity);
        self.young.insert(key.into(), value);
    }

    fn len(&self) -> usize {
        self.young.len() + self.old.len()
    }

    fn rotate_if_full(&mut self, capacity: usize) {
        if self.young.len() >= capacity / 2 {
            self.old = std::mem::take(&mut self.young);
        }
    }
}

impl Classifier {
    /// The default number of cached texts (and, separately, of cached shapes).
    pub const DEFAULT_CAPACITY: usize = 4096;
    /// Texts longer than this many bytes are not cached (bulk `INSERT`s are rarely repeated).
    pub const MAX_CACHED_LEN: usize = 16 * 1024;

    /// A cache holding up to `capacity` texts and `capacity` shapes (at least 2 each).
    pub fn new(capacity: usize) -> Self {
        Classifier {
            capacity: capacity.max(2),
            texts: Mutex::new(Generations::default()),
            shapes: Mutex::new(Generations::default()),
        }
    }

    /// The facts of every statement in `sql`: from the cache when this exact text was seen,
    /// from a cached shape when only its constants are new and the facts cannot depend on
    /// them, parsed otherwise.
    pub fn classify(&self, sql: &str) -> Arc<[StatementFacts]> {
        if let Some(hit) = lock(&self.texts).get(sql, self.capacity) {
            return hit;
        }
        if sql.len() > Self::MAX_CACHED_LEN {
            return classify(sql).into();
        }
        let shape = shape::shape(sql);
        if let Some(shape) = &shape
            && let Some(template) = lock(&self.shapes).get(&shape.key, self.capacity)
        {
            return Arc::new([instantiate(sql, shape, &template)]);
        }
        let (facts, read_constants) = shape::tracking(|| classify(sql));
        let facts: Arc<[StatementFacts]> = facts.into();
        if let Some(shape) = shape
            && !read_constants
            && let [one] = &*facts
            && shareable(one)
        {
            lock(&self.shapes).insert(&shape.key, Arc::new(one.clone()), self.capacity);
        }
        lock(&self.texts).insert(sql, facts.clone(), self.capacity);
        facts
    }

    /// How many texts are cached now (shapes not counted).
    pub fn len(&self) -> usize {
        lock(&self.texts).len()
    }

    /// How many shapes are cached now.
    pub fn shapes(&self) -> usize {
        lock(&self.shapes).len()
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0 && self.shapes() == 0
    }
}

fn lock<V>(generations: &Mutex<Generations<V>>) -> std::sync::MutexGuard<'_, Generations<V>> {
    // The maps stay consistent even if a holder panicked: every critical section is a few
    // map operations that cannot panic halfway.
    generations.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Whether facts computed for one text may stand for every text of its shape, besides not
/// having read a constant: a plain query or DML statement, nothing that changes the session,
/// runs side-effecting functions or names a prepared statement or a file.
fn shareable(facts: &StatementFacts) -> bool {
    matches!(facts.class, StatementClass::Read | StatementClass::Write)
        && matches!(
            facts.command.as_str(),
            "SELECT" | "INSERT" | "UPDATE" | "DELETE"
        )
        && facts.parse_error.is_none()
        && facts.side_effect_functions.is_empty()
        && facts.copy.is_none()
        && facts.prepared.is_none()
        && !facts.select_into
        && !facts.explain_analyze_write
        && !facts.role_change
        && !facts.read_only_change
        && !facts.lexer_change
}

/// A shape's facts for one of its texts: only the span and the normalized text differ.
fn instantiate(sql: &str, shape: &shape::Shape, template: &StatementFacts) -> StatementFacts {
    // As libpg_query reports it: from the first token to the `;` (or the end).
    let location = i32::try_from(shape.start).unwrap_or(0);
    let len = shape
        .semicolon
        .and_then(|at| i32::try_from(at.saturating_sub(shape.start)).ok())
        .unwrap_or(0);
    let span = span(sql, location, len);
    let mut facts = template.clone();
    facts.normalized = normalize(&sql[span.clone()]);
    facts.span = span;
    facts
}

impl Default for Classifier {
    fn default() -> Self {
        Classifier::new(Classifier::DEFAULT_CAPACITY)
    }
}

#[cfg(test)]
mod tests;
