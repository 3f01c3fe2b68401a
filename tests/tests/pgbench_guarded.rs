//! pgbench's built-in TPC-B-like script (UPDATE ... WHERE, SELECT, INSERT in a transaction)
//! through `sluice connect` under a `guarded-write` role, in each of pgbench's query modes:
//! `simple` (Query), `extended` (unnamed Parse/Bind/Execute) and `prepared` (named statements
//! parsed once, executed many times). Every statement is allowed, so the run must be clean:
//! exit 0, no ERROR, every transaction processed, and every transaction's history row in the
//! database. A control run of an unfiltered DELETE through the same role and modes must be
//! refused, so a clean run cannot come from a session the guard does not see.

use sluice_tests::{BrokerBuilder, Cli, Postgres};
use std::process::{Command, Output};

const CLIENTS: u32 = 2;
const TRANSACTIONS: u32 = 200;

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn history_rows(pg: &Postgres) -> u64 {
    pg.admin_sql(&pg.database, "select count(*) from pgbench_history")
        .trim()
        .parse()
        .expect("a count")
}

#[test]
fn pgbench_runs_cleanly_through_a_guarded_write_role_in_every_query_mode() {
    let pg = Postgres::start();
    // The tables belong to the application role the broker logs in as.
    let init = Command::new("pgbench")
        .args(["-i", "-q", "-s", "1", "-h"])
        .arg(pg.socket_dir())
        .args(["-p", &pg.port.to_string(), "-U", &pg.app_user, &pg.database])
        .output()
        .expect("run pgbench -i (install postgresql-contrib / postgresql-client)");
    assert!(init.status.success(), "pgbench -i failed: {}", text(&init));

    let broker = BrokerBuilder::new()
        .postgres("pg", &pg)
        .role(
            "write",
            "      max_ttl: 1h\n      guardrails: guarded-write\n",
        )
        .rule_with("eng", &[], &["eng"], &["pg"], &["write"], "")
        .start();
    let cli = Cli::new(&broker);
    cli.login(&broker.token("alice", &["eng"], "1h"));

    let total = CLIENTS * TRANSACTIONS;
    for mode in ["simple", "extended", "prepared"] {
        let before = history_rows(&pg);
        let out = cli.run(&[
            "connect",
            "pg",
            "--role",
            "write",
            "--exec",
            "pgbench",
            "-n",
            "-c",
            &CLIENTS.to_string(),
            "-t",
            &TRANSACTIONS.to_string(),
            "-M",
            mode,
        ]);
        let all = text(&out);
        for line in all.lines().filter(|l| {
            l.starts_with("query mode") || l.starts_with("number of") || l.starts_with("tps")
        }) {
            eprintln!("pgbench -M {mode}: {line}");
        }
        assert!(out.status.success(), "pgbench -M {mode} failed:\n{all}");
        assert!(
            !all.contains("ERROR"),
            "pgbench -M {mode} saw errors:\n{all}"
        );
        assert!(
            !all.contains("sluice:"),
            "sluice intervened in -M {mode}:\n{all}"
        );
        assert!(
            all.contains(&format!("query mode: {mode}")),
            "pgbench did not run in -M {mode}:\n{all}"
        );
        assert!(
            all.contains(&format!(
                "number of transactions actually processed: {total}/{total}"
            )),
            "pgbench -M {mode} did not process every transaction:\n{all}"
        );
        // Each transaction inserts one history row: the writes reached the database.
        assert_eq!(
            history_rows(&pg) - before,
            u64::from(total),
            "pgbench -M {mode}: history rows\n{all}"
        );
    }

    // Control: the same path refuses what guarded-write refuses, in every mode.
    let script = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(script.path(), "delete from pgbench_history;\n").expect("write script");
    let path = script.path().display().to_string();
    for mode in ["simple", "extended", "prepared"] {
        let before = history_rows(&pg);
        let out = cli.run(&[
            "connect", "pg", "--role", "write", "--exec", "pgbench", "-n", "-c", "1", "-t", "1",
            "-M", mode, "-f", &path,
        ]);
        let all = text(&out);
        assert!(
            !out.status.success(),
            "pgbench -M {mode} ran a DELETE without WHERE:\n{all}"
        );
        assert!(
            all.contains("sluice:") && all.contains("WHERE"),
            "pgbench -M {mode}: expected sluice's refusal:\n{all}"
        );
        assert_eq!(
            history_rows(&pg),
            before,
            "pgbench -M {mode}: rows were deleted"
        );
    }
}
