//! Throughput of the per-value and COPY paths, in MB/s of value bytes. Ignored by default; run
//! in release mode:
//!
//! ```text
//! cargo test -p sluice-mask --release --test throughput -- --ignored --nocapture
//! ```
//!
//! Scenarios: (a) realistic rows with nothing to find, every detector on; (b) the same rows
//! with planted values and a column rule, every detector on; (c) the worst case for (a): every
//! column text, so every value is scanned; (d) `pgbench_accounts` COPY lines through
//! `mask_bytes`; (e) long free-text notes. Each scenario runs several times; the best run is
//! reported (the machine is shared).

use std::hint::black_box;
use std::time::Instant;

/// Seconds this thread has run on a CPU (Linux `schedstat`), so that figures hold on a shared,
/// loaded machine; wall-clock time elsewhere.
fn cpu_seconds(wall: Instant) -> f64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|stat| stat.split_whitespace().next()?.parse::<u64>().ok())
        .map_or_else(|| wall.elapsed().as_secs_f64(), |ns| ns as f64 / 1e9)
}

/// A timer over this thread's CPU time.
struct Timer(f64, Instant);

impl Timer {
    fn start() -> Timer {
        let wall = Instant::now();
        Timer(cpu_seconds(wall), wall)
    }

    fn seconds(&self) -> f64 {
        cpu_seconds(self.1) - self.0
    }
}

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sluice_mask::{
    Column, ColumnRule, Detector, DetectorRule, MaskCounts, MaskPolicy, Masked, RowPlan, Style,
};

const ROWS: usize = 200_000;
const RUNS: usize = 3;
const MIN_SECONDS: f64 = 0.5;

fn policy(columns: Vec<ColumnRule>) -> MaskPolicy {
    let detectors = Detector::ALL
        .iter()
        .map(|detector| DetectorRule {
            name: detector.to_string(),
            detector: *detector,
            style: Style::Redact,
        })
        .collect();
    MaskPolicy::new(columns, detectors, [9; 32]).unwrap_or_else(|e| panic!("{e}"))
}

const FIRST: [&str; 8] = [
    "Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "John",
];
const LAST: [&str; 8] = [
    "Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Allen", "Backus",
];
const STATUS: [&str; 4] = ["active", "pending", "suspended", "closed"];
const CITY: [&str; 6] = [
    "London",
    "Paris",
    "Berlin",
    "New York",
    "São Paulo",
    "Tokyo",
];
const NOTES: [&str; 6] = [
    "Customer asked about delivery times for order 12345 placed last week.",
    "Called back, no answer. Try again on 2024-02-01 after 10:30.",
    "Upgraded to plan B (annual), invoice INV-2024-000123 sent.",
    "VIP",
    "",
    "Refund of 49.99 EUR approved by J. Smith; ticket #88213.",
];
const PLANTED: [&str; 5] = [
    "Paid with card 4111 1111 1111 1111, receipt sent to ada@example.com.",
    "Call back on +44 20 7946 0958 or (415) 555-2671.",
    "Wire to DE89 3704 0044 0532 0130 00 pending.",
    "Debug token ghp_1a2B3c4D5e6F7g8H9i0J1k2L3m4N5o6P7q8R pasted by mistake.",
    "SSN on file: 078-05-1120.",
];

/// The columns of a realistic customer table, with their types.
fn columns(all_text: bool) -> Vec<Column<'static>> {
    let typed = |name: &'static str, oid: u32| Column {
        name,
        table: Some("public.customers"),
        type_oid: if all_text { 25 } else { oid },
        binary: false,
    };
    vec![
        typed("id", 23),
        typed("name", 25),
        typed("email", 1043),
        typed("status", 1043),
        typed("created_at", 1184),
        typed("balance", 1700),
        typed("external_id", 2950),
        typed("city", 25),
        typed("phone", 25),
        typed("note", 25),
    ]
}

fn rows(planted: bool) -> Vec<Vec<Vec<u8>>> {
    let mut rng = StdRng::seed_from_u64(1);
    (0..ROWS)
        .map(|i| {
            let first = FIRST[rng.random_range(0..FIRST.len())];
            let last = LAST[rng.random_range(0..LAST.len())];
            let note = if planted && rng.random_range(0..5) == 0 {
                PLANTED[rng.random_range(0..PLANTED.len())]
            } else {
                NOTES[rng.random_range(0..NOTES.len())]
            };
            let email = if planted {
                format!(
                    "{}.{}{}@example.com",
                    first.to_lowercase(),
                    last.to_lowercase(),
                    i % 97
                )
            } else {
                format!("customer-{i}")
            };
            let phone = if planted {
                format!("+1 415 555 {:04}", i % 10_000)
            } else {
                format!("ext. {}", i % 1000)
            };
            vec![
                i.to_string().into_bytes(),
                format!("{first} {last}").into_bytes(),
                email.into_bytes(),
                STATUS[i % STATUS.len()].as_bytes().to_vec(),
                format!("2024-01-{:02} 10:{:02}:45.123456+00", 1 + i % 28, i % 60).into_bytes(),
                format!("{}.{:02}", rng.random_range(0..100_000), i % 100).into_bytes(),
                format!("550e8400-e29b-41d4-a716-{:012x}", i).into_bytes(),
                CITY[i % CITY.len()].as_bytes().to_vec(),
                phone.into_bytes(),
                note.as_bytes().to_vec(),
            ]
        })
        .collect()
}

