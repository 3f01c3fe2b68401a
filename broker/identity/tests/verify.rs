//! Crafted tokens against the verification core: each forgery is refused with its own code,
//! each genuine algorithm verifies.

mod support;

use std::time::Duration;

use jsonwebtoken::EncodingKey;
use serde_json::{Value, json};
use sluice_identity::{Algorithm, IssuerPolicy, MAX_TOKEN_BYTES, peek, verify};
use support::*;

fn header(alg: &str, kid: &str) -> Value {
    json!({ "alg": alg, "typ": "JWT", "kid": kid })
}

fn segments(token: &str) -> Vec<String> {
    token.split('.').map(str::to_owned).collect()
}

// ---- algorithm allow-list: decided from the header, before any key -------------------------

#[test]
fn alg_none_unsigned() {
    let token = format!(
        "{}.{}.",
        b64_json(&json!({"alg": "none"})),
        b64_json(&claims())
    );
    assert_code(check(&token), "alg_none_refused");
}

#[test]
fn alg_none_with_a_signature() {
    let genuine = segments(&token(&RSA, &claims()));
    let forged = format!(
        "{}.{}.{}",
        b64_json(&header("none", RSA.kid)),
        genuine[1],
        genuine[2]
    );
    assert_code(check(&forged), "alg_none_refused");
}

#[test]
fn alg_none_in_other_spellings() {
    for alg in ["None", "NONE", "nOnE"] {
        let token = format!(
            "{}.{}.",
            b64_json(&json!({"alg": alg})),
            b64_json(&claims())
        );
        assert_code(check(&token), "alg_none_refused");
    }
}

#[test]
fn hs256_with_the_rsa_public_key_as_secret() {
    // Algorithm confusion: a verifier that hands the RSA public key to HMAC would accept this.
    let secret = EncodingKey::from_secret(RSA.public_pem.as_bytes());
    let token = sign_raw(
        &header("HS256", RSA.kid),
        &claims(),
        &secret,
        Algorithm::HS256,
    );
    assert_code(check(&token), "hmac_refused");
}

#[test]
fn hs512() {
    let secret = EncodingKey::from_secret(b"shared secret shared secret shared secret");
    let token = sign_raw(
        &header("HS512", RSA.kid),
        &claims(),
        &secret,
        Algorithm::HS512,
    );
    assert_code(check(&token), "hmac_refused");
}

#[test]
fn unknown_algorithm_name() {
    let genuine = segments(&token(&RSA, &claims()));
    let forged = format!(
        "{}.{}.{}",
        b64_json(&header("RS1", RSA.kid)),
        genuine[1],
        genuine[2]
    );
    assert_code(check(&forged), "alg_not_allowed");
}

#[test]
fn algorithm_outside_the_issuers_subset() {
    let mut policy = policy();
    policy.algorithms = vec![Algorithm::ES256];
    let result = check_with(&token(&RSA, &claims()), &policy, &[&RSA, &EC256]);
    assert_code(result, "alg_not_allowed");
}

#[test]
fn rs256_signature_with_es256_header() {
    let token = sign_raw(
        &header("ES256", RSA.kid),
        &claims(),
        &RSA.encoding,
        Algorithm::RS256,
    );
    assert_code(check(&token), "key_alg_mismatch");
}

#[test]
fn p256_key_named_by_an_es384_header() {
    let token = sign_raw(
        &header("ES384", EC256.kid),
        &claims(),
        &EC384.encoding,
        Algorithm::ES384,
    );
    assert_code(check(&token), "key_alg_mismatch");
}

#[test]
fn jwk_alg_restricts_the_key() {
    // The JWKS says this RSA key is for RS256 only; a PS256 token naming it is refused.
    let mut restricted = RSA.jwk.clone();
    restricted["alg"] = Value::from("RS256");
    let jwks = json!({ "keys": [restricted] }).to_string();
    let mut cache = sluice_identity::KeyCache::new(timing());
    let base = std::time::Instant::now();
    cache.store(&jwks, base).unwrap();
    let token = token_as(&RSA, Algorithm::PS256, &claims());
    let peeked = peek(&token, &policy()).unwrap();
    let key = cache.resolve(peeked.kid(), base).unwrap();
    assert_code(verify(&peeked, &policy(), key, now()), "key_alg_mismatch");
}

// ---- time claims --------------------------------------------------------------------------

#[test]
fn expired() {
    let token = token(&RSA, &claims_with(json!({"exp": at(-31), "iat": at(-400)})));
    assert_code(check(&token), "expired");
}

#[test]
fn expired_within_leeway_is_accepted() {
    let token = token(&RSA, &claims_with(json!({"exp": at(-20), "iat": at(-400)})));
    assert!(check(&token).is_ok());
}

#[test]
fn not_yet_valid() {
    let token = token(&RSA, &claims_with(json!({"nbf": at(120)})));
    assert_code(check(&token), "not_yet_valid");
}

#[test]
fn nbf_within_leeway_is_accepted() {
    let token = token(&RSA, &claims_with(json!({"nbf": at(20)})));
    assert!(check(&token).is_ok());
}

