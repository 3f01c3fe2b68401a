//! Recordings on S3-compatible object storage: a real S3 server (`moto_server`, from PyPI) on
//! 127.0.0.1 holds each recording as chunk objects, the broker shows and replays them from
//! there, and a bucket that goes away refuses `record: required` sessions and lets
//! `best-effort` ones run, saying so.

use sluice_tests::util::wait_for;
use sluice_tests::{Broker, BrokerBuilder, Cli, OpenSession, Postgres, S3};
use std::time::Duration;

/// A broker whose recordings go to `s3` under `sluice/`, encrypted by the bucket (SSE-S3), with roles `use` (recording required,
/// the default) and `loose` (best-effort), both open to group `eng`.
fn broker_on(s3: &S3, pg: &Postgres) -> Broker {
    let mut builder = BrokerBuilder::new()
        .postgres("pg", pg)
        .role(
            "loose",
            "      max_ttl: 1h\n      guardrails: guarded-write\n      record: best-effort\n",
        )
        .rule_with("eng", &[], &["eng"], &["pg"], &["use", "loose"], "")
        .top_level(&format!(
            "{}    encryption: aes256\n",
            s3.recording_yaml("sluice")
        ));
    for (name, value) in S3::env() {
        builder = builder.env(name, value);
    }
    builder.start()
}

#[test]
fn recordings_go_to_the_bucket_and_a_lost_bucket_fails_closed() {
    let s3 = S3::start();
    let pg = Postgres::start();
    let broker = broker_on(&s3, &pg);
    let cli = Cli::new(&broker);
    cli.login(&broker.token("alice", &["eng"], "1h"));

    let out = cli.run(&[
        "connect",
        "pg",
        "--role",
        "use",
        "--exec",
        "psql",
        "-X",
        "-A",
        "-t",
        "-c",
        "select 'kept in the bucket'",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sessions = cli.ended_sessions(1);
    let id = sessions[0]["id"].as_str().expect("id").to_owned();
    assert_eq!(sessions[0]["recording"], "recorded", "{sessions:?}");

    // The chunks are objects under PREFIX/DAY/SESSION/, and the broker reads them back.
    let keys = s3.keys();
    assert!(
        keys.contains(&format!("/{id}/00000000.jsonl.gz")) && keys.contains("<Key>sluice/"),
        "{keys}"
    );
    // Each chunk was stored encrypted as configured (SSE-S3).
    let key = keys
        .split("<Key>")
        .filter_map(|k| k.split("</Key>").next())
        .find(|k| k.contains(&id))
        .expect("a chunk key");
    let head = s3.head(key);
    assert!(
        head.to_ascii_lowercase()
            .contains("x-amz-server-side-encryption: aes256"),
        "{head}"
    );
    let shown = cli.run(&["sessions", "show", &id, "--output", "json"]);
    assert!(
        shown.status.success(),
        "{}",
        String::from_utf8_lossy(&shown.stderr)
    );
    let shown = String::from_utf8_lossy(&shown.stdout);
    assert!(shown.contains("select 'kept in the bucket'"), "{shown}");
    // The broker's credentials are not in what it wrote.
    let written = sluice_tests::files_text(broker.dir());
    assert!(!written.contains(sluice_tests::s3::SECRET));

    // The bucket goes away: a required recording cannot start, so the session is refused;
    // a best-effort one runs and is marked.
    drop(s3);
    let refused = cli.run(&[
        "connect",
        "pg",
        "--role",
        "use",
        "--exec",
        "psql",
        "-X",
        "-A",
        "-t",
        "-c",
        "select 'must not run'",
    ]);
    assert!(!refused.status.success(), "ran without its recording");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("requires a session recording"), "{stderr}");
    let loose = cli.run(&[
        "connect",
        "pg",
        "--role",
        "loose",
        "--exec",
        "psql",
        "-X",
        "-A",
        "-t",
        "-c",
        "select 'runs unrecorded'",
    ]);
    assert!(
        loose.status.success(),
        "{}",
        String::from_utf8_lossy(&loose.stderr)
    );
    assert!(String::from_utf8_lossy(&loose.stdout).contains("runs unrecorded"));
}

#[test]
fn a_bucket_lost_mid_session_ends_required_sessions_with_the_reason() {
    let s3 = S3::start();
    let pg = Postgres::start();
    let broker = broker_on(&s3, &pg);
    let cli = Cli::new(&broker);
    cli.login(&broker.token("alice", &["eng"], "1h"));
    let required = cli.connect_with("pg", &["--role", "use"]);
    let loose = cli.connect_with("pg", &["--role", "loose"]);
    let mut kept = OpenSession::start(&required, "recorded");
    let mut unkept = OpenSession::start(&loose, "best effort");

    drop(s3);
    // New events, whose write (at the next flush, within a second) fails.
    assert_eq!(kept.query("select 'before the flush';"), "before the flush");
    assert_eq!(
        unkept.query("select 'before the flush';"),
        "before the flush"
    );
    let reason = |sessions: &[serde_json::Value], role: &str| {
        sessions
            .iter()
            .find(|s| s["role"] == role)
            .map(|s| (s["end"].clone(), s["recording"].clone()))
    };
    let mut ended = None;
    wait_for(
        "the required session to end",
        Duration::from_secs(60),
        || {
            let out = cli.run(&["sessions", "list", "--output", "json"]);
            let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
            let sessions = list["sessions"].as_array().cloned().unwrap_or_default();
            ended = reason(&sessions, "use").filter(|(end, _)| !end.is_null());
            ended.is_some()
        },
    );
    let (end, _) = ended.expect("ended");
    assert!(
        end.as_str().is_some_and(|e| e.contains("record")),
        "the end does not say the recording failed: {end}"
    );
    let (out, err) = kept.finish("select 'after the failure';");
    assert!(!out.contains("after the failure"), "{out}");
    assert!(err.contains("FATAL") || err.contains("terminated"), "{err}");
    // The best-effort session goes on, and its recording is marked failed.
    assert_eq!(unkept.query("select 'still here';"), "still here");
    unkept.quit();
    let sessions = cli.ended_sessions(2);
    let (_, recording) = reason(&sessions, "loose").expect("the best-effort session");
    assert!(
        recording.as_str().is_some_and(|r| r.starts_with("failed")),
        "{recording}"
    );
}
