//! Policy evaluation: which rule and role a request gets, first match wins, deny by default; who
//! may vote on it and when the votes decide it.

use std::collections::BTreeMap;
use std::time::Duration;

use super::loc;
use crate::{
    Approval, ApprovalOverride, Decision, Grantable, Policy, Principal, RecordMode, RefusalKind,
    Resource, ResourceSpec, Role, Rule, Tally, TcpSpec, glob_match, may_decide, subject_match,
    tally,
};

const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|item| (*item).to_owned()).collect()
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
        .collect()
}

fn approval(groups: &[&str], count: u32, self_approve: bool, timeout: Duration) -> Approval {
    Approval {
        groups: strings(groups),
        count,
        self_approve,
        timeout,
    }
}

/// The `write` role's own approval.
fn leads_once() -> Approval {
    approval(&["dba-leads"], 1, false, 15 * MINUTE)
}

/// The `oncall-prod` rule's override: two on-call leads, who may include the requester.
fn two_oncall_leads() -> Approval {
    approval(&["oncall-leads"], 2, true, 30 * MINUTE)
}

/// The `contractors` rule's override on a role that is otherwise granted at once.
fn a_lead() -> Approval {
    approval(&["leads"], 1, false, 15 * MINUTE)
}

fn role(name: &str, max_ttl: Duration, default_ttl: Duration, approval: Option<Approval>) -> Role {
    Role {
        name: name.to_owned(),
        description: None,
        max_ttl,
        default_ttl,
        approval,
        record: RecordMode::Required,
        sql: Default::default(),
        ssh: None,
        kube: None,
        http: None,
        needs: Vec::new(),
        location: loc(1, 1),
    }
}

/// A rule; `labels` may be empty, `resources` too when `labels` is not.
struct R<'a> {
    name: &'a str,
    subjects: &'a [&'a str],
    groups: &'a [&'a str],
    resources: &'a [&'a str],
    labels: &'a [(&'a str, &'a str)],
    roles: &'a [&'a str],
    approval: Option<ApprovalOverride>,
}

impl R<'_> {
    fn build(self) -> Rule {
        Rule {
            name: self.name.to_owned(),
            subjects: strings(self.subjects),
            groups: strings(self.groups),
            resources: strings(self.resources),
            labels: labels(self.labels),
            roles: strings(self.roles),
            approval: self.approval,
            location: loc(1, 1),
        }
    }
}

const NONE: &[&str] = &[];

fn policy() -> Policy {
    Policy {
        roles: vec![
            role("read", 8 * HOUR, HOUR, None),
            role("write", HOUR, 30 * MINUTE, Some(leads_once())),
            role("migrate", 30 * MINUTE, 30 * MINUTE, None),
            role("admin", 2 * HOUR, HOUR, Some(leads_once())),
        ],
        rules: vec![
            R {
                name: "alice-main",
                subjects: &["alice"],
                groups: NONE,
                resources: &["pg-prod"],
                labels: &[],
                roles: &["write"],
                approval: None,
            }
            .build(),
            R {
                name: "engineers-read",
                subjects: NONE,
                groups: &["engineering"],
                resources: &["*"],
                labels: &[],
                roles: &["read"],
                approval: None,
            }
            .build(),
            R {
                name: "dba",
                subjects: NONE,
                groups: &["dba"],
                resources: &["pg-*"],
                labels: &[],
                roles: &["read", "write"],
                approval: Some(ApprovalOverride::None),
            }
            .build(),
            R {
                name: "oncall-prod",
                subjects: NONE,
                groups: &["oncall"],
                resources: &[],
                labels: &[("env", "prod")],
                roles: &["admin"],
                approval: Some(ApprovalOverride::Require(two_oncall_leads())),
            }
            .build(),
            R {
                name: "ci-migrate",
                subjects: &["github:acme/api:refs/heads/main:*"],
                groups: NONE,
                resources: &["pg-prod"],
                labels: &[],
                roles: &["migrate"],
                approval: None,
            }
            .build(),
            R {
                name: "eu-pg",
                subjects: NONE,
                groups: &["eu"],
                resources: &["pg-*"],
                labels: &[("region", "eu")],
                roles: &["read"],
                approval: None,
            }
            .build(),
            R {
                name: "contractors",
                subjects: &["contractor-*"],
                groups: NONE,
                resources: &["cache"],
                labels: &[],
                roles: &["read"],
                approval: Some(ApprovalOverride::Require(a_lead())),
            }
            .build(),
        ],
        ..Policy::default()
    }
}

