//! `sluiced policy explain` against a real configuration file: the text and JSON answers, and
//! the exit codes (0 grant, 1 refuse, 2 bad configuration or resource).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Only the policy matters to `explain`: the files the rest refers to need not exist.
const CONFIG: &str = "\
listen: 127.0.0.1:8443
tls: {cert: tls/server.crt, key: tls/server.key}
tokens: {signing_key: keys/session-signing.pem}
store: {sqlite: sluice.db}
resources:
  pg-prod: {kind: tcp, address: 'db:5432', labels: {env: prod}}
  pg-staging: {kind: tcp, address: 'db2:5432', labels: {env: staging}}
policy:
  roles:
    read:
      description: Read-only queries
      max_ttl: 8h
    write:
      max_ttl: 1h
      approval: {groups: [dba-leads], count: 2, timeout: 30m}
    migrate:
      max_ttl: 30m
      guardrails: ddl-only
  rules:
    - name: engineers-read
      groups: [engineering]
      resources: [\"pg-*\"]
      roles: [read]
    - name: dba-write
      groups: [dba]
      labels: {env: prod}
      roles: [write, read]
    - name: ci-migrate
      subjects: [\"github:acme/api:refs/heads/main:*\"]
      resources: [pg-prod]
      roles: [migrate]
      approval: none
  guardrails:
    ddl-only: {base: guarded-write}
";

struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new(config: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("sluice.yaml"), config).expect("write config");
        Self { dir }
    }

    fn config(&self) -> PathBuf {
        self.dir.path().join("sluice.yaml")
    }

    fn explain(&self, args: &[&str]) -> Output {
        explain(&self.config(), args)
    }
}

fn explain(config: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sluiced"))
        .args(["policy", "explain", "--config"])
        .arg(config)
        .args(args)
        .env_remove("SLUICED_CONFIG")
        .output()
        .expect("run sluiced policy explain")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn an_automatic_grant_with_a_capped_ttl() {
    let fixture = Fixture::new(CONFIG);
    let out = fixture.explain(&[
        "--subject",
        "alice",
        "--groups",
        "engineering",
        "--resource",
        "pg-staging",
        "--ttl",
        "10h",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let file = fixture.config().display().to_string();
    assert_eq!(
        stdout(&out),
        format!(
            "decision: grant (auto)\n\
             rule:     engineers-read ({file}:20)\n\
             role:     read (Read-only queries)\n\
             ttl:      8h (asked 10h, capped at the role's max_ttl 8h)\n\
             approval: none\n"
        )
    );
}

#[test]
fn a_grant_after_approval_names_the_quorum() {
    let fixture = Fixture::new(CONFIG);
    let out = fixture.explain(&[
        "--subject",
        "bob",
        "--groups",
        "dba",
        "--resource",
        "pg-prod",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.starts_with("decision: grant after approval\n"),
        "{text}"
    );
    assert!(text.contains("role:     write\n"), "{text}");
    assert!(
        text.contains("ttl:      1h (the role's default_ttl; max_ttl 1h)\n"),
        "{text}"
    );
    assert!(
        text.contains(
            "approval: 2 of dba-leads, self-approval not allowed, expires after 30m undecided\n"
        ),
        "{text}"
    );
}

#[test]
fn a_workload_subject_and_a_rule_that_waives_approval() {
    let fixture = Fixture::new(CONFIG);
    let out = fixture.explain(&[
        "--subject",
        "github:acme/api:refs/heads/main:migrations",
        "--resource",
        "pg-prod",
        "--role",
        "migrate",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.starts_with("decision: grant (auto)\n"), "{text}");
    assert!(
        text.contains("approval: none (set by the rule, not the role)\n"),
        "{text}"
    );
    assert!(
        text.contains("guardrails: ddl-only (not enforced yet)\n"),
        "{text}"
    );

    let feature_branch = fixture.explain(&[
        "--subject",
        "github:acme/api:refs/heads/feature:migrations",
        "--resource",
        "pg-prod",
    ]);
    assert_eq!(feature_branch.status.code(), Some(1));
}

#[test]
fn a_refusal_names_the_roles_one_could_request() {
    let fixture = Fixture::new(CONFIG);
    let out = fixture.explain(&[
        "--subject",
        "alice",
        "--groups",
        "engineering,ops",
        "--resource",
        "pg-prod",
        "--role",
        "write",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "decision: refuse\n\
         reason:   no policy rule gives alice (groups: engineering, ops) the role \"write\" on \
         \"pg-prod\"; roles you may request there: read\n"
    );
}

#[test]
fn json_output() {
    let fixture = Fixture::new(CONFIG);
    let out = fixture.explain(&[
        "--subject",
        "bob",
        "--groups",
        "dba",
        "--resource",
        "pg-prod",
        "--ttl",
        "2h",
        "--output",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let answer: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("one JSON object");
    let file = fixture.config().display().to_string();
    assert_eq!(
        answer,
        serde_json::json!({
            "decision": "grant_after_approval",
            "subject": "bob",
            "groups": ["dba"],
            "resource": "pg-prod",
            "rule": "dba-write",
            "rule_location": format!("{file}:24:7"),
            "role": "write",
            "ttl_secs": 3600,
            "requested_ttl_secs": 7200,
            "max_ttl_secs": 3600,
            "approval": {
                "groups": ["dba-leads"],
                "count": 2,
                "self_approve": false,
                "timeout_secs": 1800,
            },
            "approval_source": "role",
            "guardrails": null,
            "masking": null,
        })
    );

    let refused = fixture.explain(&[
        "--subject",
        "mallory",
        "--resource",
        "pg-prod",
        "--role",
        "raed",
        "--output",
        "json",
    ]);
    assert_eq!(refused.status.code(), Some(1));
    let answer: serde_json::Value =
        serde_json::from_str(&stdout(&refused)).expect("one JSON object");
    assert_eq!(answer["decision"], "refuse");
    assert_eq!(answer["reason"], "unknown_role");
    assert_eq!(answer["requestable"], serde_json::json!([]));
    assert_eq!(
        answer["message"],
        "there is no role \"raed\" (did you mean \"read\"?); policy gives mallory (groups: none) \
         no access to \"pg-prod\""
    );
}

#[test]
fn an_unknown_resource_lists_the_configured_ones() {
    let fixture = Fixture::new(CONFIG);
    let out = fixture.explain(&["--subject", "alice", "--resource", "pg-main"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stdout(&out).is_empty());
    let err = stderr(&out);
    assert!(
        err.contains("no resource named \"pg-main\"")
            && err.contains("configured: pg-prod, pg-staging"),
        "{err}"
    );
}

#[test]
fn configuration_problems_are_reported_like_check_config() {
    let broken = CONFIG.replace("roles: [read]", "roles: [raed]");
    let fixture = Fixture::new(&broken);
    let out = fixture.explain(&["--subject", "alice", "--resource", "pg-prod"]);
    assert_eq!(out.status.code(), Some(2));
    let file = fixture.config().display().to_string();
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "{file}:23:15: policy.rules[0].roles[0]: no role named \"raed\" in policy.roles; did \
             you mean \"read\"?"
        )),
        "{err}"
    );
    assert!(err.contains("1 problem(s) found"), "{err}");
}

#[test]
fn a_zero_ttl_is_an_argument_error() {
    let fixture = Fixture::new(CONFIG);
    let out = fixture.explain(&["--subject", "alice", "--resource", "pg-prod", "--ttl", "0s"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("must be longer than zero"));
}
