//! The `policy` section as written: roles, rules that name them, defaults, and every problem
//! reported at its key with a suggestion where one is close.

use std::time::Duration;

use super::errors::assert_errors;
use super::{parse_err, parse_ok};
use crate::{Approval, ApprovalOverride};

/// Everything but the policy; line 8 is the first line of what [`with_base`] appends.
const BASE: &str = "\
listen: 127.0.0.1:8443
tls: {cert: c.pem, key: k.pem}
tokens: {signing_key: s.pem}
store: {sqlite: db}
resources:
  pg-prod: {kind: tcp, address: 'db:5432', labels: {env: prod}}
  cache: {kind: tcp, address: 'cache:6379'}
";

fn with_base(policy: &str) -> String {
    format!("{BASE}{policy}")
}

const MINUTE: Duration = Duration::from_secs(60);

#[test]
fn defaults_fill_in_ttl_and_approval() {
    let config = parse_ok(&with_base(
        "\
policy:
  roles:
    short: {max_ttl: 20m}
    long: {max_ttl: 8h}
    gated:
      max_ttl: 1h
      approval: {groups: [leads]}
    unused: {max_ttl: 1h}
  rules:
    - name: r
      groups: [dev]
      labels: {env: prod}
      roles: [short, long, gated]
",
    ));
    let policy = &config.policy;
    let role = |name| policy.role(name).expect("defined");
    // The default TTL is an hour, or max_ttl when that is shorter.
    assert_eq!(role("short").default_ttl, 20 * MINUTE);
    assert_eq!(role("long").default_ttl, 60 * MINUTE);
    assert_eq!(
        role("gated").approval,
        Some(Approval {
            groups: vec!["leads".to_owned()],
            count: 1,
            self_approve: false,
            timeout: 15 * MINUTE,
        })
    );
    // A role no rule lists is fine.
    assert!(policy.role("unused").is_some());
    let rule = &policy.rules[0];
    assert!(rule.resources.is_empty());
    assert_eq!(rule.labels["env"], "prod");
    assert_eq!(rule.approval, None);
}

