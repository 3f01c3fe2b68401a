//! What several brokers on one PostgreSQL store cost and give (`bench/replicas.sh`,
//! docs/benchmarks.md, issue 16), each measured the way a user meets it (the real CLI and psql):
//!
//! 1. **Grant round trip**: `sluice grant request` (auto-approved, so request → active) on one
//!    broker on SQLite and on one of three brokers sharing PostgreSQL; p50/p99 ms.
//! 2. **Tunnel open**: `psql -c 'select 1'` through `sluice connect` (a new tunnel each: TLS,
//!    token, grant read from the store, session index row, upstream login), same two setups.
//! 3. **Revocation fan-out**: a psql session runs `pg_sleep(60)` through broker A; the grant is
//!    revoked through broker B (`sluice grant revoke`); the time from the revoke command's start
//!    to psql's exit (FATAL), p50/p99 — and the same with one broker on SQLite revoking its own.
//! 4. **Tunnels per second**: `pgbench -C` (a new connection, so a new tunnel, per
//!    transaction) at 6 clients through one broker, then 2 clients through each of 3 brokers at
//!    once.
//!
//!   BENCH_ROUNDS=40 BENCH_SECONDS=10 bench/replicas.sh

use sluice_tests::measure::{env_num, percentile};
use sluice_tests::postgres::psql;
use sluice_tests::{Broker, BrokerBuilder, Cli, Connect, Postgres};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn builder(pg: &Postgres) -> BrokerBuilder {
    BrokerBuilder::new()
        .postgres("pg", pg)
        .role("read", "      max_ttl: 8h\n")
        .rule_with("eng", &[], &["eng"], &["pg"], &["read"], "")
}

