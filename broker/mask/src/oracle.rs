//! Properties checked by the fuzz targets in `fuzz/` and by the property tests: for any input,
//! masking never panics, a replacement is valid for its type and format, counts agree with
//! what was done, and a planted value that the detectors find never reaches the output.

use std::borrow::Cow;
use std::sync::OnceLock;

use crate::{Column, ColumnRule, Detector, DetectorRule, MaskCounts, MaskPolicy, Masked, Style};

/// Type OIDs the fuzz input chooses from: every kind the crate distinguishes.
pub const OIDS: [u32; 18] = [
    25, 1043, 19, 114, 3802, 21, 23, 20, 700, 701, 1700, 2950, 17, 1009, 1016, 16, 1184, 90_001,
];

/// Values the detectors must find with spaces around them, whatever surrounds the spaces.
pub const PLANTED: [&str; 11] = [
    "4111 1111 1111 1111",
    "5555-5555-5555-4444",
    "378282246310005",
    "ada.lovelace+test@example.co.uk",
    "078-05-1120",
    "DE89 3704 0044 0532 0130 00",
    "+44 20 7946 0958",
    "AKIAIOSFODNN7EXAMPLE",
    "ghp_1a2B3c4D5e6F7g8H9i0J1k2L3m4N5o6P7q8R",
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
    "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA3Tz2mr7SZiAMfQyuvBjM\n-----END RSA PRIVATE KEY-----",
];

/// A profile with every detector in `style`, and a column rule in `style` for columns named
/// `secret`.
pub fn policy(style: Style) -> &'static MaskPolicy {
    static POLICIES: [OnceLock<MaskPolicy>; 3] =
        [OnceLock::new(), OnceLock::new(), OnceLock::new()];
    let index = Style::ALL.iter().position(|s| *s == style).unwrap_or(0);
    POLICIES[index].get_or_init(|| {
        let detectors = Detector::ALL
            .iter()
            .map(|detector| DetectorRule {
                name: format!("d-{detector}"),
                detector: *detector,
                style,
            })
            .collect();
        let columns = vec![ColumnRule {
            name: "c-secret".into(),
            column: "secret".into(),
            style,
        }];
        match MaskPolicy::new(columns, detectors, [7; 32]) {
            Ok(policy) => policy,
            Err(error) => panic!("oracle policy: {error}"),
        }
    })
}

/// One value: the first byte picks type, format, style and whether a column rule names the
/// column; the rest is the value.
pub fn mask_value(data: &[u8]) {
    let Some((&selector, value)) = data.split_first() else {
        return;
    };
    let selector = usize::from(selector);
    let oid = OIDS[selector % OIDS.len()];
    let binary = selector & 0x80 != 0;
    let whole = selector & 0x40 != 0;
    let style = Style::ALL[(selector / OIDS.len()) % 3];
    let column = Column {
        name: if whole { "secret" } else { "note" },
        table: Some("public.t"),
        type_oid: oid,
        binary,
    };
    let plan = policy(style).plan(&[column]);
    let mut counts = MaskCounts::new();
    let masked = plan.mask_value(0, value, &mut counts);
    check_value(oid, binary, value, &masked, &counts);
    if whole {
        assert_ne!(masked, Masked::Unchanged, "a column rule always masks");
    }
    // Beyond the planned columns: never a panic, never the raw value with a hit in it.
    let mut beyond = MaskCounts::new();
    let masked = plan.mask_value(1, value, &mut beyond);
    assert!(matches!(masked, Masked::Unchanged | Masked::Null));
}

