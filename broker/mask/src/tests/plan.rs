//! Planning: which column rule matches which column; validation; no-op plans; counts.

use super::{all_detectors, mask_one, policy, replaced, text_column};
use crate::{
    Column, ColumnRule, Detector, DetectorRule, MaskCounts, MaskPolicy, Masked, PolicyError, Style,
};

fn column<'a>(name: &'a str, table: Option<&'a str>) -> Column<'a> {
    Column {
        name,
        table,
        type_oid: 25,
        binary: false,
    }
}

/// Which rule (if any) masks `name` of `table` under a policy of the given column patterns.
fn rule_for(patterns: &[&str], name: &str, table: Option<&str>) -> Option<String> {
    let rules: Vec<(String, &str, Style)> = patterns
        .iter()
        .enumerate()
        .map(|(i, pattern)| (format!("r{i}"), *pattern, Style::Redact))
        .collect();
    let rules: Vec<(&str, &str, Style)> = rules
        .iter()
        .map(|(name, pattern, style)| (name.as_str(), *pattern, *style))
        .collect();
    let policy = policy(&rules, &[]);
    let plan = policy.plan(&[column(name, table)]);
    plan.column_rule(0).map(str::to_string)
}

#[test]
fn unqualified_globs_match_any_table_case_insensitively() {
    assert_eq!(
        rule_for(&["email"], "email", Some("public.users")).as_deref(),
        Some("r0")
    );
    assert_eq!(rule_for(&["email"], "EMAIL", None).as_deref(), Some("r0"));
    assert_eq!(rule_for(&["email"], "emails", None), None);
    assert_eq!(
        rule_for(&["*_token"], "refresh_token", None).as_deref(),
        Some("r0")
    );
    assert_eq!(rule_for(&["*_token"], "token", None), None);
    assert_eq!(rule_for(&["ssn?"], "ssn1", None).as_deref(), Some("r0"));
}

#[test]
fn table_qualified_globs() {
    let users_email = ["users.email"];
    assert!(rule_for(&users_email, "email", Some("users")).is_some());
    assert!(rule_for(&users_email, "email", Some("public.users")).is_some());
    assert!(rule_for(&users_email, "email", Some("crm.Users")).is_some());
    assert!(rule_for(&users_email, "email", Some("orders")).is_none());
    assert!(rule_for(&users_email, "name", Some("users")).is_none());
    // An unresolved table (an expression, OID 0): the column part decides, to fail safe.
    assert!(rule_for(&users_email, "email", None).is_some());

    let any_ssn = ["*.ssn"];
    assert!(rule_for(&any_ssn, "ssn", Some("public.employees")).is_some());
    assert!(rule_for(&any_ssn, "ssn", None).is_some());
    assert!(rule_for(&any_ssn, "ssn_hint", Some("employees")).is_none());

    let schema = ["public.users.email"];
    assert!(rule_for(&schema, "email", Some("public.users")).is_some());
    assert!(rule_for(&schema, "email", Some("users")).is_some());
    assert!(rule_for(&schema, "email", Some("audit.users")).is_none());
    assert!(rule_for(&["p*.user?.e*"], "e_mail", Some("prod.users")).is_some());
}

#[test]
fn regex_rules_match_the_column_name() {
    let card = ["re:^(card|cc)_?num(ber)?$"];
    assert!(rule_for(&card, "card_number", Some("payments")).is_some());
    assert!(rule_for(&card, "CCNUM", None).is_some());
    assert!(rule_for(&card, "discard_number", None).is_none());
    // Unanchored unless anchored.
    assert!(rule_for(&["re:secret"], "client_secret_hash", None).is_some());
    assert!(rule_for(&["re:\\bpass(word)?\\b"], "pass", None).is_some());
}

#[test]
fn first_matching_rule_wins() {
    assert_eq!(
        rule_for(&["users.email", "email", "*"], "email", Some("users")).as_deref(),
        Some("r0")
    );
    assert_eq!(
        rule_for(&["users.email", "email", "*"], "email", Some("orders")).as_deref(),
        Some("r1")
    );
    assert_eq!(
        rule_for(&["users.email", "email", "*"], "id", None).as_deref(),
        Some("r2")
    );
}