#[test]
fn rule_approval_is_none_or_a_mapping() {
    let config = parse_ok(&with_base(
        "\
policy:
  roles:
    write: {max_ttl: 1h, approval: {groups: [leads], count: 2, self_approve: TRUE, timeout: 1h}}
  rules:
    - name: dba
      groups: [dba]
      resources: [pg-prod]
      roles: [write]
      approval: none
    - name: oncall
      groups: [oncall]
      resources: [\"*\"]
      roles: [write]
      approval:
        groups: [oncall-leads, sre]
        self_approve: false
",
    ));
    let write = config.policy.role("write").expect("defined");
    let approval = write.approval.as_ref().expect("approval");
    assert_eq!((approval.count, approval.self_approve), (2, true));
    assert_eq!(approval.timeout, 60 * MINUTE);
    assert_eq!(
        config.policy.rules[0].approval,
        Some(ApprovalOverride::None)
    );
    assert_eq!(
        config.policy.rules[1].approval,
        Some(ApprovalOverride::Require(Approval {
            groups: vec!["oncall-leads".to_owned(), "sre".to_owned()],
            count: 1,
            self_approve: false,
            timeout: 15 * MINUTE,
        }))
    );
}

#[test]
fn role_problems_are_located() {
    let text = with_base(
        "\
policy:
  roles:
    read:
      max_ttl: 1h
      default_ttl: 2h
    Write!:
      max_ttl: 1h
    admin:
      max_tll: 1h
      approval:
        groups: []
        count: 0
        self_approve: yes
        timout: 5m
    ops:
      max_ttl: 1h
      approval:
    deploy:
      max_ttl: 1h
      approval: {groups: [leads], count: two, timeout: 0s}
",
    );
    assert_errors(
        &parse_err(&text),
        &[
            (
                12,
                7,
                "policy.roles.read.default_ttl",
                "default_ttl (2h) is longer than max_ttl (1h)",
            ),
            (
                13,
                5,
                "policy.roles.Write!",
                "invalid role name: use 1 to 63 lowercase letters, digits, '-' or '_'",
            ),
            (15, 5, "policy.roles.admin.max_ttl", "missing required key"),
            (
                16,
                7,
                "policy.roles.admin.max_tll",
                "unknown key \"max_tll\"; did you mean \"max_ttl\"?",
            ),
            (
                18,
                9,
                "policy.roles.admin.approval.groups",
                "list at least one group whose members may approve",
            ),
            (
                19,
                9,
                "policy.roles.admin.approval.count",
                "must be at least 1",
            ),
            (
                20,
                9,
                "policy.roles.admin.approval.self_approve",
                "expected true or false, found \"yes\"",
            ),
            (
                21,
                9,
                "policy.roles.admin.approval.timout",
                "unknown key \"timout\"; did you mean \"timeout\"?",
            ),
            (
                24,
                7,
                "policy.roles.ops.approval",
                "a value is required: who must approve",
            ),
            (
                27,
                35,
                "policy.roles.deploy.approval.count",
                "expected a whole number of approvers, e.g. 2, found \"two\"",
            ),
            (
                27,
                47,
                "policy.roles.deploy.approval.timeout",
                "must be longer than zero",
            ),
        ],
    );
}

#[test]
fn rules_must_name_defined_roles() {
    let text = with_base(
        "\
policy:
  roles:
    read: {max_ttl: 8h}
    write: {max_ttl: 1h}
  rules:
    - name: typo
      groups: [dev]
      resources: [pg-prod]
      roles: [read, wrtie, superuser, read]
    - name: no-roles
      groups: [dev]
      resources: [cache]
    - name: empty-roles
      groups: [dev]
      resources: [cache]
      roles: []
    - name: null-roles
      groups: [dev]
      resources: [cache]
      roles:
",
    );
    assert_errors(
        &parse_err(&text),
        &[
            (
                16,
                21,
                "policy.rules[0].roles[1]",
                "no role named \"wrtie\" in policy.roles; did you mean \"write\"?",
            ),
            (
                16,
                28,
                "policy.rules[0].roles[2]",
                "no role named \"superuser\" in policy.roles (defined: read, write)",
            ),
            (
                16,
                39,
                "policy.rules[0].roles[3]",
                "role \"read\" is listed twice",
            ),
            (
                17,
                7,
                "policy.rules[1].roles",
                "missing required key: list the roles this rule gives, defined under \
                 policy.roles, e.g. roles: [read]",
            ),
            (
                23,
                7,
                "policy.rules[2].roles",
                "list at least one role, e.g. [read]; the first is the rule's default",
            ),
            (27, 7, "policy.rules[3].roles", "a value is required"),
        ],
    );
}

#[test]
fn rules_naming_roles_need_a_roles_section() {
    let text = with_base(
        "\
policy:
  rules:
    - name: devs
      groups: [dev]
      resources: [cache]
      roles: [read]
",
    );
    assert_errors(
        &parse_err(&text),
        &[(
            13,
            15,
            "policy.rules[0].roles[0]",
            "no role named \"read\": policy.roles is missing; define it there, e.g. roles: \
             {read: {max_ttl: 8h}}",
        )],
    );
}

#[test]
fn broken_roles_are_reported_once() {
    // A roles section that is not a mapping is one error, not one more per rule naming a role;
    // so is a role with a bad definition.
    let list = with_base(
        "\
policy:
  roles: [read]
  rules:
    - {name: devs, groups: [dev], resources: [cache], roles: [read]}
",
    );
    assert_errors(
        &parse_err(&list),
        &[(
            9,
            3,
            "policy.roles",
            "expected a mapping of role names to roles",
        )],
    );
    let bad_role = with_base(
        "\
policy:
  roles:
    read: {max_ttl: forever}
  rules:
    - {name: devs, groups: [dev], resources: [cache], roles: [read]}
",
    );
    assert_errors(
        &parse_err(&bad_role),
        &[(
            10,
            12,
            "policy.roles.read.max_ttl",
            "invalid duration \"forever\"",
        )],
    );
}

#[test]
fn rule_problems_are_located() {
    let text = with_base(
        "\
policy:
  roles:
    read: {max_ttl: 8h}
  rules:
    - name: nothing-covered
      groups: [dev]
      roles: [read]
    - name: bad-approval
      subjects: [\"github:acme/api:refs/heads/main:*\"]
      resources: [cache]
      roles: [read]
      approval: None
    - name: empty-approval
      groups: [dev]
      labels: {env: prod}
      roles: [read]
      approval:
    - name: approval-list
      groups: [dev]
      resources: [pg-prd]
      roles: [read]
      approval: [leads]
      lables: {env: prod}
",
    );
    assert_errors(
        &parse_err(&text),
        &[
            (
                12,
                7,
                "policy.rules[0].resources",
                "missing required key: a rule needs resources, labels or both",
            ),
            (
                19,
                7,
                "policy.rules[1].approval",
                "unknown approval \"None\"; did you mean \"none\"?",
            ),
            (
                24,
                7,
                "policy.rules[2].approval",
                "a value is required: none to grant at once, or who must approve",
            ),
            (
                27,
                19,
                "policy.rules[3].resources[0]",
                "no resource named \"pg-prd\" in resources; did you mean \"pg-prod\"?",
            ),
            (
                29,
                7,
                "policy.rules[3].approval",
                "expected a mapping with groups, count, self_approve, timeout, found a list",
            ),
            (
                30,
                7,
                "policy.rules[3].lables",
                "unknown key \"lables\"; did you mean \"labels\"?",
            ),
        ],
    );
}

#[test]
fn recording_settings_and_auditors() {
    let config = parse_ok(&with_base(
        "\
policy:
  auditors: {groups: [security]}
  roles:
    plain: {max_ttl: 1h}
    loose: {max_ttl: 1h, record: best-effort, record_rows: 20}
",
    ));
    let role = |name| config.policy.role(name).expect("defined");
    assert_eq!(role("plain").record, crate::RecordMode::Required);
    assert_eq!(role("plain").sql.record_rows, 0);
    assert_eq!(role("loose").record, crate::RecordMode::BestEffort);
    assert_eq!(role("loose").sql.record_rows, 20);
    let security = vec!["security".to_owned()];
    let carol = crate::Principal {
        subject: "carol",
        groups: &security,
    };
    assert!(config.policy.auditors.includes(&carol));
    assert!(!config.policy.auditors.includes(&crate::Principal {
        subject: "carol",
        groups: &[],
    }));
    // Recordings default to a directory beside the store, kept 90 days.
    assert!(config.recording.dir.value.ends_with("recordings"));
    assert_eq!(config.recording.retention.as_secs(), 90 * 24 * 3600);

    let text = with_base(
        "\
policy:
  auditors: {}
  roles:
    a: {max_ttl: 1h, record: requird, record_rows: lots}
recording: {retention: soon, dri: x}
",
    );
    assert_errors(
        &parse_err(&text),
        &[
            (
                9,
                3,
                "policy.auditors",
                "name the auditors with subjects and/or groups, e.g. {groups: [security]}; remove \
                 the key to let everyone see only their own sessions",
            ),
            (
                11,
                22,
                "policy.roles.a.record",
                "unknown record mode \"requird\": write required (refuse or end sessions that \
                 cannot be recorded) or best-effort (go on, and audit the failure); did you mean \
                 \"required\"?",
            ),
            (
                11,
                39,
                "policy.roles.a.record_rows",
                "expected a whole number of result rows to record per statement, 0 to 10000, \
                 found \"lots\"",
            ),
            (
                12,
                13,
                "recording.retention",
                "invalid duration \"soon\" (expected number at 0); write e.g. 30m, 1h or 12h",
            ),
            (
                12,
                30,
                "recording.dri",
                "unknown key \"dri\"; did you mean \"dir\"?",
            ),
        ],
    );
}

/// What the broker's engines enforce today: PostgreSQL everything, TCP nothing.
fn engines(kind: &sluice_shared::api::ResourceKind, _need: crate::Need) -> bool {
    *kind == sluice_shared::api::ResourceKind::Postgres
}

#[test]
fn a_role_is_given_only_where_its_engine_enforces_every_setting() {
    let text = format!(
        "{BASE}  pg: {{kind: postgres, address: 'db:5432', database: app, user: app, password: env:PW}}
policy:
  masking:
    pii: {{columns: [{{name: e, column: '*.email', style: redact}}]}}
  roles:
    read: {{max_ttl: 1h, guardrails: read-only}}
    masked:
      max_ttl: 1h
      masking: pii
      record_rows: 5
    plain: {{max_ttl: 1h}}
    quiet: {{max_ttl: 1h, record: best-effort}}
  rules:
    - name: everything
      groups: [dev]
      resources: ['*']
      roles: [plain, quiet, read, masked]
    - name: db-only
      groups: [dev]
      resources: [pg]
      roles: [read, masked]
"
    );
    let config = parse_ok(&text);
    let errors = config.unenforceable(engines);
    let found: Vec<(usize, &str, &str)> = errors
        .iter()
        .map(|e| (e.location.line, e.key.as_str(), e.message.as_str()))
        .collect();
    // Two tcp resources, but each (rule, role, kind, setting) is said once; the postgres-only
    // rule and the roles without such settings pass.
    assert_eq!(found.len(), 3, "{found:#?}");
    for (line, key, _) in &found {
        assert_eq!((*line, *key), (21, "policy.rules[0].roles"));
    }
    assert!(
        found[0].2.starts_with(
            "rule \"everything\" gives role \"read\" on resource \"pg-prod\" (kind tcp), whose \
         engine cannot enforce the role's policy.roles.read.guardrails (written at"
        ),
        "{}",
        found[0].2
    );
    assert!(found[0].2.contains(":13:"), "{}", found[0].2);
    assert!(
        found[1].2.contains("policy.roles.masked.masking"),
        "{}",
        found[1].2
    );
    assert!(
        found[2].2.contains("policy.roles.masked.record_rows"),
        "{}",
        found[2].2
    );
    assert!(found[2].2.contains("content recording"), "{}", found[2].2);
}
