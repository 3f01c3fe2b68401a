//! Invalid configurations report every problem, each at the right line, column and key.

use std::path::Path;

use super::{FILE, parse_err};
use crate::{ConfigError, ConfigErrors, Location, load, parse};

/// Asserts that `errors` are exactly `expected` (line, column, key, message start).
pub(super) fn assert_errors(
    errors: &[(usize, usize, String, String)],
    expected: &[(usize, usize, &str, &str)],
) {
    let shown = errors
        .iter()
        .map(|(line, column, key, message)| format!("{line}:{column}: {key}: {message}"))
        .collect::<Vec<_>>()
        .join("\n");
    assert_eq!(errors.len(), expected.len(), "got:\n{shown}");
    for (error, (line, column, key, start)) in errors.iter().zip(expected) {
        assert_eq!(
            (error.0, error.1, error.2.as_str()),
            (*line, *column, *key),
            "got:\n{shown}"
        );
        assert!(
            error.3.starts_with(start),
            "message {:?} should start with {start:?}",
            error.3
        );
    }
}

const MANY_PROBLEMS: &str = "\
listen: localhost:8443
tls:
  cert: tls/server.crt
  key: tls/server.key
tokens:
  signing_key: keys/signing.pem
  default_ttl: 13h
store:
  sqlite: sluice.db
resources:
  pg-main:
    kind: postgres
    address: db.internal:5432
    database: app
    user: app
    password: hunter2
    descripton: Main DB
  cache:
    kind: tcp
    address: 127.0.0.1:6379
    database: nope
  pg-main:
    kind: tcp
    address: 127.0.0.1:1
policy:
  roles: {read: {max_ttl: 1h}}
  rules:
    - name: devs
      groups: [dev]
      resources: [pg-mian, \"cache*\"]
      roles: [read]
";

#[test]
fn reports_every_problem_at_once() {
    let errors = parse_err(MANY_PROBLEMS);
    assert_errors(
        &errors,
        &[
            (1, 1, "listen", "invalid listen address \"localhost:8443\""),
            (
                7,
                3,
                "tokens.default_ttl",
                "default_ttl (13h) is longer than max_ttl (12h)",
            ),
            (
                16,
                5,
                "resources.pg-main.password",
                "inline secrets are not allowed; use env:NAME or file:PATH",
            ),
            (
                17,
                5,
                "resources.pg-main.descripton",
                "unknown key \"descripton\"; did you mean \"description\"?",
            ),
            (
                21,
                5,
                "resources.cache.database",
                "database is only for kind postgres",
            ),
            (
                22,
                3,
                "resources.pg-main",
                "duplicate key \"pg-main\" (first defined at line 11)",
            ),
            (
                30,
                19,
                "policy.rules[0].resources[0]",
                "no resource named \"pg-mian\" in resources; did you mean \"pg-main\"?",
            ),
        ],
    );
    assert!(
        errors.iter().all(|error| !error.3.contains("hunter2")),
        "an inline secret must never be echoed"
    );
}

#[test]
fn display_is_file_line_column_key_message() {
    let errors = parse(MANY_PROBLEMS, Path::new(FILE)).expect_err("invalid");
    let text = errors.to_string();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), errors.len());
    assert_eq!(
        lines[2],
        "/etc/sluice/sluice.yaml:16:5: resources.pg-main.password: inline secrets are not \
         allowed; use env:NAME or file:PATH"
    );
    assert!(!text.contains("hunter2"));
}

