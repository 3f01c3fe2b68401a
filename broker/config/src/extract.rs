//! Reading typed values out of the marked tree while collecting, not stopping at, errors.
//!
//! Every reader takes an [`Item`] (a node plus the key path and position that led to it), records
//! a [`ConfigError`] when the node is not what the schema wants, and returns `None` so the caller
//! can carry on with the next key. The schema in `schema.rs` is written entirely in terms of
//! these readers, which keeps the wording of type errors uniform.

use std::path::{Path, PathBuf};

use crate::location::{ConfigError, Located, Location};
use crate::tree::{Entry, Node, NodeKind, Pos, Problem};

/// The error collector and what is needed to turn positions into [`Location`]s.
#[derive(Debug)]
pub(crate) struct Cx<'a> {
    /// The configuration file, for locations.
    file: &'a Path,
    /// Its directory, against which relative paths are resolved.
    pub base: &'a Path,
    /// Everything found so far.
    errors: Vec<ConfigError>,
}

/// A node reached through a key, with what is needed to report about it.
#[derive(Debug, Clone)]
pub(crate) struct Item<'n> {
    /// The value.
    pub node: &'n Node,
    /// Where errors about the value point: the key that holds it, or the item of a list.
    pub pos: Pos,
    /// Dotted key path of the value.
    pub key: String,
}

impl<'n> Item<'n> {
    /// The item for the document root.
    pub fn root(node: &'n Node) -> Self {
        Self {
            node,
            pos: node.pos,
            key: String::new(),
        }
    }

    fn child(&self, entry: &'n Entry) -> Self {
        Self {
            node: &entry.value,
            pos: entry.key_pos,
            key: join_key(&self.key, &entry.key),
        }
    }
}

/// `parent.child`, or `child` at the top level.
pub(crate) fn join_key(parent: &str, child: &str) -> String {
    if parent.is_empty() {
        child.to_owned()
    } else {
        format!("{parent}.{child}")
    }
}

/// A mapping whose keys have been checked against the schema.
#[derive(Debug)]
pub(crate) struct Fields<'n> {
    /// The mapping itself, as reached from its parent.
    pub item: Item<'n>,
    /// Its entries (already free of duplicates, see `tree.rs`).
    entries: &'n [Entry],
}

impl<'n> Fields<'n> {
    /// The value of `name` when present and not null: null means "not set" for optional keys.
    pub fn optional(&self, name: &str) -> Option<Item<'n>> {
        self.entry(name)
            .filter(|item| item.node.kind != NodeKind::Null)
    }

    /// The value of `name` when the key is written at all, even with an empty value; used to
    /// refuse keys that do not belong, however they are written.
    pub fn entry(&self, name: &str) -> Option<Item<'n>> {
        self.entries
            .iter()
            .find(|entry| entry.key == name)
            .map(|entry| self.item.child(entry))
    }

    /// All entries, for mappings whose keys are names (resources, labels).
    pub fn all(&self) -> impl Iterator<Item = (&'n str, Item<'n>)> + '_ {
        self.entries
            .iter()
            .map(|entry| (entry.key.as_str(), self.item.child(entry)))
    }
}

impl<'a> Cx<'a> {
    /// A collector for `file`, resolving relative paths against `base`.
    pub fn new(file: &'a Path, base: &'a Path) -> Self {
        Self {
            file,
            base,
            errors: Vec::new(),
        }
    }

    /// The public [`Location`] of a position in this file.
    pub fn location(&self, pos: Pos) -> Location {
        Location {
            file: self.file.to_path_buf(),
            line: pos.line,
            column: pos.column,
        }
    }

    /// Records a problem at `pos` about `key`.
    pub fn error(&mut self, pos: Pos, key: &str, message: impl Into<String>) {
        let location = self.location(pos);
        self.errors.push(ConfigError {
            location,
            key: key.to_owned(),
            message: message.into(),
        });
    }

    /// Reports an error about the value of `item`.
    pub fn invalid(&mut self, item: &Item<'_>, message: impl Into<String>) {
        self.error(item.pos, &item.key, message);
    }

