//! Guardrails and masking end to end: real psql through the broker to real PostgreSQL, under
//! roles with the built-in profiles, a custom approval rule and a masking profile.

use sluice_tests::postgres::psql;
use sluice_tests::{Broker, BrokerBuilder, Cli, Postgres};
use std::process::{Output, Stdio};

/// Roles: `read` (read-only), `write` (guarded-write), `careful` (guarded-write, deletes held
/// for a dba), `masked` (read-only with masking).
fn setup() -> (Postgres, Broker, Cli) {
    let pg = Postgres::start();
    pg.admin_sql(
        &pg.database,
        "alter table customers add column note text; \
         update customers set note = 'paid with 4111 1111 1111 1111' where id = 7",
    );
    let broker = BrokerBuilder::new()
        .postgres("pg", &pg)
        .role("read", "      max_ttl: 1h\n      guardrails: read-only\n")
        .role("write", "      max_ttl: 1h\n      guardrails: guarded-write\n")
        .role("careful", "      max_ttl: 1h\n      guardrails: careful\n")
        .role(
            "masked",
            "      max_ttl: 1h\n      guardrails: read-only\n      masking: pii\n",
        )
        .role(
            "scanned",
            "      max_ttl: 1h\n      guardrails: guarded-write\n      masking: content\n",
        )
        .role("maskonly", "      max_ttl: 1h\n      masking: pii\n")
        .policy_extra(
            "  guardrails:\n    careful:\n      base: guarded-write\n      approvers: [dba]\n      rules:\n        - name: deletes-need-a-dba\n          action: approve\n          commands: [DELETE]\n  masking:\n    pii:\n      columns:\n        - {name: emails, column: public.customers.email, style: redact}\n      detectors:\n        - {name: cards, detector: card, style: last4}\n    content:\n      detectors:\n        - {name: cards, detector: card, style: last4}\n        - {name: emails, detector: email, style: redact}\n",
        )
        .rule_with(
            "eng",
            &[],
            &["eng"],
            &["pg"],
            &["read", "write", "careful", "masked", "scanned", "maskonly"],
            "",
        )
        .start();
    let cli = Cli::new(&broker);
    cli.login(&broker.token("alice", &["eng"], "1h"));
    (pg, broker, cli)
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).to_string()
}
fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// Runs psql statements (one `-c` each, in one session) through a tunnel of `role`.
fn run(cli: &Cli, role: &str, statements: &[&str]) -> Output {
    let mut args = vec![
        "connect", "pg", "--role", role, "--exec", "psql", "-X", "-A", "-t",
    ];
    for s in statements {
        args.push("-c");
        args.push(s);
    }
    cli.run(&args)
}

fn count(pg: &Postgres) -> String {
    pg.admin_sql(&pg.database, "select count(*) from customers")
        .trim()
        .to_string()
}

#[test]
fn read_only_refuses_writes_and_the_session_stays_usable() {
    let (pg, _broker, cli) = setup();
    let out = run(
        &cli,
        "read",
        &[
            "select count(*) from customers",
            "delete from customers",
            "select 1; drop table customers",
            "set default_transaction_read_only = off",
            "select 'still here'",
        ],
    );
    let err = stderr(&out);
    assert!(stdout(&out).contains("100"), "{}", stdout(&out));
    assert!(stdout(&out).contains("still here"), "{}{err}", stdout(&out));
    assert!(err.contains("read-only"), "{err}");
    assert_eq!(err.matches("ERROR").count(), 3, "{err}");
    assert_eq!(count(&pg), "100");
    // The server side is read-only too (defence in depth).
    let out = run(&cli, "read", &["show default_transaction_read_only"]);
    assert_eq!(stdout(&out).trim(), "on", "{}", stderr(&out));
}

/// A database default that would change how statements are judged (`x = NULL` true, or
/// backslashes in plain strings) is overridden at login for guarded roles: the guard's reading
/// of a statement is the server's.
#[test]
fn guarded_sessions_pin_the_settings_the_guard_reads_statements_by() {
    let (pg, _broker, cli) = setup();
    pg.admin_sql(
        &pg.database,
        &format!(
            "alter table customers alter column name drop not null; \
             update customers set name = null where id = 5; \
             alter database {db} set transform_null_equals = on; \
             alter database {db} set standard_conforming_strings = off",
            db = pg.database
        ),
    );
    // A plain role is not pinned: the database default shows through.
    let direct = pg.admin_sql(&pg.database, "show transform_null_equals");
    assert_eq!(direct.trim(), "on");
    let out = run(
        &cli,
        "write",
        &[
            "show transform_null_equals",
            "show standard_conforming_strings",
            "update customers set name = 'nulled' where name = null",
        ],
    );
    assert_eq!(
        stdout(&out).split_whitespace().collect::<Vec<_>>(),
        ["off", "on", "UPDATE", "0"],
        "{}",
        stderr(&out)
    );
    assert_eq!(
        pg.admin_sql(
            &pg.database,
            "select count(*) from customers where name = 'nulled'"
        )
        .trim(),
        "0"
    );
}

