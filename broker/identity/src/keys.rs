//! One issuer's signing keys: a JWKS cache as a synchronous state machine that the caller drives.
//!
//! The crate does no I/O, so the cache never fetches: it tells the caller when to. The flow for
//! one token, after [`crate::peek`] has read its header:
//!
//! ```text
//! if cache.lookup(kid, now) is Lookup::Refresh {
//!     match http_get(jwks_uri) {                 // the caller's client, the caller's timeout
//!         Ok(body) => { let _ = cache.store(&body, now); }
//!         Err(_)   => cache.record_failure(now),
//!     }
//! }
//! let key = cache.resolve(kid, now)?;            // never asks for another refresh
//! ```
//!
//! Rules the state machine enforces:
//! - an unknown `kid` triggers a refresh at most once per `min_refresh_interval` (counted from
//!   the last attempt, successful or not), so a flood of tokens with random `kid`s cannot turn
//!   the broker into a load generator against the IdP;
//! - keys older than `refresh_after` are refreshed proactively (same rate limit);
//! - a failed fetch, or a fetched set with no usable key, keeps the previous keys, which keep
//!   serving until `max_stale` has passed since the last successful fetch; after that, and
//!   before the first successful fetch, every lookup fails closed ([`Lookup::NoKeys`]).
//!
//! Tokens without `kid`: accepted only when the set holds exactly one usable key (small IdPs and
//! Kubernetes clusters with one key often omit it). With several keys a token must name one;
//! there is no "try every key" fallback, which would multiply signature work per bad token.
//! A key without `kid` in a set of several can therefore never be selected.

use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};

use crate::rejection::{Rejection, echo};

/// Smallest RSA modulus accepted from a JWKS, in bytes (2048 bits).
const MIN_RSA_MODULUS_BYTES: usize = 256;

/// Most keys kept from one JWKS document; IdPs publish a handful.
const MAX_KEYS: usize = 64;

/// How often and how long the cache may use what it has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheTiming {
    /// Least time between two fetch attempts (successful or not).
    pub min_refresh_interval: Duration,
    /// Age after which a lookup asks for a proactive refresh, while still serving the keys.
    pub refresh_after: Duration,
    /// Age (since the last successful fetch) after which cached keys are no longer trusted.
    pub max_stale: Duration,
}

impl Default for CacheTiming {
    fn default() -> Self {
        Self {
            min_refresh_interval: Duration::from_secs(30),
            refresh_after: Duration::from_secs(15 * 60),
            max_stale: Duration::from_secs(24 * 60 * 60),
        }
    }
}

/// One usable verification key from a JWKS.
#[derive(Debug, Clone)]
pub struct Key {
    /// The JWK's `kid`, if it had one.
    kid: Option<String>,
    /// The algorithms this key may verify: its family narrowed by curve and by the JWK's own
    /// `alg` when present. Never contains an HMAC algorithm.
    algorithms: Vec<Algorithm>,
    /// The parsed public key.
    decoding: DecodingKey,
}

impl Key {
    /// Builds a key from one JWK, or says why it is unusable.
    pub fn from_jwk(jwk: &Jwk) -> Result<Key, KeyError> {
        if let Some(key_use) = &jwk.common.public_key_use
            && *key_use != PublicKeyUse::Signature
        {
            return Err(KeyError::NotForSignatures);
        }
        let family: Vec<Algorithm> = match &jwk.algorithm {
            AlgorithmParameters::RSA(rsa) => {
                let n = URL_SAFE_NO_PAD
                    .decode(&rsa.n)
                    .map_err(|_| KeyError::Invalid)?;
                let significant = n.iter().skip_while(|byte| **byte == 0).count();
                if significant < MIN_RSA_MODULUS_BYTES {
                    return Err(KeyError::WeakKey);
                }
                vec![
                    Algorithm::RS256,
                    Algorithm::RS384,
                    Algorithm::RS512,
                    Algorithm::PS256,
                    Algorithm::PS384,
                    Algorithm::PS512,
                ]
            }
            AlgorithmParameters::EllipticCurve(ec) => match ec.curve {
                EllipticCurve::P256 => vec![Algorithm::ES256],
                EllipticCurve::P384 => vec![Algorithm::ES384],
                _ => return Err(KeyError::Unsupported),
            },
            AlgorithmParameters::OctetKeyPair(okp) => match okp.curve {
                EllipticCurve::Ed25519 => vec![Algorithm::EdDSA],
                _ => return Err(KeyError::Unsupported),
            },
            // Symmetric keys have no business in a public JWKS; never turn one into a key.
            _ => return Err(KeyError::Unsupported),
        };
        let algorithms = match jwk.common.key_algorithm {
            None => family,
            Some(declared) => match key_algorithm(declared) {
                Some(alg) if family.contains(&alg) => vec![alg],
                _ => return Err(KeyError::Unsupported),
            },
        };
        let decoding = DecodingKey::from_jwk(jwk).map_err(|_| KeyError::Invalid)?;
        Ok(Key {
            kid: jwk.common.key_id.clone(),
            algorithms,
            decoding,
        })
    }

