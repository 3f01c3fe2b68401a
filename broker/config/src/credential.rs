//! References to target credentials, and resolving them at the moment they are needed.
//!
//! The configuration never holds a password: it says where to find one (`env:NAME` or
//! `file:PATH`), so the file can be committed, shown in reviews and printed in errors. Resolving
//! returns a [`Secret`], and every error here names the variable or path and never the value.

use std::fmt;
use std::path::{Path, PathBuf};

use sluice_shared::Secret;

/// Where a credential is read from. Holds no secret, so it may be printed and logged.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum CredentialRef {
    /// An environment variable of the broker process.
    Env(String),
    /// A file (resolved against the configuration file's directory), e.g. a mounted secret.
    File(PathBuf),
}

/// Why a credential could not be resolved. Messages name where it was looked for, never a value.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    /// The variable does not exist in the broker's environment.
    #[error("environment variable {name} is not set")]
    EnvUnset {
        /// Variable name.
        name: String,
    },
    /// The variable exists but is not valid Unicode.
    #[error("environment variable {name} is not valid UTF-8")]
    EnvNotUnicode {
        /// Variable name.
        name: String,
    },
    /// The variable is set to the empty string, which is never a usable password.
    #[error("environment variable {name} is empty")]
    EnvEmpty {
        /// Variable name.
        name: String,
    },
    /// The file could not be read.
    #[error("cannot read credential file {}: {source}", path.display())]
    FileUnreadable {
        /// The file.
        path: PathBuf,
        /// The I/O error (which never contains file contents).
        source: std::io::Error,
    },
    /// The file is not UTF-8 text (the decoding error is dropped: it would carry the bytes).
    #[error("credential file {} is not valid UTF-8", path.display())]
    FileNotUnicode {
        /// The file.
        path: PathBuf,
    },
    /// The file is empty, or holds only a newline.
    #[error("credential file {} is empty", path.display())]
    FileEmpty {
        /// The file.
        path: PathBuf,
    },
}

impl CredentialRef {
    /// Reads the credential now: the variable's value, or the file's contents with one trailing
    /// newline (`\n` or `\r\n`) removed, since editors and `echo` add one that is not part of the
    /// password. Any other whitespace is kept: it may be part of the password.
    pub fn resolve(&self) -> Result<Secret<String>, CredentialError> {
        match self {
            Self::Env(name) => {
                let value = std::env::var(name).map_err(|error| match error {
                    std::env::VarError::NotPresent => {
                        CredentialError::EnvUnset { name: name.clone() }
                    }
                    std::env::VarError::NotUnicode(_) => {
                        CredentialError::EnvNotUnicode { name: name.clone() }
                    }
                })?;
                if value.is_empty() {
                    return Err(CredentialError::EnvEmpty { name: name.clone() });
                }
                Ok(Secret::new(value))
            }
            Self::File(path) => {
                let bytes =
                    std::fs::read(path).map_err(|source| CredentialError::FileUnreadable {
                        path: path.clone(),
                        source,
                    })?;
                let mut text = String::from_utf8(bytes)
                    .map_err(|_| CredentialError::FileNotUnicode { path: path.clone() })?;
                trim_one_newline(&mut text);
                if text.is_empty() {
                    return Err(CredentialError::FileEmpty { path: path.clone() });
                }
                Ok(Secret::new(text))
            }
        }
    }

    /// Parses the configuration spelling. `base` is the configuration file's directory, against
    /// which relative `file:` paths are resolved. The error message never repeats `text`: when it
    /// is not a reference it is most likely the password itself.
    pub(crate) fn parse(text: &str, base: &Path) -> Result<Self, &'static str> {
        if let Some(name) = text.strip_prefix("env:") {
            if is_env_name(name) {
                Ok(Self::Env(name.to_owned()))
            } else {
                Err(
                    "env: must be followed by a variable name (letters, digits and _, not starting with a digit)",
                )
            }
        } else if let Some(path) = text.strip_prefix("file:") {
            if path.is_empty() {
                Err("file: must be followed by a path")
            } else {
                Ok(Self::File(crate::schema::resolve_path(base, path)))
            }
        } else {
            Err("inline secrets are not allowed; use env:NAME or file:PATH")
        }
    }
}

impl fmt::Display for CredentialRef {
    /// The configuration spelling, `env:NAME` or `file:PATH`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Env(name) => write!(f, "env:{name}"),
            Self::File(path) => write!(f, "file:{}", path.display()),
        }
    }
}

fn trim_one_newline(text: &mut String) {
    if text.ends_with("\r\n") {
        text.truncate(text.len() - 2);
    } else if text.ends_with('\n') {
        text.truncate(text.len() - 1);
    }
}

/// POSIX portable variable names; anything else is almost certainly a typo or a pasted value.
fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
}
