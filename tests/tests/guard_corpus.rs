//! The guard corpus end to end: every statement of `tests/data/guard-corpus.jsonl` through real
//! psql, `sluice connect`, the broker and PostgreSQL, under a role of each built-in guardrail
//! profile; the decision must be the corpus's, and a refused statement must leave the database
//! (fingerprint over the superuser's socket) and the session (probe) exactly as they were.
//!
//! One psql session per profile, statements in file order; `admin` runs last because what it
//! allows changes the database. The fixture is rebuilt before each profile. A second corpus,
//! `tests/data/guard-corpus-superuser.jsonl`, runs the guarded profiles with the broker logged
//! in as a superuser.

use sluice_tests::guard::{
    Canary, Decision, Entry, Outcome, Profile, fingerprint_change, load_corpus, run_session,
};
use sluice_tests::{BrokerBuilder, Cli, Postgres};
use std::fmt::Write as _;
use std::path::Path;
use std::time::Instant;

/// The broker role of each built-in profile.
fn role(profile: Profile) -> &'static str {
    match profile {
        Profile::ReadOnly => "read",
        Profile::GuardedWrite => "write",
        Profile::Admin => "admin",
    }
}

/// Tallies of one profile's run.
#[derive(Debug, Default)]
struct Tally {
    allowed: usize,
    blocked: usize,
    mismatches: usize,
    effects: usize,
    seconds: f64,
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The failures of one entry under one profile, if any.
fn judge(entry: &Entry, profile: Profile, outcome: Option<&Outcome>) -> (Vec<String>, bool) {
    let Some(outcome) = outcome else {
        return (
            vec!["no result: the psql session ended before this statement finished".into()],
            false,
        );
    };
    let mut failures = Vec::new();
    let mut effect = false;
    let expected = entry.expect(profile);
    if outcome.decision != expected {
        failures.push(format!(
            "expected {expected}, got {}{}",
            outcome.decision,
            if outcome.errors.is_empty() {
                String::new()
            } else {
                format!(" (psql: {})", outcome.errors.join(" / "))
            }
        ));
    }
    if !outcome.other_sluice.is_empty() {
        failures.push(format!(
            "unexpected sluice message: {}",
            outcome.other_sluice.join(" / ")
        ));
    }
    let must_be_inert = outcome.decision == Decision::Block
        || expected == Decision::Block
        || entry.no_effect.contains(&profile);
    if must_be_inert && profile != Profile::Admin {
        if let Some(change) = &outcome.db_change {
            effect = true;
            failures.push(format!("the database changed: {change}"));
        }
        if let Some(change) = &outcome.session_change {
            effect = true;
            failures.push(format!("the session changed: {change}"));
        }
    }
    (failures, effect)
}

#[test]
fn every_corpus_statement_gets_its_decision_and_refusals_change_nothing() {
    run_corpus("guard-corpus.jsonl", 150, Upstream::App, &Profile::ALL);
}

/// The classes a careless deployment's superuser login makes dangerous (settings that switch
/// off protections, catalog writes, password hashes, server files, index-page rewrites) and
/// filters whose constants would decide them, against a broker that logs in as a superuser.
#[test]
fn guarded_profiles_hold_when_the_upstream_login_is_a_superuser() {
    run_corpus(
        "guard-corpus-superuser.jsonl",
        40,
        Upstream::Superuser,
        &[Profile::ReadOnly, Profile::GuardedWrite],
    );
}

/// Whom the broker logs in to PostgreSQL as.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Upstream {
    /// The application role, which owns the fixture.
    App,
    /// A superuser made for the run.
    Superuser,
}