#[test]
fn guarded_write_needs_a_real_where() {
    let (pg, _broker, cli) = setup();
    let out = run(
        &cli,
        "write",
        &[
            "update customers set name = 'x'",
            "delete from customers where 1 = 1",
            "update customers set name = 'renamed' where id = 1",
            "truncate customers",
        ],
    );
    let err = stderr(&out);
    assert_eq!(err.matches("ERROR").count(), 3, "{err}");
    assert!(err.contains("WHERE"), "{err}");
    assert_eq!(count(&pg), "100");
    assert_eq!(
        pg.admin_sql(&pg.database, "select name from customers where id = 1")
            .trim(),
        "renamed"
    );
    assert_eq!(
        pg.admin_sql(
            &pg.database,
            "select count(*) from customers where name = 'x'"
        )
        .trim(),
        "0"
    );
}

#[test]
fn masked_columns_and_planted_values_never_reach_psql() {
    let (_pg, _broker, cli) = setup();
    let out = run(
        &cli,
        "masked",
        &[
            "select email, note from customers where id = 7",
            "select note from customers where id = 7",
        ],
    );
    let text = stdout(&out);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!text.contains("c7@example.com"), "{text}");
    assert!(!text.contains("4111 1111 1111 1111"), "{text}");
    assert!(
        text.contains("1111"),
        "last4 keeps the last four digits: {text}"
    );
}