fn resource(name: &str) -> Resource {
    let labels = match name {
        "pg-prod" => labels(&[("env", "prod")]),
        "pg-staging" => labels(&[("env", "staging")]),
        "pg-eu-prod" => labels(&[("env", "prod"), ("region", "eu")]),
        "cache-eu" => labels(&[("region", "eu")]),
        _ => BTreeMap::new(),
    };
    Resource {
        name: name.to_owned(),
        description: None,
        labels,
        spec: ResourceSpec::Tcp(TcpSpec {
            address: "127.0.0.1:1".to_owned(),
        }),
        location: loc(1, 1),
    }
}

/// What a case expects from `decide`.
#[derive(Debug)]
enum Want {
    /// Rule, role, TTL, capped-from, effective approval.
    Grant(
        &'static str,
        &'static str,
        Duration,
        Option<Duration>,
        Option<Approval>,
    ),
    /// Kind and exact message.
    Refuse(RefusalKind, &'static str),
}

/// One request: subject, groups, resource, role, TTL.
type Request = (
    &'static str,
    &'static [&'static str],
    &'static str,
    Option<&'static str>,
    Option<Duration>,
);

fn check(cases: Vec<(&str, Request, Want)>) {
    let policy = policy();
    for (what, (subject, groups, name, role, ttl), want) in cases {
        let groups = strings(groups);
        let who = Principal {
            subject,
            groups: &groups,
        };
        let got = policy.decide(&who, &resource(name), role, ttl);
        let expected = match want {
            Want::Grant(rule, role, ttl, requested_ttl, approval) => Decision::Grant(Grantable {
                rule: rule.to_owned(),
                role: role.to_owned(),
                ttl,
                requested_ttl,
                approval,
            }),
            Want::Refuse(kind, message) => match &got {
                Decision::Refuse(refusal) => {
                    assert_eq!(
                        (refusal.kind, refusal.message.as_str()),
                        (kind, message),
                        "{what}"
                    );
                    continue;
                }
                Decision::Grant(_) => panic!("{what}: expected a refusal, got {got:?}"),
            },
        };
        assert_eq!(got, expected, "{what}");
    }
}

#[test]
fn precedence_and_default_role() {
    check(vec![
        (
            "a subject rule; no role asked, so the rule's first role",
            ("alice", &[], "pg-prod", None, None),
            Want::Grant("alice-main", "write", 30 * MINUTE, None, Some(leads_once())),
        ),
        (
            "the first rule listing the role wins, even when a later one needs no approval",
            ("alice", &["dba"], "pg-prod", Some("write"), None),
            Want::Grant("alice-main", "write", 30 * MINUTE, None, Some(leads_once())),
        ),
        (
            "a later rule supplies a role the first does not list",
            ("alice", &["dba"], "pg-prod", Some("read"), None),
            Want::Grant("dba", "read", HOUR, None, None),
        ),
        (
            "without a role, the first applying rule decides the default",
            ("bob", &["engineering", "dba"], "pg-staging", None, None),
            Want::Grant("engineers-read", "read", HOUR, None, None),
        ),
        (
            "asking for the role of a later rule",
            (
                "bob",
                &["engineering", "dba"],
                "pg-staging",
                Some("write"),
                None,
            ),
            Want::Grant("dba", "write", 30 * MINUTE, None, None),
        ),
    ]);
}

#[test]
fn who_the_rules_apply_to() {
    check(vec![
        (
            "any listed group",
            ("bob", &["ops", "engineering"], "cache", None, None),
            Want::Grant("engineers-read", "read", HOUR, None, None),
        ),
        (
            "no group in common",
            ("bob", &["ops"], "cache", None, None),
            Want::Refuse(
                RefusalKind::NoAccess,
                "policy gives bob (groups: ops) no access to \"cache\"",
            ),
        ),
        (
            "plain subjects are exact: no case folding",
            ("Alice", &[], "pg-prod", None, None),
            Want::Refuse(
                RefusalKind::NoAccess,
                "policy gives Alice (groups: none) no access to \"pg-prod\"",
            ),
        ),
        (
            "plain subjects are exact: no prefix",
            ("alice2", &[], "pg-prod", None, None),
            Want::Refuse(
                RefusalKind::NoAccess,
                "policy gives alice2 (groups: none) no access to \"pg-prod\"",
            ),
        ),
        (
            "a subject glob",
            ("contractor-ann", &[], "cache", None, None),
            Want::Grant("contractors", "read", HOUR, None, Some(a_lead())),
        ),
    ]);
}