fn run_corpus(file: &str, at_least: usize, upstream: Upstream, profiles: &[Profile]) {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("data")
        .join(file);
    let entries = load_corpus(&corpus);
    assert!(
        entries.len() >= at_least,
        "{file} must hold at least {at_least} statements, it has {}",
        entries.len()
    );

    let pg = Postgres::start();
    let canary = Canary::install(&pg);
    let builder = match upstream {
        Upstream::App => BrokerBuilder::new().postgres("pg", &pg),
        Upstream::Superuser => {
            let password = format!("su-{}", sluice_tests::postgres::random_hex(16));
            pg.admin_sql(
                "postgres",
                &format!("create role corpus_su login superuser password '{password}'"),
            );
            BrokerBuilder::new().postgres_at(
                "pg",
                &pg.address(),
                &pg.database,
                "corpus_su",
                &password,
            )
        }
    };
    let broker = builder
        .role("read", "      max_ttl: 1h\n      guardrails: read-only\n")
        .role(
            "write",
            "      max_ttl: 1h\n      guardrails: guarded-write\n",
        )
        .role("admin", "      max_ttl: 1h\n      guardrails: admin\n")
        .rule_with(
            "eng",
            &[],
            &["eng"],
            &["pg"],
            &["read", "write", "admin"],
            "",
        )
        .start();
    let cli = Cli::new(&broker);
    cli.login(&broker.token("alice", &["eng"], "1h"));

    let mut failures = String::new();
    let mut tallies = Vec::new();
    for &profile in profiles {
        let started = Instant::now();
        canary.reset(&pg);
        let before = canary.fingerprint(&pg);
        // Admin may change anything: only its decisions are checked, so skip the probes.
        let probe = profile != Profile::Admin;
        let (outcomes, stderr) = run_session(&cli, role(profile), &entries, &canary, probe);
        let mut tally = Tally::default();
        let verbose = std::env::var_os("SLUICE_CORPUS_VERBOSE").is_some();
        for (entry, outcome) in entries.iter().zip(&outcomes) {
            if verbose && let Some(o) = outcome {
                eprintln!(
                    "[{profile}] {}:{} {} changed={} `{}`\n      {}",
                    entry.line,
                    o.decision,
                    if o.decision == entry.expect(profile) {
                        "ok"
                    } else {
                        "MISMATCH"
                    },
                    o.db_change.is_some(),
                    one_line(&entry.sql),
                    o.lines.join("\n      ")
                );
            }
            match outcome.as_ref().map(|o| o.decision) {
                Some(Decision::Allow) => tally.allowed += 1,
                Some(Decision::Block) => tally.blocked += 1,
                None => {}
            }
            let (problems, effect) = judge(entry, profile, outcome.as_ref());
            if effect {
                tally.effects += 1;
            }
            if !problems.is_empty() {
                tally.mismatches += 1;
                let _ = writeln!(
                    failures,
                    "- [{profile}] guard-corpus.jsonl:{} `{}`\n    why: {}\n    {}",
                    entry.line,
                    one_line(&entry.sql),
                    entry.why,
                    problems.join("\n    ")
                );
            }
        }
        if outcomes.iter().all(Option::is_none) {
            let _ = writeln!(
                failures,
                "- [{profile}] the psql session produced no results; its stderr:\n{stderr}"
            );
        }
        if profile == Profile::ReadOnly {
            // Read-only allows nothing that writes: the whole run leaves the database as it was.
            let after = canary.fingerprint(&pg);
            if let Some(change) = fingerprint_change(&before, &after) {
                let _ = writeln!(
                    failures,
                    "- [read-only] the whole run changed the database: {change}"
                );
            }
        }
        tally.seconds = started.elapsed().as_secs_f64();
        tallies.push((profile, tally));
    }

    let mut summary = format!(
        "guard corpus {file}: {} statements\n{:<14} {:>8} {:>8} {:>11} {:>8} {:>8}\n",
        entries.len(),
        "profile",
        "allowed",
        "blocked",
        "mismatches",
        "effects",
        "seconds"
    );
    for (profile, t) in &tallies {
        let _ = writeln!(
            summary,
            "{:<14} {:>8} {:>8} {:>11} {:>8} {:>8.1}",
            profile.name(),
            t.allowed,
            t.blocked,
            t.mismatches,
            t.effects,
            t.seconds
        );
    }
    eprintln!("{summary}");
    assert!(failures.is_empty(), "{summary}\nfailures:\n{failures}");
}
