//! Values by type and format: a masked value is always valid for its column's type, or NULL.

use super::{all_detectors, mask_one, policy, replaced};
use crate::kind::{test_numeric_binary, test_numeric_text};
use crate::{Column, Detector, MaskCounts, Masked, Style};

fn typed(oid: u32, binary: bool) -> Column<'static> {
    Column {
        name: "secret",
        table: Some("public.t"),
        type_oid: oid,
        binary,
    }
}

/// A column rule on `secret` in `style`, applied to one value.
fn rule(style: Style, oid: u32, binary: bool, value: &[u8]) -> Masked {
    let policy = policy(&[("c", "secret", style)], &[]);
    mask_one(&policy, typed(oid, binary), value).0
}

fn bytes(masked: Masked) -> Vec<u8> {
    match masked {
        Masked::Replace(bytes) => bytes,
        other => panic!("expected a replacement, got {other:?}"),
    }
}

#[test]
fn binary_text_like_types_are_masked_as_their_characters() {
    // text, varchar, bpchar, name
    for oid in [25, 1043, 1042, 19] {
        assert_eq!(
            rule(Style::Redact, oid, true, b"ada@example.com"),
            Masked::Replace(b"****".to_vec())
        );
        assert_eq!(
            rule(Style::Last4, oid, true, b"4111111111111111"),
            Masked::Replace(b"************1111".to_vec())
        );
    }
    // Detectors scan binary text-like values in place too.
    let detectors = all_detectors(Style::Redact);
    let (masked, _) = mask_one(
        &detectors,
        Column {
            name: "note",
            table: None,
            type_oid: 1043,
            binary: true,
        },
        b"mail ada@example.com",
    );
    assert_eq!(masked, Masked::Replace(b"mail ****".to_vec()));
}

