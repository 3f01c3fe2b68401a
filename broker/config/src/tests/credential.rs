//! Credential references resolve to the secret and fail without revealing it.

use std::path::PathBuf;

use super::in_child;
use crate::{CredentialError, CredentialRef};

/// A variable no environment sets; the child processes remove it to be sure.
const UNSET: &str = "SLUICE_CONFIG_TEST_SURELY_UNSET";

#[test]
fn env_reference_returns_the_value_unchanged() {
    if !in_child(
        "tests::credential::env_reference_returns_the_value_unchanged",
        &[("SLUICE_TEST_PW", "hunter2 \n")],
    ) {
        return;
    }
    let secret = CredentialRef::Env("SLUICE_TEST_PW".into())
        .resolve()
        .expect("the variable is set");
    // Only files lose a trailing newline; a variable's value is taken as it is.
    assert_eq!(secret.expose(), "hunter2 \n");
}

#[test]
fn empty_env_variable_is_refused_by_name() {
    if !in_child(
        "tests::credential::empty_env_variable_is_refused_by_name",
        &[("SLUICE_TEST_EMPTY", "")],
    ) {
        return;
    }
    let error = CredentialRef::Env("SLUICE_TEST_EMPTY".into())
        .resolve()
        .expect_err("empty is never a password");
    assert!(matches!(error, CredentialError::EnvEmpty { ref name } if name == "SLUICE_TEST_EMPTY"));
    assert_eq!(
        error.to_string(),
        "environment variable SLUICE_TEST_EMPTY is empty"
    );
}

#[test]
fn unset_env_variable_is_named_in_the_error() {
    let error = CredentialRef::Env(UNSET.into())
        .resolve()
        .expect_err("the variable is not set");
    assert!(matches!(error, CredentialError::EnvUnset { ref name } if name == UNSET));
    assert_eq!(
        error.to_string(),
        format!("environment variable {UNSET} is not set")
    );
}

#[test]
fn file_reference_trims_exactly_one_trailing_newline() {
    let dir = tempfile::tempdir().expect("temp dir");
    let cases = [
        ("lf", "s3cret\n", "s3cret"),
        ("crlf", "s3cret\r\n", "s3cret"),
        ("none", "s3cret", "s3cret"),
        ("two", "s3cret\n\n", "s3cret\n"),
        ("spaces", " s3cret \n", " s3cret "),
    ];
    for (name, contents, expected) in cases {
        let path = dir.path().join(name);
        std::fs::write(&path, contents).expect("write credential");
        let secret = CredentialRef::File(path).resolve().expect("readable file");
        assert_eq!(secret.expose(), expected, "case {name}");
    }
}

#[test]
fn empty_file_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    for contents in ["", "\n", "\r\n"] {
        let path = dir.path().join("empty");
        std::fs::write(&path, contents).expect("write credential");
        let error = CredentialRef::File(path.clone())
            .resolve()
            .expect_err("empty is never a password");
        assert!(matches!(error, CredentialError::FileEmpty { path: ref p } if *p == path));
    }
}

#[test]
fn file_errors_name_the_path_and_never_the_contents() {
    let dir = tempfile::tempdir().expect("temp dir");
    let missing = dir.path().join("missing");
    let error = CredentialRef::File(missing.clone())
        .resolve()
        .expect_err("missing file");
    assert!(matches!(error, CredentialError::FileUnreadable { .. }));
    assert!(error.to_string().contains(&missing.display().to_string()));

    let binary = dir.path().join("binary");
    std::fs::write(&binary, b"s3cret\xff\xfe").expect("write credential");
    let error = CredentialRef::File(binary.clone())
        .resolve()
        .expect_err("not UTF-8");
    let message = error.to_string();
    assert!(matches!(error, CredentialError::FileNotUnicode { .. }));
    assert!(message.contains(&binary.display().to_string()));
    assert!(!message.contains("s3cret"), "{message}");
    assert!(std::error::Error::source(&error).is_none());
}

#[test]
fn display_is_the_configuration_spelling() {
    assert_eq!(CredentialRef::Env("PG_PW".into()).to_string(), "env:PG_PW");
    assert_eq!(
        CredentialRef::File(PathBuf::from("/run/secrets/pg")).to_string(),
        "file:/run/secrets/pg"
    );
}

#[test]
fn parsing_refuses_inline_values_without_echoing_them() {
    let base = std::path::Path::new("/etc/sluice");
    assert_eq!(
        CredentialRef::parse("file:secrets/pg", base),
        Ok(CredentialRef::File(PathBuf::from("/etc/sluice/secrets/pg")))
    );
    assert_eq!(
        CredentialRef::parse("env:_PG1", base),
        Ok(CredentialRef::Env("_PG1".into()))
    );
    // Each refused input, with the part of it that must not appear in the message.
    for (bad, hidden) in [
        ("hunter2", "hunter2"),
        ("env:", "env::"),
        ("env:1ABC", "1ABC"),
        ("env:p@ss word", "p@ss"),
        ("file:", "file::"),
        ("ENV:PG_PW", "PG_PW"),
    ] {
        let message = CredentialRef::parse(bad, base).expect_err(bad);
        assert!(!message.contains(hidden), "{message}");
    }
}
