//! Waiting for approval hears of each vote as it is cast: the CLI's long-poll passes the number
//! of votes it has seen (`votes=N`), and the broker answers as soon as there is another, not
//! only when the grant is decided.
//!
//! The requester's output is read line by line while the approvers act, so the test shows the
//! order of events (the first approval reported while the request is still pending, before the
//! second approver acts), without any timing threshold.

use serde_json::Value;
use sluice_tests::{Broker, BrokerBuilder, Cli};
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// Only against hangs: far longer than any wait in this test, including the 25 s long-poll an
/// old broker would hold.
const HANG_GUARD: Duration = Duration::from_secs(120);

/// `svc` (tcp, never contacted); `break-glass` needs two dbas, and dbas may ask for it.
fn setup() -> Broker {
    BrokerBuilder::new()
        .tcp("svc", "127.0.0.1:9")
        .role(
            "break-glass",
            "      max_ttl: 30m\n      approval:\n        groups: [dba]\n        count: 2\n",
        )
        .rule_with("dba-glass", &[], &["dba"], &["svc"], &["break-glass"], "")
        .start()
}

fn user(broker: &Broker, name: &str, groups: &[&str]) -> Cli {
    let cli = Cli::new(broker);
    cli.login(&broker.token(name, groups, "1h"));
    cli
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).to_string()
}

/// `sluice ARGS`, which must exit 0.
fn ok(cli: &Cli, args: &[&str]) -> Output {
    let out = cli.run(args);
    assert!(
        out.status.success(),
        "sluice {args:?} failed ({:?}):\n{}{}",
        out.status.code(),
        text(&out.stdout),
        text(&out.stderr)
    );
    out
}

/// A running `sluice` whose stderr (where waiting reports progress) is read line by line.
struct Waiter {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Waiter {
    fn start(cli: &Cli, args: &[&str]) -> Self {
        let mut child = cli
            .cmd()
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn sluice");
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

    /// Reads stderr up to the first line `wanted` accepts and returns it; panics (with all it
    /// read) if stderr ends first.
    fn until(&mut self, what: &str, wanted: impl Fn(&str) -> bool) -> String {
        loop {
            match self.lines.recv_timeout(HANG_GUARD) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if wanted(&line) {
                        return line;
                    }
                }
                Err(e) => {
                    let _ = self.child.kill();
                    let mut out = String::new();
                    if let Some(mut stdout) = self.child.stdout.take() {
                        let _ = stdout.read_to_string(&mut out);
                    }
                    panic!(
                        "no {what} on stderr ({e}); stderr so far:\n{}\nstdout:\n{out}",
                        self.seen.join("\n")
                    );
                }
            }
        }
    }

    /// Waits for the command to end: its status, stdout, and every stderr line.
    fn finish(mut self) -> (ExitStatus, String, Vec<String>) {
        let mut stdout = String::new();
        if let Some(mut out) = self.child.stdout.take() {
            out.read_to_string(&mut stdout).expect("read stdout");
        }
        let status = self.child.wait().expect("wait for sluice");
        // The reader thread stops at end of file, which the exit brings.
        while let Ok(line) = self.lines.recv_timeout(HANG_GUARD) {
            self.seen.push(line);
        }
        (status, stdout, std::mem::take(&mut self.seen))
    }
}

impl Drop for Waiter {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

/// Carol's grants, from `grant list --output json`.
fn grants(cli: &Cli) -> Vec<Value> {
    let out = ok(cli, &["grant", "list", "--output", "json"]);
    let list: Value = serde_json::from_str(text(&out.stdout).trim()).expect("JSON");
    list["grants"].as_array().cloned().unwrap_or_default()
}

#[test]
fn a_waiting_requester_sees_each_approval_as_it_is_given() {
    let broker = setup();
    let carol = user(&broker, "carol", &["dba"]);
    let bob = user(&broker, "bob", &["dba"]);
    let dave = user(&broker, "dave", &["dba"]);

    let mut waiter = Waiter::start(
        &carol,
        &[
            "grant",
            "request",
            "svc",
            "--role",
            "break-glass",
            "--reason",
            "prod is down",
            "--wait",
        ],
    );
    // "Waiting for approval of g_... (2 approvals from dba)...": the long-poll has begun.
    let waiting = waiter.until("waiting line", |l| {
        l.starts_with("Waiting for approval of ")
    });
    let id = waiting
        .trim_start_matches("Waiting for approval of ")
        .split_whitespace()
        .next()
        .expect("grant id")
        .to_string();
    assert!(waiting.contains("2 approvals from dba"), "{waiting}");

    ok(&bob, &["approve", &id, "--reason", "seen the page"]);
    let line = waiter.until("bob's approval", |l| l.starts_with("bob approved"));
    assert_eq!(line, "bob approved (1 of 2): seen the page");
    // Reported while the request still waits for its second approver, who has not acted.
    let live = grants(&carol);
    let pending = live
        .iter()
        .find(|g| g["id"] == id.as_str())
        .unwrap_or_else(|| panic!("{id} not among carol's grants: {live:?}"));
    assert_eq!(pending["state"], "pending", "{pending}");
    assert_eq!(pending["votes"].as_array().map(Vec::len), Some(1));
    assert!(
        !waiter.seen.iter().any(|l| l.contains("dave")),
        "{:?}",
        waiter.seen
    );

    ok(&dave, &["approve", &id]);
    let (status, stdout, stderr) = waiter.finish();
    assert!(
        status.success(),
        "an approved --wait exits 0 ({status}):\n{stdout}\n{}",
        stderr.join("\n")
    );
    let bob_at = stderr.iter().position(|l| l.starts_with("bob approved"));
    let dave_at = stderr
        .iter()
        .position(|l| l == "dave approved (2 of 2)")
        .unwrap_or_else(|| panic!("dave's approval not reported:\n{}", stderr.join("\n")));
    assert!(bob_at < Some(dave_at), "{stderr:?}");
    assert_eq!(
        stderr
            .iter()
            .filter(|l| l.starts_with("bob approved"))
            .count(),
        1,
        "each vote once: {stderr:?}"
    );
    assert!(
        stdout.contains(&format!("{id} is active: break-glass on svc")),
        "{stdout}"
    );
    assert!(stdout.contains("approved by bob"), "{stdout}");
}
