//! `check_environment` finds missing files and variables and reports them where referenced.

use std::path::Path;

use crate::parse;

#[test]
fn reports_missing_files_and_unset_variables_at_their_keys() {
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path();
    for (name, contents) in [
        ("server.crt", "cert"),
        ("server.key", "key"),
        ("pw-ok", "s3cret-ok\n"),
        ("pw-empty", "\n"),
    ] {
        std::fs::write(root.join(name), contents).expect("write fixture");
    }
    std::fs::create_dir(root.join("a-directory")).expect("create dir");
    let text = "\
listen: 127.0.0.1:8443
tls:
  cert: server.crt
  key: server.key
  ca: a-directory
tokens:
  signing_key: keys/missing.pem
store:
  sqlite: no-such-dir/sluice.db
resources:
  ok:
    kind: postgres
    address: db:5432
    database: app
    user: app
    password: file:pw-ok
  env-ok:
    kind: postgres
    address: db:5432
    database: app
    user: app
    password: env:PATH
  unset:
    kind: postgres
    address: db:5432
    database: app
    user: app
    password: env:SLUICE_CONFIG_TEST_SURELY_UNSET
    tls: {mode: verify-full, ca: missing-ca.crt}
  empty:
    kind: postgres
    address: db:5432
    database: app
    user: app
    password: file:pw-empty
  cache:
    kind: tcp
    address: 127.0.0.1:6379
";
    let config = parse(text, &root.join("sluice.yaml")).expect("valid configuration");
    let errors = config.check_environment();
    let found: Vec<(usize, &str)> = errors
        .iter()
        .map(|error| (error.location.line, error.key.as_str()))
        .collect();
    assert_eq!(
        found,
        [
            (5, "tls.ca"),
            (7, "tokens.signing_key"),
            (9, "store.sqlite"),
            (28, "resources.unset.password"),
            (29, "resources.unset.tls.ca"),
            (35, "resources.empty.password"),
        ],
        "{errors:#?}"
    );
    let message = |key: &str| {
        errors
            .iter()
            .find(|error| error.key == key)
            .map(|error| error.message.clone())
            .unwrap_or_default()
    };
    assert!(message("tls.ca").ends_with("is a directory, expected a file"));
    assert!(
        message("tokens.signing_key")
            .contains(&root.join("keys/missing.pem").display().to_string())
    );
    assert!(message("store.sqlite").contains("no-such-dir"));
    assert_eq!(
        message("resources.unset.password"),
        "environment variable SLUICE_CONFIG_TEST_SURELY_UNSET is not set"
    );
    assert!(message("resources.empty.password").ends_with("is empty"));
    for error in &errors {
        assert_eq!(error.location.file, root.join("sluice.yaml"));
        let shown = error.to_string();
        assert!(!shown.contains("s3cret"), "{shown}");
    }
}

#[test]
fn a_complete_environment_has_no_errors() {
    let dir = tempfile::tempdir().expect("temp dir");
    for name in ["c.pem", "k.pem", "s.pem"] {
        std::fs::write(dir.path().join(name), "x").expect("write fixture");
    }
    let text = "listen: 127.0.0.1:8443\ntls: {cert: c.pem, key: k.pem}\n\
                tokens: {signing_key: s.pem}\nstore: {sqlite: sluice.db}\n";
    let config = parse(text, &dir.path().join("sluice.yaml")).expect("valid configuration");
    assert_eq!(config.check_environment(), []);

    // The database may sit next to a config named without a directory: its parent is `.`.
    let bare = parse(text, Path::new("sluice.yaml")).expect("valid configuration");
    assert!(
        bare.check_environment()
            .iter()
            .all(|error| error.key != "store.sqlite")
    );
}

#[test]
fn masking_keys_are_checked_like_credentials() {
    let dir = tempfile::tempdir().expect("temp dir");
    for name in ["c.pem", "k.pem", "s.pem", "mask-key"] {
        std::fs::write(dir.path().join(name), "x").expect("write fixture");
    }
    let text = "\
listen: 127.0.0.1:8443
tls: {cert: c.pem, key: k.pem}
tokens: {signing_key: s.pem}
store: {sqlite: sluice.db}
policy:
  masking:
    from-env:
      key: env:PATH
      columns: [{name: emails, column: email, style: hash}]
    from-file:
      key: file:mask-key
    unset:
      key: env:SLUICE_CONFIG_TEST_SURELY_UNSET
      columns: [{name: emails, column: email, style: hash}]
    missing:
      key: file:no-such-key
    keyless:
      detectors: [{name: cards, detector: card, style: last4}]
";
    let config = parse(text, &dir.path().join("sluice.yaml")).expect("valid configuration");
    let errors = config.check_environment();
    let found: Vec<(usize, &str, &str)> = errors
        .iter()
        .map(|error| {
            (
                error.location.line,
                error.key.as_str(),
                error.message.as_str(),
            )
        })
        .collect();
    let missing = format!(
        "cannot read credential file {}: ",
        dir.path().join("no-such-key").display()
    );
    assert_eq!(found.len(), 2, "{errors:#?}");
    assert_eq!(
        found[0],
        (
            13,
            "policy.masking.unset.key",
            "environment variable SLUICE_CONFIG_TEST_SURELY_UNSET is not set"
        )
    );
    assert_eq!((found[1].0, found[1].1), (16, "policy.masking.missing.key"));
    assert!(found[1].2.starts_with(&missing), "{}", found[1].2);
}
