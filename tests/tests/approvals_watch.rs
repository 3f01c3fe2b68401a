//! Approvers at a terminal and CI requesters: `sluice approvals --watch` answered through a real
//! pseudo-terminal (tmux) as a person would, across a broker restart; and a GitHub Actions job
//! whose request shows the approver its repository and workflow.

use serde_json::Value;
use sluice_tests::ci_issuer::{CiIssuer, RSA_KID};
use sluice_tests::util::{wait_for, workspace_bin};
use sluice_tests::{Broker, BrokerBuilder, Cli, Postgres};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

const AUDIENCE: &str = "https://sluice.test";

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).to_string()
}

fn json(cli: &Cli, args: &[&str]) -> Value {
    let out = cli.run(args);
    assert!(
        out.status.success(),
        "sluice {args:?} failed: {}",
        stderr(&out)
    );
    serde_json::from_slice(&out.stdout).expect("JSON")
}

fn list<'a>(v: &'a Value, key: &str) -> &'a Vec<Value> {
    v.get(key)
        .unwrap_or(v)
        .as_array()
        .unwrap_or_else(|| panic!("no list in {v}"))
}

/// `sluice grant request pg --role ROLE --reason REASON`; returns the grant id.
fn request(cli: &Cli, role: &str, reason: &str) -> String {
    let v = json(
        cli,
        &[
            "grant", "request", "pg", "--role", role, "--reason", reason, "--output", "json",
        ],
    );
    let grant = v.get("grant").unwrap_or(&v);
    grant["id"].as_str().expect("id").to_string()
}

/// Polls `grant list --all` until the grant is in `state`; returns it.
fn wait_state(cli: &Cli, id: &str, state: &str) -> Value {
    let mut found = Value::Null;
    wait_for(
        &format!("grant {id} to be {state}"),
        Duration::from_secs(30),
        || {
            let all = json(cli, &["grant", "list", "--all", "--output", "json"]);
            found = list(&all, "grants")
                .iter()
                .find(|g| g["id"] == id)
                .cloned()
                .unwrap_or(Value::Null);
            found["state"] == state
        },
    );
    found
}

/// A command running in a detached tmux session on a private server, read and typed into like a
/// terminal.
struct Terminal {
    socket: String,
    _dir: tempfile::TempDir,
}

impl Terminal {
    fn start(env: &[(String, String)], args: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let script = dir.path().join("run.sh");
        let mut text = String::from("#!/bin/sh\n");
        for (key, value) in env {
            text.push_str(&format!("export {key}='{value}'\n"));
        }
        text.push_str(&format!(
            "exec '{}' {} 2>&1\n",
            workspace_bin("sluice").display(),
            args.join(" ")
        ));
        std::fs::write(&script, text).expect("write script");
        let socket = format!("sluice-test-{}", rand::random::<u64>());
        let status = Command::new("tmux")
            .args([
                "-L",
                &socket,
                "new-session",
                "-d",
                "-x",
                "160",
                "-y",
                "50",
                "sh",
            ])
            .arg(&script)
            .status()
            .expect("run tmux (install the tmux package)");
        assert!(status.success(), "tmux new-session failed");
        Self { socket, _dir: dir }
    }

    /// The screen plus scrollback.
    fn screen(&self) -> String {
        let out = Command::new("tmux")
            .args(["-L", &self.socket, "capture-pane", "-p", "-S", "-500"])
            .output()
            .expect("tmux capture-pane");
        String::from_utf8_lossy(&out.stdout).to_string()
    }

