//! Strict verification of one signed JWT against one issuer's policy and one key.
//!
//! Two calls, so that the caller can fetch keys in between without this crate doing I/O:
//!
//! 1. [`peek`] splits the token, decodes the header and applies the algorithm allow-list: `none`
//!    and `HS*` are refused by name, before any key is looked up, so an attacker cannot make the
//!    broker fetch keys or try a public key as an HMAC secret. It yields a [`Peeked`], the only
//!    way to reach step 2, carrying the `alg` and `kid` to look the key up with.
//! 2. [`verify`] checks the key's type against the algorithm, the signature, then the claims:
//!    `iss` exactly, `aud` (string or array) containing one of ours, `exp` required, `nbf` and
//!    `iat` when present, all with the policy's leeway, an optional maximum age, and `sub`.
//!
//! Header fields that point at other keys (`jku`, `x5u`, `jwk`, `x5c`) are ignored: keys only ever
//! come from the issuer's configured JWKS. A `crit` header is refused, as RFC 7515 requires for
//! extensions we do not understand. `jsonwebtoken` is used for the signature primitive only;
//! claim checks are ours so that each failure has its own [`Rejection`].

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Algorithm;
use serde_json::{Map, Value};

use crate::keys::Key;
use crate::rejection::{Rejection, echo};

/// Every algorithm the broker can accept from an issuer. HMAC is deliberately absent.
pub const ALLOWED_ALGORITHMS: [Algorithm; 9] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// Longest token accepted, in bytes; real ID and workload tokens are 1–4 KiB.
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// What one issuer's tokens must satisfy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuerPolicy {
    /// Expected `iss`, compared byte for byte (a trailing slash is a different issuer).
    pub issuer: String,
    /// `aud` must contain at least one of these. Empty means nothing is accepted.
    pub audiences: Vec<String>,
    /// Clock skew tolerated on `exp`, `nbf`, `iat` and the maximum age.
    pub leeway: Duration,
    /// Algorithms accepted from this issuer; intersected with [`ALLOWED_ALGORITHMS`].
    pub algorithms: Vec<Algorithm>,
    /// If set, `iat` is required and may be at most this old.
    pub max_token_age: Option<Duration>,
}

impl IssuerPolicy {
    /// A policy with 30 s leeway, every allowed algorithm and no maximum age.
    pub fn new(issuer: impl Into<String>, audiences: Vec<String>) -> Self {
        Self {
            issuer: issuer.into(),
            audiences,
            leeway: Duration::from_secs(30),
            algorithms: ALLOWED_ALGORITHMS.to_vec(),
            max_token_age: None,
        }
    }

    fn allows(&self, alg: Algorithm) -> bool {
        ALLOWED_ALGORITHMS.contains(&alg) && self.algorithms.contains(&alg)
    }
}

/// A token whose shape and algorithm passed [`peek`]; look its key up with [`Peeked::kid`].
#[derive(Debug, Clone)]
pub struct Peeked<'t> {
    /// `header.payload`, the signed bytes.
    signed: &'t str,
    /// The payload segment (base64url).
    payload: &'t str,
    /// The signature segment (base64url, checked to decode).
    signature: &'t str,
    /// The header's algorithm, already on the policy's allow-list.
    alg: Algorithm,
    /// The header's `kid`.
    kid: Option<String>,
}

impl Peeked<'_> {
    /// The algorithm named in the header.
    pub fn alg(&self) -> Algorithm {
        self.alg
    }

    /// The `kid` named in the header, if any.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }
}

/// A token that passed every check. Only [`verify`] makes one.
#[derive(Debug, Clone, PartialEq)]
pub struct Verified {
    pub(crate) claims: Map<String, Value>,
    pub(crate) kid: Option<String>,
    pub(crate) alg: Algorithm,
    pub(crate) issuer: String,
    pub(crate) subject: String,
    pub(crate) audiences: Vec<String>,
    pub(crate) expires_at: SystemTime,
}

