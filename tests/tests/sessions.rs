//! Session recording end to end: real psql through the broker to real PostgreSQL, then
//! `sluice sessions list/show/replay` as the owner, another user and an auditor; a broker
//! killed with SIGKILL mid-session; and a recording directory that cannot be written under
//! `record: required` and `record: best-effort`.

use serde_json::Value;
use sluice_tests::util::wait_for;
use sluice_tests::{Broker, BrokerBuilder, Cli, Postgres};
use std::process::{Output, Stdio};
use std::time::Duration;

const CARD: &str = "4111 1111 1111 1111";
const EMAIL: &str = "planted.person@example.com";

/// Roles: `masked` (guarded-write, content masking, 5 rows recorded per statement) for
/// alice and bob (eng); carol is an auditor.
fn setup(top_level: &str, extra_roles: &[(&str, &str)]) -> (Postgres, Broker) {
    let pg = Postgres::start();
    pg.admin_sql(
        &pg.database,
        &format!(
            "alter table customers add column note text; \
             update customers set note = 'card {CARD}, mail {EMAIL}' where id = 7"
        ),
    );
    let mut builder = BrokerBuilder::new()
        .postgres("pg", &pg)
        .top_level(top_level)
        .role(
            "masked",
            "      max_ttl: 1h\n      guardrails: guarded-write\n      masking: content\n      record_rows: 5\n",
        );
    let mut roles = vec!["masked"];
    for (name, body) in extra_roles {
        builder = builder.role(name, body);
        roles.push(name);
    }
    let broker = builder
        .policy_extra(
            "  auditors: {groups: [security]}\n  masking:\n    content:\n      detectors:\n        - {name: cards, detector: card, style: last4}\n        - {name: emails, detector: email, style: redact}\n",
        )
        .rule_with("eng", &[], &["eng", "security"], &["pg"], &roles, "")
        .start();
    (pg, broker)
}

fn cli_for(broker: &Broker, subject: &str, groups: &[&str]) -> Cli {
    let cli = Cli::new(broker);
    cli.login(&broker.token(subject, groups, "1h"));
    cli
}

fn text(out: &[u8]) -> String {
    String::from_utf8_lossy(out).to_string()
}

fn json(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", text(&out.stdout)))
}

/// psql statements (one `-c` each, one session) through a tunnel of `role`.
fn psql(cli: &Cli, role: &str, statements: &[&str]) -> Output {
    let mut args = vec![
        "connect", "pg", "--role", role, "--exec", "psql", "-X", "-A", "-t",
    ];
    for s in statements {
        args.push("-c");
        args.push(s);
    }
    cli.run(&args)
}

