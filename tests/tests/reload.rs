//! Config reload: `sluiced reload` (SIGHUP) checks the file, applies resources and policy to a
//! running broker, ends open sessions the new policy would not allow with a FATAL psql shows,
//! and refuses a broken file while the broker keeps serving.

use serde_json::Value;
use sluice_tests::postgres::psql;
use sluice_tests::util::wait_for;
use sluice_tests::{Broker, BrokerBuilder, Cli, OpenSession, Postgres};
use std::process::{Command, Output};
use std::time::Duration;

fn setup() -> (Postgres, Broker, Cli) {
    let pg = Postgres::start();
    let broker = BrokerBuilder::new()
        .postgres("pg", &pg)
        .role("extra", "      max_ttl: 1h\n")
        .role(
            "write",
            "      max_ttl: 1h\n      guardrails: guarded-write\n",
        )
        .rule_with(
            "eng",
            &[],
            &["eng"],
            &["pg"],
            &["use", "extra", "write"],
            "",
        )
        .start();
    let cli = Cli::new(&broker);
    cli.login(&broker.token("alice", &["eng"], "1h"));
    (pg, broker, cli)
}

fn reload(broker: &Broker) -> Output {
    broker.sluiced(&["reload"])
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The `end` of every session alice has, by role.
fn ends(cli: &Cli) -> Vec<(String, String)> {
    let out = cli.run(&["sessions", "list", "--output", "json"]);
    let list: Value = serde_json::from_slice(&out.stdout).expect("json");
    list["sessions"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| {
            (
                s["role"].as_str().unwrap_or_default().to_owned(),
                s["end"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

#[test]
fn a_reload_that_takes_a_role_away_ends_its_open_session_with_a_readable_fatal() {
    let (_pg, broker, cli) = setup();
    let extra = cli.connect_with("pg", &["--role", "extra"]);
    let kept = cli.connect_with("pg", &["--role", "use"]);
    let doomed = OpenSession::start(&extra, "open");
    let untouched = OpenSession::start(&kept, "open");
    broker.edit_config(
        "roles: [\"use\", \"extra\", \"write\"]",
        "roles: [\"use\", \"write\"]",
    );
    let out = reload(&broker);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("reloaded"), "{}", text(&out));
    wait_for("the extra session to end", Duration::from_secs(10), || {
        ends(&cli)
            .iter()
            .any(|(role, end)| role == "extra" && end.contains("policy changed"))
    });
    let (_, err) = doomed.finish("select 'after';");
    assert!(
        err.contains("the broker's policy changed") && err.contains("role 'extra'"),
        "psql did not say why: {err}"
    );
    let (out, err) = untouched.finish("select 'still here';");
    assert!(out.contains("still here"), "{out}{err}");
    // New tunnels follow the new policy too.
    let refused = Command::new(psql())
        .args(["-X", "-A", "-t", "-d", &extra.uri(), "-c", "select 1"])
        .output()
        .expect("psql");
    assert!(!refused.status.success());
    assert!(
        broker.log().contains("config.reloaded.v1"),
        "{}",
        broker.log()
    );
}

#[test]
fn a_reload_that_changes_a_roles_guardrails_applies_to_the_next_statement_of_open_sessions() {
    let (pg, broker, cli) = setup();
    let write = cli.connect_with("pg", &["--role", "write"]);
    let open = OpenSession::start(&write, "open");
    broker.edit_config("guardrails: guarded-write", "guardrails: read-only");
    let out = reload(&broker);
    assert!(out.status.success(), "{}", text(&out));
    // The open session's next statement is decided by the new guardrails, and it goes on.
    let (out, err) = open.finish("update customers set name = 'x' where id = 1; select 'goes on';");
    assert!(err.contains("read-only"), "{err}");
    assert!(out.contains("goes on"), "{out}{err}");
    let again = Command::new(psql())
        .args(["-X", "-A", "-t", "-d", &write.uri()])
        .args(["-c", "update customers set name = 'x' where id = 1"])
        .output()
        .expect("psql");
    assert!(text(&again).contains("read-only"), "{}", text(&again));
    let name = pg.admin_sql(&pg.database, "select name from customers where id = 1");
    assert_ne!(name.trim(), "x");
}

#[test]
fn a_broken_config_is_refused_with_its_location_and_the_broker_keeps_serving() {
    let (_pg, broker, cli) = setup();
    let connect = cli.connect_with("pg", &["--role", "use"]);
    let open = OpenSession::start(&connect, "open");
    broker.edit_config("max_ttl: 12h", "max_ttl: twelve hours");
    let out = reload(&broker);
    assert!(!out.status.success(), "{}", text(&out));
    let config = broker.config().display().to_string();
    assert!(
        text(&out).contains(&format!("{config}:"))
            && text(&out).contains("policy.roles.use.max_ttl"),
        "{}",
        text(&out)
    );
    // The same file sent by SIGHUP alone is refused by the broker and audited.
    let status = Command::new("kill")
        .args(["-HUP", &broker_pid(&broker)])
        .status()
        .expect("kill");
    assert!(status.success());
    wait_for("the refusal to be audited", Duration::from_secs(10), || {
        broker.log().contains("config.reload_refused.v1")
    });
    let log = broker.log();
    assert!(log.contains("policy.roles.use.max_ttl"), "{log}");
    let (out, err) = open.finish("select 'still serving';");
    assert!(out.contains("still serving"), "{out}{err}");
    let fresh = Command::new(psql())
        .args([
            "-X",
            "-A",
            "-t",
            "-d",
            &connect.uri(),
            "-c",
            "select 'new session'",
        ])
        .output()
        .expect("psql");
    assert!(text(&fresh).contains("new session"), "{}", text(&fresh));
}

fn broker_pid(broker: &Broker) -> String {
    std::fs::read_to_string(broker.dir().join("sluiced.pid"))
        .expect("the broker writes its pid file")
        .trim()
        .to_owned()
}

#[test]
fn a_reload_that_changes_a_roles_masking_ends_its_open_session_and_new_ones_use_it() {
    let pg = Postgres::start();
    pg.admin_sql(
        &pg.database,
        "alter table customers add column note text; \
         update customers set note = 'card 4111 1111 1111 1111' where id = 7",
    );
    let broker = BrokerBuilder::new()
        .postgres("pg", &pg)
        .role("masked", "      max_ttl: 1h\n      masking: cards\n")
        .policy_extra(
            "  masking:\n    cards:\n      detectors:\n        - {name: cards, detector: card, style: last4}\n",
        )
        .rule_with("eng", &[], &["eng"], &["pg"], &["masked"], "")
        .start();
    let cli = Cli::new(&broker);
    cli.login(&broker.token("alice", &["eng"], "1h"));
    let connect = cli.connect_with("pg", &["--role", "masked"]);
    let open = OpenSession::start(&connect, "open");
    broker.edit_config("style: last4", "style: redact");
    let out = reload(&broker);
    assert!(out.status.success(), "{}", text(&out));
    let (out, err) = open.finish("select note from customers where id = 7;");
    assert!(err.contains("other masking"), "{out}{err}");
    assert!(!out.contains("4111"), "{out}");
    let fresh = Command::new(psql())
        .args(["-X", "-A", "-t", "-d", &connect.uri()])
        .args(["-c", "select note from customers where id = 7"])
        .output()
        .expect("psql");
    let said = text(&fresh);
    assert!(fresh.status.success(), "{said}");
    assert!(
        !said.contains("1111"),
        "the new style (redact) hides every digit: {said}"
    );
}
