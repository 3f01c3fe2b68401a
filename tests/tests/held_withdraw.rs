//! A statement held for approval does not outlive its client: psql's Ctrl-C withdraws it (the
//! approver's queue loses it, approving it fails, the session goes on), and so does a psql
//! that dies while it waits; nothing runs, whatever an approver does afterwards.

use serde_json::Value;
use sluice_tests::postgres::psql;
use sluice_tests::util::wait_for;
use sluice_tests::{Broker, BrokerBuilder, Cli, Connect, Postgres};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The `careful` role: guarded-write, deletes held for a dba.
fn setup() -> (Postgres, Broker, Cli) {
    let pg = Postgres::start();
    let broker = BrokerBuilder::new()
        .postgres("pg", &pg)
        .role("careful", "      max_ttl: 1h\n      guardrails: careful\n")
        .policy_extra(sluice_tests::broker::CAREFUL_GUARDRAILS)
        .rule_with("eng", &[], &["eng"], &["pg"], &["careful"], "")
        .start();
    let cli = Cli::new(&broker);
    cli.login(&broker.token("alice", &["eng"], "1h"));
    (pg, broker, cli)
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).to_string()
}

fn dba(broker: &Broker) -> Cli {
    let bob = Cli::new(broker);
    bob.login(&broker.token("bob", &["dba"], "1h"));
    bob
}

/// The statements waiting for `approver`.
fn queue(approver: &Cli) -> Vec<Value> {
    let out = approver.run(&["approvals", "--output", "json"]);
    let queue: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    queue["statements"].as_array().cloned().unwrap_or_default()
}

/// Waits until `approver` sees a held statement; returns its id.
fn first_hold(approver: &Cli) -> String {
    let mut id = String::new();
    wait_for(
        "the held statement to reach the approver",
        Duration::from_secs(30),
        || match queue(approver).first() {
            Some(h) => {
                // Interactive psql sends the text with its semicolon.
                let sql = h["sql"].as_str().expect("sql");
                assert_eq!(
                    sql.trim_end_matches(';'),
                    "delete from customers where id = 42"
                );
                id = h["id"].as_str().expect("id").to_string();
                true
            }
            None => false,
        },
    );
    id
}

/// psql through a `careful` tunnel, running the held DELETE.
fn spawn_held(connect: &Connect) -> Child {
    Command::new(psql())
        .args(["-X", "-d", &connect.uri()])
        .args(["-c", "delete from customers where id = 42"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn psql")
}

fn kill(child: &Child, signal: &str) {
    let status = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
}

/// psql's output once it exits; fails the test when that takes longer than `limit`.
fn finish(mut child: Child, limit: Duration) -> Output {
    let start = Instant::now();
    while child.try_wait().expect("psql").is_none() {
        if start.elapsed() > limit {
            let _ = child.kill();
            let out = child.wait_with_output().expect("psql");
            panic!(
                "psql still waited {limit:?} after the signal: {}",
                stderr(&out)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().expect("psql")
}

fn row_42(pg: &Postgres) -> String {
    pg.admin_sql(&pg.database, "select count(*) from customers where id = 42")
        .trim()
        .to_string()
}

/// psql at a real pseudo-terminal (a detached tmux session on a private server), read and
/// typed into as a person would: Ctrl-C there is the terminal's SIGINT.
struct Terminal {
    socket: String,
    _dir: tempfile::TempDir,
}

impl Terminal {
    fn psql(uri: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let script = dir.path().join("run.sh");
        let text = format!(
            "#!/bin/sh\nexec '{}' -X -P pager=off -d '{uri}' 2>&1\n",
            psql().display()
        );
        std::fs::write(&script, text).expect("write script");
        let socket = format!("sluice-test-{}", rand::random::<u64>());
        let status = Command::new("tmux")
            .args([
                "-L",
                &socket,
                "new-session",
                "-d",
                "-x",
                "200",
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
            .args(["-L", &self.socket, "capture-pane", "-p", "-J", "-S", "-500"])
            .output()
            .expect("tmux capture-pane");
        String::from_utf8_lossy(&out.stdout).to_string()
    }

    fn wait_for_text(&self, text: &str) -> String {
        let mut last = String::new();
        let limit = Duration::from_secs(30);
        let start = Instant::now();
        while start.elapsed() < limit {
            last = self.screen();
            if last.contains(text) {
                return last;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("the terminal never showed {text:?}; it shows:\n{last}");
    }

    /// Types `text` and Enter.
    fn line(&self, text: &str) {
        // tmux reads a trailing `;` as its command separator; `\;` is the character.
        let text = match text.strip_suffix(';') {
            Some(rest) => format!("{rest}\\;"),
            None => text.to_owned(),
        };
        self.keys(&["-l", &text]);
        self.keys(&["Enter"]);
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

#[test]
fn ctrl_c_withdraws_a_held_statement_and_the_session_goes_on() {
    let (pg, broker, alice) = setup();
    let bob = dba(&broker);
    let connect = alice.connect_with("pg", &["--role", "careful"]);
    let psql = Terminal::psql(&connect.uri());
    psql.wait_for_text("=>");
    psql.line("delete from customers where id = 42;");
    psql.wait_for_text("needs approval");
    let id = first_hold(&bob);

    // Ctrl-C at the terminal: psql sends a CancelRequest through a new tunnel connection.
    psql.keys(&["C-c"]);
    let screen = psql.wait_for_text("canceling statement due to user request");
    assert!(
        screen.contains(&id),
        "the detail names the request: {screen}"
    );
    assert!(
        queue(&bob).is_empty(),
        "withdrawn from the approver's queue"
    );
    let denied = bob.run(&["approve", &id]);
    assert!(!denied.status.success(), "approving a withdrawn statement");
    assert!(
        stderr(&denied).contains("no longer waiting") && stderr(&denied).contains("withdrawn"),
        "{}",
        stderr(&denied)
    );

    // The same session runs the next statement.
    psql.line("select 'still ' || 'here' as answer;");
    psql.wait_for_text("still here");
    assert_eq!(row_42(&pg), "1");
    let log = broker.log();
    assert!(log.contains("statement.withdrawn.v1"), "{log}");
    assert!(!log.contains("statement.approved.v1"), "{log}");
}

#[test]
fn a_psql_killed_while_its_statement_is_held_withdraws_it_and_nothing_runs() {
    let (pg, broker, alice) = setup();
    let bob = dba(&broker);
    let connect = alice.connect_with("pg", &["--role", "careful"]);
    let child = spawn_held(&connect);
    let id = first_hold(&bob);

    kill(&child, "-KILL");
    finish(child, Duration::from_secs(20));
    wait_for(
        "the orphaned statement to leave the approver's queue",
        Duration::from_secs(20),
        || queue(&bob).is_empty(),
    );
    let out = bob.run(&["approve", &id]);
    assert!(!out.status.success(), "approving a withdrawn statement");
    assert!(
        stderr(&out).contains("no longer waiting"),
        "{}",
        stderr(&out)
    );
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(row_42(&pg), "1");
    let log = broker.log();
    assert!(log.contains("statement.withdrawn.v1"), "{log}");
    assert!(!log.contains("statement.approved.v1"), "{log}");
}