impl Verified {
    /// Every claim in the payload.
    pub fn claims(&self) -> &Map<String, Value> {
        &self.claims
    }
    /// The header's `kid`.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }
    /// The verified algorithm.
    pub fn alg(&self) -> Algorithm {
        self.alg
    }
    /// `iss`.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }
    /// `sub`.
    pub fn subject(&self) -> &str {
        &self.subject
    }
    /// Every value of `aud`.
    pub fn audiences(&self) -> &[String] {
        &self.audiences
    }
    /// `exp`.
    pub fn expires_at(&self) -> SystemTime {
        self.expires_at
    }
}

/// Step 1: shape, header and algorithm allow-list. No key is involved yet.
pub fn peek<'t>(token: &'t str, policy: &IssuerPolicy) -> Result<Peeked<'t>, Rejection> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(Rejection::Malformed("token too long"));
    }
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Rejection::Malformed(
            "expected three dot-separated segments",
        ));
    };
    let header =
        decode_object(header).ok_or(Rejection::Malformed("header is not base64url JSON"))?;

    let alg_name = match header.get("alg") {
        Some(Value::String(name)) => name.as_str(),
        _ => return Err(Rejection::Malformed("header has no `alg` string")),
    };
    if alg_name.eq_ignore_ascii_case("none") {
        return Err(Rejection::AlgNoneRefused);
    }
    if alg_name
        .get(..2)
        .is_some_and(|prefix| prefix.eq_ignore_ascii_case("HS"))
    {
        return Err(Rejection::HmacRefused(echo(alg_name)));
    }
    let alg: Algorithm = alg_name
        .parse()
        .map_err(|_| Rejection::AlgNotAllowed(echo(alg_name)))?;
    if !policy.allows(alg) {
        return Err(Rejection::AlgNotAllowed(echo(alg_name)));
    }
    if header.contains_key("crit") {
        return Err(Rejection::Malformed(
            "header has unsupported `crit` extensions",
        ));
    }
    let kid = match header.get("kid") {
        None => None,
        Some(Value::String(kid)) if !kid.is_empty() => Some(kid.clone()),
        Some(_) => {
            return Err(Rejection::Malformed(
                "header `kid` is not a non-empty string",
            ));
        }
    };

    if URL_SAFE_NO_PAD.decode(payload).is_err() {
        return Err(Rejection::Malformed("payload is not base64url"));
    }
    match URL_SAFE_NO_PAD.decode(signature) {
        Ok(bytes) if !bytes.is_empty() => {}
        _ => {
            return Err(Rejection::Malformed(
                "signature is missing or not base64url",
            ));
        }
    }
    let signed = &token[..token.len() - signature.len() - 1];
    Ok(Peeked {
        signed,
        payload,
        signature,
        alg,
        kid,
    })
}

/// Step 2: key, signature and claims.
pub fn verify(
    peeked: &Peeked<'_>,
    policy: &IssuerPolicy,
    key: &Key,
    now: SystemTime,
) -> Result<Verified, Rejection> {
    // Re-checked here so that peeking with one policy and verifying with another cannot widen it.
    if !policy.allows(peeked.alg) {
        return Err(Rejection::AlgNotAllowed(format!("{:?}", peeked.alg)));
    }
    if let (Some(token_kid), Some(key_kid)) = (peeked.kid(), key.kid())
        && token_kid != key_kid
    {
        return Err(Rejection::KidUnknown(echo(token_kid)));
    }
    if !key.allows(peeked.alg) || key.decoding_key().family() != peeked.alg.family() {
        return Err(Rejection::KeyAlgMismatch(format!("{:?}", peeked.alg)));
    }
    let valid = jsonwebtoken::crypto::verify(
        peeked.signature,
        peeked.signed.as_bytes(),
        key.decoding_key(),
        peeked.alg,
    );
    if !matches!(valid, Ok(true)) {
        return Err(Rejection::BadSignature);
    }

    let claims = decode_object(peeked.payload)
        .ok_or(Rejection::Malformed("payload is not a JSON object"))?;
    check_claims(claims, policy, now).map(|(claims, checked)| Verified {
        claims,
        kid: peeked.kid.clone(),
        alg: peeked.alg,
        issuer: checked.issuer,
        subject: checked.subject,
        audiences: checked.audiences,
        expires_at: UNIX_EPOCH + Duration::from_secs(checked.exp.max(0).unsigned_abs()),
    })
}

