//! Any text: `classify` must not panic, must return either one `Unknown` spanning the whole
//! text or well-formed facts, and every profile must reach a verdict; an `Unknown` must be
//! refused by both guarded profiles.

#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_sql::{GuardPolicy, Profile, StatementClass, Verdict, classify};

fuzz_target!(|data: &[u8]| {
    let Ok(sql) = std::str::from_utf8(data) else {
        return;
    };
    let facts = classify(sql);
    if facts.iter().any(|f| f.class == StatementClass::Unknown) {
        assert_eq!(facts.len(), 1);
        assert_eq!(facts[0].span, 0..sql.len());
        assert!(facts[0].parse_error.is_some());
        for profile in [Profile::ReadOnly, Profile::GuardedWrite] {
            let verdict = GuardPolicy::new(profile).decide(&facts);
            assert!(matches!(verdict, Verdict::Block { .. }), "{verdict:?}");
        }
        return;
    }
    for f in &facts {
        assert!(sql.get(f.span.clone()).is_some());
        assert!(!f.command.is_empty());
    }
    for profile in Profile::ALL {
        let _ = GuardPolicy::new(profile).decide(&facts);
    }
});