/// Best MB/s over `RUNS` of masking every value (each run at least `MIN_SECONDS` of CPU
/// time); also the share of values changed.
fn run_rows(plan: &RowPlan, rows: &[Vec<Vec<u8>>]) -> (f64, f64) {
    let bytes: usize = rows.iter().flatten().map(Vec::len).sum();
    let mut changed = 0usize;
    let speed = best_of(bytes, || {
        let mut counts = MaskCounts::new();
        changed = 0;
        for row in rows {
            for (index, value) in row.iter().enumerate() {
                if !matches!(
                    black_box(plan.mask_value(index, value, &mut counts)),
                    Masked::Unchanged
                ) {
                    changed += 1;
                }
            }
        }
    });
    let values = rows.iter().map(Vec::len).sum::<usize>();
    (speed, 100.0 * changed as f64 / values as f64)
}

/// Best MB/s over `RUNS`; each run repeats `pass` (over `bytes` bytes) for at least
/// `MIN_SECONDS`, which also hides the tick granularity of the CPU clock.
fn best_of(bytes: usize, mut pass: impl FnMut()) -> f64 {
    let mut best = 0f64;
    for _ in 0..RUNS {
        let start = Timer::start();
        let mut passes = 0;
        while passes == 0 || start.seconds() < MIN_SECONDS {
            pass();
            passes += 1;
        }
        best = best.max(mb_per_s(bytes * passes, start.seconds()));
    }
    best
}

fn mb_per_s(bytes: usize, seconds: f64) -> f64 {
    bytes as f64 / seconds / 1e6
}

fn run_lines(policy: &MaskPolicy, lines: &[Vec<u8>]) -> f64 {
    let bytes: usize = lines.iter().map(Vec::len).sum();
    best_of(bytes, || {
        let mut counts = MaskCounts::new();
        for line in lines {
            black_box(policy.mask_bytes(line, &mut counts));
        }
    })
}

#[test]
#[ignore = "benchmark: run in release with --ignored --nocapture"]
fn throughput() {
    if cfg!(debug_assertions) {
        eprintln!("note: debug build; figures are meaningless, use --release");
    }
    let detectors_only = policy(vec![]);
    let with_rule = policy(vec![ColumnRule {
        name: "emails".into(),
        column: "customers.email".into(),
        style: Style::Hash,
    }]);

    let clean = rows(false);
    let mixed = rows(true);
    let bytes = |rows: &[Vec<Vec<u8>>]| rows.iter().flatten().map(Vec::len).sum::<usize>();
    println!(
        "rows: {ROWS} x 10 columns; clean {:.1} MB, mixed {:.1} MB",
        bytes(&clean) as f64 / 1e6,
        bytes(&mixed) as f64 / 1e6
    );

    let (speed, changed) = run_rows(&detectors_only.plan(&columns(false)), &clean);
    println!(
        "(a) clean rows, typed columns, all detectors:     {speed:8.0} MB/s ({changed:.1}% values changed)"
    );
    let (speed, changed) = run_rows(&with_rule.plan(&columns(false)), &mixed);
    println!(
        "(b) mixed rows, typed columns, detectors + rule:   {speed:8.0} MB/s ({changed:.1}% values changed)"
    );
    let (speed, changed) = run_rows(&detectors_only.plan(&columns(true)), &clean);
    println!(
        "(c) clean rows, every column text, all detectors:  {speed:8.0} MB/s ({changed:.1}% values changed)"
    );
    let (speed, changed) = run_rows(&with_rule.plan(&columns(true)), &mixed);
    println!(
        "(c') mixed rows, every column text, detectors+rule:{speed:8.0} MB/s ({changed:.1}% values changed)"
    );

    // pgbench_accounts COPY TO STDOUT lines: aid, bid, abalance, filler char(84).
    let filler = " ".repeat(84);
    let copy: Vec<Vec<u8>> = (1..=ROWS)
        .map(|aid| format!("{aid}\t{}\t0\t{filler}\n", 1 + aid / 100_000).into_bytes())
        .collect();
    println!(
        "(d) pgbench_accounts COPY lines, mask_bytes:       {:8.0} MB/s",
        run_lines(&detectors_only, &copy)
    );

    let mut rng = StdRng::seed_from_u64(2);
    let long: Vec<Vec<u8>> = (0..20_000)
        .map(|_| {
            let mut note = String::new();
            while note.len() < 1000 {
                note.push_str(NOTES[rng.random_range(0..NOTES.len())]);
                note.push(' ');
            }
            note.into_bytes()
        })
        .collect();
    println!(
        "(e) 1 kB free-text notes, mask_bytes:               {:8.0} MB/s",
        run_lines(&detectors_only, &long)
    );

    // Adversarial inputs stay linear: 1 MB of each, timed once.
    for (label, unit) in [
        ("digit groups", "1 2 3 4 5 6 7 8 9 0 "),
        ("dashed digits", "12-34-56-78-90-"),
        ("ats", "a@a@a.a@"),
        ("jwt heads", "eyJeyJ.eyJ."),
        ("pem heads", "-----BEGIN RSA PRIVATE KEY-----"),
        ("iban heads", "DE89 DE89 "),
    ] {
        let text = unit.repeat(1_000_000 / unit.len()).into_bytes();
        let speed = best_of(text.len(), || {
            black_box(detectors_only.mask_bytes(&text, &mut MaskCounts::new()));
        });
        println!("(f) adversarial {label:<14} 1 MB:               {speed:8.0} MB/s");
    }
}
