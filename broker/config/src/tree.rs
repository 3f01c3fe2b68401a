//! A small YAML tree that remembers where every node and key was written.
//!
//! yaml-rust2's own `Yaml` tree drops positions and silently keeps the last of duplicate keys, so
//! this module pulls the parser's marked events itself and builds [`Node`]s that carry a line and
//! column. Problems that are about YAML rather than the schema (duplicate keys, aliases, anchors,
//! tags, non-string keys, a second document) are recorded here, with their key path, while the
//! rest of the tree is still built; only a syntax error stops the reader, because after one the
//! parser cannot tell where the next node starts.

use yaml_rust2::parser::{Event, Parser};
use yaml_rust2::scanner::{Marker, ScanError, TScalarStyle};

/// Deeper nesting than this is refused: the schema needs five levels, and the reader recurses,
/// so an unbounded depth would let a hostile file overflow the stack.
const MAX_DEPTH: usize = 64;

/// A 1-based line and column in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Pos {
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
}

impl Pos {
    /// yaml-rust2 markers have 1-based lines and 0-based columns.
    fn from_marker(mark: &Marker) -> Self {
        Self {
            line: mark.line(),
            column: mark.col() + 1,
        }
    }
}

/// One YAML node with its position.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Node {
    /// What the node holds.
    pub kind: NodeKind,
    /// Where it starts (for a mapping: its first key, which is what an operator looks for).
    pub pos: Pos,
}

/// The shapes a node can take.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum NodeKind {
    /// A mapping, in file order, without duplicate keys (duplicates are reported and dropped).
    Map(Vec<Entry>),
    /// A sequence.
    Seq(Vec<Node>),
    /// Any scalar except null; YAML's typing is not applied because every value in the schema is
    /// read from its text (`5432`, `1h`, `true` are all strings here).
    Scalar(String),
    /// An empty value, `~` or `null` written plain: treated as "not set".
    Null,
    /// A node already reported as refused (an alias); readers skip it without a second error.
    Invalid,
}

impl NodeKind {
    /// How the node is named in "expected X, found Y" messages.
    pub fn describe(&self) -> &'static str {
        match self {
            Self::Map(_) => "a mapping",
            Self::Seq(_) => "a list",
            Self::Scalar(_) => "a single value",
            Self::Null => "an empty value",
            Self::Invalid => "an unsupported value",
        }
    }
}

/// One `key: value` pair of a mapping.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Entry {
    /// The key text.
    pub key: String,
    /// Where the key is written: errors about the value point here, as operators scan keys.
    pub key_pos: Pos,
    /// The value.
    pub value: Node,
}

/// A problem found while reading, before the schema is applied.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Problem {
    /// Where.
    pub pos: Pos,
    /// Dotted key path, empty for syntax errors.
    pub key: String,
    /// What is wrong.
    pub message: String,
}

/// The result of reading a file that is syntactically valid YAML.
#[derive(Debug)]
pub(crate) struct Document {
    /// The root node; `None` for a file with no content (only comments, or nothing).
    pub root: Option<Node>,
    /// Non-fatal problems, each already carrying its key path.
    pub problems: Vec<Problem>,
}

/// Reads `text` into a [`Document`], or returns the YAML syntax error that stopped it.
pub(crate) fn read(text: &str) -> Result<Document, Problem> {
    let mut reader = Reader {
        parser: Parser::new_from_str(text),
        path: String::new(),
        problems: Vec::new(),
    };
    let root = reader.document()?;
    Ok(Document {
        root,
        problems: reader.problems,
    })
}

/// Pulls events and keeps the key path of the node being read.
struct Reader<'a> {
    /// The event source.
    parser: Parser<std::str::Chars<'a>>,
    /// Dotted path of the node being read, for problem messages.
    path: String,
    /// Problems found so far.
    problems: Vec<Problem>,
}

