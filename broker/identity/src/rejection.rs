//! Why a token was refused: one enum for every step (header, key, signature, claims, rules), each
//! with a stable machine code for the API and audit log and a human message for the operator.
//!
//! Invariant relied on by callers that log or return these: no variant carries the token, a
//! signature or a whole claim set. Strings taken from the token (an algorithm name, a `kid`, an
//! issuer) are cut to [`ECHO_LIMIT`] characters and stripped of control characters before they
//! are stored.

/// Longest piece of attacker-supplied text a rejection keeps.
pub const ECHO_LIMIT: usize = 64;

/// A refused token. [`Rejection::code`] is stable; the `Display` text may change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Rejection {
    /// Not three base64url segments of JSON, too long, or a header field of the wrong type.
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    /// The header names an algorithm outside the allow-list (or outside this issuer's subset).
    #[error("token algorithm `{0}` is not allowed")]
    AlgNotAllowed(String),
    /// `HS256`/`HS384`/`HS512`: shared-secret algorithms are never accepted from an issuer.
    #[error("token algorithm `{0}` (HMAC) is never accepted")]
    HmacRefused(String),
    /// `alg: none`, in any spelling, signed or not.
    #[error("unsigned token (`alg: none`) is never accepted")]
    AlgNoneRefused,
    /// The token has no `kid` and the issuer publishes more than one key.
    #[error("token has no `kid` and the issuer publishes several keys")]
    KidMissing,
    /// The `kid` is not in the issuer's key set (after a refresh, or refresh rate-limited).
    #[error("token key id `{0}` is not published by the issuer")]
    KidUnknown(String),
    /// No valid cached keys for the issuer: failing closed.
    #[error("no valid signing keys are available for the issuer")]
    NoKeys,
    /// The key found for the `kid` cannot be used with the header's algorithm.
    #[error("token algorithm `{0}` does not match the key's type or declared algorithm")]
    KeyAlgMismatch(String),
    /// The signature does not verify with the issuer's key.
    #[error("token signature is invalid")]
    BadSignature,
    /// `iss` is not the configured issuer (compared exactly, no normalisation).
    #[error("token issuer `{0}` is not the expected issuer")]
    WrongIssuer(String),
    /// `aud` does not contain any of the configured audiences.
    #[error("token audience does not include this broker")]
    WrongAudience,
    /// `exp` has passed (beyond the leeway).
    #[error("token has expired")]
    Expired,
    /// `nbf` is in the future (beyond the leeway).
    #[error("token is not valid yet")]
    NotYetValid,
    /// `iat` is in the future (beyond the leeway).
    #[error("token claims to be issued in the future")]
    IssuedInFuture,
    /// `iat` is older than the issuer's `max_token_age`.
    #[error("token was issued too long ago")]
    TooOld,
    /// A required claim is absent.
    #[error("token lacks the required claim `{0}`")]
    MissingClaim(String),
    /// A claim is present but of the wrong type (e.g. `exp` as a string).
    #[error("token claim `{0}` has the wrong type")]
    InvalidClaim(String),
    /// A claim does not match what a workload rule requires.
    #[error("token claim `{0}` does not match the rule")]
    ClaimMismatch(String),
}

impl Rejection {
    /// The stable code for API responses, metrics and the audit log.
    pub fn code(&self) -> &'static str {
        match self {
            Rejection::Malformed(_) => "malformed",
            Rejection::AlgNotAllowed(_) => "alg_not_allowed",
            Rejection::HmacRefused(_) => "hmac_refused",
            Rejection::AlgNoneRefused => "alg_none_refused",
            Rejection::KidMissing => "kid_missing",
            Rejection::KidUnknown(_) => "kid_unknown",
            Rejection::NoKeys => "no_keys",
            Rejection::KeyAlgMismatch(_) => "key_alg_mismatch",
            Rejection::BadSignature => "bad_signature",
            Rejection::WrongIssuer(_) => "wrong_issuer",
            Rejection::WrongAudience => "wrong_audience",
            Rejection::Expired => "expired",
            Rejection::NotYetValid => "not_yet_valid",
            Rejection::IssuedInFuture => "issued_in_future",
            Rejection::TooOld => "too_old",
            Rejection::MissingClaim(_) => "missing_claim",
            Rejection::InvalidClaim(_) => "invalid_claim",
            Rejection::ClaimMismatch(_) => "claim_mismatch",
        }
    }
}

/// Cuts attacker-supplied text to [`ECHO_LIMIT`] characters and drops control characters, so a
/// rejection can be logged or returned without echoing a token or forging log lines.
pub(crate) fn echo(text: &str) -> String {
    let mut out: String = text
        .chars()
        .filter(|c| !c.is_control())
        .take(ECHO_LIMIT)
        .collect();
    if text.chars().count() > ECHO_LIMIT {
        out.push('…');
    }
    out
}