/// Every session alice may list, newest first.
fn sessions(cli: &Cli, extra: &[&str]) -> Vec<Value> {
    let mut args = vec!["sessions", "list", "--output", "json"];
    args.extend_from_slice(extra);
    json(&cli.run(&args))["sessions"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// `(sql, decision outcome)` of each recorded statement, in order.
fn statements(detail: &Value) -> Vec<(String, String)> {
    detail["events"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["type"] == "statement")
        .map(|e| {
            (
                e["sql"].as_str().unwrap_or_default().to_owned(),
                e["decision"]["outcome"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            )
        })
        .collect()
}

#[test]
fn a_recorded_psql_session_lists_shows_and_replays_for_its_owner_and_auditors_only() {
    let (_pg, broker) = setup("", &[]);
    let alice = cli_for(&broker, "alice", &["eng"]);
    let sent = [
        "select id, note from customers where id = 7",
        "delete from customers",
        "select 1/0",
        &format!("select '{CARD}' as typed"),
    ];
    let out = psql(&alice, "masked", &sent);
    let stdout = text(&out.stdout);
    assert!(
        !stdout.contains(CARD) && !stdout.contains(EMAIL),
        "{stdout}"
    );

    let list = alice.ended_sessions(1);
    assert_eq!(list.len(), 1, "{list:?}");
    let session = &list[0];
    let id = session["id"].as_str().unwrap_or_default().to_owned();
    assert_eq!(session["subject"], "alice");
    assert_eq!(session["resource"], "pg");
    assert_eq!(session["role"], "masked");
    assert_eq!(session["recording"], "recorded");
    assert_eq!(session["statements"], 4);
    assert_eq!(session["end"], "closed");
    assert!(session["bytes_down"].as_u64().unwrap_or_default() > 0);

    let detail = json(&alice.run(&["sessions", "show", &id, "--output", "json"]));
    let recorded = statements(&detail);
    let outcomes: Vec<&str> = recorded.iter().map(|(_, o)| o.as_str()).collect();
    assert_eq!(outcomes, ["allowed", "blocked", "allowed", "allowed"]);
    assert_eq!(recorded[0].0, sent[0]);
    assert_eq!(recorded[1].0, sent[1]);
    // The typed card number is masked in the recorded SQL text itself.
    assert!(recorded[3].0.contains("1111") && !recorded[3].0.contains(CARD));
    let events = detail["events"].as_array().cloned().unwrap_or_default();
    let blocked = events
        .iter()
        .find(|e| e["decision"]["outcome"] == "blocked")
        .unwrap_or_else(|| panic!("no blocked statement: {events:?}"));
    assert!(
        blocked["decision"]["rule"]
            .as_str()
            .is_some_and(|r| !r.is_empty())
    );
    assert!(
        events
            .iter()
            .any(|e| e["type"] == "error" && e["code"] == "22012")
    );
    assert!(
        events
            .iter()
            .any(|e| e["type"] == "result" && e["tag"] == "SELECT 1")
    );
    let rows = events
        .iter()
        .find(|e| e["type"] == "rows")
        .unwrap_or_else(|| panic!("no rows recorded: {events:?}"));
    assert_eq!(rows["columns"], serde_json::json!(["id", "note"]));
    assert_eq!(events.last().map(|e| e["type"].clone()), Some("end".into()));

    // The text timeline and the replay show the statements in order.
    let shown = alice.run(&["sessions", "show", &id]);
    let shown = text(&shown.stdout);
    let replayed = alice.run(&["sessions", "replay", &id, "--speed", "0"]);
    assert!(replayed.status.success(), "{}", text(&replayed.stderr));
    let replayed = text(&replayed.stdout);
    for output in [&shown, &replayed] {
        let at = |needle: &str| {
            output
                .find(needle)
                .unwrap_or_else(|| panic!("{needle:?} missing from:\n{output}"))
        };
        assert!(
            at(sent[0]) < at(sent[1]) && at(sent[1]) < at(sent[2]),
            "{output}"
        );
        assert!(output.contains("blocked by"), "{output}");
        assert!(
            !output.contains(CARD) && !output.contains(EMAIL),
            "{output}"
        );
    }

    // Bob may neither read alice's session nor list hers; carol (an auditor) may.
    let bob = cli_for(&broker, "bob", &["eng"]);
    let refused = bob.run(&["sessions", "show", &id]);
    assert!(!refused.status.success());
    assert!(
        text(&refused.stderr).contains("no session"),
        "{}",
        text(&refused.stderr)
    );
    let refused = bob.run(&["sessions", "replay", &id, "--speed", "0"]);
    assert!(!refused.status.success());
    assert!(!text(&refused.stdout).contains(sent[0]));
    let refused = bob.run(&["sessions", "list", "--user", "alice"]);
    assert!(!refused.status.success());
    assert!(
        text(&refused.stderr).contains("auditors"),
        "{}",
        text(&refused.stderr)
    );
    assert!(sessions(&bob, &[]).is_empty());
    let carol = cli_for(&broker, "carol", &["security"]);
    assert_eq!(sessions(&carol, &["--user", "alice"]).len(), 1);
    let seen = json(&carol.run(&["sessions", "show", &id, "--output", "json"]));
    assert_eq!(statements(&seen), recorded);

    // No planted value anywhere the broker writes: recordings, store, log.
    let written = sluice_tests::files_text(broker.dir());
    assert!(
        !written.contains(CARD),
        "a card number was written in clear"
    );
    assert!(
        !written.contains(EMAIL),
        "an email address was written in clear"
    );
}

#[test]
fn a_broker_killed_mid_session_leaves_a_readable_recording() {
    let (_pg, mut broker) = setup("", &[]);
    let alice = cli_for(&broker, "alice", &["eng"]);
    let mut psql = alice
        .cmd()
        .args([
            "connect",
            "pg",
            "--role",
            "masked",
            "--exec",
            "psql",
            "-X",
            "-A",
            "-t",
            "-c",
            "select 'before the crash'",
            "-c",
            "select pg_sleep(60)",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn: {e}"));
    // Wait until the sleeping statement has been flushed to the recording.
    let mut id = String::new();
    wait_for(
        "the recording to hold pg_sleep",
        Duration::from_secs(30),
        || {
            let Some(session) = sessions(&alice, &[]).into_iter().next() else {
                return false;
            };
            id = session["id"].as_str().unwrap_or_default().to_owned();
            let detail = json(&alice.run(&["sessions", "show", &id, "--output", "json"]));
            statements(&detail)
                .iter()
                .any(|(sql, _)| sql.contains("pg_sleep"))
        },
    );
    broker.kill();
    let _ = psql.kill();
    let _ = psql.wait();
    broker.restart();

    let detail = json(&alice.run(&["sessions", "show", &id, "--output", "json"]));
    let recorded: Vec<String> = statements(&detail)
        .into_iter()
        .map(|(sql, _)| sql)
        .collect();
    assert_eq!(
        recorded,
        ["select 'before the crash'", "select pg_sleep(60)"]
    );
    assert!(
        detail["session"]["end"]
            .as_str()
            .is_some_and(|e| e.contains("broker stopped")),
        "{detail}"
    );
    assert_eq!(detail["session"]["ended_at"], Value::Null);
}

#[test]
fn an_unwritable_recording_refuses_required_roles_and_is_noted_for_best_effort_ones() {
    // The recording directory is a regular file: nothing can be written under it.
    let (_pg, broker) = setup(
        "recording:\n  dir: {dir}/not-a-directory\n",
        &[(
            "loose",
            "      max_ttl: 1h\n      guardrails: guarded-write\n      record: best-effort\n",
        )],
    );
    std::fs::write(broker.dir().join("not-a-directory"), "x").unwrap_or_else(|e| panic!("{e}"));
    let alice = cli_for(&broker, "alice", &["eng"]);

    let refused = psql(&alice, "masked", &["select 'must not run'"]);
    assert!(!refused.status.success());
    let stderr = text(&refused.stderr);
    assert!(
        stderr.contains("requires a session recording") && stderr.contains("best-effort"),
        "{stderr}"
    );

    let out = psql(&alice, "loose", &["select 'runs unrecorded'"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("runs unrecorded"));
    let list = sessions(&alice, &[]);
    assert_eq!(
        list.len(),
        1,
        "only the best-effort session is indexed: {list:?}"
    );
    assert!(
        list[0]["recording"]
            .as_str()
            .is_some_and(|r| r.starts_with("failed:")),
        "{list:?}"
    );
    let log = broker.log();
    assert!(log.contains("recording.failed.v1"), "{log}");
    assert!(log.contains("session.refused.v1"), "{log}");
}
