//! Valid configurations parse to exactly the expected model.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use sluice_shared::api::ResourceKind;

use super::{at, loc, parse_ok};
use crate::SqlRole;
use crate::{
    Approval, ApprovalOverride, Auditors, ColumnMaskSpec, Config, CredentialRef, DetectorKind,
    DetectorSpec, GuardAction, GuardBase, GuardRuleSpec, GuardrailProfile, GuardrailsRef,
    IdentityConfig, MaskStyle, MaskingProfile, Need, Policy, PostgresSpec, RecordMode,
    RecordingConfig, Resource, ResourceSpec, Role, Rule, StoreConfig, TargetTls, TcpSpec,
    TlsConfig, TlsMode, TokensConfig,
};

pub(super) const FULL: &str = r#"# sluiced configuration.
listen: 127.0.0.1:8443
tls:
  cert: tls/server.crt
  key: /abs/server.key
  ca: tls/ca.crt
tokens:
  signing_key: keys/session-signing.pem
  default_ttl: 30m
  max_ttl: 8h
store:
  sqlite: data/sluice.db
resources:
  pg-main:
    kind: postgres
    address: db.internal:5432
    database: app
    user: app
    password: env:PG_APP_PASSWORD
    tls:
      mode: verify-full
      ca: tls/pg-ca.crt
    labels: {env: prod, team: core}
    description: Main app DB
  pg-replica:
    kind: postgres
    address: "[::1]:5433"
    database: app
    user: reader
    password: file:secrets/pg-reader
    tls:
      mode: require
      server_name: replica.internal
  cache:
    kind: tcp
    address: 127.0.0.1:6379
policy:
  roles:
    read:
      description: Read-only queries
      max_ttl: 8h
      guardrails: read-only
    write:
      max_ttl: 1h
      default_ttl: 30m
      guardrails: analyst
      masking: pii
      approval:
        groups: [dba-leads, sre]
        count: 2
        self_approve: true
        timeout: 30m
  rules:
    - name: dba-all
      subjects: [alice, "github:acme/*:refs/heads/main:*"]
      groups: [dba]
      resources: ["*"]
      roles: [read, write]
      approval: none
    - name: devs-cache
      groups:
        - dev
      resources: [cache, "pg-r*"]
      roles: [read]
      approval: {groups: [leads]}
    - name: prod-by-label
      groups: [oncall]
      labels: {env: prod}
      roles: [write]
  guardrails:
    analyst:
      base: guarded-write
      approvers: [dba-leads]
      approval_timeout: 10m
      rules:
        - name: no-payroll
          action: block
          classes: [write, ddl]
          tables: ["payroll.*", "*.salaries", users]
          message: Payroll is read-only here
        - name: hold-drops
          action: approve
          commands: [drop table, "TRUNCATE"]
          schemas: [payroll]
          functions: ["pg_read_*"]
          pattern: "*pg_sleep*"
  masking:
    pii:
      key: env:SLUICE_MASK_KEY
      columns:
        - {name: emails, column: "*.email", style: hash}
        - {name: ssn, column: "re:^(ssn|tax_id)$", style: redact}
      detectors:
        - name: cards
          detector: card
          style: last4
  auditors: {groups: [security], subjects: [carol]}
recording:
  dir: recs
  retention: 30d
"#;

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|item| (*item).to_owned()).collect()
}

