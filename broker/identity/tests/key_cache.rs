//! The JWKS cache as a state machine, driven with explicit instants.

mod support;

use std::time::{Duration, Instant};

use serde_json::json;
use sluice_identity::{CacheTiming, KeyCache, KeyError, Lookup, Rejection, parse_jwks};
use support::*;

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn is_found(lookup: &Lookup<'_>, kid: &str) -> bool {
    matches!(lookup, Lookup::Found(key) if key.kid() == Some(kid))
}

#[test]
fn empty_cache_asks_for_a_fetch_then_fails_closed() {
    let t0 = Instant::now();
    let mut cache = KeyCache::new(timing());
    assert!(matches!(cache.lookup(Some("rsa-1"), t0), Lookup::Refresh));
    cache.record_failure(t0);
    assert!(matches!(
        cache.lookup(Some("rsa-1"), t0 + secs(10)),
        Lookup::NoKeys
    ));
    assert_eq!(
        cache.resolve(Some("rsa-1"), t0 + secs(10)).unwrap_err(),
        Rejection::NoKeys
    );
    assert!(matches!(
        cache.lookup(Some("rsa-1"), t0 + secs(30)),
        Lookup::Refresh
    ));
    cache.store(&jwks(&[&RSA]), t0 + secs(30)).unwrap();
    assert!(is_found(
        &cache.lookup(Some("rsa-1"), t0 + secs(31)),
        "rsa-1"
    ));
}

#[test]
fn unknown_kid_refreshes_at_most_once_per_interval() {
    let t0 = Instant::now();
    let mut cache = cache(&[&RSA], t0);
    // Just stored: an unknown kid may not trigger another fetch yet.
    assert!(matches!(
        cache.lookup(Some("new"), t0 + secs(5)),
        Lookup::Unknown
    ));
    assert!(matches!(
        cache.lookup(Some("new"), t0 + secs(30)),
        Lookup::Refresh
    ));
    // The IdP still does not publish it.
    cache.store(&jwks(&[&RSA]), t0 + secs(30)).unwrap();
    assert!(matches!(
        cache.lookup(Some("new"), t0 + secs(31)),
        Lookup::Unknown
    ));
    assert!(matches!(
        cache.lookup(Some("new"), t0 + secs(59)),
        Lookup::Unknown
    ));
    assert_eq!(
        cache
            .resolve(Some("new"), t0 + secs(31))
            .unwrap_err()
            .code(),
        "kid_unknown"
    );
    // Known kids keep working meanwhile.
    assert!(is_found(
        &cache.lookup(Some("rsa-1"), t0 + secs(31)),
        "rsa-1"
    ));
    // Next interval: rotated in.
    assert!(matches!(
        cache.lookup(Some("ec-256"), t0 + secs(60)),
        Lookup::Refresh
    ));
    cache.store(&jwks(&[&RSA, &EC256]), t0 + secs(60)).unwrap();
    assert!(is_found(
        &cache.lookup(Some("ec-256"), t0 + secs(60)),
        "ec-256"
    ));
}

#[test]
fn failed_refresh_also_counts_against_the_interval() {
    let t0 = Instant::now();
    let mut cache = cache(&[&RSA], t0);
    assert!(matches!(
        cache.lookup(Some("new"), t0 + secs(100)),
        Lookup::Refresh
    ));
    cache.record_failure(t0 + secs(100));
    assert!(matches!(
        cache.lookup(Some("new"), t0 + secs(120)),
        Lookup::Unknown
    ));
    assert!(matches!(
        cache.lookup(Some("new"), t0 + secs(130)),
        Lookup::Refresh
    ));
}

#[test]
fn serves_from_cache_after_a_failed_refresh() {
    let t0 = Instant::now();
    let mut cache = cache(&[&RSA], t0);
    // Past refresh_after: ask for a proactive refresh.
    assert!(matches!(
        cache.lookup(Some("rsa-1"), t0 + secs(600)),
        Lookup::Refresh
    ));
    cache.record_failure(t0 + secs(600));
    // The IdP is down: the cached key keeps serving, without hammering the IdP.
    assert!(is_found(
        &cache.lookup(Some("rsa-1"), t0 + secs(601)),
        "rsa-1"
    ));
    assert_eq!(
        cache.resolve(Some("rsa-1"), t0 + secs(601)).unwrap().kid(),
        Some("rsa-1")
    );
    // Store of an error page: also a failure, the keys stay.
    assert!(matches!(
        cache.lookup(Some("rsa-1"), t0 + secs(700)),
        Lookup::Refresh
    ));
    assert_eq!(
        cache.store("<html>502</html>", t0 + secs(700)),
        Err(KeyError::NotAJwks)
    );
    assert!(is_found(
        &cache.lookup(Some("rsa-1"), t0 + secs(701)),
        "rsa-1"
    ));
    assert_eq!(cache.fetched_at(), Some(t0));
    assert_eq!(cache.last_attempt(), Some(t0 + secs(700)));
}