#[test]
fn workload_subjects_match_by_glob() {
    check(vec![
        (
            "a workflow on main",
            (
                "github:acme/api:refs/heads/main:deploy",
                &[],
                "pg-prod",
                None,
                None,
            ),
            Want::Grant("ci-migrate", "migrate", 30 * MINUTE, None, None),
        ),
        (
            "any workflow name on main",
            (
                "github:acme/api:refs/heads/main:nightly migrations",
                &[],
                "pg-prod",
                Some("migrate"),
                None,
            ),
            Want::Grant("ci-migrate", "migrate", 30 * MINUTE, None, None),
        ),
        (
            "another branch",
            (
                "github:acme/api:refs/heads/feature:deploy",
                &[],
                "pg-prod",
                None,
                None,
            ),
            Want::Refuse(
                RefusalKind::NoAccess,
                "policy gives github:acme/api:refs/heads/feature:deploy (groups: none) no access \
                 to \"pg-prod\"",
            ),
        ),
        (
            "another repository with the same prefix: the pattern is anchored",
            (
                "github:acme/api-docs:refs/heads/main:deploy",
                &[],
                "pg-prod",
                None,
                None,
            ),
            Want::Refuse(
                RefusalKind::NoAccess,
                "policy gives github:acme/api-docs:refs/heads/main:deploy (groups: none) no \
                 access to \"pg-prod\"",
            ),
        ),
        (
            "a workflow name that smuggles the branch in: `*` never crosses a `:`",
            (
                "github:acme/api:refs/heads/feature:x:refs/heads/main:y",
                &[],
                "pg-prod",
                None,
                None,
            ),
            Want::Refuse(
                RefusalKind::NoAccess,
                "policy gives github:acme/api:refs/heads/feature:x:refs/heads/main:y (groups: \
                 none) no access to \"pg-prod\"",
            ),
        ),
        (
            "a resource the rule does not cover",
            (
                "github:acme/api:refs/heads/main:deploy",
                &[],
                "pg-staging",
                None,
                None,
            ),
            Want::Refuse(
                RefusalKind::NoAccess,
                "policy gives github:acme/api:refs/heads/main:deploy (groups: none) no access \
                 to \"pg-staging\"",
            ),
        ),
    ]);
}

#[test]
fn labels_select_resources() {
    check(vec![
        (
            "labels alone: any resource carrying them",
            ("carol", &["oncall"], "pg-prod", None, None),
            Want::Grant("oncall-prod", "admin", HOUR, None, Some(two_oncall_leads())),
        ),
        (
            "extra labels on the resource do not matter",
            ("carol", &["oncall"], "pg-eu-prod", None, None),
            Want::Grant("oncall-prod", "admin", HOUR, None, Some(two_oncall_leads())),
        ),
        (
            "a different value",
            ("carol", &["oncall"], "pg-staging", None, None),
            Want::Refuse(
                RefusalKind::NoAccess,
                "policy gives carol (groups: oncall) no access to \"pg-staging\"",
            ),
        ),
        (
            "no labels at all",
            ("carol", &["oncall"], "cache", None, None),
            Want::Refuse(
                RefusalKind::NoAccess,
                "policy gives carol (groups: oncall) no access to \"cache\"",
            ),
        ),
        (
            "names and labels: both match",
            ("dave", &["eu"], "pg-eu-prod", None, None),
            Want::Grant("eu-pg", "read", HOUR, None, None),
        ),
        (
            "names and labels: the name matches, the label is missing",
            ("dave", &["eu"], "pg-prod", None, None),
            Want::Refuse(
                RefusalKind::NoAccess,
                "policy gives dave (groups: eu) no access to \"pg-prod\"",
            ),
        ),
        (
            "names and labels: the label matches, the name does not",
            ("dave", &["eu"], "cache-eu", None, None),
            Want::Refuse(
                RefusalKind::NoAccess,
                "policy gives dave (groups: eu) no access to \"cache-eu\"",
            ),
        ),
    ]);
}

