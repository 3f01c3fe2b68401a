//! Exit codes and the CLI's error type: every failure carries what happened, what to do next,
//! and the documented exit code (`docs/cli.md`).

use sluice_shared::{ApiError, ErrorCode};
use std::fmt;

/// The documented exit codes. `connect --exec` and `run` pass the command's own code through
/// instead.
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
    /// The resource (or grant) does not exist on the broker.
    NotFound = 13,
    /// The broker could not reach the target behind the resource.
    TargetUnreachable = 14,
    /// The grant was denied, nobody approved it in time, or it was revoked or expired (also: a
    /// decision or tunnel that needed it pending or active came too late).
    GrantEnded = 15,
    /// `sluice audit verify` found the audit trail tampered with: a broken link in its hash
    /// chain, or a checkpoint that is forged or no longer matches.
    AuditBroken = 16,
    /// Interrupted (Ctrl-C) while waiting for an approval, as a shell reports SIGINT.
    Interrupted = 130,
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
    /// The broker's error code when the broker refused, so callers can react to one refusal
    /// (a `conflict` while approving) without matching message text.
    pub code: Option<ErrorCode>,
}

impl CliError {
    /// An error with a code and message.
    pub fn new(exit: Exit, message: impl Into<String>) -> Self {
        Self {
            exit,
            message: message.into(),
            hint: None,
            code: None,
        }
    }

    /// True when the broker refused with `code`.
    pub fn is(&self, code: ErrorCode) -> bool {
        self.code == Some(code)
    }

    /// True when trying again later may work: the broker could not be reached (restarting,
    /// network) or said it is temporarily unavailable. Long-running loops retry these.
    pub fn is_transient(&self) -> bool {
        self.exit == Exit::BrokerUnreachable
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
                Exit::NotFound,
                Some("check the name (resources are listed in the broker's config)"),
            ),
            ErrorCode::TargetUnreachable => (
                Exit::TargetUnreachable,
                Some("the target may be down; try again later or tell its owner"),
            ),
            ErrorCode::GrantNotFound => (
                Exit::NotFound,
                Some(
                    "check the id: `sluice grant list --all` shows your grants, `sluice approvals` the requests you may decide",
                ),
            ),
            ErrorCode::SessionNotFound => (
                Exit::NotFound,
                Some(
                    "check the id: `sluice sessions list` shows the sessions you may see (yours, or everyone's for auditors)",
                ),
            ),
            ErrorCode::GrantInactive => (
                Exit::GrantEnded,
                Some(
                    "request a new grant: run `sluice connect` again, or `sluice grant request RES --role ROLE --reason TEXT`",
                ),
            ),
            ErrorCode::Conflict => (
                Exit::GrantEnded,
                Some(
                    "someone else decided it or it ended meanwhile; `sluice grant list --all` (yours) or `sluice approvals` shows where things stand",
                ),
            ),
            ErrorCode::Unavailable => (
                Exit::BrokerUnreachable,
                Some("try again in a moment; the broker's GET /v1/health says what it is missing"),
            ),
            ErrorCode::BadRequest | ErrorCode::Internal | ErrorCode::Unknown => (
                Exit::Failure,
                Some("if this persists, the broker's log says more"),
            ),
        };
        let mut err = CliError::new(exit, e.message);
        err.code = Some(e.code);
        if let Some(h) = hint {
            err = err.hint(h);
        }
        err
    }
}

/// Result alias for commands.
pub type CliResult<T> = Result<T, CliError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grant_refusals_map_to_documented_codes_with_hints() {
        for (code, exit) in [
            (ErrorCode::GrantNotFound, Exit::NotFound),
            (ErrorCode::GrantInactive, Exit::GrantEnded),
            (ErrorCode::Conflict, Exit::GrantEnded),
            (ErrorCode::Unavailable, Exit::BrokerUnreachable),
            (ErrorCode::ResourceUnknown, Exit::NotFound),
        ] {
            let err = CliError::from(ApiError::new(code, "refused"));
            assert_eq!(err.exit, exit, "{code}");
            assert!(err.is(code));
            assert!(err.hint.is_some(), "{code} has a hint");
        }
        assert_eq!(Exit::GrantEnded as u8, 15);
        assert!(CliError::from(ApiError::new(ErrorCode::Unavailable, "store down")).is_transient());
        assert!(!CliError::from(ApiError::new(ErrorCode::Conflict, "decided")).is_transient());
    }
}
