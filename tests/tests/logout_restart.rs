//! A logout survives a broker restart: the revoked session token stays refused with
//! `token_revoked` after the broker is killed and started again, while the same user's other
//! tokens keep working.

use sluice_tests::util::{curl_json, echo_server};
use sluice_tests::{Broker, BrokerBuilder, Cli};

/// `GET /v1/whoami` with `token` as the bearer, trusting the broker's CA.
fn whoami(broker: &Broker, token: &str) -> (u16, serde_json::Value) {
    curl_json(&[
        "--cacert".into(),
        broker.ca().display().to_string(),
        "-H".into(),
        format!("Authorization: Bearer {token}"),
        format!("{}/v1/whoami", broker.url()),
    ])
}

/// The broker refuses `token` as revoked (not merely invalid or expired).
fn assert_revoked(broker: &Broker, token: &str) {
    let (status, body) = whoami(broker, token);
    assert_eq!(status, 401, "{body}\n{}", broker.log());
    assert_eq!(body["code"], "token_revoked", "{body}");
}

#[test]
fn a_logged_out_token_stays_revoked_after_a_restart() {
    let mut broker = BrokerBuilder::new()
        .tcp("echo", &format!("127.0.0.1:{}", echo_server()))
        .rule("r", &[], &["dev"], &["echo"])
        .start();
    let cli = Cli::new(&broker);
    let token = broker.token("alice", &["dev"], "1h");
    let other = broker.token("alice", &["dev"], "1h");
    cli.login(&token);

    let out = cli.run(&["logout"]);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("The broker revoked the session token"),
        "{stderr}"
    );
    assert_revoked(&broker, &token);

    // SIGKILL and start again: nothing is flushed on the way down.
    broker.restart();

    assert_revoked(&broker, &token);
    let out = cli
        .cmd()
        .args(["whoami"])
        .env("SLUICE_TOKEN", &token)
        .output()
        .expect("run sluice whoami");
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(11), "{stderr}");
    assert!(stderr.contains("revoked"), "{stderr}");

    // Only that token: another session of the same user still works, before and after login.
    let (status, body) = whoami(&broker, &other);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["subject"], "alice");
    cli.login(&other);
    let out = cli.run(&["whoami"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("alice"));
}
