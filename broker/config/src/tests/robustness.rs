//! The parser never panics and never overflows the stack, whatever the input.
//!
//! A cheap stand-in for a fuzz target: mutate a valid configuration with YAML-significant
//! characters and require a result (either way) for every variant.

use std::path::Path;

use super::FILE;
use super::model::FULL;
use crate::parse;

#[test]
fn mutated_configurations_never_panic() {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    // xorshift64: deterministic, so a failure reproduces.
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        usize::try_from(state % 1_000_003).unwrap_or_default()
    };
    let alphabet = b"{}[]:-,#&*!|>'\"\n \t?%@`~a0";
    for _ in 0..3000 {
        let mut bytes = FULL.as_bytes().to_vec();
        for _ in 0..=next() % 4 {
            let at = next() % bytes.len();
            let byte = alphabet[next() % alphabet.len()];
            match next() % 3 {
                0 => bytes[at] = byte,
                1 => {
                    bytes.remove(at);
                }
                _ => bytes.insert(at, byte),
            }
        }
        if let Ok(text) = String::from_utf8(bytes) {
            let _ = parse(&text, Path::new(FILE));
        }
    }
}

#[test]
fn deep_nesting_is_an_error_not_a_crash() {
    let errors = parse(&"[".repeat(100_000), Path::new(FILE)).expect_err("invalid");
    assert_eq!(errors.len(), 1);
    let nested: String = (0..200)
        .map(|depth| format!("{}k{depth}:\n", " ".repeat(depth)))
        .collect();
    let errors = parse(&nested, Path::new(FILE)).expect_err("invalid");
    assert!(
        errors
            .iter()
            .any(|error| error.message.contains("nesting deeper than")),
        "{errors}"
    );
}
