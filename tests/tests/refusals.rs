//! Every way `sluice connect` is refused gives one line that says what happened and what to do,
//! and the exit code documented in docs/cli.md.

use sluice_tests::{Broker, BrokerBuilder, Cli, free_port};
use std::process::Output;

fn broker() -> Broker {
    BrokerBuilder::new()
        .tcp("cache", "127.0.0.1:9") // never dialled by these tests except where noted
        .tcp("secret-store", "127.0.0.1:9")
        .rule("dev", &[], &["dev"], &["cache"])
        .start()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).to_string()
}

fn assert_refused(out: &Output, code: i32, needles: &[&str]) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(code), "stderr: {err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    for n in needles {
        assert!(err.contains(n), "expected {n:?} in {err:?}");
    }
}

#[test]
fn not_logged_in() {
    let broker = broker();
    let cli = Cli::new(&broker);
    assert_refused(
        &cli.run(&["connect", "cache"]),
        11,
        &["not logged in", "sluice login"],
    );
}

#[test]
fn an_expired_token_is_refused() {
    let broker = broker();
    let cli = Cli::new(&broker);
    let token = broker.token("alice", &["dev"], "1s");
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let out = cli
        .cmd()
        .args(["connect", "cache"])
        .env("SLUICE_TOKEN", &token)
        .output()
        .expect("run");
    assert_refused(&out, 11, &["expired", "sluice login"]);
}

#[test]
fn a_token_signed_by_another_broker_is_refused() {
    let broker = broker();
    let other = BrokerBuilder::new().start();
    let forged = other.token("alice", &["dev", "admin"], "1h");
    let cli = Cli::new(&broker);
    let out = cli
        .cmd()
        .args(["connect", "cache"])
        .env("SLUICE_TOKEN", &forged)
        .output()
        .expect("run");
    assert_refused(&out, 11, &["not valid", "signature", "sluice login"]);
}

#[test]
fn malformed_tokens_are_refused() {
    let broker = broker();
    let cli = Cli::new(&broker);
    let good = broker.token("alice", &["dev"], "1h");
    let parts: Vec<&str> = good.split('.').collect();
    for bad in [
        "garbage".to_string(),
        format!("{}.{}", parts[0], parts[1]),
        format!("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{}.", parts[1]),
        format!("{}.{}.{}", parts[0], parts[1], "AAAA"),
    ] {
        let out = cli
            .cmd()
            .args(["connect", "cache"])
            .env("SLUICE_TOKEN", &bad)
            .output()
            .expect("run");
        assert_refused(&out, 11, &["not valid"]);
    }
    // login checks the token before storing it
    let mut child = cli
        .cmd()
        .args(["login", "--token-stdin"])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    use std::io::Write;
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"garbage")
        .expect("write");
    let out = child.wait_with_output().expect("wait");
    assert_eq!(out.status.code(), Some(11));
    assert!(
        !cli.state_dir().join("session-token").exists(),
        "a refused token is not stored"
    );
}

#[test]
fn an_unknown_resource() {
    let broker = broker();
    let cli = Cli::new(&broker);
    cli.login(&broker.token("alice", &["dev"], "1h"));
    assert_refused(
        &cli.run(&["connect", "nope"]),
        13,
        &["no resource named 'nope'"],
    );
}

#[test]
fn a_resource_policy_does_not_allow() {
    let broker = broker();
    let cli = Cli::new(&broker);
    cli.login(&broker.token("alice", &["dev"], "1h"));
    assert_refused(
        &cli.run(&["connect", "secret-store"]),
        12,
        &["no role on 'secret-store'", "alice"],
    );
}

#[test]
fn an_unreachable_target() {
    let broker = BrokerBuilder::new()
        .tcp("down", &format!("127.0.0.1:{}", free_port()))
        .rule("all", &["alice"], &[], &["*"])
        .start();
    let cli = Cli::new(&broker);
    cli.login(&broker.token("alice", &[], "1h"));
    assert_refused(&cli.run(&["connect", "down"]), 14, &["unreachable", "down"]);
}

