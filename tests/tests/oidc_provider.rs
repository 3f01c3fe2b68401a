//! The OIDC test harness itself: a real `oidc-provider` on 127.0.0.1, a real device flow
//! (RFC 8628) driven with curl, the user's step done through the provider's own pages.

use serde_json::Value;
use sluice_tests::OidcProvider;
use sluice_tests::oidc::{SCOPES, jwt_claims, jwt_header};
use sluice_tests::util::{curl_json, curl_raw, form_args};

const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// GET with curl: (HTTP status, JSON body).
fn get_json(url: &str) -> (u16, Value) {
    curl_json(&[url.to_string()])
}

/// POST a form with curl: (HTTP status, JSON body).
fn post_form(url: &str, form: &[(&str, &str)]) -> (u16, Value) {
    curl_json(&form_args(url, form))
}

/// POST a form with curl: (HTTP status, body).
fn post_form_raw(url: &str, form: &[(&str, &str)]) -> (u16, String) {
    curl_raw(&form_args(url, form))
}

fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("no string {key:?} in {v:#}"))
}

struct Flow {
    device_code: String,
    user_code: String,
}

fn device_authorization(op: &OidcProvider, endpoint: &str) -> Flow {
    let (status, body) = post_form(
        endpoint,
        &[("client_id", op.client_id()), ("scope", SCOPES)],
    );
    assert_eq!(status, 200, "device authorization: {body:#}");
    assert!(
        body["interval"].as_u64().is_some_and(|i| i >= 1),
        "interval: {body:#}"
    );
    assert!(
        body["expires_in"].as_u64().is_some(),
        "expires_in: {body:#}"
    );
    let user_code = str_of(&body, "user_code").to_string();
    assert_eq!(
        str_of(&body, "verification_uri"),
        op.url("/device"),
        "{body:#}"
    );
    assert!(
        str_of(&body, "verification_uri_complete").starts_with(&op.url("/device?user_code=")),
        "{body:#}"
    );
    Flow {
        device_code: str_of(&body, "device_code").to_string(),
        user_code,
    }
}

fn poll(op: &OidcProvider, token_endpoint: &str, flow: &Flow) -> (u16, Value) {
    post_form(
        token_endpoint,
        &[
            ("client_id", op.client_id()),
            ("grant_type", DEVICE_GRANT),
            ("device_code", &flow.device_code),
        ],
    )
}