#[test]
fn issued_in_the_future() {
    let token = token(&RSA, &claims_with(json!({"iat": at(120)})));
    assert_code(check(&token), "issued_in_future");
}

#[test]
fn too_old_for_the_issuer() {
    let mut policy = policy();
    policy.max_token_age = Some(Duration::from_secs(600));
    let old = token(
        &RSA,
        &claims_with(json!({"iat": at(-700), "exp": at(3000)})),
    );
    assert_code(check_with(&old, &policy, &[&RSA]), "too_old");
    let no_iat = token(&RSA, &claims_with(json!({"iat": null})));
    assert_code(check_with(&no_iat, &policy, &[&RSA]), "missing_claim");
}

#[test]
fn fractional_numeric_dates_are_accepted() {
    let token = token(
        &RSA,
        &claims_with(json!({"exp": 1_700_000_300.5, "iat": 1_699_999_990.25})),
    );
    assert!(check(&token).is_ok());
}

// ---- issuer, audience, required claims ----------------------------------------------------

#[test]
fn wrong_issuer() {
    let token = token(
        &RSA,
        &claims_with(json!({"iss": "https://evil.example.com"})),
    );
    assert_code(check(&token), "wrong_issuer");
}

#[test]
fn issuer_with_trailing_slash() {
    let token = token(&RSA, &claims_with(json!({"iss": format!("{ISSUER}/")})));
    assert_code(check(&token), "wrong_issuer");
}

#[test]
fn wrong_audience() {
    let token = token(&RSA, &claims_with(json!({"aud": "someone-else"})));
    assert_code(check(&token), "wrong_audience");
}

#[test]
fn audience_array_without_ours() {
    let token = token(&RSA, &claims_with(json!({"aud": ["a", "b", "sluice2"]})));
    assert_code(check(&token), "wrong_audience");
}

#[test]
fn audience_array_with_ours_is_accepted() {
    let token = token(&RSA, &claims_with(json!({"aud": ["a", AUDIENCE]})));
    let verified = check(&token).unwrap();
    assert_eq!(verified.audiences(), ["a", AUDIENCE]);
}

#[test]
fn missing_audience() {
    let token = token(&RSA, &claims_with(json!({"aud": null})));
    assert_code(check(&token), "missing_claim");
}

#[test]
fn missing_sub() {
    let token = token(&RSA, &claims_with(json!({"sub": null})));
    assert_code(check(&token), "missing_claim");
}

#[test]
fn missing_exp() {
    let token = token(&RSA, &claims_with(json!({"exp": null})));
    assert_code(check(&token), "missing_claim");
}

#[test]
fn exp_as_a_string() {
    let token = token(&RSA, &claims_with(json!({"exp": "1700000300"})));
    assert_code(check(&token), "invalid_claim");
}

// ---- key selection ------------------------------------------------------------------------

#[test]
fn unknown_kid_after_refresh() {
    let token = sign_raw(
        &header("RS256", "rotated-away"),
        &claims(),
        &RSA.encoding,
        Algorithm::RS256,
    );
    assert_code(check(&token), "kid_unknown");
}

#[test]
fn missing_kid_with_several_keys() {
    let token = sign_raw(
        &json!({"alg": "RS256"}),
        &claims(),
        &RSA.encoding,
        Algorithm::RS256,
    );
    assert_code(check(&token), "kid_missing");
}

#[test]
fn missing_kid_with_exactly_one_key_is_accepted() {
    let token = sign_raw(
        &json!({"alg": "RS256"}),
        &claims(),
        &RSA.encoding,
        Algorithm::RS256,
    );
    assert!(check_with(&token, &policy(), &[&RSA]).is_ok());
}

#[test]
fn no_keys_at_all() {
    let token = token(&RSA, &claims());
    let cache = sluice_identity::KeyCache::new(timing());
    let peeked = peek(&token, &policy()).unwrap();
    assert_code(
        cache
            .resolve(peeked.kid(), std::time::Instant::now())
            .map(|_| unreachable!()),
        "no_keys",
    );
}

// ---- signature ----------------------------------------------------------------------------

#[test]
fn tampered_payload() {
    let genuine = segments(&token(&RSA, &claims()));
    let tampered = b64_json(&claims_with(json!({"preferred_username": "root"})));
    let forged = format!("{}.{}.{}", genuine[0], tampered, genuine[2]);
    assert_code(check(&forged), "bad_signature");
}

#[test]
fn tampered_header() {
    let genuine = segments(&token(&RSA, &claims()));
    let header = b64_json(&json!({"alg": "RS256", "kid": RSA.kid, "typ": "at+jwt"}));
    let forged = format!("{}.{}.{}", header, genuine[1], genuine[2]);
    assert_code(check(&forged), "bad_signature");
}

#[test]
fn signature_from_another_key_with_the_same_kid() {
    let forged = token(&RSA_OTHER, &claims());
    assert_code(check(&forged), "bad_signature");
}

