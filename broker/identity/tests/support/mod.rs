//! Shared test fixtures: real keys (rcgen), hand-built tokens, a fixed clock.

#![allow(dead_code)]

use std::sync::LazyLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::EncodingKey;
use jsonwebtoken::jwk::Jwk;
use rcgen::{KeyPair, SignatureAlgorithm};
use serde_json::{Value, json};
use sluice_identity::{
    Algorithm, CacheTiming, IssuerPolicy, KeyCache, Lookup, Rejection, Verified, peek, verify,
};

pub const ISSUER: &str = "https://idp.example.com";
pub const AUDIENCE: &str = "sluice";

/// The fixed "now" of every test.
pub fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_700_000_000)
}

pub fn at(offset_secs: i64) -> i64 {
    1_700_000_000 + offset_secs
}

/// A signing key with its public JWK.
pub struct Signer {
    pub kid: &'static str,
    pub alg: Algorithm,
    pub encoding: EncodingKey,
    pub public_pem: String,
    /// JWK without `alg`, with `kid` and `use: sig`.
    pub jwk: Value,
}

fn signer(kid: &'static str, alg: Algorithm, rcgen_alg: &'static SignatureAlgorithm) -> Signer {
    let pair = KeyPair::generate_for(rcgen_alg).expect("key generation");
    let pem = pair.serialize_pem();
    let encoding = match alg.family() {
        jsonwebtoken::AlgorithmFamily::Rsa => EncodingKey::from_rsa_pem(pem.as_bytes()),
        jsonwebtoken::AlgorithmFamily::Ec => EncodingKey::from_ec_pem(pem.as_bytes()),
        _ => EncodingKey::from_ed_pem(pem.as_bytes()),
    }
    .expect("encoding key");
    let mut jwk = if alg == Algorithm::EdDSA {
        // PKCS#8 v2 from aws-lc is longer than what `Jwk::from_encoding_key` expects.
        json!({ "kty": "OKP", "crv": "Ed25519", "x": b64(pair.public_key_raw()) })
    } else {
        serde_json::to_value(Jwk::from_encoding_key(&encoding, alg).expect("jwk")).expect("json")
    };
    let object = jwk.as_object_mut().expect("jwk object");
    object.remove("alg");
    object.insert("kid".into(), Value::from(kid));
    object.insert("use".into(), Value::from("sig"));
    Signer {
        kid,
        alg,
        encoding,
        public_pem: pair.public_key_pem(),
        jwk,
    }
}

pub static RSA: LazyLock<Signer> =
    LazyLock::new(|| signer("rsa-1", Algorithm::RS256, &rcgen::PKCS_RSA_SHA256));
/// Another RSA key, published under the same `kid` by an attacker's imagination.
pub static RSA_OTHER: LazyLock<Signer> =
    LazyLock::new(|| signer("rsa-1", Algorithm::RS256, &rcgen::PKCS_RSA_SHA256));
pub static EC256: LazyLock<Signer> =
    LazyLock::new(|| signer("ec-256", Algorithm::ES256, &rcgen::PKCS_ECDSA_P256_SHA256));
pub static EC384: LazyLock<Signer> =
    LazyLock::new(|| signer("ec-384", Algorithm::ES384, &rcgen::PKCS_ECDSA_P384_SHA384));
pub static ED: LazyLock<Signer> =
    LazyLock::new(|| signer("ed-1", Algorithm::EdDSA, &rcgen::PKCS_ED25519));

pub fn jwks(signers: &[&Signer]) -> String {
    json!({ "keys": signers.iter().map(|s| s.jwk.clone()).collect::<Vec<_>>() }).to_string()
}

pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

pub fn b64_json(value: &Value) -> String {
    b64(value.to_string().as_bytes())
}

/// `header.payload` signed by `key` with `alg` (which may differ from the header's).
pub fn sign_raw(header: &Value, claims: &Value, key: &EncodingKey, alg: Algorithm) -> String {
    let message = format!("{}.{}", b64_json(header), b64_json(claims));
    let signature =
        jsonwebtoken::crypto::sign(message.as_bytes(), key, alg).expect("signing works");
    format!("{message}.{signature}")
}

/// A token signed by `signer` with its own algorithm and `kid`.
pub fn token(signer: &Signer, claims: &Value) -> String {
    token_as(signer, signer.alg, claims)
}

/// A token signed by `signer` with `alg` (same family).
pub fn token_as(signer: &Signer, alg: Algorithm, claims: &Value) -> String {
    let header = json!({ "alg": format!("{alg:?}"), "typ": "JWT", "kid": signer.kid });
    sign_raw(&header, claims, &signer.encoding, alg)
}

/// Valid people-token claims.
pub fn claims() -> Value {
    json!({
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "00u1abcd",
        "preferred_username": "ada@example.com",
        "groups": ["eng", "dba"],
        "iat": at(-10),
        "nbf": at(-10),
        "exp": at(300),
    })
}

/// `claims()` with fields replaced (`null` removes).
pub fn claims_with(changes: Value) -> Value {
    let mut claims = claims();
    merge(&mut claims, changes);
    claims
}

pub fn merge(claims: &mut Value, changes: Value) {
    let object = claims.as_object_mut().expect("object");
    for (key, value) in changes.as_object().expect("object") {
        if value.is_null() {
            object.remove(key);
        } else {
            object.insert(key.clone(), value.clone());
        }
    }
}

pub fn policy() -> IssuerPolicy {
    IssuerPolicy::new(ISSUER, vec![AUDIENCE.into()])
}

pub fn timing() -> CacheTiming {
    CacheTiming {
        min_refresh_interval: Duration::from_secs(30),
        refresh_after: Duration::from_secs(600),
        max_stale: Duration::from_secs(3600),
    }
}

/// A cache holding `signers`, fetched at `base`.
pub fn cache(signers: &[&Signer], base: Instant) -> KeyCache {
    let mut cache = KeyCache::new(timing());
    cache.store(&jwks(signers), base).expect("jwks stores");
    cache
}

/// The whole flow with a cache that cannot fetch: peek, lookup (a refresh request is answered
/// with the same key set), resolve, verify.
pub fn check_with(
    token: &str,
    policy: &IssuerPolicy,
    signers: &[&Signer],
) -> Result<Verified, Rejection> {
    let base = Instant::now();
    let mut cache = cache(signers, base);
    let later = base + Duration::from_secs(60);
    let peeked = peek(token, policy)?;
    if let Lookup::Refresh = cache.lookup(peeked.kid(), later) {
        cache.store(&jwks(signers), later).expect("jwks stores");
    }
    let key = cache.resolve(peeked.kid(), later)?;
    verify(&peeked, policy, key, now())
}

/// The whole flow against every test key.
pub fn check(token: &str) -> Result<Verified, Rejection> {
    check_with(token, &policy(), &[&RSA, &EC256, &EC384, &ED])
}

#[track_caller]
pub fn assert_code(result: Result<Verified, Rejection>, code: &str) {
    match result {
        Ok(verified) => panic!("expected `{code}`, token was accepted: {verified:?}"),
        Err(rejection) => {
            assert_eq!(rejection.code(), code, "wrong rejection: {rejection}");
            // The message never carries a token-sized echo.
            assert!(rejection.to_string().len() < 200, "{rejection}");
        }
    }
}
