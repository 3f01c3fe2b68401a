//! Exit codes and the CLI's error type: every failure carries what happened, what to do next,
//! and the documented exit code (`docs/cli.md`).

use sluice_shared::{ApiError, ErrorCode};
use std::fmt;

/// The documented exit codes. `--exec` passes the command's own code through instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Exit {
    /// Success.
    Ok = 0,
    /// An unexpected error (a bug, or an environment problem without a better code).
    Failure = 1,
    /// Bad arguments (clap uses 2 as well).
    Usage = 2,
    /// The broker could not be reached, or its TLS certificate is not trusted.
    BrokerUnreachable = 10,
    /// Not logged in, or the session token is expired or invalid.
    NotAuthenticated = 11,
    /// Policy does not allow this.
    Forbidden = 12,
    /// The resource does not exist on the broker.
    ResourceUnknown = 13,
    /// The broker could not reach the target behind the resource.
    TargetUnreachable = 14,
}

/// An error for the person at the terminal.
#[derive(Debug)]
pub struct CliError {
    /// The exit code.
    pub exit: Exit,
    /// What happened, one line.
    pub message: String,
    /// What to do next, if there is something useful to say.
    pub hint: Option<String>,
}

impl CliError {
    /// An error with a code and message.
    pub fn new(exit: Exit, message: impl Into<String>) -> Self {
        Self {
            exit,
            message: message.into(),
            hint: None,
        }
    }

    /// Adds what to do next.
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// The one line printed on stderr.
    pub fn line(&self) -> String {
        match &self.hint {
            Some(h) => format!("sluice: {}; {}", self.message, h),
            None => format!("sluice: {}", self.message),
        }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.line())
    }
}

impl std::error::Error for CliError {}

impl From<ApiError> for CliError {
    fn from(e: ApiError) -> Self {
        let (exit, hint) = match e.code {
            ErrorCode::TokenMissing
            | ErrorCode::TokenInvalid
            | ErrorCode::TokenExpired
            | ErrorCode::TokenRevoked
            | ErrorCode::LoginRefused => (
                Exit::NotAuthenticated,
                Some("run `sluice login` to get a new session token"),
            ),
            ErrorCode::Forbidden => (
                Exit::Forbidden,
                Some("ask an administrator for access to this resource"),
            ),
            ErrorCode::ResourceUnknown => (
                Exit::ResourceUnknown,
                Some("check the name (resources are listed in the broker's config)"),
            ),
            ErrorCode::TargetUnreachable => (
                Exit::TargetUnreachable,
                Some("the target may be down; try again later or tell its owner"),
            ),
            ErrorCode::BadRequest | ErrorCode::Internal | ErrorCode::Unknown => (
                Exit::Failure,
                Some("if this persists, the broker's log says more"),
            ),
        };
        let mut err = CliError::new(exit, e.message);
        if let Some(h) = hint {
            err = err.hint(h);
        }
        err
    }
}

/// Result alias for commands.
pub type CliResult<T> = Result<T, CliError>;
