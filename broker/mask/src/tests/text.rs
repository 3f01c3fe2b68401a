//! Free text: error and notice fields, COPY TO STDOUT data.

use std::borrow::Cow;

use super::{all_detectors, policy};
use crate::{Detector, MaskCounts, Style};

#[test]
fn unique_violation_detail_is_masked() {
    let policy = all_detectors(Style::Redact);
    let mut counts = MaskCounts::new();
    let detail = "Key (email)=(ada@example.com) already exists.";
    assert_eq!(
        policy.mask_text(detail, &mut counts),
        "Key (email)=(****) already exists."
    );
    assert_eq!(counts.get("email"), 1);

    let hashing = super::policy(&[], &[("emails", Detector::Email, Style::Hash)]);
    let masked = hashing.mask_text(detail, &mut counts).into_owned();
    assert!(
        masked.starts_with("Key (email)=(h:") && masked.ends_with(") already exists."),
        "{masked}"
    );
    // The same address in a result row gets the same pseudonym, so the user can still tell
    // which row collided.
    let row = hashing
        .mask_text("ada@example.com", &mut counts)
        .into_owned();
    assert!(masked.contains(&row));
}

#[test]
fn text_without_matches_is_borrowed() {
    let policy = all_detectors(Style::Redact);
    let mut counts = MaskCounts::new();
    let message = "duplicate key value violates unique constraint \"users_pkey\"";
    assert!(matches!(
        policy.mask_text(message, &mut counts),
        Cow::Borrowed(_)
    ));
    assert!(matches!(
        policy.mask_bytes(message.as_bytes(), &mut counts),
        Cow::Borrowed(_)
    ));
    assert!(counts.is_empty());
}

#[test]
fn copy_lines_keep_their_structure() {
    let policy = all_detectors(Style::Redact);
    let mut counts = MaskCounts::new();
    let line = b"1\tada@example.com\t4111 1111 1111 1111\t\\N\t2024-01-15 10:23:45+00\n";
    assert_eq!(
        &*policy.mask_bytes(line, &mut counts),
        b"1\t****\t****\t\\N\t2024-01-15 10:23:45+00\n"
    );
    // CSV, with a quoted field.
    let csv = b"2,\"Lovelace, Ada\",+44 20 7946 0958,\"AKIAIOSFODNN7EXAMPLE\"\n";
    assert_eq!(
        &*policy.mask_bytes(csv, &mut counts),
        b"2,\"Lovelace, Ada\",****,\"****\"\n"
    );
    // Unquoted CSV: a comma after a digit is a field boundary, not a decimal mark.
    let csv = b"3,4111111111111111,078-05-1120,+44 20 7946 0958,9\n";
    assert_eq!(
        &*policy.mask_bytes(csv, &mut counts),
        b"3,****,****,****,9\n"
    );
    assert_eq!(counts.total(), 7);
}

#[test]
fn non_utf8_client_encodings_pass_through() {
    // LATIN1 bytes: only the ASCII match is replaced.
    let policy = all_detectors(Style::Redact);
    let mut counts = MaskCounts::new();
    let latin1 = b"Andr\xe9 <andre@example.fr> \xa9";
    assert_eq!(
        &*policy.mask_bytes(latin1, &mut counts),
        b"Andr\xe9 <****> \xa9"
    );
}

#[test]
fn multiline_notice_with_a_private_key() {
    let policy = policy(&[], &[("keys", Detector::Secret, Style::Redact)]);
    let mut counts = MaskCounts::new();
    let notice = "loaded key:\n-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIBk=\n-----END EC PRIVATE KEY-----\ndone";
    assert_eq!(
        policy.mask_text(notice, &mut counts),
        "loaded key:\n****\ndone"
    );
    assert_eq!(counts.get("keys"), 1);
}

#[test]
fn unicode_around_matches_survives() {
    let policy = all_detectors(Style::Last4);
    let mut counts = MaskCounts::new();
    assert_eq!(
        policy.mask_text("Zoë → zoe@example.com ✓", &mut counts),
        "Zoë → ***********.com ✓"
    );
}

#[test]
fn a_detected_value_hashes_by_its_canonical_form() {
    // `hash` signs the normalised match (digits of a card, a lowercased email), `redact` and
    // `last4` never need it: one value written two ways still gets one pseudonym.
    let hashing = all_detectors(Style::Hash);
    let mut counts = MaskCounts::new();
    let mut hashed = |text: &str| hashing.mask_text(text, &mut counts).into_owned();
    assert_eq!(hashed("4111 1111 1111 1111"), hashed("4111-1111-1111-1111"));
    assert_eq!(hashed("Ada@Example.com"), hashed("ada@example.com"));
    assert_ne!(hashed("ada@example.com"), hashed("bob@example.com"));
    let last4 = all_detectors(Style::Last4);
    assert_eq!(
        last4.mask_text("card 4111-1111-1111-1111", &mut counts),
        "card ***************1111"
    );
}