#[test]
fn a_broker_that_is_down() {
    let mut broker = broker();
    let cli = Cli::new(&broker);
    cli.login(&broker.token("alice", &["dev"], "1h"));
    broker.kill();
    assert_refused(
        &cli.run(&["connect", "cache"]),
        10,
        &["cannot reach the broker", "sluiced"],
    );
}

#[test]
fn a_broker_certificate_from_an_untrusted_ca() {
    let broker = broker();
    let other = BrokerBuilder::new().start();
    let cli = Cli::new(&broker);
    let token = broker.token("alice", &["dev"], "1h");
    let out = cli
        .cmd()
        .args(["connect", "cache"])
        .env("SLUICE_TOKEN", &token)
        .env("SLUICE_CA", other.ca())
        .output()
        .expect("run");
    assert_refused(&out, 10, &["certificate", "--ca"]);
}

#[test]
fn a_plain_http_broker_url_is_refused() {
    let broker = broker();
    let cli = Cli::new(&broker);
    let out = cli
        .cmd()
        .args(["whoami"])
        .env("SLUICE_BROKER", format!("http://127.0.0.1:{}", broker.port))
        .output()
        .expect("run");
    assert_refused(&out, 2, &["https"]);
}

#[test]
fn whoami_shows_the_identity_as_text_and_json() {
    let broker = broker();
    let cli = Cli::new(&broker);
    cli.login(&broker.token("alice", &["dev", "oncall"], "1h"));
    let out = cli.run(&["whoami", "--output", "json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let me: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(me["subject"], "alice");
    assert_eq!(me["groups"], serde_json::json!(["dev", "oncall"]));
    assert_eq!(me["auth_method"], "operator");
    let text = String::from_utf8_lossy(&cli.run(&["whoami"]).stdout).to_string();
    assert!(
        text.contains("alice") && text.contains("dev, oncall") && text.contains("expires:    in "),
        "{text}"
    );
    // logout forgets the token
    assert!(cli.run(&["logout"]).status.success());
    assert_refused(&cli.run(&["whoami"]), 11, &["not logged in"]);
}

#[test]
fn health_and_version_answer_over_tls_and_plain_http_gets_nothing() {
    let broker = broker();
    let curl = |url: String, extra: &[&str]| {
        std::process::Command::new("curl")
            .args(["-sS", "--max-time", "10", "--cacert"])
            .arg(broker.ca())
            .args(extra)
            .arg(url)
            .output()
            .expect("run curl")
    };
    let health = curl(format!("{}/v1/health", broker.url()), &[]);
    assert!(health.status.success(), "{}", stderr(&health));
    let health: serde_json::Value = serde_json::from_slice(&health.stdout).expect("json");
    assert_eq!(health["status"], "ok");
    let version = curl(format!("{}/v1/version", broker.url()), &[]);
    let version: serde_json::Value = serde_json::from_slice(&version.stdout).expect("json");
    assert_eq!(version["name"], "sluiced");
    assert_eq!(version["tunnel_protocol"], "sluice-tunnel/1");
    // The tunnel endpoint without an Upgrade header, and without a token.
    let tunnel = curl(
        format!("{}/v1/tunnel", broker.url()),
        &["-w", "\n%{http_code}"],
    );
    let body = String::from_utf8_lossy(&tunnel.stdout).to_string();
    assert!(body.ends_with("400"), "{body}");
    assert!(body.contains("\"code\":\"bad_request\""), "{body}");
    let whoami = curl(
        format!("{}/v1/whoami", broker.url()),
        &["-w", "\n%{http_code}"],
    );
    let body = String::from_utf8_lossy(&whoami.stdout).to_string();
    assert!(
        body.ends_with("401") && body.contains("token_missing"),
        "{body}"
    );
    // Plain HTTP on the TLS port gets no HTTP answer.
    let plain = curl(format!("http://127.0.0.1:{}/v1/health", broker.port), &[]);
    assert!(!plain.status.success());
    assert!(!String::from_utf8_lossy(&plain.stdout).contains("ok"));
}
