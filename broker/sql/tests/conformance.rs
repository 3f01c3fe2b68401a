//! Conformance over PostgreSQL 17's regression suite (44,547 statements, 44,243 valid):
//! every statement PostgreSQL accepts must get a class other than `unknown` (an `unknown`
//! valid statement is a false block under a guarded profile), and every statement it
//! rejects must be `unknown` (and so refused).
//!
//! The corpus lives outside the crate, in the shared data next to the repository
//! (`shared/data/pg-regress-statements.jsonl`). A missing corpus fails the test: a
//! conformance check that silently skips is no check.
//!
//! Also here: the classifier's shape cache, which reuses one text's facts for another text
//! that differs only in constants, must give exactly what a fresh parse gives, for every
//! statement of the corpus and adversarial constants in its place.
//!
//! Also here, `#[ignore]`d: a micro-benchmark of classification time per statement, run with
//! `cargo test -p sluice-sql --release --test conformance -- --ignored --nocapture`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use sluice_sql::{StatementClass, classify};

struct Case {
    file: String,
    line: u64,
    valid: bool,
    sql: String,
}

fn corpus() -> Vec<Case> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data/pg-regress-statements.jsonl");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "the conformance corpus is missing: cannot read {} ({e}). It is part of the shared \
             test data (shared/data/README.md) and must be present where the repository is \
             checked out; this test fails rather than skips without it",
            path.display()
        )
    });
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(n, l)| {
            let v: serde_json::Value = serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("corpus line {}: not JSON: {e}", n + 1));
            Case {
                file: v["file"].as_str().unwrap_or_default().to_owned(),
                line: v["line"].as_u64().unwrap_or_default(),
                valid: v["valid"]
                    .as_bool()
                    .unwrap_or_else(|| panic!("corpus line {}: no `valid`", n + 1)),
                sql: v["sql"]
                    .as_str()
                    .unwrap_or_else(|| panic!("corpus line {}: no `sql`", n + 1))
                    .to_owned(),
            }
        })
        .collect()
}

fn measure(cases: &[Case], mut run: impl FnMut(&str)) -> Vec<Duration> {
    let mut times: Vec<Duration> = Vec::with_capacity(cases.len());
    for case in cases {
        let t = Instant::now();
        run(&case.sql);
        times.push(t.elapsed());
    }
    times.sort();
    times
}

fn report(what: &str, times: &[Duration]) {
    let at = |q: f64| times[((times.len() - 1) as f64 * q) as usize];
    let total: Duration = times.iter().sum();
    println!(
        "{what:<24} {} statements: total {:.3?}, mean {:.1?}, p50 {:.1?}, p90 {:.1?}, p99 {:.1?}, \
         max {:.1?}",
        times.len(),
        total,
        total / times.len() as u32,
        at(0.50),
        at(0.90),
        at(0.99),
        at(1.0)
    );
}

