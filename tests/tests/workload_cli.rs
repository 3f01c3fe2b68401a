//! `sluice login --workload` and `sluice connect --workload`: a CI job logs in with its
//! platform's token through the real CLI (file, env and the GitHub Actions token endpoint).

use sluice_tests::ci_issuer::{CiIssuer, RSA_KID};
use sluice_tests::{Broker, BrokerBuilder, Cli};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

const AUDIENCE: &str = "https://sluice.test";

fn broker_trusting(github: &CiIssuer) -> Broker {
    let identity = format!(
        "  workload:\n    - name: gh-deploy\n      preset: github\n      issuer: {}\n      audience: {AUDIENCE}\n      claims:\n        repository: \"acme/*\"\n        ref: refs/heads/main\n      groups: [ci-deployers]\n",
        github.issuer()
    );
    let echo = sluice_tests::util::echo_server();
    BrokerBuilder::new()
        .identity(&identity)
        .tcp("echo", &format!("127.0.0.1:{echo}"))
        .rule("ci", &[], &["ci-deployers"], &["echo"])
        .start()
}

/// A stand-in for GitHub's `ACTIONS_ID_TOKEN_REQUEST_URL`: answers `{"value": token}` to a
/// request bearing `request_token`, and records the request line (to see the audience asked for).
fn github_token_endpoint(
    token: String,
    request_token: &'static str,
) -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            let mut reader = BufReader::new(conn.try_clone().expect("clone"));
            let mut lines = Vec::new();
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                lines.push(line.trim_end().to_string());
            }
            let authorized = lines
                .iter()
                .any(|l| l.eq_ignore_ascii_case(&format!("authorization: Bearer {request_token}")));
            log.lock()
                .expect("lock")
                .push(lines.first().cloned().unwrap_or_default());
            let (status, body) = if authorized {
                ("200 OK", serde_json::json!({ "value": token }).to_string())
            } else {
                ("401 Unauthorized", "{}".to_string())
            };
            let _ = write!(
                conn,
                "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (
        format!("http://127.0.0.1:{port}/token?api-version=2.0"),
        seen,
    )
}

#[test]
fn a_ci_job_logs_in_from_a_file_or_env_and_connects_in_one_step() {
    let github = CiIssuer::start();
    let broker = broker_trusting(&github);
    let cli = Cli::new(&broker);
    let token = github.mint(&github.github_claims(AUDIENCE), RSA_KID);
    let file = cli.state_dir().join("ci-token");
    std::fs::write(&file, &token).expect("write token");

    let out = cli.run(&["login", "--workload", &format!("file:{}", file.display())]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let session = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert_eq!(
        session.split('.').count(),
        3,
        "the session token is printed: {session}"
    );
    assert!(
        !cli.state_dir().join("session-token").exists(),
        "nothing stored unless --store"
    );
    let who = cli
        .cmd()
        .args(["whoami", "--output", "json"])
        .env("SLUICE_TOKEN", &session)
        .output()
        .expect("run");
    let who: serde_json::Value = serde_json::from_slice(&who.stdout).expect("json");
    assert_eq!(who["auth_method"], "workload");
    assert_eq!(who["provider"], "gh-deploy");
    assert_eq!(who["ci"]["repository"], "acme/api");

    // One step: exchange and connect, the platform token in an environment variable.
    let out = cli
        .cmd()
        .args([
            "connect",
            "echo",
            "--workload",
            "env:CI_ID_TOKEN",
            "--exec",
            "sh",
            "-c",
            "echo $SLUICE_HOST:$SLUICE_PORT",
        ])
        .env("CI_ID_TOKEN", &token)
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("127.0.0.1:"));

    // --store keeps it like an interactive login.
    let out = cli.run(&[
        "login",
        "--workload",
        &format!("file:{}", file.display()),
        "--store",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout.is_empty(), "a stored token is not printed");
    assert!(cli.run(&["whoami"]).status.success());
}

#[test]
fn a_job_from_another_repository_is_refused_with_the_reason() {
    let github = CiIssuer::start();
    let broker = broker_trusting(&github);
    let cli = Cli::new(&broker);
    let mut claims = github.github_claims(AUDIENCE);
    claims["repository"] = "evil/api".into();
    let token = github.mint(&claims, RSA_KID);
    let out = cli
        .cmd()
        .args(["connect", "echo", "--workload", "env:CI_ID_TOKEN"])
        .env("CI_ID_TOKEN", &token)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(11));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("repository"), "names the claim: {err}");
    assert!(!err.contains(&token), "never echoes the token");
}

#[test]
fn github_actions_tokens_are_requested_for_the_brokers_audience() {
    let github = CiIssuer::start();
    let broker = broker_trusting(&github);
    let cli = Cli::new(&broker);
    let token = github.mint(&github.github_claims(AUDIENCE), RSA_KID);
    let (url, seen) = github_token_endpoint(token, "request-token-123");
    let out = cli
        .cmd()
        .args(["login", "--workload", "github"])
        .env("ACTIONS_ID_TOKEN_REQUEST_URL", &url)
        .env("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "request-token-123")
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let requests = seen.lock().expect("lock").clone();
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert!(
        requests[0].contains("audience=https%3A%2F%2Fsluice.test"),
        "{requests:?}"
    );

    // Outside GitHub Actions the variables are missing: a usage error that says where to run.
    let out = cli.run(&["login", "--workload", "github"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("id-token: write"));
}