fn refused(columns: Vec<ColumnRule>, detectors: Vec<DetectorRule>) -> PolicyError {
    match MaskPolicy::new(columns, detectors, [0; 32]) {
        Ok(policy) => panic!("expected a refusal, got {policy:?}"),
        Err(error) => error,
    }
}

fn rule(name: &str, column: &str) -> ColumnRule {
    ColumnRule {
        name: name.into(),
        column: column.into(),
        style: Style::Redact,
    }
}

fn detector(name: &str, detector: Detector) -> DetectorRule {
    DetectorRule {
        name: name.into(),
        detector,
        style: Style::Redact,
    }
}

#[test]
fn bad_policies_are_refused_with_the_rule_named() {
    assert!(matches!(
        refused(vec![rule("cards", "re:(unclosed")], vec![]),
        PolicyError::BadPattern { name, .. } if name == "cards"
    ));
    assert!(matches!(
        refused(vec![rule("x", "re:")], vec![]),
        PolicyError::BadPattern { .. }
    ));
    assert!(matches!(
        refused(vec![rule("x", "users..email")], vec![]),
        PolicyError::BadPattern { .. }
    ));
    assert!(matches!(
        refused(vec![rule("x", "a.b.c.d")], vec![]),
        PolicyError::BadPattern { .. }
    ));
    assert!(matches!(
        refused(vec![rule("x", "")], vec![]),
        PolicyError::BadPattern { .. }
    ));
    assert_eq!(
        refused(vec![rule("", "email")], vec![]),
        PolicyError::EmptyName
    );
    assert_eq!(
        refused(
            vec![rule("pii", "email")],
            vec![detector("pii", Detector::Email)]
        ),
        PolicyError::DuplicateName { name: "pii".into() }
    );
    assert_eq!(
        refused(
            vec![],
            vec![
                detector("a", Detector::Email),
                detector("b", Detector::Email)
            ]
        ),
        PolicyError::DuplicateDetector {
            name: "b".into(),
            detector: Detector::Email,
            first: "a".into()
        }
    );
    let message = refused(vec![rule("cards", "re:(unclosed")], vec![]).to_string();
    assert!(
        message.starts_with("masking rule `cards`: column pattern `re:(unclosed`"),
        "{message}"
    );
}

#[test]
fn noop_plans_let_rows_through_untouched() {
    let empty = policy(&[], &[]);
    assert!(empty.is_empty());
    assert!(empty.plan(&[text_column("email")]).is_noop());

    // Only column rules, none matching.
    let columns_only = policy(&[("e", "email", Style::Redact)], &[]);
    assert!(
        columns_only
            .plan(&[text_column("id"), text_column("name")])
            .is_noop()
    );
    assert!(
        !columns_only
            .plan(&[text_column("id"), text_column("email")])
            .is_noop()
    );

    // Detectors never look at binary numbers, dates, booleans or uuids.
    let detectors = all_detectors(Style::Redact);
    let typed = |oid: u32, binary: bool| Column {
        name: "x",
        table: None,
        type_oid: oid,
        binary,
    };
    let plan = detectors.plan(&[
        typed(23, true),
        typed(20, true),
        typed(1700, true),
        typed(1184, false),
        typed(16, false),
        typed(2950, false),
    ]);
    assert!(plan.is_noop());
    assert!(
        !detectors
            .plan(&[typed(23, true), typed(25, true)])
            .is_noop()
    );
    // Text-format numbers are scanned: a card number can be stored as a bigint.
    assert!(detectors.plan(&[typed(20, false)]).scans(0));
    assert!(!detectors.plan(&[]).scans(0));
    assert_eq!(detectors.plan(&[typed(25, false)]).len(), 1);
}