    /// Records an already located problem.
    pub fn push(&mut self, error: ConfigError) {
        self.errors.push(error);
    }

    /// Records a problem found while reading the tree.
    pub fn problem(&mut self, problem: Problem) {
        self.error(problem.pos, &problem.key, problem.message);
    }

    /// Whether anything has been recorded; a configuration is only built when not.
    pub fn has_errors(&self) -> bool {
        !self.errors.is_empty()
    }

    /// Everything recorded, in the order found.
    pub fn into_errors(self) -> Vec<ConfigError> {
        self.errors
    }

    /// Wraps a value read from `item` with the item's location and key.
    pub fn located<T>(&self, item: &Item<'_>, value: T) -> Located<T> {
        Located {
            value,
            location: self.location(item.pos),
            key: item.key.clone(),
        }
    }

    /// Reports the wrong shape, unless the node was already refused while reading the tree.
    fn wrong_type(&mut self, item: &Item<'_>, expected: &str) {
        match item.node.kind {
            NodeKind::Invalid => {}
            NodeKind::Null => self.invalid(item, format!("a value is required ({expected})")),
            ref other => {
                let found = other.describe();
                self.invalid(item, format!("expected {expected}, found {found}"));
            }
        }
    }

    /// Opens `item` as a mapping whose keys must be among `allowed`.
    pub fn fields<'n>(&mut self, item: &Item<'n>, allowed: &[&str]) -> Option<Fields<'n>> {
        let fields = self.mapping(item, &format!("a mapping with {}", allowed.join(", ")))?;
        for entry in fields.entries {
            if !allowed.contains(&entry.key.as_str()) {
                let message = match suggest(&entry.key, allowed.iter().copied()) {
                    Some(close) => {
                        format!("unknown key \"{}\"; did you mean \"{close}\"?", entry.key)
                    }
                    None => format!(
                        "unknown key \"{}\" (expected one of: {})",
                        entry.key,
                        allowed.join(", ")
                    ),
                };
                self.error(entry.key_pos, &join_key(&item.key, &entry.key), message);
            }
        }
        Some(fields)
    }

    /// Opens `item` as a mapping whose keys are names chosen by the operator. An empty value is
    /// an empty mapping, so `resources:` with everything commented out is valid.
    pub fn mapping<'n>(&mut self, item: &Item<'n>, expected: &str) -> Option<Fields<'n>> {
        match &item.node.kind {
            NodeKind::Map(entries) => Some(Fields {
                item: item.clone(),
                entries,
            }),
            NodeKind::Null => Some(Fields {
                item: item.clone(),
                entries: &[],
            }),
            _ => {
                self.wrong_type(item, expected);
                None
            }
        }
    }

    /// The value of a key that must be present and set; reports a missing key at the mapping
    /// that should contain it.
    pub fn required<'n>(&mut self, fields: &Fields<'n>, name: &str) -> Option<Item<'n>> {
        match fields.entry(name) {
            Some(item) if item.node.kind == NodeKind::Null => {
                self.invalid(&item, "a value is required");
                None
            }
            Some(item) => Some(item),
            None => {
                self.error(
                    fields.item.pos,
                    &join_key(&fields.item.key, name),
                    "missing required key",
                );
                None
            }
        }
    }

    /// Reports that `name` (or one of its alternatives, which `message` names) is missing
    /// from the mapping `fields`.
    pub fn missing(&mut self, fields: &Fields<'_>, name: &str, message: &str) {
        self.error(
            fields.item.pos,
            &join_key(&fields.item.key, name),
            format!("missing required key: {message}"),
        );
    }

    /// A scalar's text, possibly empty.
    pub fn string(&mut self, item: &Item<'_>) -> Option<String> {
        match &item.node.kind {
            NodeKind::Scalar(text) => Some(text.clone()),
            _ => {
                self.wrong_type(item, "a single value");
                None
            }
        }
    }

    /// A scalar's text, which must not be empty or only whitespace.
    pub fn text(&mut self, item: &Item<'_>) -> Option<String> {
        let text = self.string(item)?;
        if text.trim().is_empty() {
            self.invalid(item, "must not be empty");
            return None;
        }
        Some(text)
    }

    /// `true` or `false` (also capitalised or upper case, as YAML 1.2 allows); nothing else, so
    /// `yes`, `on` or `1` are errors rather than guesses.
    pub fn boolean(&mut self, item: &Item<'_>) -> Option<bool> {
        let text = self.text(item)?;
        match text.as_str() {
            "true" | "True" | "TRUE" => Some(true),
            "false" | "False" | "FALSE" => Some(false),
            other => {
                self.invalid(item, format!("expected true or false, found \"{other}\""));
                None
            }
        }
    }

    /// A file path, resolved against the configuration file's directory.
    pub fn path(&mut self, item: &Item<'_>) -> Option<Located<PathBuf>> {
        let text = self.text(item)?;
        let path = crate::schema::resolve_path(self.base, &text);
        Some(self.located(item, path))
    }

    /// A list; an empty value is an empty list.
    pub fn list<'n>(&mut self, item: &Item<'n>, expected: &str) -> Option<Vec<Item<'n>>> {
        match &item.node.kind {
            NodeKind::Seq(nodes) => Some(
                nodes
                    .iter()
                    .enumerate()
                    .map(|(index, node)| Item {
                        node,
                        pos: node.pos,
                        key: format!("{}[{index}]", item.key),
                    })
                    .collect(),
            ),
            NodeKind::Null => Some(Vec::new()),
            _ => {
                self.wrong_type(item, expected);
                None
            }
        }
    }

    /// A list of non-empty strings, each with where it is written.
    pub fn string_list(&mut self, item: &Item<'_>) -> Option<Vec<Located<String>>> {
        let items = self.list(item, "a list of names, e.g. [alice]")?;
        let mut values = Vec::with_capacity(items.len());
        let mut ok = true;
        for entry in &items {
            match self.text(entry) {
                Some(text) => values.push(self.located(entry, text)),
                None => ok = false,
            }
        }
        ok.then_some(values)
    }
}

