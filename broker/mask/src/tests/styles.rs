//! The three styles on text values and on detector matches.

use super::{KEY, mask_one, policy, policy_with_key, replaced, text_column};
use crate::{Detector, MaskCounts, Masked, Style};

fn masked_whole(style: Style, value: &str) -> String {
    let policy = policy(&[("c", "secret", style)], &[]);
    replaced(&mask_one(&policy, text_column("secret"), value.as_bytes()).0)
}

#[test]
fn redact_hides_length() {
    assert_eq!(masked_whole(Style::Redact, "4111111111111111"), "****");
    assert_eq!(masked_whole(Style::Redact, "x"), "****");
    assert_eq!(masked_whole(Style::Redact, ""), "****");
}

#[test]
fn last4_keeps_the_last_four_characters() {
    assert_eq!(
        masked_whole(Style::Last4, "4111111111111111"),
        "************1111"
    );
    assert_eq!(masked_whole(Style::Last4, "12345678"), "****5678");
    // Characters, not bytes.
    assert_eq!(
        masked_whole(Style::Last4, "Zoë Smith-Jones"),
        "***********ones"
    );
    assert_eq!(masked_whole(Style::Last4, "ééééééééé"), "*****éééé");
}

#[test]
fn last4_redacts_short_values_whole() {
    assert_eq!(masked_whole(Style::Last4, "1234567"), "****");
    assert_eq!(masked_whole(Style::Last4, "abc"), "****");
    assert_eq!(masked_whole(Style::Last4, ""), "****");
}

#[test]
fn last4_on_invalid_utf8_redacts_whole() {
    let policy = policy(&[("c", "secret", Style::Last4)], &[]);
    let (masked, _) = mask_one(&policy, text_column("secret"), b"\xff\xfe1234567890");
    assert_eq!(masked, Masked::Replace(b"****".to_vec()));
}

#[test]
fn hash_is_deterministic_keyed_and_shaped() {
    let once = masked_whole(Style::Hash, "ada@example.com");
    let again = masked_whole(Style::Hash, "ada@example.com");
    assert_eq!(once, again);
    assert_eq!(once.len(), 18);
    assert!(once.starts_with("h:"));
    assert!(
        once[2..]
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    );
    assert_ne!(once, masked_whole(Style::Hash, "bob@example.com"));

    let other_key = policy_with_key(&[("c", "secret", Style::Hash)], &[], [1; 32]);
    let (masked, _) = mask_one(&other_key, text_column("secret"), b"ada@example.com");
    assert_ne!(replaced(&masked), once);
}

#[test]
fn hash_never_equals_its_input() {
    for value in [
        "",
        "a",
        "h:0000000000000000",
        "ada@example.com",
        "4111111111111111",
    ] {
        let hashed = masked_whole(Style::Hash, value);
        assert_ne!(hashed, value);
        // Hashing a pseudonym gives another pseudonym, not itself.
        assert_ne!(masked_whole(Style::Hash, &hashed), hashed);
    }
}

#[test]
fn hash_is_known_for_a_fixed_key() {
    // HMAC-SHA256(key = 32 × 0x2a, "ada@example.com"), first 8 bytes. Pinned so that a change
    // of algorithm or encoding (which would break every stored join) cannot go unnoticed.
    let expected = {
        let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &KEY);
        let tag = aws_lc_rs::hmac::sign(&key, b"ada@example.com");
        let hex: String = tag.as_ref()[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        format!("h:{hex}")
    };
    assert_eq!(masked_whole(Style::Hash, "ada@example.com"), expected);
}

#[test]
fn detector_hash_is_one_pseudonym_per_value_however_written() {
    let policy = policy(
        &[],
        &[
            ("cards", Detector::CardNumber, Style::Hash),
            ("emails", Detector::Email, Style::Hash),
        ],
    );
    let mut counts = MaskCounts::new();
    let spaced = policy
        .mask_text("4111 1111 1111 1111", &mut counts)
        .into_owned();
    let dashed = policy
        .mask_text("4111-1111-1111-1111", &mut counts)
        .into_owned();
    let plain = policy
        .mask_text("4111111111111111", &mut counts)
        .into_owned();
    assert_eq!(spaced, dashed);
    assert_eq!(spaced, plain);
    // And the same as a column rule hashing the plain number.
    assert_eq!(plain, masked_whole(Style::Hash, "4111111111111111"));

    let upper = policy
        .mask_text("ADA@Example.COM", &mut counts)
        .into_owned();
    let lower = policy
        .mask_text("ada@example.com", &mut counts)
        .into_owned();
    assert_eq!(upper, lower);
    assert_eq!(counts.get("cards"), 3);
    assert_eq!(counts.get("emails"), 2);
}

#[test]
fn detector_last4_keeps_the_end_of_the_match_only() {
    let policy = policy(&[], &[("cards", Detector::CardNumber, Style::Last4)]);
    let mut counts = MaskCounts::new();
    assert_eq!(
        policy.mask_text("card 4012 8888 8888 1881 ok", &mut counts),
        "card ***************1881 ok"
    );
}