#[test]
fn every_valid_statement_is_classified_and_every_invalid_one_is_unknown() {
    let started = Instant::now();
    let cases = corpus();
    assert!(
        cases.len() > 40_000,
        "corpus truncated: {} statements",
        cases.len()
    );
    let mut per_class: BTreeMap<&'static str, usize> = BTreeMap::new();
    let mut per_command: BTreeMap<String, usize> = BTreeMap::new();
    let (mut valid, mut invalid, mut empty) = (0usize, 0usize, 0usize);
    let mut failures = Vec::new();
    for case in &cases {
        let facts = classify(&case.sql);
        if case.valid {
            valid += 1;
            if facts.is_empty() {
                empty += 1;
            }
            for f in &facts {
                *per_class.entry(f.class.as_str()).or_default() += 1;
                *per_command.entry(f.command.clone()).or_default() += 1;
                if f.class == StatementClass::Unknown {
                    failures.push(format!(
                        "{}:{} valid but unknown ({}): {}",
                        case.file,
                        case.line,
                        f.parse_error.as_deref().unwrap_or(""),
                        case.sql.chars().take(200).collect::<String>()
                    ));
                }
            }
        } else {
            invalid += 1;
            let refused = facts.len() == 1 && facts[0].class == StatementClass::Unknown;
            if !refused {
                failures.push(format!(
                    "{}:{} invalid but classified as {:?}: {}",
                    case.file,
                    case.line,
                    facts.iter().map(|f| f.class).collect::<Vec<_>>(),
                    case.sql.chars().take(200).collect::<String>()
                ));
            }
        }
    }
    println!(
        "conformance: {} statements ({valid} valid, {invalid} invalid) in {:.1?}",
        cases.len(),
        started.elapsed()
    );
    println!("  statements per class (valid input; a string may hold several):");
    for (class, n) in &per_class {
        println!("    {class:<12} {n:>6}");
    }
    println!("  valid texts without any statement (comments only): {empty}");
    let mut commands: Vec<_> = per_command.into_iter().collect();
    commands.sort_by_key(|c| std::cmp::Reverse(c.1));
    println!(
        "  most frequent commands: {}",
        commands
            .iter()
            .take(15)
            .map(|(c, n)| format!("{c} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    assert!(
        failures.is_empty(),
        "{} conformance failures, first ones:\n{}",
        failures.len(),
        failures
            .iter()
            .take(30)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// `sql` with every constant replaced by `pick(kind, index)`, or `None` when the scanner
/// refuses it. Kinds: `i`nteger, `f`loat, `s`tring, `b`it string, `x` hex bit string.
fn with_constants(sql: &str, pick: &dyn Fn(char, usize) -> String) -> Option<String> {
    use pg_query::protobuf::Token;
    let tokens = pg_query::scan_tokens(sql).ok()?;
    let mut out = String::with_capacity(sql.len());
    let mut copied = 0;
    for (index, token) in tokens.iter().enumerate() {
        let kind = match Token::try_from(token.token) {
            Ok(Token::Iconst) => 'i',
            Ok(Token::Fconst) => 'f',
            Ok(Token::Sconst) => 's',
            Ok(Token::Bconst) => 'b',
            Ok(Token::Xconst) => 'x',
            _ => continue,
        };
        let (start, end) = (token.start as usize, token.end as usize);
        out.push_str(sql.get(copied..start)?);
        out.push_str(&pick(kind, index));
        copied = end;
    }
    out.push_str(sql.get(copied..)?);
    Some(out)
}

/// Constants chosen to flip whatever could depend on them: all equal (`1 = 1`), all
/// different, and the values that mean something to the analysis (`'%'` for LIKE, `0`/`1`
/// for booleans, setting names and `off`).
fn adversarial_variants(sql: &str) -> Vec<String> {
    let equal = |kind: char, _: usize| match kind {
        'i' => "1".to_owned(),
        'f' => "1.0".to_owned(),
        's' => "'1'".to_owned(),
        'b' => "B'1'".to_owned(),
        _ => "X'1'".to_owned(),
    };
    let distinct = |kind: char, index: usize| match kind {
        'i' => (index + 2).to_string(),
        'f' => format!("{}.5", index + 2),
        's' => format!("'v{index}'"),
        'b' => format!("B'{:b}'", index + 2),
        _ => format!("X'{:x}'", index + 2),
    };
    let meaningful = |kind: char, index: usize| match (kind, index % 3) {
        ('i', 0) => "0".to_owned(),
        ('i', _) => "1".to_owned(),
        ('f', _) => "0.0".to_owned(),
        ('s', 0) => "'%'".to_owned(),
        ('s', 1) => "'default_transaction_read_only'".to_owned(),
        ('s', _) => "'off'".to_owned(),
        ('b', _) => "B'0'".to_owned(),
        _ => "X'0'".to_owned(),
    };
    [
        &equal as &dyn Fn(char, usize) -> String,
        &distinct,
        &meaningful,
    ]
    .into_iter()
    .filter_map(|pick| with_constants(sql, pick))
    .filter(|variant| variant != sql)
    .collect()
}

#[test]
fn a_cached_shape_gives_the_facts_a_fresh_parse_gives() {
    let cases: Vec<Case> = corpus().into_iter().filter(|c| c.valid).collect();
    let classifier = sluice_sql::Classifier::new(1 << 20);
    let mut compared = 0;
    let mut mismatches = Vec::new();
    for case in &cases {
        classifier.classify(&case.sql);
        for variant in adversarial_variants(&case.sql) {
            let cached = classifier.classify(&variant);
            let fresh = classify(&variant);
            compared += 1;
            if *cached != *fresh {
                mismatches.push(format!(
                    "{}:{}: {}\n  cached: {cached:?}\n  fresh:  {fresh:?}",
                    case.file, case.line, variant
                ));
            }
        }
    }
    println!(
        "{compared} variants compared, {} shapes cached",
        classifier.shapes()
    );
    assert!(
        classifier.shapes() > 1_000,
        "the shape cache was hardly used"
    );
    assert!(
        mismatches.is_empty(),
        "{} variants got other facts from the shape cache than from a parse:\n{}",
        mismatches.len(),
        mismatches
            .iter()
            .take(10)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// Classification time per statement over the corpus, p50/p99/max: uncached `classify`,
/// libpg_query's parse alone for comparison, and a `Classifier` cache hit; then pgbench's
/// select with a new constant each time, through the shape cache and parsed.
#[test]
#[ignore = "benchmark: run with --release --ignored --nocapture"]
fn classification_time_per_statement() {
    let cases: Vec<Case> = corpus().into_iter().filter(|c| c.valid).collect();
    // Warm up (allocator, page faults, libpg_query's memory contexts).
    for case in cases.iter().take(2_000) {
        std::hint::black_box(classify(&case.sql));
    }
    let parse = measure(&cases, |sql| {
        std::hint::black_box(pg_query::parse(sql, 0).ok());
    });
    report("pg_query::parse alone", &parse);
    let uncached = measure(&cases, |sql| {
        std::hint::black_box(classify(sql));
    });
    report("classify (uncached)", &uncached);
    let classifier = sluice_sql::Classifier::new(cases.len() * 2);
    for case in &cases {
        classifier.classify(&case.sql);
    }
    let cached = measure(&cases, |sql| {
        std::hint::black_box(classifier.classify(sql));
    });
    report("Classifier (cache hit)", &cached);
    // pgbench -S under the simple protocol: every text new, one shape.
    let pgbench: Vec<Case> = (0..20_000)
        .map(|aid| Case {
            file: String::new(),
            line: 0,
            valid: true,
            sql: format!(
                "SELECT abalance FROM pgbench_accounts WHERE aid = {};",
                aid * 7 + 1
            ),
        })
        .collect();
    let fresh = sluice_sql::Classifier::new(4096);
    let misses = measure(&pgbench[..1], |sql| {
        std::hint::black_box(fresh.classify(sql));
    });
    report("pgbench text, first", &misses);
    let shaped = measure(&pgbench[1..], |sql| {
        std::hint::black_box(fresh.classify(sql));
    });
    report("pgbench text, shape hit", &shaped);
    let parsed = measure(&pgbench, |sql| {
        std::hint::black_box(classify(sql));
    });
    report("pgbench text, parsed", &parsed);
    let mut sorted: Vec<usize> = cases.iter().map(|c| c.sql.len()).collect();
    sorted.sort_unstable();
    println!(
        "statement length: p50 {} bytes, p99 {} bytes",
        sorted[sorted.len() / 2],
        sorted[sorted.len() * 99 / 100]
    );
}
