//! Tunnels are bounded and drained: each holds a slot of `limits.max_tunnels` for its life, and
//! a broker stopped with SIGTERM ends every session, with its end and recording written, before
//! it exits.

use serde_json::Value;
use sluice_tests::postgres::psql;
use sluice_tests::util::wait_for;
use sluice_tests::{Broker, BrokerBuilder, Cli, Connect, OpenSession, Postgres};
use std::process::{Command, Output};
use std::time::Duration;

fn setup(top_level: &str) -> (Postgres, Broker, Cli) {
    let pg = Postgres::start();
    let broker = BrokerBuilder::new()
        .postgres("pg", &pg)
        .rule("eng", &[], &["eng"], &["pg"])
        .top_level(top_level)
        .start();
    let cli = Cli::new(&broker);
    cli.login(&broker.token("alice", &["eng"], "1h"));
    (pg, broker, cli)
}

fn one_shot(connect: &Connect, sql: &str) -> Output {
    Command::new(psql())
        .args(["-X", "-A", "-t", "-d", &connect.uri(), "-c", sql])
        .output()
        .expect("psql")
}

#[test]
fn the_tunnel_limit_refuses_one_more_and_admits_it_once_one_closes() {
    let (_pg, _broker, cli) = setup("limits:\n  max_tunnels: 5\n");
    let connect = cli.connect_with("pg", &["--role", "use"]);
    let mut open: Vec<OpenSession> = (0..5)
        .map(|n| OpenSession::start(&connect, &format!("session {n}")))
        .collect();
    let out = one_shot(&connect, "select 'sixth'");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the sixth tunnel ran");
    assert!(
        err.contains("limit of 5 open tunnels (limits.max_tunnels)"),
        "{err}"
    );
    open.pop().expect("five").quit();
    let mut last = String::new();
    wait_for("a slot to come back", Duration::from_secs(30), || {
        let out = one_shot(&connect, "select 'sixth'");
        last = String::from_utf8_lossy(&out.stderr).to_string();
        out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == "sixth"
    });
    for session in open {
        session.quit();
    }
}

#[test]
fn sigterm_ends_every_session_with_its_end_and_recording_written() {
    let (_pg, mut broker, cli) = setup("");
    let connect = cli.connect_with("pg", &["--role", "use"]);
    let open: Vec<OpenSession> = (0..20)
        .map(|n| OpenSession::start(&connect, &format!("session {n}")))
        .collect();
    assert!(
        broker.terminate(),
        "sluiced exited with an error:\n{}",
        broker.log()
    );
    for session in open {
        let (_, err) = session.finish("select 'after';");
        assert!(
            err.contains("the broker is shutting down"),
            "psql was not told why: {err}"
        );
    }
    let log = broker.log();
    assert!(!log.contains("stopping anyway"), "{log}");
    broker.start_again();
    let listed = cli.run(&["sessions", "list", "--output", "json"]);
    assert!(
        listed.status.success(),
        "{}",
        String::from_utf8_lossy(&listed.stderr)
    );
    let sessions: Value = serde_json::from_slice(&listed.stdout).expect("json");
    let sessions = sessions["sessions"].as_array().cloned().unwrap_or_default();
    assert_eq!(sessions.len(), 20, "{sessions:#?}");
    for session in &sessions {
        let end = session["end"].as_str().unwrap_or_default();
        assert_eq!(end, "revoked: the broker is shutting down", "{session:#?}");
        let id = session["id"].as_str().expect("id");
        let shown = cli.run(&["sessions", "show", id, "--output", "json"]);
        assert!(
            shown.status.success(),
            "{}",
            String::from_utf8_lossy(&shown.stderr)
        );
        let detail: Value = serde_json::from_slice(&shown.stdout).expect("json");
        let events = detail["events"].as_array().cloned().unwrap_or_default();
        let last = events.last().cloned().unwrap_or_default();
        assert_eq!(last["type"], "end", "{id}: {events:#?}");
        assert_eq!(last["reason"], end, "{id}");
    }
}