#[test]
fn json_stays_valid_json() {
    for binary in [false, true] {
        for style in [Style::Redact, Style::Last4, Style::Hash] {
            for value in [
                &br#"{"email":"ada@example.com","n":1}"#[..],
                br#""4111111111111111""#,
                br#"[1,2,"a\"b"]"#,
                b"12345678901",
            ] {
                let out = bytes(rule(style, 114, binary, value));
                let parsed: serde_json::Value = serde_json::from_slice(&out)
                    .unwrap_or_else(|e| panic!("{style} {:?}: {e}", String::from_utf8_lossy(&out)));
                assert!(parsed.is_string());
            }
        }
    }
    assert_eq!(
        rule(Style::Redact, 114, false, b"{}"),
        Masked::Replace(b"\"****\"".to_vec())
    );
    assert_eq!(
        bytes(rule(Style::Last4, 114, false, br#""4111111111111111""#)),
        br#""************1111""#
    );
}

#[test]
fn detectors_inside_json_keep_it_valid() {
    let detectors = all_detectors(Style::Redact);
    let json = |value: &[u8], oid: u32, binary: bool| {
        let column = Column {
            name: "doc",
            table: None,
            type_oid: oid,
            binary,
        };
        mask_one(&detectors, column, value).0
    };
    let doc = br#"{"to":"ada@example.com","card":4111111111111111,"neg":-4111111111111111,"note":"pay 4111 1111 1111 1111 now"}"#;
    let out = bytes(json(doc, 114, false));
    assert_eq!(
        String::from_utf8_lossy(&out),
        r#"{"to":"****","card":"****","neg":"****","note":"pay **** now"}"#
    );
    let parsed: Result<serde_json::Value, _> = serde_json::from_slice(&out);
    assert!(parsed.is_ok());

    // jsonb binary: the version byte stays in front.
    let mut binary = vec![1u8];
    binary.extend_from_slice(doc);
    let out = bytes(json(&binary, 3802, true));
    assert_eq!(out[0], 1);
    assert!(serde_json::from_slice::<serde_json::Value>(&out[1..]).is_ok());
    // jsonb text format is plain JSON text.
    assert!(serde_json::from_slice::<serde_json::Value>(&bytes(json(doc, 3802, false))).is_ok());
    // An unknown jsonb version is opaque: a hit makes it NULL.
    let mut unknown = vec![2u8];
    unknown.extend_from_slice(doc);
    assert_eq!(json(&unknown, 3802, true), Masked::Null);
    // A match that would cross a string boundary (a key with no END, then more JSON) masks the
    // whole document instead.
    let pem = br#"{"k":"-----BEGIN RSA PRIVATE KEY-----\nMIIE","n":1}"#;
    assert_eq!(json(pem, 114, false), Masked::Replace(b"\"****\"".to_vec()));
}

#[test]
fn jsonb_binary_rules_keep_the_version_byte() {
    let out = bytes(rule(Style::Redact, 3802, true, b"\x01{\"a\":1}"));
    assert_eq!(out, b"\x01\"****\"");
    assert_eq!(rule(Style::Redact, 3802, true, b"\x02{}"), Masked::Null);
    assert_eq!(rule(Style::Redact, 3802, true, b""), Masked::Null);
}

#[test]
fn integers_get_typed_replacements() {
    // Binary: exactly the type's width.
    assert_eq!(
        bytes(rule(Style::Redact, 23, true, &42i32.to_be_bytes())),
        0i32.to_be_bytes()
    );
    assert_eq!(
        bytes(rule(Style::Redact, 21, true, &7i16.to_be_bytes())),
        0i16.to_be_bytes()
    );
    assert_eq!(
        bytes(rule(
            Style::Last4,
            20,
            true,
            &4_111_111_111_111_234i64.to_be_bytes()
        )),
        1234i64.to_be_bytes()
    );
    assert_eq!(
        bytes(rule(Style::Last4, 20, true, &1234567i64.to_be_bytes())),
        0i64.to_be_bytes()
    );
    // Text.
    assert_eq!(bytes(rule(Style::Redact, 23, false, b"42")), b"0");
    assert_eq!(
        bytes(rule(Style::Last4, 20, false, b"-4111111111111234")),
        b"1234"
    );
    // Hash: a non-negative number of the same width, the same in both formats.
    for (oid, value) in [(21u32, 7i64), (23, 42), (20, 4_111_111_111_111_111)] {
        let text = bytes(rule(Style::Hash, oid, false, value.to_string().as_bytes()));
        let hashed: i64 = String::from_utf8_lossy(&text).parse().unwrap_or(-1);
        assert!(hashed >= 0);
        let binary_in = match oid {
            21 => i16::try_from(value).map(|v| v.to_be_bytes().to_vec()),
            23 => i32::try_from(value).map(|v| v.to_be_bytes().to_vec()),
            _ => Ok(value.to_be_bytes().to_vec()),
        }
        .unwrap_or_default();
        let binary_out = bytes(rule(Style::Hash, oid, true, &binary_in));
        assert_eq!(binary_out.len(), binary_in.len());
        let mut wide = [0u8; 8];
        wide[8 - binary_out.len()..].copy_from_slice(&binary_out);
        assert_eq!(i64::from_be_bytes(wide), hashed, "oid {oid}");
        assert_ne!(hashed, value);
    }
    // A value of the wrong width cannot be rewritten safely: NULL.
    assert_eq!(rule(Style::Redact, 23, true, b"\x00\x01"), Masked::Null);
    assert_eq!(
        rule(Style::Redact, 23, false, b"not a number"),
        Masked::Null
    );
}

#[test]
fn floats_and_numerics_get_typed_replacements() {
    assert_eq!(
        bytes(rule(Style::Redact, 701, true, &1.5f64.to_be_bytes())),
        0f64.to_be_bytes()
    );
    assert_eq!(
        bytes(rule(Style::Redact, 700, true, &1.5f32.to_be_bytes())),
        0f32.to_be_bytes()
    );
    let text = bytes(rule(Style::Hash, 701, false, b"1.5"));
    let binary = bytes(rule(Style::Hash, 701, true, &1.5f64.to_be_bytes()));
    let from_text: f64 = String::from_utf8_lossy(&text).parse().unwrap_or(-1.0);
    assert_eq!(binary, from_text.to_be_bytes());

    // numeric: zero is eight zero bytes; text and binary hash alike.
    assert_eq!(
        bytes(rule(Style::Redact, 1700, true, &test_numeric_binary(12345))),
        [0u8; 8]
    );
    assert_eq!(bytes(rule(Style::Redact, 1700, false, b"123.45")), b"0");
    let text = bytes(rule(Style::Hash, 1700, false, b"4111111111111111"));
    let binary = bytes(rule(
        Style::Hash,
        1700,
        true,
        &test_numeric_binary(4_111_111_111_111_111),
    ));
    let n: u64 = String::from_utf8_lossy(&text).parse().unwrap_or(0);
    assert_eq!(binary, test_numeric_binary(n));
    assert_eq!(
        bytes(rule(
            Style::Last4,
            1700,
            true,
            &test_numeric_binary(4_111_111_111_111_234)
        )),
        test_numeric_binary(1234)
    );
}

#[test]
fn numeric_binary_round_trips_through_text() {
    for (n, text) in [
        (0u64, "0"),
        (1, "1"),
        (10_000, "10000"),
        (4_111_111_111_111_111, "4111111111111111"),
    ] {
        assert_eq!(
            test_numeric_text(&test_numeric_binary(n)).as_deref(),
            Some(text)
        );
    }
    // 12345.678: ndigits 3, weight 1, positive, dscale 3, digits 1 2345 6780.
    let value = [0, 3, 0, 1, 0, 0, 0, 3, 0, 1, 0x09, 0x29, 0x1a, 0x7c];
    assert_eq!(test_numeric_text(&value).as_deref(), Some("12345.678"));
    // -0.0012: ndigits 1, weight -1, negative, dscale 4, digit 12.
    let value = [0, 1, 0xff, 0xff, 0x40, 0, 0, 4, 0, 12];
    assert_eq!(test_numeric_text(&value).as_deref(), Some("-0.0012"));
    assert_eq!(
        test_numeric_text(&[0, 0, 0, 0, 0xC0, 0, 0, 0]).as_deref(),
        Some("NaN")
    );
    assert_eq!(test_numeric_text(&[0, 5, 0, 0]), None);
}

#[test]
fn uuids_get_typed_replacements() {
    let text = b"550e8400-e29b-41d4-a716-446655440000";
    let raw: [u8; 16] = [
        0x55, 0x0e, 0x84, 0x00, 0xe2, 0x9b, 0x41, 0xd4, 0xa7, 0x16, 0x44, 0x66, 0x55, 0x44, 0x00,
        0x00,
    ];
    assert_eq!(bytes(rule(Style::Redact, 2950, true, &raw)), [0u8; 16]);
    assert_eq!(
        replaced(&rule(Style::Redact, 2950, false, text)),
        "00000000-0000-0000-0000-000000000000"
    );
    assert_eq!(
        replaced(&rule(Style::Last4, 2950, false, text)),
        "00000000-0000-0000-0000-000000000000"
    );
    let hashed_text = replaced(&rule(Style::Hash, 2950, false, text));
    let hashed_binary = bytes(rule(Style::Hash, 2950, true, &raw));
    assert_eq!(hashed_text.len(), 36);
    assert_eq!(&hashed_text[14..15], "8", "version 8");
    assert!(
        matches!(&hashed_text[19..20], "8" | "9" | "a" | "b"),
        "RFC variant"
    );
    let hex: String = hashed_binary.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(hashed_text.replace('-', ""), hex);
    assert_eq!(rule(Style::Redact, 2950, true, b"short"), Masked::Null);
}

#[test]
fn uuid_last4_keeps_the_last_four_hex_digits() {
    assert_eq!(
        replaced(&rule(
            Style::Last4,
            2950,
            false,
            b"550e8400-e29b-41d4-a716-44665544abcd"
        )),
        "00000000-0000-0000-0000-00000000abcd"
    );
}

#[test]
fn bytea_is_masked_as_bytes_in_both_formats() {
    assert_eq!(
        bytes(rule(Style::Redact, 17, true, b"\x00\x01secret")),
        b"****"
    );
    assert_eq!(
        bytes(rule(Style::Redact, 17, false, b"\\x0001")),
        b"\\x2a2a2a2a"
    );
    assert_eq!(
        bytes(rule(Style::Last4, 17, true, b"0123456789")),
        b"******6789"
    );
    let text = bytes(rule(Style::Hash, 17, false, b"\\x736563726574"));
    let binary = bytes(rule(Style::Hash, 17, true, b"secret"));
    let mut hex = b"\\x".to_vec();
    hex.extend(binary.iter().flat_map(|b| format!("{b:02x}").into_bytes()));
    assert_eq!(text, hex);

    // A private key stored in a bytea is found by the detectors and masked whole.
    let detectors = all_detectors(Style::Redact);
    let pem = b"-----BEGIN PRIVATE KEY-----\nMC4CAQ\n-----END PRIVATE KEY-----\n";
    let column = |binary| Column {
        name: "blob",
        table: None,
        type_oid: 17,
        binary,
    };
    assert_eq!(
        mask_one(&detectors, column(true), pem).0,
        Masked::Replace(b"****".to_vec())
    );
    let hex: Vec<u8> = b"\\x"
        .iter()
        .copied()
        .chain(pem.iter().flat_map(|b| format!("{b:02x}").into_bytes()))
        .collect();
    assert_eq!(
        mask_one(&detectors, column(false), &hex).0,
        Masked::Replace(b"\\x2a2a2a2a".to_vec())
    );
}

#[test]
fn types_without_a_masked_value_become_null() {
    // bool, timestamptz, date, inet: binary and text.
    for oid in [16, 1184, 1082, 869] {
        for binary in [false, true] {
            assert_eq!(
                rule(Style::Redact, oid, binary, b"\x01"),
                Masked::Null,
                "oid {oid}"
            );
        }
    }
    // Arrays, in both formats.
    assert_eq!(rule(Style::Redact, 1009, false, b"{a,b}"), Masked::Null);
    assert_eq!(
        rule(Style::Hash, 1016, true, b"\x00\x00\x00\x01"),
        Masked::Null
    );
    // Unknown OIDs (citext, enums, hstore...): text format is text, binary is opaque.
    assert_eq!(
        rule(Style::Redact, 90_001, false, b"ada@example.com"),
        Masked::Replace(b"****".to_vec())
    );
    assert_eq!(
        rule(Style::Redact, 90_001, true, b"ada@example.com"),
        Masked::Null
    );
}

#[test]
fn detector_hits_in_typed_values() {
    let detectors = all_detectors(Style::Redact);
    let scan = |oid: u32, binary: bool, value: &[u8]| {
        let column = Column {
            name: "x",
            table: None,
            type_oid: oid,
            binary,
        };
        let mut counts = MaskCounts::new();
        let masked = detectors.plan(&[column]).mask_value(0, value, &mut counts);
        (masked, counts.total())
    };
    // A card number stored as a bigint or numeric, text format: the whole value, typed.
    assert_eq!(
        scan(20, false, b"4111111111111111"),
        (Masked::Replace(b"0".to_vec()), 1)
    );
    assert_eq!(
        scan(1700, false, b"4111111111111111"),
        (Masked::Replace(b"0".to_vec()), 1)
    );
    assert_eq!(scan(20, false, b"4111111111111112"), (Masked::Unchanged, 0));
    // Text arrays are rewritten in place; other arrays become NULL.
    assert_eq!(
        scan(1009, false, b"{ada@example.com,\"b c\"}"),
        (Masked::Replace(b"{****,\"b c\"}".to_vec()), 1)
    );
    assert_eq!(
        scan(1016, false, b"{4111111111111111,2}"),
        (Masked::Null, 1)
    );
    // Unknown binary values (a citext, an enum) are opaque: a hit makes them NULL.
    assert_eq!(scan(90_001, true, b"ada@example.com"), (Masked::Null, 1));
    assert_eq!(
        scan(90_001, false, b"ada@example.com"),
        (Masked::Replace(b"****".to_vec()), 1)
    );
    // Binary numbers are not scanned at all.
    assert_eq!(
        scan(20, true, &4_111_111_111_111_111i64.to_be_bytes()),
        (Masked::Unchanged, 0)
    );
}

#[test]
fn detector_styles_on_whole_typed_values() {
    let policy = policy(&[], &[("cards", Detector::CardNumber, Style::Last4)]);
    let column = Column {
        name: "pan",
        table: None,
        type_oid: 20,
        binary: false,
    };
    let (masked, _) = mask_one(&policy, column, b"4012888888881881");
    assert_eq!(masked, Masked::Replace(b"1881".to_vec()));
}

#[test]
fn json_strings_share_pseudonyms_with_text() {
    let text = replaced(&rule(Style::Hash, 25, false, b"ada@example.com"));
    let json = replaced(&rule(Style::Hash, 114, false, br#""ada@example.com""#));
    assert_eq!(json, format!("\"{text}\""));
}