#[test]
fn full_example_parses_to_the_expected_model() {
    let expected = Config {
        source: PathBuf::from("/etc/sluice/sluice.yaml"),
        listen: "127.0.0.1:8443".parse().expect("address"),
        tls: TlsConfig {
            cert: at(
                PathBuf::from("/etc/sluice/tls/server.crt"),
                4,
                3,
                "tls.cert",
            ),
            key: at(PathBuf::from("/abs/server.key"), 5, 3, "tls.key"),
            ca: Some(at(PathBuf::from("/etc/sluice/tls/ca.crt"), 6, 3, "tls.ca")),
        },
        tokens: TokensConfig {
            signing_key: at(
                PathBuf::from("/etc/sluice/keys/session-signing.pem"),
                8,
                3,
                "tokens.signing_key",
            ),
            default_ttl: Duration::from_secs(30 * 60),
            max_ttl: Duration::from_secs(8 * 3600),
        },
        store: StoreConfig::Sqlite(at(
            PathBuf::from("/etc/sluice/data/sluice.db"),
            12,
            3,
            "store.sqlite",
        )),
        resources: vec![
            Resource {
                name: "pg-main".into(),
                description: Some("Main app DB".into()),
                labels: BTreeMap::from([
                    ("env".to_owned(), "prod".to_owned()),
                    ("team".to_owned(), "core".to_owned()),
                ]),
                spec: ResourceSpec::Postgres(PostgresSpec {
                    address: "db.internal:5432".into(),
                    database: "app".into(),
                    user: "app".into(),
                    password: at(
                        CredentialRef::Env("PG_APP_PASSWORD".into()),
                        19,
                        5,
                        "resources.pg-main.password",
                    ),
                    tls: TargetTls {
                        mode: TlsMode::VerifyFull,
                        ca: Some(at(
                            PathBuf::from("/etc/sluice/tls/pg-ca.crt"),
                            22,
                            7,
                            "resources.pg-main.tls.ca",
                        )),
                        server_name: None,
                    },
                    superuser_login: Default::default(),
                }),
                location: loc(14, 3),
            },
            Resource {
                name: "pg-replica".into(),
                description: None,
                labels: BTreeMap::new(),
                spec: ResourceSpec::Postgres(PostgresSpec {
                    address: "[::1]:5433".into(),
                    database: "app".into(),
                    user: "reader".into(),
                    password: at(
                        CredentialRef::File(PathBuf::from("/etc/sluice/secrets/pg-reader")),
                        30,
                        5,
                        "resources.pg-replica.password",
                    ),
                    tls: TargetTls {
                        mode: TlsMode::Require,
                        ca: None,
                        server_name: Some("replica.internal".into()),
                    },
                    superuser_login: Default::default(),
                }),
                location: loc(25, 3),
            },
            Resource {
                name: "cache".into(),
                description: None,
                labels: BTreeMap::new(),
                spec: ResourceSpec::Tcp(TcpSpec {
                    address: "127.0.0.1:6379".into(),
                }),
                location: loc(34, 3),
            },
        ],
        policy: Policy {
            roles: vec![
                Role {
                    name: "read".into(),
                    description: Some("Read-only queries".into()),
                    max_ttl: Duration::from_secs(8 * 3600),
                    // Defaults to an hour when max_ttl allows it.
                    default_ttl: Duration::from_secs(3600),
                    approval: None,
                    record: RecordMode::Required,
                    sql: SqlRole {
                        guardrails: Some(GuardrailsRef::Builtin(GuardBase::ReadOnly)),
                        masking: None,
                        record_rows: 0,
                        agent_writes: None,
                    },
                    needs: vec![at(
                        Need::SqlGuardrails,
                        42,
                        7,
                        "policy.roles.read.guardrails",
                    )],
                    ssh: None,
                    kube: None,
                    http: None,
                    location: loc(39, 5),
                },
                Role {
                    name: "write".into(),
                    description: None,
                    max_ttl: Duration::from_secs(3600),
                    default_ttl: Duration::from_secs(30 * 60),
                    approval: Some(Approval {
                        groups: strings(&["dba-leads", "sre"]),
                        count: 2,
                        self_approve: true,
                        timeout: Duration::from_secs(30 * 60),
                    }),
                    record: RecordMode::Required,
                    sql: SqlRole {
                        guardrails: Some(GuardrailsRef::Profile("analyst".into())),
                        masking: Some("pii".into()),
                        record_rows: 0,
                        agent_writes: None,
                    },
                    needs: vec![
                        at(Need::SqlGuardrails, 46, 7, "policy.roles.write.guardrails"),
                        at(Need::SqlMasking, 47, 7, "policy.roles.write.masking"),
                    ],
                    ssh: None,
                    kube: None,
                    http: None,
                    location: loc(43, 5),
                },
            ],
            rules: vec![
                Rule {
                    name: "dba-all".into(),
                    subjects: strings(&["alice", "github:acme/*:refs/heads/main:*"]),
                    groups: strings(&["dba"]),
                    resources: strings(&["*"]),
                    labels: BTreeMap::new(),
                    roles: strings(&["read", "write"]),
                    approval: Some(ApprovalOverride::None),
                    location: loc(54, 7),
                },
                Rule {
                    name: "devs-cache".into(),
                    subjects: Vec::new(),
                    groups: strings(&["dev"]),
                    resources: strings(&["cache", "pg-r*"]),
                    labels: BTreeMap::new(),
                    roles: strings(&["read"]),
                    // Defaults: one approver, no self-approval, 15 minutes.
                    approval: Some(ApprovalOverride::Require(Approval {
                        groups: strings(&["leads"]),
                        count: 1,
                        self_approve: false,
                        timeout: Duration::from_secs(15 * 60),
                    })),
                    location: loc(60, 7),
                },
                Rule {
                    name: "prod-by-label".into(),
                    subjects: Vec::new(),
                    groups: strings(&["oncall"]),
                    resources: Vec::new(),
                    labels: BTreeMap::from([("env".to_owned(), "prod".to_owned())]),
                    roles: strings(&["write"]),
                    approval: None,
                    location: loc(66, 7),
                },
            ],
            guardrails: vec![GuardrailProfile {
                name: "analyst".into(),
                base: GuardBase::GuardedWrite,
                approvers: strings(&["dba-leads"]),
                approval_timeout: Duration::from_secs(10 * 60),
                rules: vec![
                    GuardRuleSpec {
                        name: "no-payroll".into(),
                        action: GuardAction::Block,
                        classes: strings(&["write", "ddl"]),
                        tables: strings(&["payroll.*", "*.salaries", "users"]),
                        schemas: Vec::new(),
                        functions: Vec::new(),
                        commands: Vec::new(),
                        pattern: None,
                        message: Some("Payroll is read-only here".into()),
                        location: loc(76, 11),
                    },
                    GuardRuleSpec {
                        name: "hold-drops".into(),
                        action: GuardAction::Approve,
                        classes: Vec::new(),
                        tables: Vec::new(),
                        schemas: strings(&["payroll"]),
                        functions: strings(&["pg_read_*"]),
                        // Stored upper case, as the guard compares command tags.
                        commands: strings(&["DROP TABLE", "TRUNCATE"]),
                        pattern: Some("*pg_sleep*".into()),
                        message: None,
                        location: loc(81, 11),
                    },
                ],
                location: loc(71, 5),
            }],
            masking: vec![MaskingProfile {
                name: "pii".into(),
                key: Some(at(
                    CredentialRef::Env("SLUICE_MASK_KEY".into()),
                    89,
                    7,
                    "policy.masking.pii.key",
                )),
                columns: vec![
                    ColumnMaskSpec {
                        name: "emails".into(),
                        column: "*.email".into(),
                        style: MaskStyle::Hash,
                        location: loc(91, 12),
                    },
                    ColumnMaskSpec {
                        name: "ssn".into(),
                        column: "re:^(ssn|tax_id)$".into(),
                        style: MaskStyle::Redact,
                        location: loc(92, 12),
                    },
                ],
                detectors: vec![DetectorSpec {
                    name: "cards".into(),
                    detector: DetectorKind::Card,
                    style: MaskStyle::Last4,
                    location: loc(94, 11),
                }],
                location: loc(88, 5),
            }],
            auditors: Auditors {
                subjects: strings(&["carol"]),
                groups: strings(&["security"]),
            },
        },
        recording: RecordingConfig {
            dir: at(PathBuf::from("/etc/sluice/recs"), 99, 3, "recording.dir"),
            s3: None,
            retention: Duration::from_secs(30 * 24 * 3600),
        },
        identity: IdentityConfig::default(),
        limits: crate::LimitsConfig::default(),
        metrics: None,
    };
    assert_eq!(parse_ok(FULL), expected);
}