#[test]
fn refusals_name_what_could_be_requested() {
    check(vec![
        (
            "a role the rules that apply do not list",
            ("bob", &["engineering"], "pg-prod", Some("write"), None),
            Want::Refuse(
                RefusalKind::RoleNotAllowed,
                "no policy rule gives bob (groups: engineering) the role \"write\" on \
                 \"pg-prod\"; roles you may request there: read",
            ),
        ),
        (
            "several roles are listed once each, in rule order",
            ("erin", &["dba", "oncall"], "pg-prod", Some("migrate"), None),
            Want::Refuse(
                RefusalKind::RoleNotAllowed,
                "no policy rule gives erin (groups: dba, oncall) the role \"migrate\" on \
                 \"pg-prod\"; roles you may request there: read, write, admin",
            ),
        ),
        (
            "a role that does not exist, with a suggestion",
            ("bob", &["engineering"], "pg-prod", Some("wrte"), None),
            Want::Refuse(
                RefusalKind::UnknownRole,
                "there is no role \"wrte\" (did you mean \"write\"?); roles you may request on \
                 \"pg-prod\": read",
            ),
        ),
        (
            "a role that does not exist, for someone with no access",
            ("mallory", &[], "pg-prod", Some("superuser"), None),
            Want::Refuse(
                RefusalKind::UnknownRole,
                "there is no role \"superuser\"; policy gives mallory (groups: none) no access \
                 to \"pg-prod\"",
            ),
        ),
        (
            "an existing role for someone with no access",
            ("mallory", &["guests"], "pg-prod", Some("read"), None),
            Want::Refuse(
                RefusalKind::NoAccess,
                "policy gives mallory (groups: guests) no access to \"pg-prod\"",
            ),
        ),
    ]);
}

#[test]
fn ttl_defaults_and_caps() {
    check(vec![
        (
            "no TTL: the role's default",
            ("bob", &["engineering"], "cache", None, None),
            Want::Grant("engineers-read", "read", HOUR, None, None),
        ),
        (
            "shorter than the cap: as asked",
            ("bob", &["engineering"], "cache", None, Some(10 * MINUTE)),
            Want::Grant("engineers-read", "read", 10 * MINUTE, None, None),
        ),
        (
            "exactly the cap: as asked, not reported as capped",
            ("bob", &["engineering"], "cache", None, Some(8 * HOUR)),
            Want::Grant("engineers-read", "read", 8 * HOUR, None, None),
        ),
        (
            "longer than the cap: capped, and the asked TTL kept",
            (
                "bob",
                &["engineering"],
                "cache",
                Some("read"),
                Some(10 * HOUR),
            ),
            Want::Grant("engineers-read", "read", 8 * HOUR, Some(10 * HOUR), None),
        ),
        (
            "the cap is the granted role's",
            ("alice", &[], "pg-prod", None, Some(2 * HOUR)),
            Want::Grant(
                "alice-main",
                "write",
                HOUR,
                Some(2 * HOUR),
                Some(leads_once()),
            ),
        ),
    ]);
}

#[test]
fn rules_override_the_roles_approval() {
    check(vec![
        (
            "the role's approval when the rule says nothing",
            ("alice", &[], "pg-prod", Some("write"), None),
            Want::Grant("alice-main", "write", 30 * MINUTE, None, Some(leads_once())),
        ),
        (
            "approval: none grants a role that needs approval at once",
            ("bob", &["dba"], "pg-prod", Some("write"), None),
            Want::Grant("dba", "write", 30 * MINUTE, None, None),
        ),
        (
            "an override replaces the role's approval",
            ("carol", &["oncall"], "pg-prod", Some("admin"), None),
            Want::Grant("oncall-prod", "admin", HOUR, None, Some(two_oncall_leads())),
        ),
        (
            "an override adds approval to a role granted at once elsewhere",
            ("contractor-ann", &[], "cache", Some("read"), None),
            Want::Grant("contractors", "read", HOUR, None, Some(a_lead())),
        ),
    ]);
}