/// A replacement is valid for its type and format, and counts say what happened.
pub fn check_value(oid: u32, binary: bool, value: &[u8], masked: &Masked, counts: &MaskCounts) {
    match masked {
        Masked::Unchanged => assert!(counts.is_empty(), "counted but unchanged"),
        Masked::Null => assert!(!counts.is_empty(), "NULL without a count"),
        Masked::Replace(bytes) => {
            assert!(!counts.is_empty(), "replaced without a count");
            match (oid, binary) {
                (21, true) => assert_eq!(bytes.len(), 2),
                (23 | 700, true) => assert_eq!(bytes.len(), 4),
                (20 | 701, true) => assert_eq!(bytes.len(), 8),
                (2950, true) => assert_eq!(bytes.len(), 16),
                (3802, true) => assert_eq!(bytes.first(), Some(&1)),
                (21 | 23 | 20, false) => assert!(parse::<i64>(bytes).is_some(), "int text"),
                (700 | 701 | 1700, false) => assert!(parse::<f64>(bytes).is_some(), "float text"),
                (2950, false) => assert_eq!(bytes.len(), 36),
                (17, false) => assert!(bytes.starts_with(b"\\x")),
                (_, false) if std::str::from_utf8(value).is_ok() => {
                    assert!(std::str::from_utf8(bytes).is_ok(), "text stays UTF-8");
                }
                _ => {}
            }
        }
    }
}

fn parse<T: std::str::FromStr>(bytes: &[u8]) -> Option<T> {
    std::str::from_utf8(bytes).ok()?.parse().ok()
}

/// Free text: any input masks without panicking, `Borrowed` exactly when nothing was found,
/// and every planted value is found and gone from the output, in all three styles, as text, as
/// bytes and as a text column value.
pub fn mask_text(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    for style in Style::ALL {
        let policy = policy(style);
        let mut counts = MaskCounts::new();
        let out = policy.mask_text(&text, &mut counts);
        assert_eq!(matches!(out, Cow::Borrowed(_)), counts.is_empty());
        let mut counts = MaskCounts::new();
        let out = policy.mask_bytes(data, &mut counts);
        assert_eq!(matches!(out, Cow::Borrowed(_)), counts.is_empty());
    }
    let cut = data.len() / 2;
    let (before, after) = data.split_at(cut);
    let planted_index = data.first().map_or(0, |b| usize::from(*b) % PLANTED.len());
    let planted = PLANTED[planted_index];
    let style = Style::ALL[data.last().map_or(0, |b| usize::from(*b) % 3)];
    check_planted(policy(style), before, planted, after);
}

/// `before planted after`, with a space on either side of `planted`: the planted value must be
/// counted and absent from the output (unless the surroundings contain it themselves).
pub fn check_planted(policy: &MaskPolicy, before: &[u8], planted: &str, after: &[u8]) {
    let mut input = Vec::with_capacity(before.len() + planted.len() + after.len() + 2);
    input.extend_from_slice(before);
    input.push(b' ');
    input.extend_from_slice(planted.as_bytes());
    input.push(b' ');
    input.extend_from_slice(after);
    let surroundings_contain =
        contains(before, planted.as_bytes()) || contains(after, planted.as_bytes());

    let mut counts = MaskCounts::new();
    let out = policy.mask_bytes(&input, &mut counts);
    assert!(!counts.is_empty(), "planted {planted:?} not found");
    assert!(
        surroundings_contain || !contains(&out, planted.as_bytes()),
        "planted {planted:?} left in clear"
    );

    let plan = policy.plan(&[Column {
        name: "note",
        table: None,
        type_oid: 25,
        binary: false,
    }]);
    let mut counts = MaskCounts::new();
    match plan.mask_value(0, &input, &mut counts) {
        Masked::Replace(out) => assert!(
            surroundings_contain || !contains(&out, planted.as_bytes()),
            "planted {planted:?} left in clear in a value"
        ),
        other => panic!("planted {planted:?}: {other:?}"),
    }

    let text = String::from_utf8_lossy(&input);
    let mut counts = MaskCounts::new();
    let out = policy.mask_text(&text, &mut counts);
    assert!(
        contains(text.as_bytes(), planted.as_bytes()) && !counts.is_empty(),
        "planted {planted:?} not found in text"
    );
    let lossy_surroundings = String::from_utf8_lossy(before).contains(planted)
        || String::from_utf8_lossy(after).contains(planted);
    assert!(
        lossy_surroundings || !out.contains(planted),
        "planted {planted:?} left in clear in text"
    );
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    memchr::memmem::find(haystack, needle).is_some()
}
