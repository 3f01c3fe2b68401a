//! The `identity` section: a full example, defaults, and every problem reported at its key.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use super::errors::assert_errors;
use super::{at, loc, parse_err, parse_ok};
use crate::{IdentityConfig, JwksSource, OidcIssuer, WorkloadIssuer, WorkloadPreset, parse};

const BASE: &str = "\
listen: 127.0.0.1:8443
tls:
  cert: tls/server.crt
  key: tls/server.key
tokens:
  signing_key: keys/signing.pem
store:
  sqlite: sluice.db
";

fn with_base(identity: &str) -> String {
    format!("{BASE}{identity}")
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|item| (*item).to_owned()).collect()
}

// Line 9 is `identity:`.
const FULL: &str = r#"identity:
  leeway: 30s
  jwks_refresh_interval: 10m
  jwks_max_stale: 48h
  oidc:
    - name: corp
      issuer: https://idp.example.com/realms/acme
      client_id: sluice-cli
      scopes: [openid, email]
      username_claim: email
      groups_claim: roles
      group_mapping:
        idp-dba: [dba]
        idp-dev: [dev, readers]
      jwks_uri: https://idp.example.com/realms/acme/certs
    - name: local
      issuer: http://127.0.0.1:8080/realms/dev
      client_id: cli
      audience: sluice
      jwks_file: keys/idp.jwks
  workload:
    - name: github-deploy
      preset: github
      audience: https://sluice.example.com
      subject: "github:{repository}:{workflow}"
      claims:
        repository: acme/*
        ref: refs/heads/main
        job.env: prod
      groups: [ci-deployers]
    - name: k8s
      preset: kubernetes
      issuer: https://kubernetes.default.svc
      audience: sluice
    - name: custom
      issuer: https://ci.internal
      audience: sluice
      subject: "ci:{sub}"
      jwks_file: /etc/ci/jwks.json
"#;

#[test]
fn full_identity_parses_to_the_expected_model() {
    let config = parse_ok(&with_base(FULL));
    let expected = IdentityConfig {
        leeway: Duration::from_secs(30),
        jwks_refresh_interval: Duration::from_secs(600),
        jwks_max_stale: Duration::from_secs(48 * 3600),
        oidc: vec![
            OidcIssuer {
                name: "corp".into(),
                issuer: "https://idp.example.com/realms/acme".into(),
                client_id: "sluice-cli".into(),
                audience: "sluice-cli".into(),
                scopes: strings(&["openid", "email"]),
                username_claim: "email".into(),
                groups_claim: "roles".into(),
                group_mapping: BTreeMap::from([
                    ("idp-dba".to_owned(), strings(&["dba"])),
                    ("idp-dev".to_owned(), strings(&["dev", "readers"])),
                ]),
                jwks: JwksSource::Uri("https://idp.example.com/realms/acme/certs".into()),
                location: loc(14, 7),
            },
            OidcIssuer {
                name: "local".into(),
                issuer: "http://127.0.0.1:8080/realms/dev".into(),
                client_id: "cli".into(),
                audience: "sluice".into(),
                scopes: strings(&["openid", "profile", "email", "groups", "offline_access"]),
                username_claim: "preferred_username".into(),
                groups_claim: "groups".into(),
                group_mapping: BTreeMap::new(),
                jwks: JwksSource::File(at(
                    PathBuf::from("/etc/sluice/keys/idp.jwks"),
                    28,
                    7,
                    "identity.oidc[1].jwks_file",
                )),
                location: loc(24, 7),
            },
        ],
        workload: vec![
            WorkloadIssuer {
                name: "github-deploy".into(),
                preset: Some(WorkloadPreset::Github),
                issuer: None,
                audience: "https://sluice.example.com".into(),
                subject: Some("github:{repository}:{workflow}".into()),
                claims: vec![
                    ("repository".into(), "acme/*".into()),
                    ("ref".into(), "refs/heads/main".into()),
                    ("job.env".into(), "prod".into()),
                ],
                groups: strings(&["ci-deployers"]),
                jwks: JwksSource::Discovery,
                location: loc(30, 7),
            },
            WorkloadIssuer {
                name: "k8s".into(),
                preset: Some(WorkloadPreset::Kubernetes),
                issuer: Some("https://kubernetes.default.svc".into()),
                audience: "sluice".into(),
                subject: None,
                claims: Vec::new(),
                groups: Vec::new(),
                jwks: JwksSource::Discovery,
                location: loc(39, 7),
            },
            WorkloadIssuer {
                name: "custom".into(),
                preset: None,
                issuer: Some("https://ci.internal".into()),
                audience: "sluice".into(),
                subject: Some("ci:{sub}".into()),
                claims: Vec::new(),
                groups: Vec::new(),
                jwks: JwksSource::File(at(
                    PathBuf::from("/etc/ci/jwks.json"),
                    47,
                    7,
                    "identity.workload[2].jwks_file",
                )),
                location: loc(43, 7),
            },
        ],
    };
    assert_eq!(config.identity, expected);
    assert_eq!(
        config
            .identity
            .oidc_issuer("local")
            .map(|i| i.audience.as_str()),
        Some("sluice")
    );
    assert!(config.identity.workload_issuer("k8s").is_some());
    assert!(config.identity.workload_issuer("corp").is_none());
    assert_eq!(WorkloadPreset::Kubernetes.as_str(), "kubernetes");
}

#[test]
fn defaults_apply_when_identity_is_absent_empty_or_partial() {
    let absent = parse_ok(BASE).identity;
    assert_eq!(absent, IdentityConfig::default());
    assert_eq!(absent.leeway, Duration::from_secs(60));
    assert_eq!(absent.jwks_refresh_interval, Duration::from_secs(300));
    assert_eq!(absent.jwks_max_stale, Duration::from_secs(24 * 3600));
    assert!(absent.oidc.is_empty() && absent.workload.is_empty());

    assert_eq!(
        parse_ok(&with_base("identity:\n")).identity,
        IdentityConfig::default()
    );
    assert_eq!(
        parse_ok(&with_base("identity:\n  oidc:\n  workload: []\n")).identity,
        IdentityConfig::default()
    );

    let minimal = parse_ok(&with_base(
        "identity:\n  leeway: 5s\n  oidc:\n    - name: corp\n      issuer: https://idp.example.com\n      client_id: cli\n",
    ))
    .identity;
    assert_eq!(minimal.leeway, Duration::from_secs(5));
    assert_eq!(minimal.jwks_max_stale, Duration::from_secs(24 * 3600));
    let corp = &minimal.oidc[0];
    assert_eq!(corp.audience, "cli");
    assert_eq!(
        corp.scopes,
        strings(&["openid", "profile", "email", "groups", "offline_access"])
    );
    assert_eq!(corp.username_claim, "preferred_username");
    assert_eq!(corp.groups_claim, "groups");
    assert!(corp.group_mapping.is_empty());
    assert_eq!(corp.jwks, JwksSource::Discovery);
}

// Line 9 is `identity:`.
const PROBLEMS: &str = r#"identity:
  leeway: soon
  jwks_refesh_interval: 5m
  oidc:
    - name: corp
      issuer: http://idp.example.com
      scopes: [profile]
      jwks_uri: https://idp.example.com/certs?x=1
    - name: Bad Name
      issuer: https://idp.example.com
      client_id: cli
      jwks_uri: https://idp.example.com/certs
      jwks_file: keys/idp.jwks
  workload:
    - name: corp
      preset: githb
      audience: sluice
    - name: k8s
      preset: kubernetes
      audience: sluice
    - name: bare
      issuer: https://ci.internal/#top
      audience: sluice
    - name: templ
      issuer: https://ci.internal
      subject: "ci:{sub"
      claims:
        ref: ""
        env: ok
    - name: templ2
      issuer: https://ci.internal
      audience: sluice
      subject: "ci:{}"
"#;

#[test]
fn reports_every_identity_problem_at_its_key() {
    let errors = parse_err(&with_base(PROBLEMS));
    assert_errors(
        &errors,
        &[
            (10, 3, "identity.leeway", "invalid duration \"soon\""),
            (
                11,
                3,
                "identity.jwks_refesh_interval",
                "unknown key \"jwks_refesh_interval\"; did you mean \"jwks_refresh_interval\"?",
            ),
            (13, 7, "identity.oidc[0].client_id", "missing required key"),
            (
                14,
                7,
                "identity.oidc[0].issuer",
                "invalid URL \"http://idp.example.com\": http:// is only allowed for",
            ),
            (
                15,
                7,
                "identity.oidc[0].scopes",
                "scopes must include openid",
            ),
            (
                16,
                7,
                "identity.oidc[0].jwks_uri",
                "invalid URL \"https://idp.example.com/certs?x=1\": a query",
            ),
            (17, 7, "identity.oidc[1].name", "invalid name"),
            (
                21,
                7,
                "identity.oidc[1].jwks_file",
                "jwks_uri and jwks_file exclude each other",
            ),
            (
                23,
                7,
                "identity.workload[0].name",
                "duplicate identity name \"corp\" (first used at line 13)",
            ),
            (
                24,
                7,
                "identity.workload[0].preset",
                "unknown preset \"githb\"; did you mean \"github\"?",
            ),
            (
                26,
                7,
                "identity.workload[1].issuer",
                "missing required key: preset kubernetes",
            ),
            (
                29,
                7,
                "identity.workload[2].subject",
                "missing required key: without a preset",
            ),
            (
                30,
                7,
                "identity.workload[2].issuer",
                "invalid URL \"https://ci.internal/#top\": a query (?) or fragment",
            ),
            (
                32,
                7,
                "identity.workload[3].audience",
                "missing required key",
            ),
            (
                34,
                7,
                "identity.workload[3].subject",
                "invalid subject template \"ci:{sub\": unclosed {",
            ),
            (
                36,
                9,
                "identity.workload[3].claims.ref",
                "must not be empty",
            ),
            (
                41,
                7,
                "identity.workload[4].subject",
                "invalid subject template \"ci:{}\": empty placeholder",
            ),
        ],
    );
}

#[test]
fn wrong_shapes_are_reported() {
    let errors = parse_err(&with_base(
        "identity:\n  oidc: corp\n  workload:\n    - name: x\n      preset: github\n      audience: a\n      claims: [a]\n      groups: {a: b}\n      colour: red\n",
    ));
    assert_errors(
        &errors,
        &[
            (
                10,
                3,
                "identity.oidc",
                "expected a list of OpenID providers",
            ),
            (
                15,
                7,
                "identity.workload[0].claims",
                "expected a mapping of claims",
            ),
            (
                16,
                7,
                "identity.workload[0].groups",
                "expected a list of names",
            ),
            (
                17,
                7,
                "identity.workload[0].colour",
                "unknown key \"colour\" (expected one of:",
            ),
        ],
    );
}

#[test]
fn check_environment_reports_unreadable_jwks_files() {
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path();
    for name in ["server.crt", "server.key", "signing.pem", "ok.jwks"] {
        std::fs::write(root.join(name), "x").expect("write fixture");
    }
    let text = "\
listen: 127.0.0.1:8443
tls:
  cert: server.crt
  key: server.key
tokens:
  signing_key: signing.pem
store:
  sqlite: sluice.db
identity:
  oidc:
    - name: corp
      issuer: https://idp.example.com
      client_id: cli
      jwks_file: missing.jwks
  workload:
    - name: ok
      preset: github
      audience: sluice
      jwks_file: ok.jwks
    - name: gone
      preset: gitlab
      audience: sluice
      jwks_file: gone.jwks
";
    let config = parse(text, &root.join("sluice.yaml")).expect("valid configuration");
    let found: Vec<(usize, String)> = config
        .check_environment()
        .into_iter()
        .map(|error| (error.location.line, error.key))
        .collect();
    assert_eq!(
        found,
        [
            (14, "identity.oidc[0].jwks_file".to_owned()),
            (23, "identity.workload[1].jwks_file".to_owned()),
        ]
    );
}
