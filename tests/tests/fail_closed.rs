//! Access fails closed when the policy and a grant disagree: a role given where its engine
//! cannot enforce it never loads, and a grant whose role or rule is gone never opens a tunnel.

use sluice_tests::postgres::psql;
use sluice_tests::{Broker, BrokerBuilder, Cli, Connect, Postgres};
use std::process::{Command, Output};

fn psql_via(connect: &Connect, sql: &str) -> Output {
    Command::new(psql())
        .args(["-X", "-A", "-t", "-d", &connect.uri(), "-c", sql])
        .output()
        .expect("psql")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn count(pg: &Postgres) -> String {
    pg.admin_sql(&pg.database, "select count(*) from customers")
        .trim()
        .to_string()
}

#[test]
fn a_guarded_role_on_a_tcp_resource_is_refused_by_check_config_and_serve() {
    let pg = Postgres::start();
    let broker = BrokerBuilder::new()
        .postgres("pg", &pg)
        .tcp("raw", &pg.address())
        .role("read", "      max_ttl: 1h\n      guardrails: read-only\n")
        .rule_with("eng", &[], &["eng"], &["pg", "raw"], &["read"], "")
        .configure();
    let out = broker.sluiced(&["check-config"]);
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!out.status.success(), "check-config passed:\n{err}");
    let config = broker.config().display().to_string();
    // file:line:col: key: message, naming the rule, the role, the resource and the setting.
    let line = err
        .lines()
        .find(|l| l.contains("policy.rules[0].roles"))
        .unwrap_or_else(|| panic!("no located error:\n{err}"));
    assert!(line.starts_with(&format!("{config}:")), "{line}");
    for part in [
        "rule \"eng\"",
        "role \"read\"",
        "resource \"raw\" (kind tcp)",
        "policy.roles.read.guardrails",
    ] {
        assert!(line.contains(part), "{part} missing: {line}");
    }
    assert!(!err.contains("\"pg\""), "postgres is fine: {err}");
    let out = broker.sluiced(&["serve"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("policy.rules[0].roles"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A listening `sluice connect` with a grant of `legacy`; then the broker restarts under a
/// changed policy and psql connects again through the same local port, with the same grant.
fn grant_then_restart(change: (&str, &str)) -> (Postgres, Broker, Cli, Connect) {
    let pg = Postgres::start();
    let mut broker = BrokerBuilder::new()
        .postgres("pg", &pg)
        .role("legacy", "      max_ttl: 1h\n      guardrails: read-only\n")
        .rule_with("eng", &[], &["eng"], &["pg"], &["legacy"], "")
        .start();
    let cli = Cli::new(&broker);
    cli.login(&broker.token("alice", &["eng"], "1h"));
    let connect = cli.connect_with("pg", &["--role", "legacy"]);
    let out = psql_via(&connect, "delete from customers where id = 1");
    assert!(text(&out).contains("read-only"), "{}", text(&out));
    broker.edit_config(change.0, change.1);
    broker.restart();
    (pg, broker, cli, connect)
}

#[test]
fn a_grant_whose_role_was_removed_opens_no_tunnel() {
    let (pg, broker, _cli, connect) = grant_then_restart(("legacy", "renamed"));
    let out = psql_via(&connect, "delete from customers where id = 1");
    let said = text(&out);
    assert!(!out.status.success(), "{said}");
    assert!(said.contains("no longer defines"), "{said}");
    assert_eq!(count(&pg), "100");
    assert!(
        broker.log().contains("no longer defines"),
        "{}",
        broker.log()
    );
}

#[test]
fn a_grant_the_current_rules_no_longer_give_opens_no_tunnel() {
    let (pg, _broker, _cli, connect) =
        grant_then_restart(("groups: [\"eng\"]", "groups: [\"ops\"]"));
    let out = psql_via(&connect, "select 1");
    let said = text(&out);
    assert!(!out.status.success(), "{said}");
    assert!(
        said.contains("no longer gives alice role 'legacy'"),
        "{said}"
    );
    assert_eq!(count(&pg), "100");
}