    fn wait_for_text(&self, text: &str) {
        let mut last = String::new();
        let limit = Duration::from_secs(30);
        let start = std::time::Instant::now();
        while start.elapsed() < limit {
            last = self.screen();
            if last.contains(text) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("the terminal never showed {text:?}; it shows:\n{last}");
    }

    fn keys(&self, keys: &[&str]) {
        let status = Command::new("tmux")
            .args(["-L", &self.socket, "send-keys"])
            .args(keys)
            .status()
            .expect("tmux send-keys");
        assert!(status.success());
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .stderr(Stdio::null())
            .status();
    }
}

fn broker_with_write_approval(pg: &Postgres) -> Broker {
    BrokerBuilder::new()
        .postgres("pg", pg)
        .role(
            "write",
            "      max_ttl: 1h\n      approval:\n        groups: [dba]\n",
        )
        .rule_with("eng", &[], &["eng"], &["pg"], &["write"], "")
        .start()
}

#[test]
fn an_approver_answers_from_the_terminal_and_the_watch_survives_a_broker_restart() {
    let pg = Postgres::start();
    let mut broker = broker_with_write_approval(&pg);
    let alice = Cli::new(&broker);
    alice.login(&broker.token("alice", &["eng"], "1h"));
    let bob = Cli::new(&broker);
    bob.login(&broker.token("bob", &["dba"], "1h"));
    let term = Terminal::start(&bob.env(), &["approvals", "--watch"]);

    // Approve: the first choice, Enter.
    let first = request(&alice, "write", "watch-one: add an index");
    term.wait_for_text("watch-one: add an index");
    term.wait_for_text("approve");
    term.keys(&["Enter"]);
    let grant = wait_state(&alice, &first, "active");
    assert_eq!(grant["votes"][0]["approver"], "bob");

    // Deny: down to the second choice, then type the reason.
    let second = request(&alice, "write", "watch-two: drop a column");
    term.wait_for_text("watch-two: drop a column");
    std::thread::sleep(Duration::from_millis(300));
    term.keys(&["Down"]);
    std::thread::sleep(Duration::from_millis(200));
    term.keys(&["Enter"]);
    term.wait_for_text("Reason");
    term.keys(&["-l", "not during the freeze"]);
    term.keys(&["Enter"]);
    let grant = wait_state(&alice, &second, "denied");
    assert_eq!(grant["end_reason"], "not during the freeze");
    assert_eq!(grant["ended_by"], "bob");

    // The broker restarts; the watch keeps going and shows the next request.
    broker.restart();
    let third = request(&alice, "write", "watch-three: after the restart");
    term.wait_for_text("watch-three: after the restart");
    std::thread::sleep(Duration::from_millis(300));
    term.keys(&["Enter"]);
    wait_state(&alice, &third, "active");
    let screen = term.screen();
    assert!(!screen.contains("panicked"), "{screen}");
}

#[test]
fn a_ci_job_asks_for_a_migration_grant_and_the_approver_sees_its_repository_and_workflow() {
    let github = CiIssuer::start();
    let pg = Postgres::start();
    let identity = format!(
        "  workload:\n    - name: gh\n      preset: github\n      issuer: {}\n      audience: {AUDIENCE}\n      claims:\n        repository: \"acme/*\"\n      groups: [ci]\n",
        github.issuer()
    );
    let broker = BrokerBuilder::new()
        .identity(&identity)
        .postgres("pg", &pg)
        .role(
            "migrate",
            "      max_ttl: 30m\n      approval:\n        groups: [dba]\n",
        )
        .rule_with(
            "ci-migrate-from-main",
            &["github:acme/api:refs/heads/main:*"],
            &[],
            &["pg"],
            &["migrate"],
            "",
        )
        .start();
    let job = Cli::new(&broker);
    let bob = Cli::new(&broker);
    bob.login(&broker.token("bob", &["dba"], "1h"));

    // A job on a feature branch is refused by policy.
    let mut claims = github.github_claims(AUDIENCE);
    claims["ref"] = "refs/heads/feature".into();
    let feature = job.state_dir().join("feature-token");
    std::fs::write(&feature, github.mint(&claims, RSA_KID)).expect("write");
    let out = job.run(&[
        "run",
        "pg",
        "--role",
        "migrate",
        "--workload",
        &format!("file:{}", feature.display()),
        "--",
        "true",
    ]);
    assert_eq!(out.status.code(), Some(12), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("refs/heads/feature"),
        "{}",
        stderr(&out)
    );

    // A job on main waits for bob.
    let main = job.state_dir().join("main-token");
    std::fs::write(&main, github.mint(&github.github_claims(AUDIENCE), RSA_KID)).expect("write");
    let run = job
        .cmd()
        .args([
            "run",
            "pg",
            "--role",
            "migrate",
            "--reason",
            "release 42 migrations",
            "--workload",
            &format!("file:{}", main.display()),
            "--",
            "psql",
            "-X",
            "-A",
            "-t",
            "-c",
            "select 'migrated'",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn run");
    let mut request = Value::Null;
    wait_for(
        "the job's request to reach bob",
        Duration::from_secs(30),
        || {
            let queue = json(&bob, &["approvals", "--output", "json"]);
            match list(&queue, "pending").first() {
                Some(g) => {
                    request = g.clone();
                    true
                }
                None => false,
            }
        },
    );
    let requester = &request["requester"];
    assert_eq!(requester["auth_method"], "workload");
    assert_eq!(
        requester["subject"],
        "github:acme/api:refs/heads/main:deploy"
    );
    assert_eq!(requester["ci"]["repository"], "acme/api");
    assert_eq!(requester["ci"]["workflow"], "deploy");
    assert_eq!(request["reason"], "release 42 migrations");
    // The human listing shows them too.
    let out = bob.run(&["approvals"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("acme/api") && text.contains("deploy"),
        "{text}"
    );

    let id = request["id"].as_str().expect("id");
    let out = bob.run(&["approve", id]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = run.wait_with_output().expect("run");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "migrated");
    let log = broker.log();
    assert!(log.contains("grant.revoked.v1"), "run revokes: {log}");
}
