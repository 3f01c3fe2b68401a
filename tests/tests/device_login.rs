//! `sluice login` through the OIDC device flow, end to end: the real CLI, a real OpenID provider
//! (approving or denying the code as a browser would), the real broker exchanging the ID token;
//! then silent renewal with the rotating refresh token once the session token is about to expire.

use sluice_tests::{Broker, BrokerBuilder, Cli, OidcProvider, Postgres};
use std::io::{BufRead, BufReader};
use std::process::{Child, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

fn broker_trusting(op: &OidcProvider) -> Broker {
    let identity = format!(
        "  oidc:\n    - name: corp\n      issuer: {}\n      client_id: sluice-cli\n",
        op.issuer()
    );
    BrokerBuilder::new()
        .identity(&identity)
        .rule("dba", &[], &["dba"], &["*"])
        .start()
}

/// A running `sluice login` whose stderr is read line by line.
struct Login {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Login {
    /// `sluice login`, with `SLUICE_TOKEN_STORE=store` when given.
    fn start(cli: &Cli, store: Option<&str>) -> Self {
        let mut cmd = cli.cmd();
        match store {
            Some(store) => cmd.env("SLUICE_TOKEN_STORE", store),
            None => cmd.env_remove("SLUICE_TOKEN_STORE"),
        };
        let mut child = cmd
            .arg("login")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn sluice login");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Reads stderr until the user code is shown; returns it.
    fn user_code(&mut self) -> String {
        match self.try_user_code() {
            Some(code) => code,
            None => {
                let _ = self.child.kill();
                panic!(
                    "sluice login showed no user code:\n{}",
                    self.seen.join("\n")
                );
            }
        }
    }

    /// The user code, or `None` if stderr ended (or 30 s passed) without one.
    fn try_user_code(&mut self) -> Option<String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            match self.lines.recv_timeout(Duration::from_millis(200)) {
                Ok(line) => {
                    let code = line
                        .split_once("enter the code: ")
                        .map(|(_, code)| code.trim().to_string());
                    self.seen.push(line);
                    if code.is_some() {
                        return code;
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
        None
    }

    /// Waits for the login to end; returns its status and everything it wrote to stderr.
    fn finish(mut self) -> (ExitStatus, String) {
        let deadline = Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                break status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("sluice login did not finish:\n{}", self.seen.join("\n"));
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        // The reader thread ends at EOF; collect what is left.
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(5)) {
            self.seen.push(line);
        }
        (status, self.seen.join("\n"))
    }
}

fn whoami(cli: &Cli) -> serde_json::Value {
    let out = cli.run(&["whoami", "--output", "json"]);
    assert!(
        out.status.success(),
        "whoami failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("whoami prints JSON")
}

fn mode(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).expect("stat").permissions().mode() & 0o777
}

#[test]
fn device_login_approved_at_the_provider_logs_in_as_alice() {
    let op = OidcProvider::start();
    let pg = Postgres::start();
    let identity = format!(
        "  oidc:\n    - name: corp\n      issuer: {}\n      client_id: sluice-cli\n",
        op.issuer()
    );
    let broker = BrokerBuilder::new()
        .identity(&identity)
        .postgres("pg-main", &pg)
        .rule("dba", &[], &["dba"], &["*"])
        .start();
    let cli = Cli::new(&broker);

    let mut login = Login::start(&cli, Some("file"));
    let code = login.user_code();
    op.approve(&code, "alice");
    let (status, stderr) = login.finish();
    assert!(status.success(), "login failed:\n{stderr}");
    assert!(stderr.contains("as alice"), "{stderr}");
    assert!(
        stderr.contains("session-token (file, mode 0600)"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("\u{1b}["),
        "no spinner control codes when stderr is not a terminal:\n{stderr}"
    );

    // Secrets are stored owner-only and never printed.
    let token_file = cli.state_dir().join("session-token");
    let refresh_file = cli.state_dir().join("refresh-token");
    assert_eq!(mode(&token_file), 0o600);
    assert_eq!(mode(&refresh_file), 0o600);
    let token = std::fs::read_to_string(&token_file).expect("token");
    let refresh = std::fs::read_to_string(&refresh_file).expect("refresh token");
    assert!(
        !stderr.contains(token.trim()),
        "the session token was printed"
    );
    assert!(
        !stderr.contains(refresh.trim()),
        "the refresh token was printed"
    );

    let who = whoami(&cli);
    assert_eq!(who["subject"], "alice");
    assert_eq!(who["auth_method"], "oidc");
    assert_eq!(who["provider"], "corp");
    assert_eq!(who["groups"], serde_json::json!(["dba", "dev"]));

    // The device-flow session opens a tunnel; psql runs a query through it.
    let out = cli.run(&[
        "connect",
        "pg-main",
        "--exec",
        "psql",
        "-X",
        "-A",
        "-t",
        "-c",
        "select count(*) from customers",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "100");

    let out = cli.run(&["logout"]);
    assert!(out.status.success());
    assert!(!token_file.exists() && !refresh_file.exists());
}

#[test]
fn device_login_denied_at_the_provider_exits_11() {
    let op = OidcProvider::start();
    let broker = broker_trusting(&op);
    let cli = Cli::new(&broker);

    let mut login = Login::start(&cli, None);
    let code = login.user_code();
    op.deny(&code);
    let (status, stderr) = login.finish();
    assert_eq!(status.code(), Some(11), "{stderr}");
    assert!(
        stderr.contains("the login was denied at the identity provider"),
        "{stderr}"
    );
    assert!(!cli.state_dir().join("session-token").exists());
}

#[test]
fn device_login_left_unapproved_expires_with_exit_11() {
    let op = OidcProvider::start_with(&[("OIDC_DEVICE_CODE_TTL", "3")]);
    let broker = broker_trusting(&op);
    let cli = Cli::new(&broker);

    let mut login = Login::start(&cli, None);
    login.user_code();
    let (status, stderr) = login.finish();
    assert_eq!(status.code(), Some(11), "{stderr}");
    assert!(
        stderr.contains("the code expired before it was approved; run sluice login again"),
        "{stderr}"
    );
}

#[test]
fn device_login_without_an_oidc_provider_says_so() {
    let broker = BrokerBuilder::new()
        .rule("dba", &[], &["dba"], &["*"])
        .start();
    let cli = Cli::new(&broker);
    let out = cli.run(&["login"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("no identity provider for people configured"),
        "{stderr}"
    );
    assert!(
        stderr.contains("--token-stdin"),
        "the hint names the way out: {stderr}"
    );

    let out = cli.run(&["login", "--issuer", "corp"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn an_expiring_session_is_renewed_silently_with_the_refresh_token() {
    // ID tokens live 5 s, and a session token never outlives the ID token it came from.
    let op = OidcProvider::start_with(&[("OIDC_ID_TOKEN_TTL", "5")]);
    let broker = broker_trusting(&op);
    let cli = Cli::new(&broker);

    let mut login = Login::start(&cli, Some("file"));
    let code = login.user_code();
    op.approve(&code, "alice");
    let (status, stderr) = login.finish();
    assert!(status.success(), "login failed:\n{stderr}");
    let first_refresh =
        std::fs::read_to_string(cli.state_dir().join("refresh-token")).expect("refresh token");
    let first_token =
        std::fs::read_to_string(cli.state_dir().join("session-token")).expect("session token");
    let login_state: serde_json::Value = serde_json::from_slice(
        &std::fs::read(cli.state_dir().join("oidc-login.json")).expect("login state"),
    )
    .expect("json");
    let first_expiry = login_state["expires_at"].as_u64().expect("expires_at");

    std::thread::sleep(Duration::from_secs(7));
    let who = whoami(&cli);
    assert_eq!(who["subject"], "alice");
    assert_eq!(who["auth_method"], "oidc");
    let second_expiry = who["expires_at"].as_u64().expect("expires_at");
    assert!(
        second_expiry > first_expiry,
        "renewed: {second_expiry} > {first_expiry}"
    );
    let second_refresh =
        std::fs::read_to_string(cli.state_dir().join("refresh-token")).expect("refresh token");
    let second_token =
        std::fs::read_to_string(cli.state_dir().join("session-token")).expect("session token");
    assert_ne!(first_token, second_token, "a new session token was stored");
    assert_ne!(
        first_refresh, second_refresh,
        "the rotated refresh token was stored"
    );

    // The rotated token works again: a second renewal after the second expiry.
    std::thread::sleep(Duration::from_secs(6));
    let who = whoami(&cli);
    assert!(who["expires_at"].as_u64().expect("expires_at") > second_expiry);
}

#[test]
fn device_login_with_the_keyring_store_uses_it_or_says_why_not() {
    let op = OidcProvider::start_with(&[("OIDC_ID_TOKEN_TTL", "5")]);
    let broker = broker_trusting(&op);
    let cli = Cli::new(&broker);

    let mut login = Login::start(&cli, Some("keyring"));
    let Some(code) = login.try_user_code() else {
        // keyutils refuses access here (some containers): the login stops before any code is
        // shown, and says why and what to do.
        let (status, stderr) = login.finish();
        assert_eq!(status.code(), Some(1), "{stderr}");
        assert!(
            stderr.contains("the OS keyring does not work here")
                && stderr.contains("unset SLUICE_TOKEN_STORE"),
            "{stderr}"
        );
        println!("no OS keyring on this machine: {stderr}");
        return;
    };
    op.approve(&code, "bob");
    let (status, stderr) = login.finish();
    assert!(status.success(), "login failed:\n{stderr}");
    assert!(
        stderr.contains("Token stored in the OS keyring"),
        "{stderr}"
    );
    assert!(!cli.state_dir().join("session-token").exists());
    assert!(!cli.state_dir().join("refresh-token").exists());
    assert_eq!(whoami(&cli)["subject"], "bob");
    // Renewal reads and writes the keyring too.
    std::thread::sleep(Duration::from_secs(6));
    assert_eq!(whoami(&cli)["subject"], "bob");

    assert!(cli.run(&["logout"]).status.success());
    assert_eq!(cli.run(&["whoami"]).status.code(), Some(11));
}
