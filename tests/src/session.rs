//! A psql session that stays open between statements (reading them from a pipe), for tests
//! that change something under a live session: a reload, a shutdown, a tunnel limit.

use crate::cli::Connect;
use crate::postgres::psql;
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdout, Command, Stdio};

/// psql connected through a tunnel, after one statement (`select 'LABEL'`) ran.
#[derive(Debug)]
pub struct OpenSession {
    child: Child,
    stdout: BufReader<ChildStdout>,
}

impl OpenSession {
    /// Starts psql on `connect` and waits until `select 'LABEL'` answered.
    pub fn start(connect: &Connect, label: &str) -> Self {
        let mut child = Command::new(psql())
            .args(["-X", "-A", "-t", "-d", &connect.uri()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn psql");
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        writeln!(child.stdin.as_mut().expect("stdin"), "select '{label}';").expect("write to psql");
        let mut line = String::new();
        stdout.read_line(&mut line).expect("read psql");
        assert_eq!(line.trim(), label, "psql {label} did not run");
        Self { child, stdout }
    }

    /// Closes psql's input: it quits and its session ends.
    pub fn quit(mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }

    /// Sends one more statement and ends psql's input; returns what psql wrote to stdout and
    /// stderr. (psql reads a FATAL the server sent meanwhile only when it next talks to it.)
    pub fn finish(mut self, sql: &str) -> (String, String) {
        if let Some(mut stdin) = self.child.stdin.take() {
            let _ = writeln!(stdin, "{sql}");
        }
        let mut out = String::new();
        let _ = self.stdout.read_to_string(&mut out);
        let done = self.child.wait_with_output().expect("psql exits");
        (out, String::from_utf8_lossy(&done.stderr).to_string())
    }
}

impl OpenSession {
    /// Runs one statement and returns the first line psql printed for it (the session stays
    /// open). Empty when psql printed nothing (it quit, for example after a FATAL).
    pub fn query(&mut self, sql: &str) -> String {
        if let Some(stdin) = self.child.stdin.as_mut() {
            let _ = writeln!(stdin, "{sql}");
        }
        let mut line = String::new();
        let _ = self.stdout.read_line(&mut line);
        line.trim().to_owned()
    }
}
