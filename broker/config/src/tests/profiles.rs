//! `policy.guardrails` and `policy.masking`: profiles as written, the roles that name them, and
//! every problem reported at its key with a suggestion where one is close.

use std::time::Duration;

use super::errors::assert_errors;
use super::{parse_err, parse_ok};
use crate::{
    CredentialRef, DetectorKind, GuardAction, GuardBase, GuardrailsRef, MaskStyle, Policy,
};

/// Everything but the policy; line 6 is the first line of what [`with_base`] appends.
const BASE: &str = "\
listen: 127.0.0.1:8443
tls: {cert: c.pem, key: k.pem}
tokens: {signing_key: s.pem}
store: {sqlite: db}
resources: {pg: {kind: tcp, address: 'db:5432'}}
";

fn with_base(policy: &str) -> String {
    format!("{BASE}{policy}")
}

fn policy(text: &str) -> Policy {
    parse_ok(&with_base(text)).policy
}

/// The example of the task description and `docs/policy.md`, as an operator would write it.
const EXAMPLE: &str = "\
policy:
  guardrails:
    analyst:
      base: read-only
      approvers: [dba-leads]
      approval_timeout: 5m
      rules:
        - name: no-payroll
          action: block
          classes: [write, ddl]
          tables: [\"payroll.*\", \"*.salaries\", \"users\"]
          schemas: [payroll]
          functions: [\"pg_read_*\"]
          commands: [\"DROP TABLE\", \"truncate\", \"drop   *\"]
          pattern: \"*pg_sleep*\"
          message: \"Payroll is off limits; ask #dba\"
        - name: hold-writes
          action: approve
          classes: [write]
    unused:
      base: admin
  masking:
    pii:
      key: env:SLUICE_MASK_KEY
      columns:
        - name: emails
          column: \"*.email\"
          style: hash
        - name: ssn
          column: \"re:^(ssn|tax_id)$\"
          style: redact
      detectors:
        - name: cards
          detector: card
          style: last4
    light:
      detectors:
        - {name: secrets, detector: secret, style: redact}
  roles:
    read:
      max_ttl: 8h
      guardrails: analyst
      masking: pii
    write:
      max_ttl: 1h
      guardrails: guarded-write
      masking: light
    ops:
      max_ttl: 1h
";

#[test]
fn profiles_parse_into_the_model() {
    let policy = policy(EXAMPLE);
    let analyst = policy.guardrail_profile("analyst").expect("defined");
    assert_eq!(analyst.base, GuardBase::ReadOnly);
    assert_eq!(analyst.approvers, ["dba-leads"]);
    assert_eq!(analyst.approval_timeout, Duration::from_secs(5 * 60));
    assert_eq!(analyst.location.line, 8);
    let names: Vec<(&str, GuardAction)> = analyst
        .rules
        .iter()
        .map(|rule| (rule.name.as_str(), rule.action))
        .collect();
    assert_eq!(
        names,
        [
            ("no-payroll", GuardAction::Block),
            ("hold-writes", GuardAction::Approve)
        ]
    );
    let rule = &analyst.rules[0];
    assert_eq!(rule.classes, ["write", "ddl"]);
    assert_eq!(rule.tables, ["payroll.*", "*.salaries", "users"]);
    assert_eq!(rule.schemas, ["payroll"]);
    assert_eq!(rule.functions, ["pg_read_*"]);
    // Command tags are stored as the guard compares them: upper case, single spaces.
    assert_eq!(rule.commands, ["DROP TABLE", "TRUNCATE", "DROP *"]);
    assert_eq!(rule.pattern.as_deref(), Some("*pg_sleep*"));
    assert_eq!(
        rule.message.as_deref(),
        Some("Payroll is off limits; ask #dba")
    );
    assert_eq!((rule.location.line, rule.location.column), (13, 11));
    let hold = &analyst.rules[1];
    assert!(hold.tables.is_empty() && hold.pattern.is_none() && hold.message.is_none());

    // A profile no role names is fine, and takes the defaults.
    let unused = policy.guardrail_profile("unused").expect("defined");
    assert_eq!(unused.base, GuardBase::Admin);
    assert!(unused.approvers.is_empty() && unused.rules.is_empty());
    assert_eq!(unused.approval_timeout, Duration::from_secs(5 * 60));
    // Built-ins are not profiles.
    assert!(policy.guardrail_profile("read-only").is_none());

    let pii = policy.masking_profile("pii").expect("defined");
    let key = pii.key.as_ref().expect("a key");
    assert_eq!(key.value, CredentialRef::Env("SLUICE_MASK_KEY".into()));
    assert_eq!(key.key, "policy.masking.pii.key");
    let columns: Vec<(&str, &str, MaskStyle)> = pii
        .columns
        .iter()
        .map(|rule| (rule.name.as_str(), rule.column.as_str(), rule.style))
        .collect();
    assert_eq!(
        columns,
        [
            ("emails", "*.email", MaskStyle::Hash),
            ("ssn", "re:^(ssn|tax_id)$", MaskStyle::Redact)
        ]
    );
    assert_eq!(pii.detectors.len(), 1);
    assert_eq!(
        (pii.detectors[0].detector, pii.detectors[0].style),
        (DetectorKind::Card, MaskStyle::Last4)
    );
    // No hash style, so no key needed.
    let light = policy.masking_profile("light").expect("defined");
    assert_eq!(light.key, None);
    assert_eq!(light.detectors[0].detector, DetectorKind::Secret);
    assert!(policy.masking_profile("nope").is_none());

    let role = |name| policy.role(name).expect("defined");
    assert_eq!(
        role("read").sql.guardrails,
        Some(GuardrailsRef::Profile("analyst".into()))
    );
    assert_eq!(role("read").sql.masking.as_deref(), Some("pii"));
    assert_eq!(
        role("write").sql.guardrails,
        Some(GuardrailsRef::Builtin(GuardBase::GuardedWrite))
    );
    assert_eq!(role("write").sql.masking.as_deref(), Some("light"));
    assert_eq!(
        (&role("ops").sql.guardrails, &role("ops").sql.masking),
        (&None, &None)
    );
}

#[test]
fn spellings_round_trip() {
    for base in GuardBase::ALL {
        assert_eq!(GuardBase::from_name(base.as_str()), Some(base));
        let reference = GuardrailsRef::Builtin(base);
        assert_eq!(reference.name(), base.as_str());
        assert_eq!(reference.to_string(), base.as_str());
    }
    assert_eq!(GuardrailsRef::Profile("analyst".into()).name(), "analyst");
    let spelled: Vec<&str> = DetectorKind::ALL.map(DetectorKind::as_str).to_vec();
    assert_eq!(spelled, ["card", "email", "ssn", "iban", "phone", "secret"]);
    let styles: Vec<String> = MaskStyle::ALL.map(|style| style.to_string()).to_vec();
    assert_eq!(styles, ["redact", "last4", "hash"]);
    assert_eq!(GuardAction::Approve.to_string(), "approve");
}

#[test]
fn every_statement_class_is_accepted() {
    let policy = policy(
        "\
policy:
  guardrails:
    all:
      base: read-only
      rules:
        - name: everything
          action: block
          classes: [read, write, ddl, dcl, admin, procedural, transaction, session, copy, unknown]
",
    );
    let profile = policy.guardrail_profile("all").expect("defined");
    assert_eq!(profile.rules[0].classes.len(), 10);
}

#[test]
fn guardrail_profile_problems_are_located() {
    let text = with_base(
        "\
policy:
  guardrails:
    read-only:
      base: read-only
    Analyst:
      base: read-only
    nobase:
      approvers: []
      approval_timeout: soon
    typo:
      base: readonly
      rules:
        - name: no-matcher
          action: block
          message: nope
        - name: no-matcher
          action: deny
          classes: [write, dml, Read]
          tables: [\"a.b.c\", \"payroll.\"]
          schemas: [\"pay.roll\"]
          functions: []
          commands: [\"DROP TABLE;\"]
          pattern: \"\"
          colour: red
        - action: approve
          tables: [users]
",
    );
    let p = "policy.guardrails";
    assert_errors(
        &parse_err(&text),
        &[
            (
                8,
                5,
                "policy.guardrails.read-only",
                "\"read-only\" is a built-in profile; give this profile another name (it can \
                 extend the built-in with base: read-only)",
            ),
            (
                10,
                5,
                "policy.guardrails.Analyst",
                "invalid guardrails profile name: use 1 to 63 lowercase letters",
            ),
            (
                12,
                5,
                "policy.guardrails.nobase.base",
                "missing required key",
            ),
            (
                13,
                7,
                "policy.guardrails.nobase.approvers",
                "list at least one group whose members may approve held statements, or remove \
                 approvers to use the role's approval groups",
            ),
            (
                14,
                7,
                "policy.guardrails.nobase.approval_timeout",
                "invalid duration \"soon\"",
            ),
            (
                16,
                7,
                "policy.guardrails.typo.base",
                "unknown base \"readonly\"; did you mean \"read-only\"?",
            ),
            (
                18,
                11,
                &format!("{p}.typo.rules[0]"),
                "a guardrail rule needs at least one of classes, tables, schemas, functions, \
                 commands, pattern; to match every statement write pattern: \"*\"",
            ),
            (
                21,
                11,
                &format!("{p}.typo.rules[1].name"),
                "duplicate rule name \"no-matcher\" in this profile (first used at line 18)",
            ),
            (
                22,
                11,
                &format!("{p}.typo.rules[1].action"),
                "unknown action \"deny\"; expected one of block, approve",
            ),
            (
                23,
                28,
                &format!("{p}.typo.rules[1].classes[1]"),
                "unknown class \"dml\"",
            ),
            (
                23,
                33,
                &format!("{p}.typo.rules[1].classes[2]"),
                "unknown class \"Read\"; did you mean \"read\"?",
            ),
            (
                24,
                20,
                &format!("{p}.typo.rules[1].tables[0]"),
                "\"a.b.c\" has too many dots; write table or schema.table",
            ),
            (
                24,
                29,
                &format!("{p}.typo.rules[1].tables[1]"),
                "\"payroll.\" has an empty part; write table or schema.table",
            ),
            (
                25,
                21,
                &format!("{p}.typo.rules[1].schemas[0]"),
                "\"pay.roll\" has too many dots; write a schema name, without a dot",
            ),
            (
                26,
                11,
                &format!("{p}.typo.rules[1].functions"),
                "list at least one function or glob, e.g. [\"pg_read_*\"], or remove the key",
            ),
            (
                27,
                22,
                &format!("{p}.typo.rules[1].commands[0]"),
                "\"DROP TABLE;\" is not a command tag",
            ),
            (
                28,
                11,
                &format!("{p}.typo.rules[1].pattern"),
                "must not be empty",
            ),
            (
                29,
                11,
                &format!("{p}.typo.rules[1].colour"),
                "unknown key \"colour\" (expected one of: name, action, classes,",
            ),
            (
                30,
                11,
                &format!("{p}.typo.rules[2].name"),
                "missing required key",
            ),
        ],
    );
}

#[test]
fn masking_profile_problems_are_located() {
    let text = with_base(
        "\
policy:
  masking:
    pii:
      key: hunter2
      columns:
        - {name: a, column: \"re:\", style: redact}
        - {name: a, column: \"x..y\", style: hash}
    nokey:
      columns:
        - {name: emails, column: email, style: hash}
      detectors:
        - {name: emails, detector: card, style: last4}
        - {name: cards, detector: cards, style: last5}
        - {name: more-cards, detector: card, style: redact}
        - {name: x, style: redact}
      redact: [ssn]
    Bad Name: {}
",
    );
    let p = "policy.masking";
    let errors = parse_err(&text);
    assert_errors(
        &errors,
        &[
            (
                9,
                7,
                "policy.masking.pii.key",
                "inline secrets are not allowed; use env:NAME or file:PATH",
            ),
            (
                11,
                21,
                &format!("{p}.pii.columns[0].column"),
                "re: must be followed by a regular expression",
            ),
            (
                12,
                12,
                &format!("{p}.pii.columns[1].name"),
                "duplicate rule name \"a\" in this profile (first used at line 11)",
            ),
            (
                12,
                21,
                &format!("{p}.pii.columns[1].column"),
                "\"x..y\" has an empty part; write column, table.column or schema.table.column",
            ),
            (
                15,
                41,
                &format!("{p}.nokey.columns[0].style"),
                "style hash needs the profile's key: add key: env:NAME or file:PATH to this \
                 masking profile",
            ),
            (
                17,
                12,
                &format!("{p}.nokey.detectors[0].name"),
                "duplicate rule name \"emails\" in this profile (first used at line 15)",
            ),
            (
                18,
                25,
                &format!("{p}.nokey.detectors[1].detector"),
                "unknown detector \"cards\"; did you mean \"card\"?",
            ),
            (
                18,
                42,
                &format!("{p}.nokey.detectors[1].style"),
                "unknown style \"last5\"; did you mean \"last4\"?",
            ),
            (
                19,
                30,
                &format!("{p}.nokey.detectors[2].detector"),
                "detector card is already used by the rule at line 17; write one rule per \
                 detector",
            ),
            (
                20,
                12,
                &format!("{p}.nokey.detectors[3].detector"),
                "missing required key",
            ),
            (
                21,
                7,
                &format!("{p}.nokey.redact"),
                "unknown key \"redact\" (expected one of: key, columns, detectors)",
            ),
            (
                22,
                5,
                "policy.masking.Bad Name",
                "invalid masking profile name",
            ),
        ],
    );
    assert!(
        errors.iter().all(|error| !error.3.contains("hunter2")),
        "an inline key must never be echoed"
    );
}

#[test]
fn roles_must_name_defined_profiles() {
    let text = with_base(
        "\
policy:
  guardrails:
    analyst: {base: read-only}
    broken: {base: nope}
  masking:
    pii: {detectors: [{name: cards, detector: card, style: last4}]}
  roles:
    a: {max_ttl: 1h, guardrails: analsyt, masking: pi}
    b: {max_ttl: 1h, guardrails: guarded-writes}
    c: {max_ttl: 1h, guardrails: broken, masking: pii}
    d: {max_ttl: 1h, guardrails: strict, masking: secret}
    e: {max_ttl: 1h, guardrails: '', masking: [pii]}
",
    );
    assert_errors(
        &parse_err(&text),
        &[
            (
                9,
                14,
                "policy.guardrails.broken.base",
                "unknown base \"nope\"; expected one of read-only, guarded-write, admin",
            ),
            (
                13,
                22,
                "policy.roles.a.guardrails",
                "unknown guardrails \"analsyt\"; did you mean \"analyst\"?",
            ),
            (
                13,
                43,
                "policy.roles.a.masking",
                "no masking profile named \"pi\" in policy.masking; did you mean \"pii\"?",
            ),
            (
                14,
                22,
                "policy.roles.b.guardrails",
                "unknown guardrails \"guarded-writes\"; did you mean \"guarded-write\"?",
            ),
            // Role c names the broken profile: that profile's error is enough.
            (
                16,
                22,
                "policy.roles.d.guardrails",
                "unknown guardrails \"strict\"; expected a built-in (read-only, guarded-write, \
                 admin) or a profile defined under policy.guardrails (policy.guardrails defines \
                 analyst, broken)",
            ),
            (
                16,
                42,
                "policy.roles.d.masking",
                "no masking profile named \"secret\" in policy.masking (defined: pii)",
            ),
            (17, 22, "policy.roles.e.guardrails", "must not be empty"),
            (
                17,
                38,
                "policy.roles.e.masking",
                "expected a single value, found a list",
            ),
        ],
    );
}

#[test]
fn roles_naming_profiles_need_the_sections() {
    let text = with_base(
        "\
policy:
  roles:
    a: {max_ttl: 1h, guardrails: analyst, masking: pii}
",
    );
    assert_errors(
        &parse_err(&text),
        &[
            (
                8,
                22,
                "policy.roles.a.guardrails",
                "unknown guardrails \"analyst\"; expected a built-in (read-only, guarded-write, \
                 admin) or a profile defined under policy.guardrails (policy.guardrails is \
                 missing)",
            ),
            (
                8,
                43,
                "policy.roles.a.masking",
                "no masking profile named \"pii\": policy.masking is missing; define it there",
            ),
        ],
    );
    // Written but empty: said differently, and built-ins still need no section.
    let empty = with_base(
        "\
policy:
  guardrails:
  masking: {}
  roles:
    a: {max_ttl: 1h, guardrails: admin, masking: pii}
",
    );
    assert_errors(
        &parse_err(&empty),
        &[(
            10,
            41,
            "policy.roles.a.masking",
            "no masking profile named \"pii\": policy.masking defines none",
        )],
    );
}

#[test]
fn unreadable_profile_sections_are_reported_once() {
    let text = with_base(
        "\
policy:
  guardrails: [analyst]
  masking: pii
  roles:
    a: {max_ttl: 1h, guardrails: analyst, masking: pii}
",
    );
    assert_errors(
        &parse_err(&text),
        &[
            (
                7,
                3,
                "policy.guardrails",
                "expected a mapping of profile names to guardrail profiles",
            ),
            (
                8,
                3,
                "policy.masking",
                "expected a mapping of profile names to masking profiles",
            ),
        ],
    );
}

#[test]
fn a_written_but_invalid_key_does_not_also_fail_hash() {
    let text = with_base(
        "\
policy:
  masking:
    pii:
      key: 'file:'
      columns: [{name: emails, column: email, style: hash}]
",
    );
    assert_errors(
        &parse_err(&text),
        &[(
            9,
            7,
            "policy.masking.pii.key",
            "file: must be followed by a path",
        )],
    );
}