#[test]
fn reports_type_shape_and_cross_key_problems_together() {
    let text = "\
listen: 127.0.0.1:8443
tls:
  cert: tls/server.crt
tokens:
  signing_key: keys/signing.pem
  default_ttl: 1 fortnight
  max_ttl: [12h]
store: sluice.db
resources:
  pg:
    kind: postgress
    address: db.internal
  Bad_Name:
    kind: tcp
    address: \"[::1:5432\"
  pg2:
    kind: postgres
    address: db:5432
    database: app
    password: env:PG PASSWORD
    tls:
      mode: verify-full
  pg3:
    kind: postgres
    address: db:0
    database: app
    user: app
    password: file:pw
    tls: {mode: require, ca: ca.pem}
policy:
  rules:
    - name: r1
      resources: [\"*\"]
    - name: r1
      subjects: [bob]
      resources: []
roles: {}
";
    assert_errors(
        &parse_err(text),
        &[
            (2, 1, "tls.key", "missing required key"),
            (
                6,
                3,
                "tokens.default_ttl",
                "invalid duration \"1 fortnight\"",
            ),
            (
                7,
                3,
                "tokens.max_ttl",
                "expected a single value, found a list",
            ),
            (
                8,
                1,
                "store",
                "expected a mapping with sqlite, postgres, found a single value",
            ),
            (
                11,
                5,
                "resources.pg.kind",
                "unknown kind \"postgress\"; did you mean \"postgres\"?",
            ),
            (
                12,
                5,
                "resources.pg.address",
                "invalid address \"db.internal\": expected host:port",
            ),
            (13, 3, "resources.Bad_Name", "invalid resource name"),
            (
                15,
                5,
                "resources.Bad_Name.address",
                "invalid address \"[::1:5432\": invalid IPv6",
            ),
            (16, 3, "resources.pg2.user", "missing required key"),
            (
                20,
                5,
                "resources.pg2.password",
                "env: must be followed by a variable name",
            ),
            (
                21,
                5,
                "resources.pg2.tls.ca",
                "missing required key: mode verify-full",
            ),
            (
                25,
                5,
                "resources.pg3.address",
                "invalid address \"db:0\": the port must be",
            ),
            (
                29,
                26,
                "resources.pg3.tls.ca",
                "ca is only used with mode verify-full",
            ),
            (
                32,
                7,
                "policy.rules[0]",
                "a rule needs at least one entry in subjects or groups",
            ),
            (32, 7, "policy.rules[0].roles", "missing required key"),
            (
                34,
                7,
                "policy.rules[1].name",
                "duplicate rule name \"r1\" (first used at line 32)",
            ),
            (34, 7, "policy.rules[1].roles", "missing required key"),
            (
                36,
                7,
                "policy.rules[1].resources",
                "list at least one resource name or glob",
            ),
            (
                37,
                1,
                "roles",
                "unknown key \"roles\" (expected one of: listen, tls,",
            ),
        ],
    );
}

#[test]
fn missing_top_level_keys_point_at_the_document() {
    assert_errors(
        &parse_err("\n# comment\nresources: {}\n"),
        &[
            (3, 1, "listen", "missing required key"),
            (3, 1, "tls", "missing required key"),
            (3, 1, "tokens", "missing required key"),
            (3, 1, "store", "missing required key"),
        ],
    );
}

#[test]
fn yaml_syntax_error_reports_its_line() {
    let text = "listen: 127.0.0.1:8443\ntls:\n  cert: a\n key: b\n";
    let errors = parse_err(text);
    assert_eq!(errors.len(), 1, "{errors:?}");
    let (line, _, key, message) = &errors[0];
    assert_eq!(*line, 4);
    assert_eq!(key, "");
    assert!(message.starts_with("YAML syntax error: "), "{message}");

    let unclosed = parse_err("listen: 127.0.0.1:8443\nresources: {a: 1\n\nstore: x\n");
    assert_eq!(unclosed.len(), 1, "{unclosed:?}");
    assert!(unclosed[0].3.starts_with("YAML syntax error: "));
    assert!(unclosed[0].0 >= 2, "{unclosed:?}");
}

#[test]
fn top_level_must_be_a_mapping() {
    assert_errors(
        &parse_err("- listen\n- tls\n"),
        &[(
            1,
            1,
            "",
            "the top level must be a mapping of the keys listen, tls, tokens",
        )],
    );
    assert_errors(
        &parse_err("just some words\n"),
        &[(1, 1, "", "the top level must be a mapping")],
    );
}

#[test]
fn empty_files_are_refused() {
    for text in ["", "# only a comment\n", "---\n", "~\n"] {
        assert_errors(&parse_err(text), &[(1, 1, "", "the file is empty")]);
    }
}

#[test]
fn aliases_anchors_tags_and_extra_documents_are_refused() {
    let text = "\
listen: &addr 127.0.0.1:8443
tls: {cert: c.pem, key: !!str k.pem}
tokens: {signing_key: *addr}
store: {sqlite: db}
---
listen: 1
";
    assert_errors(
        &parse_err(text),
        &[
            (1, 15, "listen", "anchors are not supported"),
            (2, 31, "tls.key", "tags are not supported"),
            (3, 23, "tokens.signing_key", "aliases are not supported"),
            (5, 1, "", "only one YAML document is allowed"),
        ],
    );
}

#[test]
fn duplicate_keys_are_reported_in_any_mapping() {
    let text = "\
listen: 127.0.0.1:8443
listen: 127.0.0.1:9443
tls: {cert: c.pem, key: k.pem, cert: d.pem}
tokens: {signing_key: s.pem}
store: {sqlite: db}
";
    assert_errors(
        &parse_err(text),
        &[
            (
                2,
                1,
                "listen",
                "duplicate key \"listen\" (first defined at line 1)",
            ),
            (
                3,
                32,
                "tls.cert",
                "duplicate key \"cert\" (first defined at line 3)",
            ),
        ],
    );
}

#[test]
fn unknown_keys_get_a_suggestion_only_when_close() {
    let text = "\
lisen: 127.0.0.1:8443
tls: {cert: c.pem, key: k.pem, cetr: x}
tokens: {signing_key: s.pem}
store: {sqlite: db}
telemetry: on
";
    assert_errors(
        &parse_err(text),
        &[
            (
                1,
                1,
                "lisen",
                "unknown key \"lisen\"; did you mean \"listen\"?",
            ),
            // The missing key is reported where the top-level mapping starts.
            (1, 1, "listen", "missing required key"),
            (
                2,
                32,
                "tls.cetr",
                "unknown key \"cetr\"; did you mean \"cert\"?",
            ),
            (
                5,
                1,
                "telemetry",
                "unknown key \"telemetry\" (expected one of:",
            ),
        ],
    );
}

#[test]
fn unreadable_file_is_one_whole_file_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("absent.yaml");
    let errors = load(&path).expect_err("the file does not exist");
    assert_eq!(errors.len(), 1);
    let error = &errors.0[0];
    assert_eq!(error.location, Location::whole_file(&path));
    assert_eq!(error.key, "");
    assert!(
        error
            .message
            .starts_with("cannot read the configuration file: ")
    );
    // Line 0 prints as the bare file name rather than a meaningless `:0:0`.
    assert!(
        errors
            .to_string()
            .starts_with(&format!("{}: cannot read", path.display()))
    );
}