#[test]
fn counts_name_rules_and_never_values() {
    let policy = policy(
        &[("emails", "email", Style::Redact)],
        &[("cards", Detector::CardNumber, Style::Redact)],
    );
    let plan = policy.plan(&[text_column("email"), text_column("note"), text_column("id")]);
    let mut counts = MaskCounts::new();
    for row in [
        [
            "ada@example.com",
            "paid 4111 1111 1111 1111 and 5555555555554444",
            "1",
        ],
        ["bob@example.com", "nothing here", "2"],
    ] {
        for (index, value) in row.iter().enumerate() {
            plan.mask_value(index, value.as_bytes(), &mut counts);
        }
    }
    assert_eq!(counts.get("emails"), 2);
    assert_eq!(counts.get("cards"), 2);
    assert_eq!(counts.get("nope"), 0);
    assert_eq!(counts.total(), 4);
    let listed: Vec<(&str, u64)> = counts.iter().collect();
    assert_eq!(listed, [("emails", 2), ("cards", 2)]);
    let debug = format!("{counts:?}");
    assert!(!debug.contains("ada") && !debug.contains("4111"), "{debug}");

    let mut total = MaskCounts::new();
    total.merge(&counts);
    total.merge(&counts.take());
    assert!(counts.is_empty());
    assert_eq!(total.get("emails"), 4);
}

#[test]
fn detectors_replace_only_what_they_find() {
    let policy = all_detectors(Style::Redact);
    let (masked, counts) = mask_one(
        &policy,
        text_column("note"),
        b"Customer ada@example.com paid with 4111 1111 1111 1111 on 2024-01-15.",
    );
    assert_eq!(
        replaced(&masked),
        "Customer **** paid with **** on 2024-01-15."
    );
    assert_eq!(counts.total(), 2);
    let (masked, counts) = mask_one(&policy, text_column("note"), b"nothing to see, order 42");
    assert_eq!(masked, Masked::Unchanged);
    assert!(counts.is_empty());
}

#[test]
fn overlapping_matches_are_masked_as_their_union() {
    let policy = all_detectors(Style::Redact);
    // The phone detector sees `+1 4111 1111 1111`, the card detector `4111 1111 1111 1111`.
    let (masked, _) = mask_one(
        &policy,
        text_column("note"),
        b"call +1 4111 1111 1111 1111 now",
    );
    assert_eq!(replaced(&masked), "call **** now");
}

#[test]
fn invalid_utf8_text_is_scanned_as_bytes() {
    let policy = all_detectors(Style::Redact);
    // Latin-1 bytes around a card number: the card goes, every other byte stays.
    let (masked, counts) = mask_one(
        &policy,
        text_column("note"),
        b"Caf\xe9 \xff 4111111111111111 \xfe",
    );
    assert_eq!(masked, Masked::Replace(b"Caf\xe9 \xff **** \xfe".to_vec()));
    assert_eq!(counts.get("card"), 1);
}

#[test]
fn values_beyond_the_row_description_are_scanned_as_opaque() {
    let policy = all_detectors(Style::Redact);
    let plan = policy.plan(&[text_column("a")]);
    let mut counts = MaskCounts::new();
    assert_eq!(
        plan.mask_value(5, b"harmless", &mut counts),
        Masked::Unchanged
    );
    assert_eq!(
        plan.mask_value(5, b"AKIAIOSFODNN7EXAMPLE", &mut counts),
        Masked::Null
    );
    let columns_only = super::policy(&[("e", "email", Style::Redact)], &[]);
    let plan = columns_only.plan(&[text_column("email")]);
    assert_eq!(plan.mask_value(1, b"x", &mut counts), Masked::Unchanged);
}

#[test]
fn debug_output_never_shows_the_key() {
    let policy = MaskPolicy::new(vec![], vec![], [0xab; 32]).unwrap_or_else(|e| panic!("{e}"));
    let debug = format!("{policy:?}");
    assert!(debug.contains("[redacted]"));
    assert!(
        !debug.contains("171") && !debug.contains("ab, ab"),
        "{debug}"
    );
    let plan = policy.plan(&[text_column("x")]);
    assert!(format!("{plan:?}").contains("noop: true"));
}

#[test]
fn style_and_detector_spellings_round_trip() {
    for style in Style::ALL {
        assert_eq!(Style::parse(style.as_str()), Some(style));
        assert_eq!(style.to_string(), style.as_str());
    }
    for detector in Detector::ALL {
        assert_eq!(Detector::parse(detector.as_str()), Some(detector));
    }
    assert_eq!(Style::parse("Redact"), None);
    assert_eq!(Detector::parse("credit_card"), None);
}

#[test]
fn policies_and_plans_cross_threads() {
    fn send_sync<T: Send + Sync + 'static>() {}
    send_sync::<MaskPolicy>();
    send_sync::<crate::RowPlan>();
    send_sync::<MaskCounts>();
}
