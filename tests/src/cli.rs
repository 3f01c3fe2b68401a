//! The real `sluice` binary, with a private state directory per test.

use crate::broker::Broker;
use crate::util::workspace_bin;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};

/// A CLI user: their own config dir, pointed at one broker.
#[derive(Debug)]
pub struct Cli {
    dir: tempfile::TempDir,
    broker: String,
    ca: PathBuf,
}

impl Cli {
    /// A CLI for `broker`, not logged in yet.
    pub fn new(broker: &Broker) -> Self {
        Self {
            dir: tempfile::Builder::new()
                .prefix("sluice-cli-")
                .tempdir()
                .expect("tempdir"),
            broker: broker.url(),
            ca: broker.ca(),
        }
    }

    /// A CLI for `broker`'s CA that talks to `url` instead (a load balancer in front of
    /// several brokers).
    pub fn via(broker: &Broker, url: &str) -> Self {
        let mut cli = Self::new(broker);
        cli.broker = url.to_owned();
        cli
    }

    /// The CLI's state directory.
    pub fn state_dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// The environment variables that make `sluice` this user (for commands started through a
    /// shell or a terminal multiplexer rather than [`Self::cmd`]).
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            (
                "SLUICE_CONFIG_DIR".into(),
                self.dir.path().display().to_string(),
            ),
            ("SLUICE_BROKER".into(), self.broker.clone()),
            ("SLUICE_CA".into(), self.ca.display().to_string()),
        ]
    }

    /// `sluice` with this user's environment and nothing inherited that could change it.
    pub fn cmd(&self) -> Command {
        let mut cmd = Command::new(workspace_bin("sluice"));
        cmd.env("SLUICE_CONFIG_DIR", self.dir.path())
            .env("SLUICE_BROKER", &self.broker)
            .env("SLUICE_CA", &self.ca)
            .env_remove("SLUICE_TOKEN")
            .env_remove("PGPASSWORD")
            .stdin(Stdio::null());
        cmd
    }

    /// Waits (up to 30 s) until this approver's queue (`sluice approvals --output json`) holds
    /// a held action — a statement, a command, a Kubernetes request — and returns the first.
    pub fn first_hold(&self) -> serde_json::Value {
        let mut hold = serde_json::Value::Null;
        crate::util::wait_for(
            "a held action to reach the approver",
            std::time::Duration::from_secs(30),
            || {
                let out = self.run(&["approvals", "--output", "json"]);
                let queue: serde_json::Value =
                    serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
                match queue["statements"].as_array().and_then(|s| s.first()) {
                    Some(h) => {
                        hold = h.clone();
                        true
                    }
                    None => false,
                }
            },
        );
        hold
    }

    /// Waits (up to 60 s) until the broker lists at least `count` sessions and every one has
    /// ended, and returns them, newest first. A session's recording is complete only once it
    /// has ended, which the broker writes just after the client leaves: read recordings after
    /// this.
    pub fn ended_sessions(&self, count: usize) -> Vec<serde_json::Value> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let out = self.run(&["sessions", "list", "--output", "json"]);
            let list: serde_json::Value =
                serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
            let sessions = list["sessions"].as_array().cloned().unwrap_or_default();
            if sessions.len() >= count && sessions.iter().all(|s| !s["end"].is_null()) {
                return sessions;
            }
            // Say which sessions are still open, so a failure shows what kept them.
            assert!(
                std::time::Instant::now() < deadline,
                "timed out after 60s waiting for {count} sessions, every one ended; the broker \
                 lists {}: {}",
                sessions.len(),
                serde_json::Value::Array(sessions)
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }

    /// Runs `sluice ARGS` to completion.
    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().expect("run sluice")
    }

    /// `sluice login --token-stdin`; panics if it fails.
    pub fn login(&self, token: &str) -> Output {
        let mut child = self
            .cmd()
            .args(["login", "--token-stdin"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn sluice login");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(token.as_bytes())
            .expect("write token");
        let out = child.wait_with_output().expect("wait login");
        assert!(
            out.status.success(),
            "login failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// Starts `sluice connect RESOURCE --output json` and reads the connection details.
    pub fn connect(&self, resource: &str) -> Connect {
        self.connect_with(resource, &[])
    }

    /// Like [`Self::connect`] with extra arguments (`--role`, `--ttl`, ...).
    pub fn connect_with(&self, resource: &str, extra: &[&str]) -> Connect {
        let mut child = self
            .cmd()
            .args(["connect", resource, "--output", "json"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn sluice connect");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read connect output");
        if line.trim().is_empty() {
            let out = child.wait_with_output().expect("wait connect");
            panic!(
                "sluice connect printed nothing: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let details: serde_json::Value = serde_json::from_str(&line).expect("connect prints JSON");
        Connect { child, details }
    }
}

/// A running `sluice connect`; killed on drop.
#[derive(Debug)]
pub struct Connect {
    child: Child,
    /// What `--output json` printed.
    pub details: serde_json::Value,
}

impl Connect {
    /// The local port.
    pub fn port(&self) -> u16 {
        self.details["port"].as_u64().expect("port") as u16
    }

    /// The postgres URI with the one-time secret.
    pub fn uri(&self) -> String {
        self.details["uri"].as_str().expect("uri").to_string()
    }

    /// `psql -c SQL` through the tunnel, started and left running (stdout and stderr piped):
    /// for statements that wait (a sleep, a hold) while the test acts.
    pub fn spawn_psql(&self, sql: &str) -> Child {
        Command::new(crate::postgres::psql())
            .args(["-X", "-A", "-t", "-d", &self.uri(), "-c", sql])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn psql")
    }

    /// Stops the tunnel and returns what it wrote to stderr.
    pub fn stop(mut self) -> String {
        let _ = self.child.kill();
        let mut err = String::new();
        if let Some(mut stderr) = self.child.stderr.take() {
            use std::io::Read;
            let _ = stderr.read_to_string(&mut err);
        }
        let _ = self.child.wait();
        err
    }
}

impl Drop for Connect {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
