use super::*;
use sluice_engine_postgres::{Target, TargetTls};
use sluice_mask::{ColumnRule, DetectorRule, Style};
use sluice_shared::Secret;

const TEXT: u32 = 25;
const INT4: u32 = 23;
/// `public.customers`, known to the catalog.
const CUSTOMERS: u32 = 16_400;
/// A table created after the catalog was read.
const PEOPLE3: u32 = 16_500;

fn masker(
    columns: Vec<ColumnRule>,
    detectors: Vec<DetectorRule>,
    catalog: Columns,
) -> SessionMasker {
    let policy = MaskPolicy::new(columns, detectors, [7; 32]).expect("policy");
    let columns = Arc::new(catalog);
    let column_rules = !policy.columns().is_empty();
    SessionMasker {
        column_rules,
        lineage: column_rules.then(|| {
            Arc::new(super::SessionLineage::new(
                Arc::clone(&columns),
                Arc::new(sluice_sql::Classifier::new(16)),
            ))
        }),
        policy,
        counts: Arc::new(Mutex::new(MaskCounts::new())),
        columns,
    }
}

fn emails(style: Style) -> Vec<ColumnRule> {
    vec![ColumnRule {
        name: "emails".into(),
        column: "*.email".into(),
        style,
    }]
}

fn customers() -> Columns {
    Columns::fixed([
        (CUSTOMERS, 1, "public.customers".into(), "id".into()),
        (CUSTOMERS, 3, "public.customers".into(), "email".into()),
    ])
}

fn column(name: &str, table_oid: u32, column: i16, type_oid: u32) -> ColumnInfo {
    ColumnInfo {
        name: name.into(),
        table_oid,
        column,
        type_oid,
        binary: false,
    }
}

/// Masks one row of text values with the plan of `columns`.
fn row(masker: &SessionMasker, columns: &[ColumnInfo], values: &[&str]) -> Vec<Masked> {
    let Some(mut mask) = masker.plan(columns) else {
        return values.iter().map(|_| Masked::Unchanged).collect();
    };
    values
        .iter()
        .enumerate()
        .map(|(i, v)| mask.mask(i, v.as_bytes()))
        .collect()
}

fn redacted() -> Masked {
    Masked::Replace(b"****".to_vec())
}

#[test]
fn a_column_of_a_table_the_catalog_does_not_know_is_redacted_whatever_its_alias() {
    let masker = masker(emails(Style::Hash), Vec::new(), customers());
    let columns = [
        column("e", PEOPLE3, 2, TEXT),
        column("i", PEOPLE3, 1, INT4),
        column("n", 0, 0, INT4),
        column("ident", CUSTOMERS, 1, INT4),
    ];
    let masked = row(&masker, &columns, &["ada@example.com", "1", "42", "7"]);
    assert_eq!(masked[0], redacted());
    // Every unresolved column: it could be anything.
    assert_ne!(masked[1], Masked::Unchanged);
    // Computed, and known but not sensitive: untouched.
    assert_eq!(masked[2], Masked::Unchanged);
    assert_eq!(masked[3], Masked::Unchanged);
    assert_eq!(
        masker.counts.lock().expect("counts").get(UNRESOLVED_RULE),
        2
    );
}

#[test]
fn an_unresolved_column_whose_alias_a_rule_names_keeps_that_rules_style() {
    let rules = vec![ColumnRule {
        name: "emails".into(),
        column: "email".into(),
        style: Style::Hash,
    }];
    let masker = masker(rules, Vec::new(), customers());
    let masked = row(
        &masker,
        &[column("email", PEOPLE3, 2, TEXT)],
        &["ada@example.com"],
    );
    match &masked[0] {
        Masked::Replace(v) => assert!(v.starts_with(b"h:"), "{v:?}"),
        other => panic!("not masked: {other:?}"),
    }
}

#[test]
fn known_columns_are_masked_by_their_real_name() {
    let masker = masker(emails(Style::Redact), Vec::new(), customers());
    let masked = row(
        &masker,
        &[
            column("e", CUSTOMERS, 3, TEXT),
            column("i", CUSTOMERS, 1, INT4),
        ],
        &["c7@example.com", "7"],
    );
    assert_eq!(masked, vec![redacted(), Masked::Unchanged]);
}

#[test]
fn detectors_alone_need_no_names_and_mask_nothing_by_default() {
    let detectors = vec![DetectorRule {
        name: "cards".into(),
        detector: sluice_mask::Detector::CardNumber,
        style: Style::Redact,
    }];
    let masker = masker(Vec::new(), detectors, Columns::new(nowhere()));
    let columns = [column("e", PEOPLE3, 2, TEXT)];
    assert!(!masker.unresolved(&columns));
    let masked = row(&masker, &columns, &["ada@example.com"]);
    assert_eq!(masked, vec![Masked::Unchanged]);
}

/// A server nothing listens on: every lookup fails.
fn nowhere() -> Target {
    Target {
        address: "127.0.0.1:1".into(),
        database: "appdb".into(),
        user: "app".into(),
        password: Secret::new("unused".to_owned()),
        tls: TargetTls::Disable,
        settings: Vec::new(),
    }
}

#[tokio::test]
async fn a_lookup_that_fails_leaves_the_column_masked_and_is_not_repeated_at_once() {
    let masker = masker(emails(Style::Last4), Vec::new(), Columns::new(nowhere()));
    let columns = [column("e", PEOPLE3, 2, TEXT), column("n", 0, 0, INT4)];
    assert!(masker.unresolved(&columns));
    masker.resolve(&columns).await;
    // Tried and failed: the relay plans at once, and the column fails closed.
    assert!(!masker.unresolved(&columns));
    let masked = row(&masker, &columns, &["ada@example.com", "1"]);
    assert_eq!(masked, vec![redacted(), Masked::Unchanged]);
}
