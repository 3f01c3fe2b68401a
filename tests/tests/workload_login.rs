//! Workload logins: a CI job's identity token (GitHub Actions, GitLab CI), signed by a stand-in
//! platform on 127.0.0.1, exchanged at the real broker for a session token the real CLI then
//! uses; refusals with their reasons; the JWKS cache outliving the platform.

use serde_json::Value;
use sluice_tests::ci_issuer::{CiIssuer, EC_KID, RSA_KID};
use sluice_tests::util::curl_json;
use sluice_tests::{Broker, BrokerBuilder, Cli};

const AUDIENCE: &str = "https://sluice.test";

/// A broker trusting `github` (preset github: `acme/*` on `refs/heads/main`, group
/// `ci-deployers`) and `gitlab` (preset gitlab: `acme/*`, group `ci-gitlab`).
fn broker_trusting(github: &CiIssuer, gitlab: &CiIssuer) -> Broker {
    let identity = format!(
        "  workload:
    - name: gh-deploy
      preset: github
      issuer: {}
      audience: {AUDIENCE}
      claims:
        repository: \"acme/*\"
        ref: refs/heads/main
      groups: [ci-deployers]
    - name: gl-deploy
      preset: gitlab
      issuer: {}
      audience: {AUDIENCE}
      claims:
        project_path: \"acme/*\"
      groups: [ci-gitlab]
",
        github.issuer(),
        gitlab.issuer()
    );
    BrokerBuilder::new()
        .identity(&identity)
        .rule("ci", &[], &["ci-deployers", "ci-gitlab"], &["*"])
        .start()
}