fn user(broker: &Broker, token: &str) -> Cli {
    let cli = Cli::new(broker);
    let out = cli.login(token);
    assert!(out.status.success(), "login: {out:?}");
    cli
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn row(name: &str, values: &[f64]) -> String {
    format!(
        "| {name} | {:.1} | {:.1} |",
        percentile(values, 0.5),
        percentile(values, 0.99)
    )
}

/// `sluice grant request` `rounds` times, each revoked right after (so none is reused).
fn grant_round_trips(cli: &Cli, rounds: u64) -> Vec<f64> {
    (0..rounds)
        .map(|_| {
            let started = Instant::now();
            let out = cli.run(&[
                "grant", "request", "pg", "--role", "read", "--reason", "bench", "--output", "json",
            ]);
            let took = ms(started.elapsed());
            assert!(out.status.success(), "grant request: {out:?}");
            let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
            let grant = v.get("grant").unwrap_or(&v);
            let id = grant["id"].as_str().expect("id");
            let out = cli.run(&["grant", "revoke", id]);
            assert!(out.status.success(), "revoke: {out:?}");
            took
        })
        .collect()
}

/// `psql -c 'select 1'` through `tunnel`, `rounds` times.
fn tunnel_opens(tunnel: &Connect, rounds: u64) -> Vec<f64> {
    (0..rounds)
        .map(|_| {
            let started = Instant::now();
            let out = Command::new(psql())
                .args(["-X", "-A", "-t", "-d", &tunnel.uri(), "-c", "select 1"])
                .output()
                .expect("psql");
            let took = ms(started.elapsed());
            assert!(out.status.success(), "psql: {out:?}");
            took
        })
        .collect()
}

/// `sluice whoami` (the CLI's start and one API call), for what the CLI itself costs.
fn whoamis(cli: &Cli, rounds: u64) -> Vec<f64> {
    (0..rounds)
        .map(|_| {
            let started = Instant::now();
            let out = cli.run(&["whoami"]);
            assert!(out.status.success(), "whoami: {out:?}");
            ms(started.elapsed())
        })
        .collect()
}

/// Revokes a grant with a session in `pg_sleep` through `holder`'s broker via `revoker`,
/// `rounds` times: (from the revoke command's start to psql's exit, from the command's return
/// to psql's exit, 0 when psql was gone first).
fn revocations(pg: &Postgres, holder: &Cli, revoker: &Cli, rounds: u64) -> (Vec<f64>, Vec<f64>) {
    (0..rounds)
        .map(|round| {
            let tunnel = holder.connect_with("pg", &["--role", "read"]);
            let psql = tunnel.spawn_psql("select pg_sleep(60)");
            pg.wait_statement("select pg_sleep(60)", true);
            let list = holder.run(&["grant", "list", "--output", "json"]);
            let v: serde_json::Value = serde_json::from_slice(&list.stdout).expect("JSON");
            let id = v["grants"][0]["id"]
                .as_str()
                .expect("a live grant")
                .to_owned();
            let started = Instant::now();
            let out = revoker.run(&[
                "grant",
                "revoke",
                &id,
                "--reason",
                &format!("round {round}"),
            ]);
            assert!(out.status.success(), "revoke: {out:?}");
            let returned = ms(started.elapsed());
            let mut psql = psql;
            psql.wait().expect("psql exits");
            let took = ms(started.elapsed());
            let after = (took - returned).max(0.0);
            assert!(took < 30_000.0, "psql outlived the revoke by {took} ms");
            drop(tunnel);
            pg.wait_statement("select pg_sleep(60)", false);
            (took, after)
        })
        .unzip()
}

/// `pgbench -C` through each tunnel at once (`clients` each) for `seconds`: connections (so
/// tunnels) per second in total.
fn tunnels_per_second(tunnels: &[&Connect], clients: u32, seconds: u64) -> f64 {
    let script =
        std::env::temp_dir().join(format!("sluice-bench-select1-{}.sql", std::process::id()));
    std::fs::write(&script, "select 1;\n").expect("write pgbench script");
    let runs: Vec<_> = tunnels
        .iter()
        .map(|tunnel| {
            Command::new("pgbench")
                .args([
                    "-n",
                    "-C",
                    "-T",
                    &seconds.to_string(),
                    "-c",
                    &clients.to_string(),
                ])
                .args(["-j", &clients.min(2).to_string(), "-f"])
                .arg(&script)
                .arg(tunnel.uri())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("pgbench")
        })
        .collect();
    let mut total = 0.0;
    for run in runs {
        let out = run.wait_with_output().expect("pgbench");
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            out.status.success(),
            "pgbench: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let tps = text
            .lines()
            .find(|l| l.starts_with("tps = "))
            .and_then(|l| l.split_whitespace().nth(2))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or_else(|| panic!("no tps in: {text}"));
        total += tps;
    }
    let _ = std::fs::remove_file(&script);
    total
}

fn main() {
    let rounds = env_num("BENCH_ROUNDS", 40);
    let seconds = env_num("BENCH_SECONDS", 10);
    let pg = Postgres::start();

    // One broker on SQLite.
    let single = builder(&pg).start();
    let token = single.token("alice", &["eng"], "8h");
    let alice_single = user(&single, &token);
    let bob_single = user(&single, &single.token("bob", &["eng"], "8h"));
    let sqlite_whoami = whoamis(&alice_single, rounds);
    let sqlite_grants = grant_round_trips(&alice_single, rounds);
    let single_tunnel = alice_single.connect_with("pg", &["--role", "read"]);
    let sqlite_opens = tunnel_opens(&single_tunnel, rounds);
    let single_tps = tunnels_per_second(&[&single_tunnel], 6, seconds);
    drop(single_tunnel);
    // The holder revokes its own grant here (bob may not revoke alice's).
    let sqlite_revokes = revocations(&pg, &alice_single, &alice_single, rounds.min(20));
    drop((alice_single, bob_single, single));

    // Three brokers on one PostgreSQL store.
    let a = builder(&pg).shared_store(&pg, "bench_store").start();
    let b = a.replica();
    let c = a.replica();
    let token = a.token("alice", &["eng"], "8h");
    let alice_a = user(&a, &token);
    let alice_b = user(&b, &token);
    let alice_c = user(&c, &token);
    let pg_whoami = whoamis(&alice_a, rounds);
    let pg_grants = grant_round_trips(&alice_a, rounds);
    let tunnel_a = alice_a.connect_with("pg", &["--role", "read"]);
    let pg_opens = tunnel_opens(&tunnel_a, rounds);
    let one_of_three_tps = tunnels_per_second(&[&tunnel_a], 6, seconds);
    let tunnel_b = alice_b.connect_with("pg", &["--role", "read"]);
    let tunnel_c = alice_c.connect_with("pg", &["--role", "read"]);
    let three_tps = tunnels_per_second(&[&tunnel_a, &tunnel_b, &tunnel_c], 2, seconds);
    drop((tunnel_a, tunnel_b, tunnel_c));
    let fanout = revocations(&pg, &alice_a, &alice_b, rounds.min(20));

    println!("\n## Several brokers ({rounds} rounds, {seconds} s pgbench runs)\n");
    println!("| measure | p50 ms | p99 ms |");
    println!("|---|---:|---:|");
    println!(
        "{}",
        row(
            "`sluice whoami` (the CLI's own cost), SQLite",
            &sqlite_whoami
        )
    );
    println!(
        "{}",
        row("`sluice whoami`, PostgreSQL (1 of 3)", &pg_whoami)
    );
    println!(
        "{}",
        row(
            "`grant request` → active, SQLite (1 broker)",
            &sqlite_grants
        )
    );
    println!(
        "{}",
        row("`grant request` → active, PostgreSQL (1 of 3)", &pg_grants)
    );
    println!(
        "{}",
        row(
            "`psql -c 'select 1'` through a new tunnel, SQLite",
            &sqlite_opens
        )
    );
    println!(
        "{}",
        row(
            "`psql -c 'select 1'` through a new tunnel, PostgreSQL",
            &pg_opens
        )
    );
    for (name, values) in [
        (
            "revoke command → psql's FATAL, same broker (SQLite)",
            &sqlite_revokes.0,
        ),
        ("  of which after the command returned", &sqlite_revokes.1),
        (
            "revoke command on B → psql's FATAL on A (PostgreSQL)",
            &fanout.0,
        ),
        ("  of which after the command returned", &fanout.1),
    ] {
        println!("{}", row(name, values));
    }
    println!();
    println!("| tunnels per second (`pgbench -C`, `select 1`) | tunnels/s |");
    println!("|---|---:|");
    println!("| one broker on SQLite, 6 clients | {single_tps:.0} |");
    println!("| one of three brokers on PostgreSQL, 6 clients | {one_of_three_tps:.0} |");
    println!("| three brokers on PostgreSQL, 2 clients each | {three_tps:.0} |");
}
