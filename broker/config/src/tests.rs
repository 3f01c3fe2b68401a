//! Behaviour tests for the whole crate, one file per concern, sharing the helpers below.

mod credential;
mod environment;
mod errors;
mod http;
mod identity;
mod model;
mod policy;
mod policy_config;
mod profiles;
mod robustness;
mod ssh;
mod starter;
mod store;

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{Config, Located, Location, parse};

/// Where test configurations pretend to live; relative paths resolve against `/etc/sluice`.
const FILE: &str = "/etc/sluice/sluice.yaml";

/// Parses text that must be valid, showing every error otherwise.
fn parse_ok(text: &str) -> Config {
    match parse(text, Path::new(FILE)) {
        Ok(config) => config,
        Err(errors) => panic!("expected a valid configuration, got:\n{errors}"),
    }
}

/// Parses text that must be invalid, returning `(line, column, key, message)` per error.
fn parse_err(text: &str) -> Vec<(usize, usize, String, String)> {
    match parse(text, Path::new(FILE)) {
        Ok(config) => panic!("expected errors, got {config:#?}"),
        Err(errors) => errors
            .0
            .into_iter()
            .map(|error| {
                assert_eq!(error.location.file, PathBuf::from(FILE));
                (
                    error.location.line,
                    error.location.column,
                    error.key,
                    error.message,
                )
            })
            .collect(),
    }
}

fn loc(line: usize, column: usize) -> Location {
    Location {
        file: PathBuf::from(FILE),
        line,
        column,
    }
}

fn at<T>(value: T, line: usize, column: usize, key: &str) -> Located<T> {
    Located {
        value,
        location: loc(line, column),
        key: key.to_owned(),
    }
}

/// Marks a test process started by [`in_child`].
const CHILD_MARKER: &str = "SLUICE_CONFIG_TEST_CHILD";

/// Runs test `name` again in a child process with `vars` set, and reports whether the caller is
/// that child. Setting variables in this process would need `unsafe` (edition 2024) and would
/// race the other tests, which read the environment concurrently.
///
/// Use as: `if !in_child("tests::x::y", &[..]) { return; }` followed by the assertions.
fn in_child(name: &str, vars: &[(&str, &str)]) -> bool {
    if std::env::var_os(CHILD_MARKER).is_some() {
        return true;
    }
    let exe = std::env::current_exe().expect("current test executable");
    let output = Command::new(exe)
        .args([name, "--exact", "--test-threads=1"])
        .env(CHILD_MARKER, "1")
        .envs(vars.iter().copied())
        .output()
        .expect("run the test in a child process");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("1 passed"),
        "child test {name} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    false
}