#[test]
fn requestable_lists_each_role_once_with_its_rule() {
    let policy = policy();
    /// Subject, groups, resource, then the expected (role, rule) pairs.
    type Case<'a> = (&'a str, &'a [&'a str], &'a str, &'a [(&'a str, &'a str)]);
    let cases: &[Case<'_>] = &[
        (
            "bob",
            &["engineering", "dba"],
            "pg-prod",
            &[("read", "engineers-read"), ("write", "dba")],
        ),
        (
            "alice",
            &["dba"],
            "pg-prod",
            &[("write", "alice-main"), ("read", "dba")],
        ),
        ("mallory", &[], "pg-prod", &[]),
        (
            "carol",
            &["oncall", "eu"],
            "pg-eu-prod",
            &[("admin", "oncall-prod"), ("read", "eu-pg")],
        ),
    ];
    for (subject, groups, name, expected) in cases {
        let groups = strings(groups);
        let who = Principal {
            subject,
            groups: &groups,
        };
        let expected: Vec<(String, String)> = expected
            .iter()
            .map(|(role, rule)| ((*role).to_owned(), (*rule).to_owned()))
            .collect();
        assert_eq!(
            policy.requestable(&who, &resource(name)),
            expected,
            "{subject} on {name}"
        );
    }
}

#[test]
fn lookups_by_name() {
    let policy = policy();
    assert_eq!(policy.role("write").map(|r| r.max_ttl), Some(HOUR));
    assert!(policy.role("nope").is_none());
    assert_eq!(
        policy.rule("dba").map(|r| r.roles.clone()),
        Some(strings(&["read", "write"]))
    );
    assert!(policy.rule("nope").is_none());
}

#[test]
fn rules_naming_undefined_roles_grant_nothing() {
    // Only a hand-built policy can do this; a loaded one refuses to load.
    let policy = Policy {
        roles: Vec::new(),
        rules: vec![
            R {
                name: "ghost",
                subjects: &["alice"],
                groups: NONE,
                resources: &["*"],
                labels: &[],
                roles: &["read"],
                approval: None,
            }
            .build(),
        ],
        ..Policy::default()
    };
    let who = Principal {
        subject: "alice",
        groups: &[],
    };
    assert!(matches!(
        policy.decide(&who, &resource("cache"), None, None),
        Decision::Refuse(_)
    ));
    assert!(policy.requestable(&who, &resource("cache")).is_empty());
}

#[test]
fn may_decide_checks_groups_then_self_approval() {
    let never_self = approval(&["dba-leads", "sre"], 2, false, 15 * MINUTE);
    let self_ok = approval(&["dba-leads"], 1, true, 15 * MINUTE);
    let not_in_groups = "you are not in any of the approver groups: dba-leads, sre";
    /// Approval, approver subject and groups, requester, expected answer.
    type Case<'a> = (
        &'a Approval,
        &'a str,
        &'a [&'a str],
        &'a str,
        Result<(), &'a str>,
    );
    let cases: &[Case<'_>] = &[
        (&never_self, "erin", &["dba-leads"], "alice", Ok(())),
        (&never_self, "erin", &["dev", "sre"], "alice", Ok(())),
        (&never_self, "erin", &["dev"], "alice", Err(not_in_groups)),
        (&never_self, "erin", &[], "alice", Err(not_in_groups)),
        (
            &never_self,
            "alice",
            &["dba-leads"],
            "alice",
            Err("self-approval is not allowed for this role"),
        ),
        (&self_ok, "alice", &["dba-leads"], "alice", Ok(())),
        (
            &self_ok,
            "alice",
            &["dev"],
            "alice",
            Err("you are not in any of the approver groups: dba-leads"),
        ),
    ];
    for (approval, subject, groups, requester, expected) in cases {
        let groups = strings(groups);
        let approver = Principal {
            subject,
            groups: &groups,
        };
        assert_eq!(
            may_decide(approval, &approver, requester),
            expected.map_err(str::to_owned),
            "{subject} {groups:?} deciding for {requester}"
        );
    }
}

