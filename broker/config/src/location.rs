//! Where things are in the configuration file, and the errors that point there.
//!
//! Every value the broker may later complain about (a certificate that does not load, a credential
//! that is unset) carries the [`Location`] and dotted key path it came from, so that a failure at
//! start-up or in `sluiced check-config` names the exact line to fix. [`ConfigErrors`] collects all
//! problems of one load so the operator fixes them in one pass instead of one per restart.

use std::fmt;
use std::path::PathBuf;

/// A position in a configuration file, 1-based.
///
/// Line 0 (with column 0) means "the file as a whole", used when the file cannot be read at all.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Location {
    /// The configuration file, as the operator named it (so messages match what they typed).
    pub file: PathBuf,
    /// 1-based line; 0 when the problem concerns the whole file.
    pub line: usize,
    /// 1-based column; 0 when the problem concerns the whole file.
    pub column: usize,
}

impl Location {
    /// A location that designates the whole file (line and column 0).
    pub fn whole_file(file: impl Into<PathBuf>) -> Self {
        Self {
            file: file.into(),
            line: 0,
            column: 0,
        }
    }
}

impl fmt::Display for Location {
    /// `file:line:col`, the form editors and terminals turn into a link. A whole-file location
    /// prints just the file, because `file:0:0` would send editors nowhere.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}", self.file.display())
        } else {
            write!(f, "{}:{}:{}", self.file.display(), self.line, self.column)
        }
    }
}

/// A configuration value together with where it was written.
///
/// Kept on values that are only checked later (files, credentials) so the later error can still
/// point at the line that referenced them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located<T> {
    /// The parsed value (paths already resolved against the configuration file's directory).
    pub value: T,
    /// Where the key that holds the value is written.
    pub location: Location,
    /// Dotted key path, e.g. `resources.pg-main.password`, for messages.
    pub key: String,
}

impl<T> Located<T> {
    /// An error about this value, located at the key that set it.
    pub fn error(&self, message: impl Into<String>) -> ConfigError {
        ConfigError {
            location: self.location.clone(),
            key: self.key.clone(),
            message: message.into(),
        }
    }
}

/// One problem in the configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{location}: {}{message}", key_prefix(.key))]
pub struct ConfigError {
    /// Where the problem is; for a missing key, the mapping that should contain it.
    pub location: Location,
    /// Dotted key path of the offending (or missing) key; sequence items are written `rules[0]`.
    /// Empty for problems that concern no key (YAML syntax, unreadable file).
    pub key: String,
    /// What is wrong and, where possible, what to write instead. Never contains a secret.
    pub message: String,
}

/// `"key: "` or nothing, so key-less errors do not print a dangling `: `.
fn key_prefix(key: &str) -> String {
    if key.is_empty() {
        String::new()
    } else {
        format!("{key}: ")
    }
}

/// Every problem found in one load, in file order.
///
/// Loading never stops at the first problem: fixing a configuration one restart at a time is the
/// experience this type exists to prevent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl ConfigErrors {
    /// Sorts by position so the output reads top to bottom like the file.
    pub(crate) fn sorted(mut errors: Vec<ConfigError>) -> Self {
        errors.sort_by(|a, b| {
            (a.location.line, a.location.column).cmp(&(b.location.line, b.location.column))
        });
        Self(errors)
    }

    /// The individual errors.
    pub fn iter(&self) -> std::slice::Iter<'_, ConfigError> {
        self.0.iter()
    }

    /// How many problems were found (never 0 for a returned error).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when no problem was recorded; a loaded configuration never returns such a value.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for ConfigErrors {
    /// One error per line, ready to print to stderr.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

impl<'a> IntoIterator for &'a ConfigErrors {
    type Item = &'a ConfigError;
    type IntoIter = std::slice::Iter<'a, ConfigError>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}