/// The candidate closest to `word`, if it is close enough to be a plausible typo.
pub(crate) fn suggest<'s>(
    word: &str,
    candidates: impl IntoIterator<Item = &'s str>,
) -> Option<&'s str> {
    let word_lower = word.to_lowercase();
    candidates
        .into_iter()
        .map(|candidate| {
            (
                edit_distance(&word_lower, &candidate.to_lowercase()),
                candidate,
            )
        })
        .filter(|&(distance, candidate)| {
            let longest = word.chars().count().max(candidate.chars().count());
            distance <= (longest / 3).max(1)
        })
        .min_by_key(|&(distance, _)| distance)
        .map(|(_, candidate)| candidate)
}

/// Optimal-string-alignment distance: insertions, deletions, substitutions and adjacent
/// transpositions each cost one, because swapped letters are the most common typo in keys.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    // Three rolling rows: two back (for transpositions), previous, current.
    let mut before: Vec<usize> = vec![0; b.len() + 1];
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    let mut current: Vec<usize> = vec![0; b.len() + 1];
    for i in 1..=a.len() {
        current[0] = i;
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (previous[j] + 1)
                .min(current[j - 1] + 1)
                .min(previous[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(before[j - 2] + 1);
            }
            current[j] = best;
        }
        std::mem::swap(&mut before, &mut previous);
        std::mem::swap(&mut previous, &mut current);
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::{edit_distance, suggest};

    #[test]
    fn distance_counts_transpositions_once() {
        assert_eq!(edit_distance("cetr", "cert"), 1);
        assert_eq!(edit_distance("lisen", "listen"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("same", "same"), 0);
    }

    #[test]
    fn suggests_only_close_candidates() {
        let keys = ["listen", "tls", "tokens", "store", "resources", "policy"];
        assert_eq!(suggest("lisen", keys), Some("listen"));
        assert_eq!(suggest("Resorces", keys), Some("resources"));
        assert_eq!(suggest("identity", keys), None);
        assert_eq!(suggest("tcp", keys), None);
    }
}
