//! The broker's memory with PostgreSQL sessions (`bench/memory.sh`, docs/benchmarks.md):
//!
//! 1. **Idle sessions**: N psql sessions opened through a plain tunnel and N through a guarded,
//!    masking one (each ran one statement and then waits), `sluiced`'s resident memory before,
//!    with them open, and after they closed; the cost per session, and what 10,000 would take
//!    at that rate. (The throwaway PostgreSQL allows 200 connections, so N is 90 per path by
//!    default; the cost per session does not depend on N.)
//! 2. **A long masked SELECT**: one `SELECT` of `BENCH_ROWS` rows (default 10,000,000), each
//!    with an email the masker rewrites, through the guarded tunnel to psql, with `sluiced`'s
//!    resident memory sampled every 20 ms; the same with a tenth of the rows, so a broker that
//!    buffered a result would show a peak that grows with it.
//!
//!   BENCH_IDLE_SESSIONS=90 BENCH_ROWS=10000000 bench/memory.sh

use sluice_tests::measure::{env_num, sluiced_pid};
use sluice_tests::postgres::psql;
use sluice_tests::session::OpenSession;
use sluice_tests::{BrokerBuilder, Cli, Postgres};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

const GUARDED_ROLE_YAML: &str =
    "      max_ttl: 12h\n      guardrails: guarded-write\n      masking: bench\n";
const MASKING_YAML: &str = "  masking:\n    bench:\n      detectors:\n        - {name: cards, detector: card, style: last4}\n        - {name: emails, detector: email, style: redact}\n        - {name: ssns, detector: ssn, style: redact}\n        - {name: secrets, detector: secret, style: redact}\n";

/// Resident memory of `pid` in KiB.
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no VmRSS for pid {pid}: is sluiced running?"))
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// Waits until the broker's memory stops moving (background work after a burst).
fn settled(pid: u32) -> u64 {
    let mut last = rss_kib(pid);
    for _ in 0..20 {
        std::thread::sleep(Duration::from_millis(250));
        let now = rss_kib(pid);
        if now.abs_diff(last) < 256 {
            return now;
        }
        last = now;
    }
    last
}

/// Runs `sql` through `uri` with psql (output discarded) while sampling `pid`'s memory; the
/// peak resident memory and the wall time.
fn peak_during(pid: u32, uri: &str, sql: &str) -> (u64, f64) {
    let peak = Arc::new(AtomicU64::new(rss_kib(pid)));
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (peak, done) = (Arc::clone(&peak), Arc::clone(&done));
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                peak.fetch_max(rss_kib(pid), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    let started = Instant::now();
    let out = Command::new(psql())
        .args([
            "-X",
            "-q",
            "-A",
            "-t",
            "-o",
            "/dev/null",
            "-d",
            uri,
            "-c",
            sql,
        ])
        .output()
        .expect("psql");
    let wall = started.elapsed().as_secs_f64();
    done.store(true, Ordering::Relaxed);
    sampler.join().expect("sampler");
    assert!(
        out.status.success(),
        "the SELECT failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (peak.load(Ordering::Relaxed), wall)
}

fn main() {
    let idle = env_num("BENCH_IDLE_SESSIONS", 90) as usize;
    let rows = env_num("BENCH_ROWS", 10_000_000);
    let pg = Postgres::start();
    let broker = BrokerBuilder::new()
        .postgres("pg", &pg)
        .role("guarded", GUARDED_ROLE_YAML)
        .policy_extra(MASKING_YAML)
        .rule_with("all", &["alice"], &[], &["*"], &["use", "guarded"], "")
        .start();
    let cli = Cli::new(&broker);
    cli.login(&broker.token("alice", &[], "12h"));
    let pid = sluiced_pid().expect("the sluiced pid");
    let plain = cli.connect_with("pg", &["--role", "use"]);
    let guarded = cli.connect_with("pg", &["--role", "guarded"]);

    // The masker really runs on this path: a planted email comes back redacted.
    let out = Command::new(psql())
        .args(["-X", "-A", "-t", "-d", &guarded.uri(), "-c"])
        .arg("select 'mail bob@example.com'")
        .output()
        .expect("psql");
    let probe = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(
        out.status.success() && !probe.contains("bob@example.com"),
        "the guarded tunnel did not mask: {probe} {}",
        String::from_utf8_lossy(&out.stderr)
    );

    println!("# sluiced memory with PostgreSQL sessions\n");
    println!("Probe through the guarded tunnel: `select 'mail bob@example.com'` -> `{probe}`\n");

    // 1. Idle sessions.
    let before = settled(pid);
    let mut sessions = Vec::new();
    for i in 0..idle {
        sessions.push(OpenSession::start(&plain, &format!("plain{i}")));
        sessions.push(OpenSession::start(&guarded, &format!("guarded{i}")));
    }
    let open = settled(pid);
    let n = sessions.len();
    for session in sessions {
        session.quit();
    }
    let after = settled(pid);
    let per = (open.saturating_sub(before)) as f64 / n as f64;
    println!("## Idle sessions\n");
    println!("| sessions open | sluiced RSS MiB | per session KiB | 10,000 at that rate, MiB |");
    println!("|---:|---:|---:|---:|");
    println!("| 0 | {:.1} | - | - |", mib(before));
    println!(
        "| {n} ({idle} plain + {idle} guarded) | {:.1} | {per:.0} | {:.0} |",
        mib(open),
        mib(before) + per * 10_000.0 / 1024.0
    );
    println!("| 0 (all closed) | {:.1} | - | - |\n", mib(after));

    // 2. A long masked SELECT, at a tenth of the rows and at all of them.
    println!("## One masked SELECT through the guarded tunnel\n");
    println!("| rows | sluiced RSS before MiB | peak during MiB | growth MiB | seconds |");
    println!("|---:|---:|---:|---:|---:|");
    for count in [rows / 10, rows] {
        let base = settled(pid);
        let sql = format!(
            "select i, 'user' || i || '@example.com' as email, md5(i::text) as note \
             from generate_series(1, {count}) i"
        );
        let (peak, wall) = peak_during(pid, &guarded.uri(), &sql);
        println!(
            "| {count} | {:.1} | {:.1} | {:+.1} | {wall:.1} |",
            mib(base),
            mib(peak),
            mib(peak) - mib(base)
        );
    }
    drop(plain);
    drop(guarded);
}