/// The registered claims that passed.
struct Checked {
    issuer: String,
    subject: String,
    audiences: Vec<String>,
    exp: i64,
}

fn check_claims(
    claims: Map<String, Value>,
    policy: &IssuerPolicy,
    now: SystemTime,
) -> Result<(Map<String, Value>, Checked), Rejection> {
    let issuer = required_string(&claims, "iss")?;
    if issuer != policy.issuer {
        return Err(Rejection::WrongIssuer(echo(&issuer)));
    }

    let audiences = match claims.get("aud") {
        None => return Err(Rejection::MissingClaim("aud".into())),
        Some(Value::String(aud)) => vec![aud.clone()],
        Some(Value::Array(values)) => values
            .iter()
            .map(|value| value.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| Rejection::InvalidClaim("aud".into()))?,
        Some(_) => return Err(Rejection::InvalidClaim("aud".into())),
    };
    if !audiences.iter().any(|aud| policy.audiences.contains(aud)) {
        return Err(Rejection::WrongAudience);
    }

    let now = seconds(now.duration_since(UNIX_EPOCH).unwrap_or_default());
    let leeway = seconds(policy.leeway);
    let exp = numeric_date(&claims, "exp")?.ok_or_else(|| Rejection::MissingClaim("exp".into()))?;
    if now >= exp.saturating_add(leeway) {
        return Err(Rejection::Expired);
    }
    if let Some(nbf) = numeric_date(&claims, "nbf")?
        && nbf > now.saturating_add(leeway)
    {
        return Err(Rejection::NotYetValid);
    }
    let iat = numeric_date(&claims, "iat")?;
    if let Some(iat) = iat
        && iat > now.saturating_add(leeway)
    {
        return Err(Rejection::IssuedInFuture);
    }
    if let Some(max_age) = policy.max_token_age {
        let iat = iat.ok_or_else(|| Rejection::MissingClaim("iat".into()))?;
        if now.saturating_sub(iat) > seconds(max_age).saturating_add(leeway) {
            return Err(Rejection::TooOld);
        }
    }

    let subject = required_string(&claims, "sub")?;
    if subject.is_empty() {
        return Err(Rejection::InvalidClaim("sub".into()));
    }
    Ok((
        claims,
        Checked {
            issuer,
            subject,
            audiences,
            exp,
        },
    ))
}

fn decode_object(segment: &str) -> Option<Map<String, Value>> {
    let bytes = URL_SAFE_NO_PAD.decode(segment).ok()?;
    match serde_json::from_slice(&bytes).ok()? {
        Value::Object(map) => Some(map),
        _ => None,
    }
}

fn required_string(claims: &Map<String, Value>, name: &str) -> Result<String, Rejection> {
    match claims.get(name) {
        None => Err(Rejection::MissingClaim(name.into())),
        Some(Value::String(value)) => Ok(value.clone()),
        Some(_) => Err(Rejection::InvalidClaim(name.into())),
    }
}

/// A NumericDate claim as whole seconds (fractions truncated toward the past).
fn numeric_date(claims: &Map<String, Value>, name: &str) -> Result<Option<i64>, Rejection> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::Number(number)) => match (number.as_i64(), number.as_f64()) {
            (Some(whole), _) => Ok(Some(whole)),
            (None, Some(float)) if float.is_finite() && float.abs() < 1e15 => {
                // Bounded above, so the cast cannot saturate.
                #[allow(clippy::cast_possible_truncation)]
                Ok(Some(float.floor() as i64))
            }
            _ => Err(Rejection::InvalidClaim(name.into())),
        },
        Some(_) => Err(Rejection::InvalidClaim(name.into())),
    }
}

fn seconds(duration: Duration) -> i64 {
    i64::try_from(duration.as_secs()).unwrap_or(i64::MAX)
}