#[test]
fn accessors_answer_from_the_model() {
    let config = parse_ok(FULL);
    let main = config.resource("pg-main").expect("pg-main is configured");
    assert_eq!(main.kind(), ResourceKind::Postgres);
    assert_eq!(main.address(), "db.internal:5432");
    let cache = config.resource("cache").expect("cache is configured");
    assert_eq!(cache.kind(), ResourceKind::Tcp);
    assert_eq!(cache.address(), "127.0.0.1:6379");
    assert!(config.resource("nope").is_none());

    let server_names: Vec<&str> = config
        .resources
        .iter()
        .filter_map(|resource| match &resource.spec {
            ResourceSpec::Postgres(spec) => Some(spec.server_name()),
            _ => None,
        })
        .collect();
    // Defaults to the address host (brackets removed), unless set explicitly.
    assert_eq!(server_names, ["db.internal", "replica.internal"]);

    let policy = &config.policy;
    let write = policy.role("write").expect("write is defined");
    let guardrails = write.sql.guardrails.as_ref().expect("write has guardrails");
    let profile = policy
        .guardrail_profile(guardrails.name())
        .expect("a role names only defined profiles");
    assert_eq!(profile.rules.len(), 2);
    let masking = write.sql.masking.as_deref().expect("write is masked");
    assert_eq!(
        policy.masking_profile(masking).map(|p| p.columns.len()),
        Some(2)
    );
    assert!(policy.guardrail_profile("read-only").is_none());
    assert!(policy.masking_profile("analyst").is_none());
}