#[test]
fn load_reads_and_parses_the_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("sluice.yaml");
    std::fs::write(
        &path,
        "listen: 127.0.0.1:8443\ntls: {cert: c.pem, key: k.pem}\n\
         tokens: {signing_key: s.pem}\nstore: {sqlite: db}\n",
    )
    .expect("write config");
    let config = load(&path).expect("valid");
    assert_eq!(config.source, path);
    assert_eq!(config.tls.cert.value, dir.path().join("c.pem"));
}

#[test]
fn errors_are_a_std_error() {
    fn takes_error(_: &dyn std::error::Error) {}
    let errors = ConfigErrors(vec![ConfigError {
        location: Location::whole_file("x.yaml"),
        key: "k".into(),
        message: "m".into(),
    }]);
    takes_error(&errors);
    takes_error(&errors.0[0]);
    assert_eq!(errors.0[0].to_string(), "x.yaml: k: m");
}

#[test]
fn superuser_login_takes_allow_or_refuse_guarded_and_only_on_postgres() {
    let base = "\
listen: 127.0.0.1:8443
tls: {cert: a.crt, key: a.key, ca: ca.crt}
tokens: {signing_key: k.pem}
store: {sqlite: s.db}
resources:
  pg:
    kind: postgres
    address: db:5432
    database: app
    user: app
    password: env:PW
";
    let config = super::parse_ok(&format!("{base}    superuser_login: refuse-guarded\n"));
    let crate::ResourceSpec::Postgres(pg) = &config.resources[0].spec else {
        panic!("not postgres");
    };
    assert_eq!(pg.superuser_login, crate::SuperuserLogin::RefuseGuarded);
    let config = super::parse_ok(base);
    let crate::ResourceSpec::Postgres(pg) = &config.resources[0].spec else {
        panic!("not postgres");
    };
    assert_eq!(pg.superuser_login, crate::SuperuserLogin::Allow);

    let errors = parse_err(&format!("{base}    superuser_login: deny\n"));
    assert_eq!(errors.len(), 1, "{errors:?}");
    let (line, _, key, message) = &errors[0];
    assert_eq!((*line, key.as_str()), (12, "resources.pg.superuser_login"));
    assert!(message.contains("allow, refuse-guarded"), "{message}");

    let errors = parse_err(
        "\
listen: 127.0.0.1:8443
tls: {cert: a.crt, key: a.key, ca: ca.crt}
tokens: {signing_key: k.pem}
store: {sqlite: s.db}
resources:
  raw:
    kind: tcp
    address: db:5432
    superuser_login: allow
",
    );
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].2, "resources.raw.superuser_login");
}
