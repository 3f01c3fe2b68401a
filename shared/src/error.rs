//! Stable error codes the broker returns on every API and tunnel refusal.
//!
//! The CLI maps each code to an exit code and a hint; the codes are part of the public contract
//! (documented in `docs/cli.md`) and never change meaning once released.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Why the broker refused a request. Serialized in `snake_case`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// No bearer token was presented.
    TokenMissing,
    /// The token is not a well-formed broker token or its signature does not verify.
    TokenInvalid,
    /// The token was valid once but its expiry has passed.
    TokenExpired,
    /// The token was revoked (logout).
    TokenRevoked,
    /// An identity token presented for exchange was refused; the message names the reason.
    LoginRefused,
    /// The named resource is not configured on the broker.
    ResourceUnknown,
    /// Policy does not let this identity use the resource.
    Forbidden,
    /// The broker could not reach the target behind the resource.
    TargetUnreachable,
    /// No grant with that id exists (or it is not the caller's to see).
    GrantNotFound,
    /// No session with that id exists (or it is not the caller's to see).
    SessionNotFound,
    /// The tunnel needs an active grant and the one named is pending, ended or for another
    /// resource.
    GrantInactive,
    /// The grant is already decided, ended or expired, so this action no longer applies.
    Conflict,
    /// A dependency the broker fails closed on (its store) is unavailable; try again later.
    Unavailable,
    /// The request was malformed (missing header, bad parameter).
    BadRequest,
    /// Something failed inside the broker; details are in the broker's log.
    Internal,
    /// A code this CLI does not know (a newer broker); kept so old CLIs degrade gracefully.
    #[serde(other)]
    Unknown,
}

impl ErrorCode {
    /// The stable string form, as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TokenMissing => "token_missing",
            Self::TokenInvalid => "token_invalid",
            Self::TokenExpired => "token_expired",
            Self::TokenRevoked => "token_revoked",
            Self::LoginRefused => "login_refused",
            Self::ResourceUnknown => "resource_unknown",
            Self::Forbidden => "forbidden",
            Self::TargetUnreachable => "target_unreachable",
            Self::GrantNotFound => "grant_not_found",
            Self::SessionNotFound => "session_not_found",
            Self::GrantInactive => "grant_inactive",
            Self::Conflict => "conflict",
            Self::Unavailable => "unavailable",
            Self::BadRequest => "bad_request",
            Self::Internal => "internal",
            Self::Unknown => "unknown",
        }
    }

    /// The HTTP status the broker answers with for this code.
    pub fn http_status(self) -> u16 {
        match self {
            Self::TokenMissing
            | Self::TokenInvalid
            | Self::TokenExpired
            | Self::TokenRevoked
            | Self::LoginRefused => 401,
            Self::Forbidden | Self::GrantInactive => 403,
            Self::ResourceUnknown | Self::GrantNotFound | Self::SessionNotFound => 404,
            Self::Conflict => 409,
            Self::Unavailable => 503,
            Self::BadRequest => 400,
            Self::TargetUnreachable => 502,
            Self::Internal | Self::Unknown => 500,
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The JSON body of every refusal: `{"code": "...", "message": "..."}`.
///
/// `message` is written for the person at the terminal and never contains a credential.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiError {
    /// Machine-readable reason.
    pub code: ErrorCode,
    /// Human-readable explanation of what happened.
    pub message: String,
}

impl ApiError {
    /// Builds an error with a message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.message, self.code)
    }
}

impl std::error::Error for ApiError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_unknown_codes_degrade() {
        for code in [
            ErrorCode::TokenMissing,
            ErrorCode::TokenInvalid,
            ErrorCode::TokenExpired,
            ErrorCode::TokenRevoked,
            ErrorCode::LoginRefused,
            ErrorCode::ResourceUnknown,
            ErrorCode::Forbidden,
            ErrorCode::TargetUnreachable,
            ErrorCode::GrantNotFound,
            ErrorCode::SessionNotFound,
            ErrorCode::GrantInactive,
            ErrorCode::Conflict,
            ErrorCode::Unavailable,
            ErrorCode::BadRequest,
            ErrorCode::Internal,
        ] {
            let json = serde_json::to_string(&code).unwrap();
            assert_eq!(json, format!("\"{}\"", code.as_str()));
            assert_eq!(serde_json::from_str::<ErrorCode>(&json).unwrap(), code);
        }
        let newer: ErrorCode = serde_json::from_str("\"quota_exceeded\"").unwrap();
        assert_eq!(newer, ErrorCode::Unknown);
    }
}