#[test]
fn tally_counts_distinct_approvers_and_any_deny_denies() {
    let one = approval(&["leads"], 1, false, 15 * MINUTE);
    let two = approval(&["leads"], 2, false, 15 * MINUTE);
    let denied = |by: &str| Tally::Denied { by: by.to_owned() };
    let waiting = |have, need| Tally::Waiting { have, need };
    /// Approval, votes in the order cast, expected tally.
    type Case<'a> = (&'a Approval, &'a [(&'a str, bool)], Tally);
    let cases: &[Case<'_>] = &[
        (&one, &[], waiting(0, 1)),
        (&one, &[("erin", true)], Tally::Approved),
        (&one, &[("erin", false)], denied("erin")),
        (&two, &[], waiting(0, 2)),
        (&two, &[("erin", true)], waiting(1, 2)),
        (&two, &[("erin", true), ("erin", true)], waiting(1, 2)),
        (&two, &[("erin", true), ("frank", true)], Tally::Approved),
        (
            &two,
            &[("erin", true), ("erin", true), ("frank", true)],
            Tally::Approved,
        ),
        (&two, &[("erin", true), ("frank", false)], denied("frank")),
        (
            &two,
            &[("erin", true), ("frank", true), ("gina", false)],
            denied("gina"),
        ),
        (&two, &[("erin", false), ("frank", false)], denied("erin")),
        // Changing one's mind to a deny still denies.
        (&two, &[("erin", true), ("erin", false)], denied("erin")),
    ];
    for (approval, votes, expected) in cases {
        let votes: Vec<(String, bool)> = votes
            .iter()
            .map(|(who, approve)| ((*who).to_owned(), *approve))
            .collect();
        assert_eq!(
            tally(approval, &votes),
            *expected,
            "{} needed, votes {votes:?}",
            approval.count
        );
    }
}

#[test]
fn allowing_ignores_roles_and_never_guesses_labels() {
    let policy = policy();
    let allowed_by = |subject: &str, groups: &[&str], name: &str| {
        policy
            .allowing(subject, &strings(groups), name)
            .map(|rule| rule.name.clone())
    };
    assert_eq!(
        allowed_by("alice", &["dba"], "pg-prod").as_deref(),
        Some("alice-main")
    );
    assert_eq!(
        allowed_by("alice", &["dba"], "cache"),
        None,
        "alice-main covers pg-prod only, dba pg-* only"
    );
    assert_eq!(
        allowed_by("github:acme/api:refs/heads/main:deploy", &[], "pg-prod").as_deref(),
        Some("ci-migrate")
    );
    assert_eq!(allowed_by("mallory", &[], "pg-prod"), None);
    // Rules that constrain labels cannot be shown to match from a name alone.
    assert_eq!(allowed_by("carol", &["oncall"], "pg-prod"), None);
    assert_eq!(allowed_by("dave", &["eu"], "pg-eu-prod"), None);
    assert!(
        Policy::default()
            .allowing("alice", &[], "pg-prod")
            .is_none()
    );
}

#[test]
fn glob_matching() {
    let cases = [
        ("*", "", true),
        ("*", "abc", true),
        ("a*c", "abbbc", true),
        ("a*c", "abbbd", false),
        ("a?c", "abc", true),
        ("a?c", "ac", false),
        ("*-main", "pg-main", true),
        ("pg-*-eu", "pg-app-eu", true),
        ("pg-*-eu", "pg-app-us", false),
        ("**a", "bbba", true),
        ("abc", "abc", true),
        ("abc", "abcd", false),
        ("a*b*c", "axxbyyc", true),
        ("a*b*c", "axxbyy", false),
    ];
    for (pattern, text, expected) in cases {
        assert_eq!(glob_match(pattern, text), expected, "{pattern} vs {text}");
    }
    let subjects = [
        (
            "github:acme/*:refs/heads/main:*",
            "github:acme/api:refs/heads/main:deploy",
            true,
        ),
        (
            "github:acme/*:refs/heads/main:*",
            "github:acme/evil:refs/heads/dev:x:refs/heads/main:y",
            false,
        ),
        (
            "github:acme/*:refs/heads/main:*",
            "github:acme/a:b:refs/heads/main:deploy",
            false,
        ),
        ("*", "alice@example.com", true),
        ("*", "github:acme/api:refs/heads/main:deploy", false),
        ("*:*:*:*", "github:acme/api:refs/heads/main:deploy", true),
        ("alice", "alice", true),
    ];
    for (pattern, subject, expected) in subjects {
        assert_eq!(
            subject_match(pattern, subject),
            expected,
            "{pattern} vs {subject}"
        );
    }
    // A pathological pattern still completes quickly.
    let text = "a".repeat(2000);
    assert!(!glob_match(&format!("{}b", "*a".repeat(50)), &text));
}