impl Reader<'_> {
    fn next(&mut self) -> Result<(Event, Marker), Problem> {
        self.parser.next_token().map_err(syntax_error)
    }

    fn problem(&mut self, pos: Pos, message: impl Into<String>) {
        self.problems.push(Problem {
            pos,
            key: self.path.clone(),
            message: message.into(),
        });
    }

    /// Reads the stream; refuses a second document rather than silently ignoring it.
    fn document(&mut self) -> Result<Option<Node>, Problem> {
        let mut root = None;
        loop {
            let (event, mark) = self.next()?;
            match event {
                Event::StreamStart | Event::DocumentEnd | Event::Nothing => {}
                Event::StreamEnd => return Ok(root),
                Event::DocumentStart if root.is_none() => {
                    let (event, mark) = self.next()?;
                    let node = self.node(event, mark, 0)?;
                    root = Some(node);
                }
                Event::DocumentStart => {
                    self.problem(
                        Pos::from_marker(&mark),
                        "only one YAML document is allowed; remove the second `---` section",
                    );
                    return Ok(root);
                }
                _ => return Err(unexpected(&mark)),
            }
        }
    }

    /// Reads one node whose first event is `event`.
    fn node(&mut self, event: Event, mark: Marker, depth: usize) -> Result<Node, Problem> {
        let pos = Pos::from_marker(&mark);
        if depth > MAX_DEPTH {
            return Err(Problem {
                pos,
                key: self.path.clone(),
                message: format!("nesting deeper than {MAX_DEPTH} levels is not supported"),
            });
        }
        match event {
            Event::Scalar(text, style, anchor, tag) => {
                self.refuse_decorations(pos, anchor, tag.is_some());
                let kind = if style == TScalarStyle::Plain && is_null(&text) {
                    NodeKind::Null
                } else {
                    NodeKind::Scalar(text)
                };
                Ok(Node { kind, pos })
            }
            Event::Alias(_) => {
                self.problem(pos, "aliases are not supported; write the value out");
                Ok(Node {
                    kind: NodeKind::Invalid,
                    pos,
                })
            }
            Event::SequenceStart(anchor, tag) => {
                self.refuse_decorations(pos, anchor, tag.is_some());
                let mut items = Vec::new();
                loop {
                    let (event, mark) = self.next()?;
                    if event == Event::SequenceEnd {
                        break;
                    }
                    let saved = self.path.len();
                    self.path.push_str(&format!("[{}]", items.len()));
                    let item = self.node(event, mark, depth + 1);
                    self.path.truncate(saved);
                    items.push(item?);
                }
                Ok(Node {
                    kind: NodeKind::Seq(items),
                    pos,
                })
            }
            Event::MappingStart(anchor, tag) => {
                self.refuse_decorations(pos, anchor, tag.is_some());
                let entries = self.mapping(depth)?;
                // Block mapping markers point one column past the first key; the first key's own
                // position is what an operator looks for.
                let pos = entries.first().map_or(pos, |entry| entry.key_pos);
                Ok(Node {
                    kind: NodeKind::Map(entries),
                    pos,
                })
            }
            _ => Err(unexpected(&mark)),
        }
    }

    /// Reads the pairs of a mapping after its `MappingStart`, dropping refused and duplicate keys.
    fn mapping(&mut self, depth: usize) -> Result<Vec<Entry>, Problem> {
        let mut entries: Vec<Entry> = Vec::new();
        loop {
            let (event, mark) = self.next()?;
            if event == Event::MappingEnd {
                return Ok(entries);
            }
            let key_pos = Pos::from_marker(&mark);
            let key = match event {
                Event::Scalar(text, _, anchor, tag) => {
                    self.refuse_decorations(key_pos, anchor, tag.is_some());
                    Some(text)
                }
                Event::Alias(_) => {
                    self.problem(key_pos, "aliases are not supported; write the key out");
                    None
                }
                other => {
                    // Read the complex key only to get past it.
                    self.node(other, mark, depth + 1)?;
                    self.problem(key_pos, "keys must be plain strings");
                    None
                }
            };
            let saved = self.path.len();
            if let Some(key) = &key {
                if !self.path.is_empty() {
                    self.path.push('.');
                }
                self.path.push_str(key);
            }
            let (event, mark) = self.next()?;
            let value = self.node(event, mark, depth + 1);
            let keep = match &key {
                Some(key) if key.is_empty() => {
                    self.problem(key_pos, "empty key");
                    false
                }
                Some(key) => match entries.iter().find(|entry| &entry.key == key) {
                    Some(first) => {
                        let first_line = first.key_pos.line;
                        self.problem(
                            key_pos,
                            format!("duplicate key \"{key}\" (first defined at line {first_line})"),
                        );
                        false
                    }
                    None => true,
                },
                None => false,
            };
            self.path.truncate(saved);
            let value = value?;
            if let (true, Some(key)) = (keep, key) {
                entries.push(Entry {
                    key,
                    key_pos,
                    value,
                });
            }
        }
    }

    /// Anchors and tags would make the file mean something other than what it looks like, and
    /// the schema needs neither.
    fn refuse_decorations(&mut self, pos: Pos, anchor: usize, tagged: bool) {
        if anchor != 0 {
            self.problem(pos, "anchors are not supported; write the value out");
        }
        if tagged {
            self.problem(pos, "tags are not supported; write the plain value");
        }
    }
}

/// YAML 1.2 core-schema nulls, when written plain.
fn is_null(text: &str) -> bool {
    matches!(text, "" | "~" | "null" | "Null" | "NULL")
}

fn syntax_error(error: ScanError) -> Problem {
    Problem {
        pos: Pos::from_marker(error.marker()),
        key: String::new(),
        message: format!("YAML syntax error: {}", error.info()),
    }
}

/// An event the parser's grammar never produces in this position; reported rather than panicking.
fn unexpected(mark: &Marker) -> Problem {
    Problem {
        pos: Pos::from_marker(mark),
        key: String::new(),
        message: "YAML syntax error: unexpected structure".to_owned(),
    }
}