/// POST /v1/auth/token with curl, trusting the broker's CA.
fn exchange(broker: &Broker, kind: &str, token: &str) -> (u16, Value) {
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

/// Asserts a refusal whose message names every piece of `reason` (a code, a claim).
fn assert_refused(broker: &Broker, kind: &str, token: &str, reason: &[&str]) {
    let (status, body) = exchange(broker, kind, token);
    assert_eq!(status, 401, "expected a refusal ({reason:?}): {body}");
    assert_eq!(body["code"], "login_refused", "{body}");
    let message = body["message"].as_str().unwrap_or_default();
    for piece in reason {
        assert!(message.contains(piece), "{piece:?} not in {body}");
    }
}

/// `sluice login --token-stdin` with `session`, then `sluice whoami --output json`.
fn whoami_after_login(broker: &Broker, session: &str) -> Value {
    let cli = Cli::new(broker);
    cli.login(session);
    let out = cli.run(&["whoami", "--output", "json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("whoami json")
}

#[test]
fn ci_tokens_from_github_and_gitlab_become_sessions_the_cli_uses() {
    let github = CiIssuer::start();
    let gitlab = CiIssuer::start();
    let broker = broker_trusting(&github, &gitlab);

    let (status, config) = curl_json(&[
        "--cacert".into(),
        broker.ca().display().to_string(),
        format!("{}/v1/auth/config", broker.url()),
    ]);
    assert_eq!(status, 200);
    assert_eq!(config["workload"][0]["name"], "gh-deploy");
    assert_eq!(config["workload"][0]["preset"], "github");
    assert_eq!(config["workload"][0]["audience"], AUDIENCE);
    assert_eq!(config["workload"][1]["preset"], "gitlab");

    // GitHub Actions, RS256.
    let claims = github.github_claims(AUDIENCE);
    let (status, session) = exchange(&broker, "workload", &github.mint(&claims, RSA_KID));
    assert_eq!(status, 200, "{session}");
    assert_eq!(
        session["subject"], "github:acme/api:refs/heads/main:deploy",
        "the github preset's subject template"
    );
    assert_eq!(session["groups"], serde_json::json!(["ci-deployers"]));
    assert_eq!(session["auth_method"], "workload");
    assert!(
        session["expires_at"].as_i64().expect("expires_at") <= claims["exp"].as_i64().expect("exp"),
        "the session never outlives the CI token: {session}"
    );
    let who = whoami_after_login(&broker, session["token"].as_str().expect("token"));
    assert_eq!(who["subject"], "github:acme/api:refs/heads/main:deploy");
    assert_eq!(who["auth_method"], "workload");
    assert_eq!(who["provider"], "gh-deploy");
    assert_eq!(who["groups"], serde_json::json!(["ci-deployers"]));
    assert_eq!(who["ci"]["repository"], "acme/api");
    assert_eq!(who["ci"]["workflow"], "deploy");
    assert_eq!(who["ci"]["ref"], "refs/heads/main");
    assert_eq!(who["ci"]["run_id"], "9876543210");
    assert_eq!(who["ci"]["environment"], "production");

    // The same GitHub job, its token signed with the platform's ES256 key.
    let (status, body) = exchange(&broker, "workload", &github.mint(&claims, EC_KID));
    assert_eq!(status, 200, "ES256: {body}");

    // GitLab CI, another repository under acme.
    let mut claims = gitlab.gitlab_claims(AUDIENCE);
    claims["project_path"] = "acme/web".into();
    claims["sub"] = "project_path:acme/web:ref_type:branch:ref:main".into();
    let (status, session) = exchange(&broker, "workload", &gitlab.mint(&claims, RSA_KID));
    assert_eq!(status, 200, "{session}");
    assert_eq!(session["subject"], "gitlab:acme/web:main");
    assert_eq!(session["groups"], serde_json::json!(["ci-gitlab"]));
    let who = whoami_after_login(&broker, session["token"].as_str().expect("token"));
    assert_eq!(who["auth_method"], "workload");
    assert_eq!(who["provider"], "gl-deploy");
    assert_eq!(who["ci"]["project_path"], "acme/web");
    assert_eq!(who["ci"]["pipeline_id"], "1234567");
    assert_eq!(who["ci"]["user_login"], "alice");

    let log = broker.log();
    assert!(log.contains("auth.exchange.accepted.v1"), "{log}");
}

#[test]
fn refused_ci_tokens_say_why() {
    let github = CiIssuer::start();
    let gitlab = CiIssuer::start();
    let broker = broker_trusting(&github, &gitlab);
    let good = github.github_claims(AUDIENCE);

    // Another owner's repository.
    let mut claims = good.clone();
    claims["repository"] = "evil/api".into();
    claims["repository_owner"] = "evil".into();
    claims["sub"] = "repo:evil/api:ref:refs/heads/main".into();
    let token = github.mint(&claims, RSA_KID);
    assert_refused(
        &broker,
        "workload",
        &token,
        &["claim_mismatch", "`repository`"],
    );

    // A feature branch.
    let mut claims = good.clone();
    claims["ref"] = "refs/heads/feature".into();
    claims["sub"] = "repo:acme/api:ref:refs/heads/feature".into();
    let token = github.mint(&claims, RSA_KID);
    assert_refused(&broker, "workload", &token, &["claim_mismatch", "`ref`"]);

    // A token minted for another service.
    let mut claims = good.clone();
    claims["aud"] = "https://other.example".into();
    let token = github.mint(&claims, RSA_KID);
    assert_refused(&broker, "workload", &token, &["wrong_audience"]);

    // Expired ten minutes ago (well past the 60 s leeway).
    let mut claims = good.clone();
    let now = sluice_tests::ci_issuer::now();
    claims["iat"] = (now - 1200).into();
    claims["nbf"] = (now - 1200).into();
    claims["exp"] = (now - 600).into();
    let token = github.mint(&claims, RSA_KID);
    assert_refused(&broker, "workload", &token, &["expired"]);

    // Signed by a key the platform does not publish.
    let token = github.mint_unpublished(&good, "rogue-1");
    assert_refused(&broker, "workload", &token, &["kid_unknown", "rogue-1"]);

    // A published kid, but the signature is another key's.
    let token = github.mint_unpublished(&good, RSA_KID);
    assert_refused(&broker, "workload", &token, &["bad_signature"]);

    // A CI token presented as a person's: no OpenID provider has that issuer.
    let token = github.mint(&good, RSA_KID);
    assert_refused(&broker, "oidc", &token, &["untrusted_issuer"]);

    // A GitLab project outside acme.
    let mut claims = gitlab.gitlab_claims(AUDIENCE);
    claims["project_path"] = "evil/api".into();
    let token = gitlab.mint(&claims, RSA_KID);
    assert_refused(
        &broker,
        "workload",
        &token,
        &["claim_mismatch", "`project_path`"],
    );

    // A GitHub-shaped token from the GitLab issuer matches no claim of the GitLab rule.
    let mut claims = good.clone();
    claims["iss"] = gitlab.issuer().into();
    let token = gitlab.mint(&claims, RSA_KID);
    assert_refused(
        &broker,
        "workload",
        &token,
        &["missing_claim", "`project_path`"],
    );

    // The untouched token is still fine: none of the above poisoned anything.
    let (status, body) = exchange(&broker, "workload", &github.mint(&good, RSA_KID));
    assert_eq!(status, 200, "{body}");

    let log = broker.log();
    assert!(log.contains("auth.exchange.refused.v1"), "{log}");
    assert!(log.contains("claim_mismatch"), "{log}");
    assert!(
        !log.contains(&token),
        "the broker never logs identity tokens"
    );
}

#[test]
fn cached_keys_keep_ci_logins_working_while_the_platform_is_down() {
    let mut github = CiIssuer::start();
    let gitlab = CiIssuer::start();
    let broker = broker_trusting(&github, &gitlab);

    let first = github.mint(&github.github_claims(AUDIENCE), RSA_KID);
    let (status, body) = exchange(&broker, "workload", &first);
    assert_eq!(status, 200, "the first exchange fetches the JWKS: {body}");
    assert_eq!(github.jwks_fetches(), 1);

    let second = github.mint(&github.github_claims(AUDIENCE), EC_KID);
    github.stop();
    let (status, body) = exchange(&broker, "workload", &second);
    assert_eq!(status, 200, "served from the cached JWKS: {body}");
    assert_eq!(body["subject"], "github:acme/api:refs/heads/main:deploy");

    // A kid the cache never saw cannot be fetched now (and refreshes are rate-limited): refused.
    let third = github.mint_unpublished(&github.github_claims(AUDIENCE), "rotated-2");
    assert_refused(&broker, "workload", &third, &["kid_unknown"]);
}