#[test]
fn minimal_config_takes_defaults() {
    let config = parse_ok(
        "listen: '[::1]:9000'\n\
         tls: {cert: c.pem, key: k.pem}\n\
         tokens: {signing_key: s.pem}\n\
         store: {sqlite: db.sqlite}\n",
    );
    assert_eq!(config.listen, "[::1]:9000".parse().expect("address"));
    assert_eq!(config.tls.ca, None);
    assert_eq!(config.tokens.default_ttl, Duration::from_secs(3600));
    assert_eq!(config.tokens.max_ttl, Duration::from_secs(12 * 3600));
    assert!(config.resources.is_empty());
    assert!(config.policy.rules.is_empty());
}

#[test]
fn empty_sections_are_empty_not_errors() {
    let config = parse_ok(
        "listen: 127.0.0.1:8443\n\
         tls: {cert: c.pem, key: k.pem}\n\
         tokens: {signing_key: s.pem, default_ttl: 12h}\n\
         store: {sqlite: db.sqlite}\n\
         resources:\n\
         policy:\n  rules:\n",
    );
    assert!(config.resources.is_empty());
    assert!(config.policy.rules.is_empty());
    assert_eq!(config.tokens.default_ttl, config.tokens.max_ttl);
}

#[test]
fn relative_paths_resolve_against_the_config_directory() {
    let text = "listen: 127.0.0.1:8443\n\
                tls: {cert: tls/c.pem, key: /k.pem}\n\
                tokens: {signing_key: s.pem}\n\
                store: {sqlite: db.sqlite}\n";
    let nested = crate::parse(text, std::path::Path::new("conf/sluice.yaml")).expect("valid");
    assert_eq!(nested.tls.cert.value, PathBuf::from("conf/tls/c.pem"));
    assert_eq!(nested.tls.key.value, PathBuf::from("/k.pem"));
    // A bare file name has an empty parent: paths stay relative to the working directory.
    let bare = crate::parse(text, std::path::Path::new("sluice.yaml")).expect("valid");
    assert_eq!(
        bare.store
            .sqlite()
            .map(|s| s.value.clone())
            .unwrap_or_default(),
        PathBuf::from("db.sqlite")
    );
}
