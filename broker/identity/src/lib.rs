//! Identity for the broker: turns an identity token from someone else (a person's OIDC ID token,
//! a CI job's or a pod's workload token) into a broker identity, strictly, with no I/O.
//!
//! The flow for one token, all of it driven by the broker, which owns HTTP and the clock:
//!
//! ```text
//! token ──peek(token, policy)──> Peeked { alg, kid }      shape, alg allow-list (none/HS* refused)
//!       ──KeyCache::lookup(kid, now)──> Refresh?          broker fetches JWKS, store()/record_failure()
//!       ──KeyCache::resolve(kid, now)──> &Key             kid_missing / kid_unknown / no_keys
//!       ──verify(&peeked, policy, key, now)──> Verified   key type, signature, iss/aud/exp/nbf/iat/sub
//!       ──person(&people_issuer, &verified)──> PersonIdentity
//!       └─evaluate(&workload_rule, &verified)──> WorkloadIdentity
//! ```
//!
//! Every refusal is a [`Rejection`] with a stable [`Rejection::code`]; none of them echoes the
//! token. Time is an argument everywhere (`Instant` for the cache, `SystemTime` for claims) so
//! that tests are deterministic. Issuing the broker's own session tokens is `sluiced`'s job.

mod claims;
mod keys;
mod person;
mod rejection;
mod verify;
mod workload;

pub use jsonwebtoken::Algorithm;
pub use keys::{CacheTiming, Key, KeyCache, KeyError, Lookup, parse_jwks};
pub use person::{PeopleIssuer, PersonIdentity, person};
pub use rejection::{ECHO_LIMIT, Rejection};
pub use verify::{
    ALLOWED_ALGORITHMS, IssuerPolicy, MAX_TOKEN_BYTES, Peeked, Verified, peek, verify,
};
pub use workload::{ClaimMatch, Preset, RuleError, WorkloadIdentity, WorkloadRule, evaluate};
