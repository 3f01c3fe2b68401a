//! A broker that logs in to PostgreSQL as a superuser: the resource check and `sluice connect`
//! say so, the session recording and the audit trail say so, and `superuser_login:
//! refuse-guarded` refuses guarded roles on such a login while unguarded roles go on.

use sluice_tests::postgres::random_hex;
use sluice_tests::{Broker, BrokerBuilder, Cli, Postgres};
use std::process::Output;

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The log without terminal colour sequences.
fn plain(log: &str) -> String {
    let mut out = String::with_capacity(log.len());
    let mut chars = log.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// A cluster and a broker whose `pg` resource logs in as a fresh superuser; roles `write`
/// (guarded-write) and `plain` (no guardrails).
fn setup() -> (Postgres, Broker, Cli) {
    let pg = Postgres::start();
    let password = format!("su-{}", random_hex(16));
    pg.admin_sql(
        "postgres",
        &format!("create role broker_su login superuser password '{password}'"),
    );
    let broker = BrokerBuilder::new()
        .postgres_at("pg", &pg.address(), &pg.database, "broker_su", &password)
        .role(
            "write",
            "      max_ttl: 1h\n      guardrails: guarded-write\n",
        )
        .role("plain", "      max_ttl: 1h\n")
        .rule_with("eng", &[], &["eng"], &["pg"], &["write", "plain"], "")
        .start();
    let cli = Cli::new(&broker);
    cli.login(&broker.token("alice", &["eng"], "1h"));
    (pg, broker, cli)
}

fn psql(cli: &Cli, role: &str, sql: &str) -> Output {
    cli.run(&[
        "connect", "pg", "--role", role, "--exec", "psql", "-X", "-A", "-t", "-c", sql,
    ])
}

#[test]
fn a_superuser_login_is_announced_checked_recorded_and_audited() {
    let (_pg, broker, cli) = setup();
    let out = psql(&cli, "write", "select current_user");
    let err = text(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert_eq!(text(&out.stdout).trim(), "broker_su");
    assert!(
        err.contains("note: the broker logs in to 'pg' as 'broker_su', a database superuser"),
        "{err}"
    );

    let id = cli.ended_sessions(1)[0]["id"]
        .as_str()
        .expect("a session id")
        .to_owned();
    let shown = cli.run(&["sessions", "show", &id, "--output", "json"]);
    let shown: serde_json::Value =
        serde_json::from_slice(&shown.stdout).unwrap_or_else(|e| panic!("{e}: {shown:?}"));
    let events = shown["events"].as_array().cloned().unwrap_or_default();
    let login = events
        .iter()
        .find(|e| e["type"] == "login")
        .unwrap_or_else(|| panic!("no login event: {events:?}"));
    assert_eq!(login["user"], "broker_su");
    assert_eq!(login["superuser"], true);
    let timeline = text(&cli.run(&["sessions", "show", &id]).stdout);
    assert!(timeline.contains("a SUPERUSER"), "{timeline}");

    let log = plain(&broker.log());
    let audited = log
        .lines()
        .find(|l| l.contains("session.superuser_login.v1"))
        .unwrap_or_else(|| panic!("no superuser audit event in:\n{log}"));
    assert!(
        audited.contains("guarded=true") && audited.contains("refused=false"),
        "{audited}"
    );
}

#[test]
fn refuse_guarded_refuses_guarded_roles_on_a_superuser_login_and_lets_others_through() {
    let (pg, broker, cli) = setup();
    broker.edit_config(
        "    user: broker_su\n",
        "    user: broker_su\n    superuser_login: refuse-guarded\n",
    );
    let reloaded = broker.sluiced(&["reload"]);
    assert!(reloaded.status.success(), "{reloaded:?}");

    let out = psql(&cli, "write", "delete from customers where id = 1");
    let err = text(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("a database superuser, and this resource refuses guarded roles"),
        "{err}"
    );
    assert_eq!(
        pg.admin_sql(&pg.database, "select count(*) from customers where id = 1")
            .trim(),
        "1"
    );

    let out = psql(&cli, "plain", "select current_user");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), "broker_su");
}

#[test]
fn an_ordinary_login_is_not_flagged() {
    let pg = Postgres::start();
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
    let out = psql(&cli, "write", "select 1");
    let err = text(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(!err.contains("superuser"), "{err}");
    assert!(!broker.log().contains("session.superuser_login.v1"));
}