#[test]
fn device_flow_with_refresh_and_denial_against_a_real_provider() {
    let op = OidcProvider::start();
    assert!(
        op.issuer().starts_with("http://127.0.0.1:"),
        "{}",
        op.issuer()
    );

    // Discovery.
    let (status, disco) = get_json(&op.url("/.well-known/openid-configuration"));
    assert_eq!(status, 200, "{disco:#}");
    assert_eq!(str_of(&disco, "issuer"), op.issuer());
    let device_endpoint = str_of(&disco, "device_authorization_endpoint").to_string();
    let token_endpoint = str_of(&disco, "token_endpoint").to_string();
    let jwks_uri = str_of(&disco, "jwks_uri").to_string();
    assert!(str_of(&disco, "revocation_endpoint").starts_with(op.issuer()));
    let grants = disco["grant_types_supported"].as_array().expect("grants");
    assert!(grants.iter().any(|g| g == DEVICE_GRANT), "{disco:#}");
    let scopes = disco["scopes_supported"].as_array().expect("scopes");
    for s in SCOPES.split(' ') {
        assert!(scopes.iter().any(|x| x == s), "scope {s} in {disco:#}");
    }

    // Device authorization, then polling before the user acted.
    let flow = device_authorization(&op, &device_endpoint);
    let (status, pending) = poll(&op, &token_endpoint, &flow);
    assert_eq!(status, 400, "{pending:#}");
    assert_eq!(str_of(&pending, "error"), "authorization_pending");

    // The user approves in the "browser"; the device's next poll gets tokens.
    op.approve(&flow.user_code, "alice");
    let (status, tokens) = poll(&op, &token_endpoint, &flow);
    assert_eq!(status, 200, "{tokens:#}");
    assert_eq!(str_of(&tokens, "token_type"), "Bearer");
    assert!(!str_of(&tokens, "access_token").is_empty());
    let id_token = str_of(&tokens, "id_token");
    let claims = jwt_claims(id_token);
    assert_eq!(claims["preferred_username"], "alice", "{claims:#}");
    assert_eq!(claims["sub"], "alice", "{claims:#}");
    assert_eq!(claims["email"], "alice@example.com", "{claims:#}");
    assert_eq!(
        claims["groups"],
        serde_json::json!(["dba", "dev"]),
        "{claims:#}"
    );
    assert_eq!(claims["aud"], op.client_id(), "{claims:#}");
    assert_eq!(claims["iss"], op.issuer(), "{claims:#}");
    assert!(
        claims["exp"].as_u64() > claims["iat"].as_u64(),
        "{claims:#}"
    );
    let header = jwt_header(id_token);
    assert_eq!(header["alg"], "RS256", "{header:#}");
    let id_kid = str_of(&header, "kid").to_string();

    // Refresh: a new ID token for the same user, and a rotated refresh token.
    let refresh_token = str_of(&tokens, "refresh_token").to_string();
    let (status, refreshed) = post_form(
        &token_endpoint,
        &[
            ("client_id", op.client_id()),
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh_token),
        ],
    );
    assert_eq!(status, 200, "{refreshed:#}");
    let new_id_token = str_of(&refreshed, "id_token");
    // (It may equal the first one byte for byte when issued within the same second: same
    // claims, same key, deterministic RS256.)
    let new_claims = jwt_claims(new_id_token);
    assert_eq!(new_claims["preferred_username"], "alice", "{new_claims:#}");
    assert_eq!(new_claims["groups"], serde_json::json!(["dba", "dev"]));
    assert_eq!(new_claims["iss"], op.issuer());
    let new_refresh = str_of(&refreshed, "refresh_token").to_string();
    assert_ne!(
        new_refresh, refresh_token,
        "public clients' refresh tokens rotate"
    );

    // Revocation: the rotated refresh token stops working.
    let (status, _) = post_form_raw(
        str_of(&disco, "revocation_endpoint"),
        &[
            ("client_id", op.client_id()),
            ("token", &new_refresh),
            ("token_type_hint", "refresh_token"),
        ],
    );
    assert_eq!(status, 200);
    let (status, revoked) = post_form(
        &token_endpoint,
        &[
            ("client_id", op.client_id()),
            ("grant_type", "refresh_token"),
            ("refresh_token", &new_refresh),
        ],
    );
    assert_eq!(status, 400, "{revoked:#}");
    assert_eq!(str_of(&revoked, "error"), "invalid_grant", "{revoked:#}");

    // The device code is spent. (oidc-provider treats its reuse as a replay and revokes the
    // whole grant, so this comes after the refresh checks.)
    let (status, used) = poll(&op, &token_endpoint, &flow);
    assert_eq!(status, 400, "{used:#}");
    assert_eq!(str_of(&used, "error"), "invalid_grant", "{used:#}");

    // Another user: bob's groups.
    let flow = device_authorization(&op, &device_endpoint);
    op.approve(&flow.user_code, "bob");
    let (status, tokens) = poll(&op, &token_endpoint, &flow);
    assert_eq!(status, 200, "{tokens:#}");
    let claims = jwt_claims(str_of(&tokens, "id_token"));
    assert_eq!(claims["preferred_username"], "bob");
    assert_eq!(claims["groups"], serde_json::json!(["dev"]));

    // A denied flow: the device gets access_denied.
    let flow = device_authorization(&op, &device_endpoint);
    op.deny(&flow.user_code);
    let (status, denied) = poll(&op, &token_endpoint, &flow);
    assert_eq!(status, 400, "{denied:#}");
    assert_eq!(str_of(&denied, "error"), "access_denied", "{denied:#}");
    // ...and its code cannot be approved afterwards.
    assert!(op.try_approve(&flow.user_code, "alice").is_err());

    // An unknown code is refused by the pages.
    let err = op
        .try_approve("BCDF-GHJK", "alice")
        .expect_err("unknown code");
    assert!(err.contains("does not know the user code"), "{err}");

    // JWKS: RS256 and ES256 keys with kids, including the one that signed the ID token.
    let (status, jwks) = get_json(&jwks_uri);
    assert_eq!(status, 200, "{jwks:#}");
    let keys = jwks["keys"].as_array().expect("keys");
    assert!(
        keys.iter()
            .all(|k| k["kid"].as_str().is_some_and(|s| !s.is_empty())),
        "{jwks:#}"
    );
    assert!(keys.iter().any(|k| k["kid"] == id_kid.as_str()), "{jwks:#}");
    for alg in ["RS256", "ES256"] {
        assert!(keys.iter().any(|k| k["alg"] == alg), "{alg} in {jwks:#}");
    }
    assert!(
        keys.iter().all(|k| k.get("d").is_none()),
        "no private parts: {jwks:#}"
    );
}

#[test]
fn short_token_lifetimes_are_configurable() {
    let op =
        OidcProvider::start_with(&[("OIDC_ID_TOKEN_TTL", "7"), ("OIDC_ACCESS_TOKEN_TTL", "9")]);
    let (_, disco) = get_json(&op.url("/.well-known/openid-configuration"));
    let flow = device_authorization(&op, str_of(&disco, "device_authorization_endpoint"));
    op.approve(&flow.user_code, "mallory");
    let (status, tokens) = poll(&op, str_of(&disco, "token_endpoint"), &flow);
    assert_eq!(status, 200, "{tokens:#}");
    assert_eq!(tokens["expires_in"], 9, "{tokens:#}");
    let claims = jwt_claims(str_of(&tokens, "id_token"));
    assert_eq!(
        claims["exp"].as_u64().expect("exp") - claims["iat"].as_u64().expect("iat"),
        7
    );
    assert_eq!(claims["preferred_username"], "mallory");
    assert_eq!(claims["groups"], serde_json::json!([]), "{claims:#}");
}