    /// The key's `kid`, if the JWK had one.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// The algorithms this key may verify.
    pub fn algorithms(&self) -> &[Algorithm] {
        &self.algorithms
    }

    /// Whether this key may verify a token signed with `alg`.
    pub fn allows(&self, alg: Algorithm) -> bool {
        self.algorithms.contains(&alg)
    }

    pub(crate) fn decoding_key(&self) -> &DecodingKey {
        &self.decoding
    }
}

/// Maps a JWK `alg` to a signature algorithm we accept; HMAC and encryption algorithms map to
/// nothing.
fn key_algorithm(alg: KeyAlgorithm) -> Option<Algorithm> {
    Some(match alg {
        KeyAlgorithm::RS256 => Algorithm::RS256,
        KeyAlgorithm::RS384 => Algorithm::RS384,
        KeyAlgorithm::RS512 => Algorithm::RS512,
        KeyAlgorithm::PS256 => Algorithm::PS256,
        KeyAlgorithm::PS384 => Algorithm::PS384,
        KeyAlgorithm::PS512 => Algorithm::PS512,
        KeyAlgorithm::ES256 => Algorithm::ES256,
        KeyAlgorithm::ES384 => Algorithm::ES384,
        KeyAlgorithm::EdDSA => Algorithm::EdDSA,
        _ => return None,
    })
}

/// Why a JWK or a JWKS document was not usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The document is not JSON, or has no `keys` array.
    #[error("not a JWKS document (expected a JSON object with a `keys` array)")]
    NotAJwks,
    /// `use` is present and is not `sig`.
    #[error("key is not for signatures")]
    NotForSignatures,
    /// Key type, curve or declared algorithm is not one we verify with.
    #[error("unsupported key type, curve or algorithm")]
    Unsupported,
    /// RSA modulus below 2048 bits.
    #[error("RSA key shorter than 2048 bits")]
    WeakKey,
    /// The key material does not parse.
    #[error("key material is invalid")]
    Invalid,
    /// Nothing in the document was usable; the previous keys stay in place.
    #[error("no usable signing key in the JWKS ({skipped} skipped)")]
    NoUsableKeys {
        /// How many entries were skipped.
        skipped: usize,
    },
}

/// What [`KeyCache::lookup`] tells the caller to do.
#[derive(Debug)]
pub enum Lookup<'a> {
    /// Verify with this key.
    Found(&'a Key),
    /// Fetch the JWKS now, [`KeyCache::store`] or [`KeyCache::record_failure`] the result, then
    /// call [`KeyCache::resolve`].
    Refresh,
    /// The `kid` is not known and a refresh happened too recently to try again.
    Unknown,
    /// The token has no `kid` and the set holds several keys.
    KidRequired,
    /// Nothing valid is cached and a fetch may not be attempted yet: fail closed.
    NoKeys,
}

/// The cached key set of one issuer.
#[derive(Debug)]
pub struct KeyCache {
    /// Refresh and staleness limits.
    timing: CacheTiming,
    /// Usable keys from the last successful fetch, in document order.
    keys: Vec<Key>,
    /// When `keys` were fetched; `None` before the first success.
    fetched_at: Option<Instant>,
    /// When a fetch was last attempted (success or failure); drives the rate limit.
    last_attempt: Option<Instant>,
}

impl KeyCache {
    /// An empty cache: the first lookup asks for a fetch.
    pub fn new(timing: CacheTiming) -> Self {
        Self {
            timing,
            keys: Vec::new(),
            fetched_at: None,
            last_attempt: None,
        }
    }

    /// The cache's timing.
    pub fn timing(&self) -> CacheTiming {
        self.timing
    }

    /// When keys were last fetched successfully.
    pub fn fetched_at(&self) -> Option<Instant> {
        self.fetched_at
    }

