//! Exchanging identity tokens at the broker: a real OpenID provider's ID token in, a broker
//! session token out, then a tunnel with it; refusals; the JWKS cache outliving the IdP; logout.

use sluice_tests::util::curl_json;
use sluice_tests::{Broker, BrokerBuilder, Cli, OidcProvider, Postgres};

fn broker_trusting(op: &OidcProvider, pg: Option<&Postgres>) -> Broker {
    let identity = format!(
        "  oidc:\n    - name: corp\n      issuer: {}\n      client_id: sluice-cli\n",
        op.issuer()
    );
    let mut builder = BrokerBuilder::new()
        .identity(&identity)
        .rule("dba", &[], &["dba"], &["*"]);
    if let Some(pg) = pg {
        builder = builder.postgres("pg-main", pg);
    }
    builder.start()
}

/// POST /v1/auth/token with curl, trusting the broker's CA.
fn exchange(broker: &Broker, kind: &str, token: &str) -> (u16, serde_json::Value) {
    let body = serde_json::json!({ "kind": kind, "token": token }).to_string();
    curl_json(&[
        "--cacert".into(),
        broker.ca().display().to_string(),
        "-H".into(),
        "content-type: application/json".into(),
        "--data".into(),
        body,
        format!("{}/v1/auth/token", broker.url()),
    ])
}

#[test]
fn an_oidc_id_token_becomes_a_session_token_that_opens_a_tunnel_until_logout() {
    let op = OidcProvider::start();
    let pg = Postgres::start();
    let broker = broker_trusting(&op, Some(&pg));

    let (status, config) = curl_json(&[
        "--cacert".into(),
        broker.ca().display().to_string(),
        format!("{}/v1/auth/config", broker.url()),
    ]);
    assert_eq!(status, 200);
    assert_eq!(config["oidc"][0]["issuer"], op.issuer());
    assert_eq!(config["oidc"][0]["client_id"], "sluice-cli");

    let id_token = op.id_token_for("alice");
    let (status, session) = exchange(&broker, "oidc", &id_token);
    assert_eq!(status, 200, "{session}");
    assert_eq!(session["subject"], "alice");
    assert_eq!(session["groups"], serde_json::json!(["dba", "dev"]));
    assert_eq!(session["auth_method"], "oidc");
    let id_exp = sluice_tests::oidc::jwt_claims(&id_token)["exp"]
        .as_u64()
        .expect("exp");
    assert!(
        session["expires_at"].as_u64().expect("expires_at") <= id_exp,
        "the session token never outlives the ID token"
    );

    let cli = Cli::new(&broker);
    cli.login(session["token"].as_str().expect("token"));
    let who = cli.run(&["whoami", "--output", "json"]);
    let who: serde_json::Value = serde_json::from_slice(&who.stdout).expect("json");
    assert_eq!(who["auth_method"], "oidc");
    assert_eq!(who["provider"], "corp");

    let out = cli.run(&[
        "connect",
        "pg-main",
        "--exec",
        "psql",
        "-X",
        "-A",
        "-t",
        "-c",
        "select current_user",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "app");

    // Logout revokes the token at the broker: a copy of it is dead too.
    let token = session["token"].as_str().expect("token").to_string();
    assert!(cli.run(&["logout"]).status.success());
    let out = cli
        .cmd()
        .args(["whoami"])
        .env("SLUICE_TOKEN", &token)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(11));
    assert!(String::from_utf8_lossy(&out.stderr).contains("revoked"));
}

#[test]
fn refused_exchanges_say_why() {
    let op = OidcProvider::start();
    let broker = broker_trusting(&op, None);
    let id_token = op.id_token_for("bob");

    // A people token presented as a workload token.
    let (status, body) = exchange(&broker, "workload", &id_token);
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["code"], "login_refused");
    assert!(
        body["message"]
            .as_str()
            .unwrap_or_default()
            .contains("untrusted_issuer"),
        "{body}"
    );

    // Not a JWT.
    let (status, body) = exchange(&broker, "oidc", "garbage");
    assert_eq!(status, 401);
    assert!(
        body["message"]
            .as_str()
            .unwrap_or_default()
            .contains("malformed"),
        "{body}"
    );

    // Tampered: groups widened, original signature kept.
    let parts: Vec<&str> = id_token.split('.').collect();
    let mut claims = sluice_tests::oidc::jwt_claims(&id_token);
    claims["groups"] = serde_json::json!(["dba"]);
    let payload = base64url(&serde_json::to_vec(&claims).expect("json"));
    let forged = format!("{}.{}.{}", parts[0], payload, parts[2]);
    let (status, body) = exchange(&broker, "oidc", &forged);
    assert_eq!(status, 401);
    assert!(
        body["message"]
            .as_str()
            .unwrap_or_default()
            .contains("bad_signature"),
        "{body}"
    );

    // alg none.
    let header = base64url(br#"{"alg":"none","typ":"JWT"}"#);
    let (status, body) = exchange(&broker, "oidc", &format!("{header}.{}.", parts[1]));
    assert_eq!(status, 401);
    assert!(
        body["message"]
            .as_str()
            .unwrap_or_default()
            .contains("none"),
        "{body}"
    );

    // The refusals are in the audit trail with their reasons.
    let log = broker.log();
    assert!(log.contains("auth.exchange.refused.v1"), "{log}");
    assert!(
        !log.contains(&id_token),
        "the broker never logs identity tokens"
    );
}

#[test]
fn cached_keys_keep_logins_working_while_the_idp_is_down() {
    let op = OidcProvider::start();
    let broker = broker_trusting(&op, None);
    let first = op.id_token_for("alice");
    let second = op.id_token_for("bob");
    let (status, _) = exchange(&broker, "oidc", &first);
    assert_eq!(status, 200, "the first exchange fetches the JWKS");
    drop(op);
    let (status, body) = exchange(&broker, "oidc", &second);
    assert_eq!(status, 200, "served from the cached JWKS: {body}");
    assert_eq!(body["subject"], "bob");
}

fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}