/// Starts psql through a `careful` tunnel running `statements` (the first is held), in the
/// background.
fn spawn_held(alice: &Cli, statements: &[&str]) -> std::process::Child {
    let psql = psql();
    let mut args = vec![
        "connect",
        "pg",
        "--role",
        "careful",
        "--exec",
        psql.to_str().expect("utf8"),
        "-X",
    ];
    for statement in statements {
        args.push("-c");
        args.push(statement);
    }
    alice
        .cmd()
        .args(&args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn psql")
}

fn dba(broker: &Broker) -> Cli {
    let bob = Cli::new(broker);
    bob.login(&broker.token("bob", &["dba"], "1h"));
    bob
}

#[test]
fn a_held_delete_runs_once_a_dba_approves_it_from_another_cli() {
    let (pg, broker, alice) = setup();
    let bob = dba(&broker);
    let waiting = spawn_held(&alice, &["delete from customers where id = 42"]);
    let hold = bob.first_hold();
    assert_eq!(hold["sql"], "delete from customers where id = 42");
    assert_eq!(hold["rule"], "deletes-need-a-dba");
    assert_eq!(hold["requester"]["subject"], "alice");
    // Alice may not approve her own statement.
    let id = hold["id"].as_str().expect("id");
    let out = alice.run(&["approve", id]);
    assert!(!out.status.success());
    let out = bob.run(&["approve", id]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = waiting.wait_with_output().expect("psql");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("DELETE 1"), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("approval"),
        "the NOTICE: {}",
        stderr(&out)
    );
    assert_eq!(count(&pg), "99");
}

#[test]
fn a_held_delete_denied_by_a_dba_fails_with_the_reason_and_changes_nothing() {
    let (pg, broker, alice) = setup();
    let bob = dba(&broker);
    let waiting = spawn_held(
        &alice,
        &[
            "delete from customers where id = 43",
            "select 'still usable'",
        ],
    );
    let hold = bob.first_hold();
    let id = hold["id"].as_str().expect("id").to_string();
    // A denial needs a reason; then it goes through.
    let out = bob.run(&["deny", &id, "--reason", ""]);
    assert!(!out.status.success());
    let out = bob.run(&["deny", &id, "--reason", "not during the audit"]);
    assert!(out.status.success(), "{}", stderr(&out));
    // A second decision is refused clearly.
    let out = bob.run(&["approve", &id]);
    assert!(!out.status.success());
    let out = waiting.wait_with_output().expect("psql");
    let err = stderr(&out);
    assert!(err.contains("not during the audit"), "{err}");
    assert!(err.contains("42501") || err.contains("ERROR"), "{err}");
    assert!(stdout(&out).contains("still usable"), "{}", stdout(&out));
    assert_eq!(count(&pg), "100");
    assert!(broker.log().contains("statement.denied.v1"));
}

#[test]
fn detectors_mask_copy_output_and_values_echoed_in_errors() {
    let (pg, _broker, cli) = setup();
    pg.admin_sql(
        &pg.database,
        "create unique index customers_email on customers (email)",
    );
    let out = run(
        &cli,
        "scanned",
        &[
            "copy (select id, email, note from customers where id in (7, 8)) to stdout",
            "insert into customers (id, email) values (1000, 'c8@example.com')",
            "select 'after'",
        ],
    );
    let (text, err) = (stdout(&out), stderr(&out));
    // COPY text: the planted card keeps its last four digits, emails are redacted.
    assert!(!text.contains("4111 1111 1111 1111"), "{text}");
    assert!(text.contains("1111"), "{text}");
    assert!(!text.contains("@example.com"), "{text}");
    // The unique violation's DETAIL quotes the duplicate email: masked too.
    assert!(
        err.contains("23505") || err.contains("duplicate key"),
        "{err}"
    );
    assert!(!err.contains("c8@example.com"), "{err}");
    assert!(text.contains("after"), "{text}");
}

/// Answers long enough to stream in bulk (the broker raises its socket's read low-water mark
/// after 256 KiB): every row arrives, the planted values in the last rows too, masked, and the
/// session goes on. The tail of each answer is shorter than the mark, so it only arrives if
/// the pump's short wait lowers the mark again.
#[test]
fn long_answers_arrive_whole_and_masked_to_the_last_row() {
    let (_pg, _broker, cli) = setup();
    const ROWS: u32 = 40_000;
    let body = format!(
        "select g, case when g = {ROWS} then 'last c9@example.com' else repeat('x', 60) end \
         from generate_series(1, {ROWS}) g"
    );
    let copy = format!("copy ({body}) to stdout");
    let select = format!("{body} order by g");
    // psql under `timeout`: a tail stuck behind the mark fails the test instead of hanging it.
    let out = cli.run(&[
        "connect",
        "pg",
        "--role",
        "scanned",
        "--exec",
        "timeout",
        "60",
        "psql",
        "-X",
        "-A",
        "-t",
        "-c",
        &copy,
        "-c",
        &select,
        "-c",
        "select 'after'",
    ]);
    let (text, err) = (stdout(&out), stderr(&out));
    assert!(
        out.status.success(),
        "psql did not finish (exit 124: stuck): {err}"
    );
    let lines: Vec<&str> = text.lines().collect();
    // COPY separates with a tab, psql -A with `|`.
    let copied = lines.iter().filter(|l| l.contains('\t')).count();
    let selected = lines.iter().filter(|l| l.contains('|')).count();
    assert_eq!(copied, ROWS as usize, "COPY rows");
    assert_eq!(selected, ROWS as usize, "SELECT rows");
    let tails: Vec<&&str> = lines
        .iter()
        .filter(|l| l.starts_with(&format!("{ROWS}")))
        .collect();
    assert_eq!(tails.len(), 2, "{tails:?}");
    for tail in tails {
        assert!(tail.contains("last "), "{tail}");
        assert!(!tail.contains("c9@example.com"), "{tail}");
    }
    assert_eq!(lines.last(), Some(&"after"), "{err}");
}

/// A notification payload is text the client receives like any other: `pg_notify` of a
/// planted value reaches psql's "Asynchronous notification" line masked.
#[test]
fn notification_payloads_pass_the_detectors() {
    let (_pg, _broker, cli) = setup();
    let out = run(
        &cli,
        "scanned",
        &[
            "listen leak",
            "select pg_notify('leak', note) from customers where id = 7",
            "notify leak, 'mail c8@example.com'",
            "select 'after'",
        ],
    );
    let (text, err) = (stdout(&out), stderr(&out));
    let all = format!("{text}{err}");
    let notified: Vec<&str> = all
        .lines()
        .filter(|l| l.contains("Asynchronous notification \"leak\""))
        .collect();
    assert_eq!(notified.len(), 2, "{all}");
    assert!(notified[0].contains("1111"), "{all}");
    assert!(!all.contains("4111 1111 1111 1111"), "{all}");
    assert!(!all.contains("c8@example.com"), "{all}");
    assert!(text.contains("after"), "{all}");
}

/// Column rules hold without guardrails too: COPY TO (no column names) and the planner
/// statistics (sample values of every column) are refused, plain reads are masked.
#[test]
fn column_rules_refuse_copy_out_and_statistics_even_without_guardrails() {
    let (pg, _broker, cli) = setup();
    pg.admin_sql(&pg.database, "analyze customers");
    for role in ["masked", "maskonly"] {
        let out = run(
            &cli,
            role,
            &[
                "copy (select email from customers) to stdout",
                "select most_common_vals from pg_stats where tablename = 'customers'",
                "select attname from pg_catalog.pg_statistic s join pg_attribute a \
                 on a.attrelid = s.starelid and a.attnum = s.staattnum limit 1",
                "select email from customers where id = 8",
            ],
        );
        let (text, err) = (stdout(&out), stderr(&out));
        assert!(
            err.contains("masking:copy-out") || err.contains("COPY ... TO"),
            "{role}: {err}"
        );
        assert_eq!(
            err.matches("holds sample values").count(),
            2,
            "{role}: {err}"
        );
        assert!(!text.contains("@example.com"), "{role}: {text}");
        assert!(text.contains("****"), "{role}: {text}");
    }
}