#[test]
fn truncated_signature() {
    use base64::Engine;
    let genuine = segments(&token(&RSA, &claims()));
    let signature = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(&genuine[2])
        .unwrap();
    let forged = format!("{}.{}.{}", genuine[0], genuine[1], b64(&signature[..200]));
    assert_code(check(&forged), "bad_signature");
    // Cut mid-character, it is no longer canonical base64url.
    let cut = format!(
        "{}.{}.{}",
        genuine[0],
        genuine[1],
        &genuine[2][..genuine[2].len() - 1]
    );
    assert!(check(&cut).is_err());
}

#[test]
fn eddsa_signature_on_another_payload() {
    let first = segments(&token(&ED, &claims()));
    let second = segments(&token(&ED, &claims_with(json!({"sub": "other"}))));
    let forged = format!("{}.{}.{}", first[0], second[1], first[2]);
    assert_code(check(&forged), "bad_signature");
}

// ---- shape --------------------------------------------------------------------------------

#[test]
fn extra_segment() {
    let forged = format!("{}.{}", token(&RSA, &claims()), "AAAA");
    assert_code(check(&forged), "malformed");
}

#[test]
fn two_segments() {
    let genuine = segments(&token(&RSA, &claims()));
    assert_code(
        check(&format!("{}.{}", genuine[0], genuine[1])),
        "malformed",
    );
}

#[test]
fn not_base64() {
    assert_code(check("not base64!.eyJ9.c2ln"), "malformed");
    let genuine = segments(&token(&RSA, &claims()));
    let padded = format!("{}.{}=.{}", genuine[0], genuine[1], genuine[2]);
    assert_code(check(&padded), "malformed");
}

#[test]
fn header_is_not_an_object() {
    let token = format!("{}.{}.c2ln", b64(b"[\"RS256\"]"), b64_json(&claims()));
    assert_code(check(&token), "malformed");
}

#[test]
fn crit_header_is_refused() {
    let header = json!({"alg": "RS256", "kid": RSA.kid, "crit": ["exp"], "exp": 1});
    let token = sign_raw(&header, &claims(), &RSA.encoding, Algorithm::RS256);
    assert_code(check(&token), "malformed");
}

#[test]
fn oversized_token() {
    let padding = "x".repeat(MAX_TOKEN_BYTES);
    let token = token(&RSA, &claims_with(json!({"padding": padding})));
    assert_code(check(&token), "malformed");
}

#[test]
fn rejection_messages_do_not_echo_long_header_values() {
    let long = "A".repeat(5000);
    let genuine = segments(&token(&RSA, &claims()));
    let forged = format!(
        "{}.{}.{}",
        b64_json(&header("RS256", &long)),
        genuine[1],
        genuine[2]
    );
    let rejection = check(&forged).unwrap_err();
    assert_eq!(rejection.code(), "kid_unknown");
    assert!(!rejection.to_string().contains(&long));
}

#[test]
fn verify_rechecks_the_policy_it_is_given() {
    let token = token(&RSA, &claims());
    let peeked = peek(&token, &policy()).unwrap();
    let cache = cache(&[&RSA], std::time::Instant::now());
    let key = cache
        .resolve(peeked.kid(), std::time::Instant::now())
        .unwrap();
    let mut narrow = policy();
    narrow.algorithms = vec![Algorithm::EdDSA];
    assert_code(verify(&peeked, &narrow, key, now()), "alg_not_allowed");
}

// ---- every allowed algorithm verifies -----------------------------------------------------

fn accepts(signer: &Signer, alg: Algorithm) {
    let token = token_as(signer, alg, &claims());
    let verified = check(&token).unwrap_or_else(|r| panic!("{alg:?} refused: {r}"));
    assert_eq!(verified.alg(), alg);
    assert_eq!(verified.kid(), Some(signer.kid));
    assert_eq!(verified.issuer(), ISSUER);
    assert_eq!(verified.subject(), "00u1abcd");
    assert_eq!(
        verified.expires_at(),
        std::time::UNIX_EPOCH + Duration::from_secs(1_700_000_300)
    );
    assert_eq!(verified.claims()["preferred_username"], "ada@example.com");
}

#[test]
fn rs256_verifies() {
    accepts(&RSA, Algorithm::RS256);
}

#[test]
fn rs384_and_rs512_verify() {
    accepts(&RSA, Algorithm::RS384);
    accepts(&RSA, Algorithm::RS512);
}

#[test]
fn ps256_verifies() {
    accepts(&RSA, Algorithm::PS256);
}

#[test]
fn ps384_and_ps512_verify() {
    accepts(&RSA, Algorithm::PS384);
    accepts(&RSA, Algorithm::PS512);
}

#[test]
fn es256_verifies() {
    accepts(&EC256, Algorithm::ES256);
}

#[test]
fn es384_verifies() {
    accepts(&EC384, Algorithm::ES384);
}

#[test]
fn eddsa_verifies() {
    accepts(&ED, Algorithm::EdDSA);
}

#[test]
fn policy_defaults() {
    let policy = IssuerPolicy::new(ISSUER, vec![AUDIENCE.into()]);
    assert_eq!(policy.algorithms.len(), 9);
    assert!(!policy.algorithms.contains(&Algorithm::HS256));
    assert_eq!(policy.leeway, Duration::from_secs(30));
}