#[test]
fn no_keys_after_max_stale() {
    let t0 = Instant::now();
    let mut cache = cache(&[&RSA], t0);
    cache.record_failure(t0 + secs(3590));
    assert!(cache.resolve(Some("rsa-1"), t0 + secs(3599)).is_ok());
    // max_stale (1 h) since the last success: nothing is trusted any more.
    assert!(matches!(
        cache.lookup(Some("rsa-1"), t0 + secs(3600)),
        Lookup::NoKeys
    ));
    assert_eq!(
        cache.resolve(Some("rsa-1"), t0 + secs(3600)).unwrap_err(),
        Rejection::NoKeys
    );
    // A fetch may be attempted once the interval passes; until it succeeds, still closed.
    assert!(matches!(
        cache.lookup(Some("rsa-1"), t0 + secs(3620)),
        Lookup::Refresh
    ));
    cache.record_failure(t0 + secs(3620));
    assert_eq!(
        cache.resolve(Some("rsa-1"), t0 + secs(3621)).unwrap_err(),
        Rejection::NoKeys
    );
    cache.store(&jwks(&[&RSA]), t0 + secs(3700)).unwrap();
    assert!(cache.resolve(Some("rsa-1"), t0 + secs(3701)).is_ok());
}

#[test]
fn store_keeps_good_keys_and_skips_bad_ones() {
    let short_rsa = json!({"kty": "RSA", "kid": "weak", "n": b64(&[0xC5; 128]), "e": "AQAB"});
    let document = json!({ "keys": [
        RSA.jwk,
        {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"},
        {"kty": "EC", "kid": "p521", "crv": "P-521", "x": "AA", "y": "AA"},
        {"kty": "RSA", "kid": "enc", "use": "enc", "n": RSA.jwk["n"], "e": "AQAB"},
        {"kty": "RSA", "kid": "oaep", "alg": "RSA-OAEP", "n": RSA.jwk["n"], "e": "AQAB"},
        {"kty": "RSA", "kid": "hs-alg", "alg": "HS256", "n": RSA.jwk["n"], "e": "AQAB"},
        short_rsa,
        {"kty": "FOO", "kid": "future"},
        "not even an object",
        EC256.jwk,
        ED.jwk,
    ]})
    .to_string();
    let t0 = Instant::now();
    let mut cache = KeyCache::new(timing());
    assert_eq!(cache.store(&document, t0), Ok(3));
    let kids: Vec<_> = cache
        .keys()
        .iter()
        .map(|key| key.kid().unwrap_or("-"))
        .collect();
    assert_eq!(kids, ["rsa-1", "ec-256", "ed-1"]);
    assert_eq!(
        cache.resolve(Some("hmac"), t0).unwrap_err().code(),
        "kid_unknown"
    );
}

#[test]
fn store_with_nothing_usable_keeps_the_previous_keys() {
    let t0 = Instant::now();
    let mut cache = cache(&[&RSA], t0);
    let useless = json!({"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}).to_string();
    assert_eq!(
        cache.store(&useless, t0 + secs(40)),
        Err(KeyError::NoUsableKeys { skipped: 1 })
    );
    assert!(cache.resolve(Some("rsa-1"), t0 + secs(41)).is_ok());
    assert_eq!(parse_jwks("{}").unwrap_err(), KeyError::NotAJwks);
}

#[test]
fn token_without_kid() {
    let t0 = Instant::now();
    let single = cache(&[&RSA], t0);
    assert!(is_found(&single.lookup(None, t0), "rsa-1"));
    let several = cache(&[&RSA, &ED], t0);
    assert!(matches!(several.lookup(None, t0), Lookup::KidRequired));
    assert_eq!(
        several.resolve(None, t0).unwrap_err(),
        Rejection::KidMissing
    );
}

#[test]
fn key_algorithms_follow_type_curve_and_declared_alg() {
    use sluice_identity::Algorithm;
    let t0 = Instant::now();
    let cache = cache(&[&RSA, &EC256, &EC384, &ED], t0);
    let algs = |kid| cache.resolve(Some(kid), t0).unwrap().algorithms().to_vec();
    assert_eq!(algs("rsa-1").len(), 6);
    assert_eq!(algs("ec-256"), [Algorithm::ES256]);
    assert_eq!(algs("ec-384"), [Algorithm::ES384]);
    assert_eq!(algs("ed-1"), [Algorithm::EdDSA]);
}

#[test]
fn default_timing_is_sane() {
    let timing = CacheTiming::default();
    assert!(timing.min_refresh_interval < timing.refresh_after);
    assert!(timing.refresh_after < timing.max_stale);
}
