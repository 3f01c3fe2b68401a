//! Rule evaluation: who may use what, first match wins, deny by default.

use super::loc;
use crate::{Policy, Rule, glob_match};

fn rule(name: &str, subjects: &[&str], groups: &[&str], resources: &[&str]) -> Rule {
    let owned = |items: &[&str]| items.iter().map(|item| (*item).to_owned()).collect();
    Rule {
        name: name.to_owned(),
        subjects: owned(subjects),
        groups: owned(groups),
        resources: owned(resources),
        location: loc(1, 1),
    }
}

fn policy() -> Policy {
    Policy {
        rules: vec![
            rule("alice-main", &["alice"], &[], &["pg-main"]),
            rule("dba-all", &[], &["dba"], &["*"]),
            rule(
                "devs-staging",
                &["carol"],
                &["dev"],
                &["pg-staging-?", "cache*"],
            ),
        ],
    }
}

fn groups(names: &[&str]) -> Vec<String> {
    names.iter().map(|name| (*name).to_owned()).collect()
}

fn allowed_by(subject: &str, member_of: &[&str], resource: &str) -> Option<String> {
    policy()
        .allowing(subject, &groups(member_of), resource)
        .map(|rule| rule.name.clone())
}

#[test]
fn subject_match() {
    assert_eq!(
        allowed_by("alice", &[], "pg-main").as_deref(),
        Some("alice-main")
    );
    assert_eq!(allowed_by("alice", &[], "cache"), None);
    assert_eq!(
        allowed_by("carol", &[], "cache-eu").as_deref(),
        Some("devs-staging")
    );
    // Subjects are exact: no prefix or case folding.
    assert_eq!(allowed_by("Alice", &[], "pg-main"), None);
    assert_eq!(allowed_by("alice2", &[], "pg-main"), None);
}

#[test]
fn group_match() {
    assert_eq!(
        allowed_by("bob", &["ops", "dev"], "cache").as_deref(),
        Some("devs-staging")
    );
    assert_eq!(allowed_by("bob", &["ops"], "cache"), None);
}

#[test]
fn glob_resources() {
    assert_eq!(
        allowed_by("bob", &["dev"], "pg-staging-1").as_deref(),
        Some("devs-staging")
    );
    // `?` is exactly one character.
    assert_eq!(allowed_by("bob", &["dev"], "pg-staging-12"), None);
    assert_eq!(allowed_by("bob", &["dev"], "pg-staging-"), None);
    assert_eq!(
        allowed_by("bob", &["dba"], "anything.at-all").as_deref(),
        Some("dba-all")
    );
}

#[test]
fn first_match_wins() {
    // alice in dba matches both alice-main and dba-all for pg-main; the earlier rule is reported.
    assert_eq!(
        allowed_by("alice", &["dba"], "pg-main").as_deref(),
        Some("alice-main")
    );
    // For another resource alice-main does not cover it, so dba-all does.
    assert_eq!(
        allowed_by("alice", &["dba"], "cache").as_deref(),
        Some("dba-all")
    );
}

#[test]
fn no_match_is_none() {
    assert_eq!(allowed_by("mallory", &[], "pg-main"), None);
    assert_eq!(allowed_by("mallory", &["guests"], "pg-main"), None);
    assert!(
        Policy::default()
            .allowing("alice", &[], "pg-main")
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
    // A pathological pattern still completes quickly.
    let text = "a".repeat(2000);
    assert!(!glob_match(&format!("{}b", "*a".repeat(50)), &text));
}