    /// When a fetch was last attempted.
    pub fn last_attempt(&self) -> Option<Instant> {
        self.last_attempt
    }

    /// The keys currently held (possibly stale; [`KeyCache::lookup`] decides whether to use them).
    pub fn keys(&self) -> &[Key] {
        &self.keys
    }

    /// Finds the key for a token's `kid`, or says to refresh first.
    pub fn lookup(&self, kid: Option<&str>, now: Instant) -> Lookup<'_> {
        let may_fetch = self.may_fetch(now);
        if !self.is_valid(now) {
            return if may_fetch {
                Lookup::Refresh
            } else {
                Lookup::NoKeys
            };
        }
        let aged = self
            .fetched_at
            .is_some_and(|at| now.saturating_duration_since(at) >= self.timing.refresh_after);
        match self.find(kid) {
            Lookup::Found(_) if aged && may_fetch => Lookup::Refresh,
            Lookup::Unknown if may_fetch => Lookup::Refresh,
            other => other,
        }
    }

    /// Like [`KeyCache::lookup`] but never asks for a refresh: the answer after the caller has
    /// refreshed (or decided not to), as a verification outcome.
    pub fn resolve(&self, kid: Option<&str>, now: Instant) -> Result<&Key, Rejection> {
        if !self.is_valid(now) {
            return Err(Rejection::NoKeys);
        }
        match self.find(kid) {
            Lookup::Found(key) => Ok(key),
            Lookup::KidRequired => Err(Rejection::KidMissing),
            Lookup::NoKeys => Err(Rejection::NoKeys),
            Lookup::Unknown | Lookup::Refresh => {
                Err(Rejection::KidUnknown(kid.map(echo).unwrap_or_default()))
            }
        }
    }

    /// Replaces the keys with the usable ones from a fetched JWKS document. Entries with an
    /// unsupported type, curve or algorithm, `use` other than `sig`, weak or broken material are
    /// skipped. If nothing is usable the previous keys stay and this counts as a failed attempt.
    /// Returns how many keys are now held.
    pub fn store(&mut self, jwks_json: &str, now: Instant) -> Result<usize, KeyError> {
        self.last_attempt = Some(now);
        let parsed = parse_jwks(jwks_json)?;
        self.keys = parsed;
        self.fetched_at = Some(now);
        Ok(self.keys.len())
    }

    /// Records a failed fetch: the rate limit restarts, cached keys keep serving until
    /// `max_stale` after the last successful fetch.
    pub fn record_failure(&mut self, now: Instant) {
        self.last_attempt = Some(now);
    }

    fn may_fetch(&self, now: Instant) -> bool {
        self.last_attempt
            .is_none_or(|at| now.saturating_duration_since(at) >= self.timing.min_refresh_interval)
    }

    fn is_valid(&self, now: Instant) -> bool {
        !self.keys.is_empty()
            && self
                .fetched_at
                .is_some_and(|at| now.saturating_duration_since(at) < self.timing.max_stale)
    }

    fn find(&self, kid: Option<&str>) -> Lookup<'_> {
        match kid {
            Some(kid) => match self.keys.iter().find(|key| key.kid() == Some(kid)) {
                Some(key) => Lookup::Found(key),
                None => Lookup::Unknown,
            },
            None => match self.keys.as_slice() {
                [only] => Lookup::Found(only),
                [] => Lookup::NoKeys,
                _ => Lookup::KidRequired,
            },
        }
    }
}

/// Parses a JWKS document entry by entry, keeping every usable key.
pub fn parse_jwks(jwks_json: &str) -> Result<Vec<Key>, KeyError> {
    let document: serde_json::Value =
        serde_json::from_str(jwks_json).map_err(|_| KeyError::NotAJwks)?;
    let entries = document
        .get("keys")
        .and_then(|keys| keys.as_array())
        .ok_or(KeyError::NotAJwks)?;
    let mut keys = Vec::new();
    let mut skipped = 0;
    for entry in entries {
        let key = serde_json::from_value::<Jwk>(entry.clone())
            .map_err(|_| KeyError::Invalid)
            .and_then(|jwk| Key::from_jwk(&jwk));
        match key {
            Ok(key) if keys.len() < MAX_KEYS => keys.push(key),
            _ => skipped += 1,
        }
    }
    if keys.is_empty() {
        return Err(KeyError::NoUsableKeys { skipped });
    }
    Ok(keys)
}
