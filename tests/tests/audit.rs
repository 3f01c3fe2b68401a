//! The audit trail end to end: real broker, real CLI, the broker's own SQLite file. Events are
//! produced through the CLI, the broker is stopped the way an operator stops it (SIGTERM: the
//! queue drains and the head is signed), the file is tampered with directly, and after a
//! restart `sluice audit verify` must name the first broken record.

use sluice_tests::postgres::psql;
use sluice_tests::util::{echo_server, wait_for};
use sluice_tests::{Broker, BrokerBuilder, Cli, Postgres};
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::{ConnectOptions as _, Connection as _};
use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::Duration;

/// `policy.auditors`: the `security` group.
const AUDITORS: &str = "  auditors:\n    groups: [security]\n";

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).to_string()
}
fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).to_string()
}

fn user(broker: &Broker, name: &str, groups: &[&str]) -> Cli {
    let cli = Cli::new(broker);
    cli.login(&broker.token(name, groups, "1h"));
    cli
}

/// A broker with one tcp resource `echo` that group `eng` may use, and `security` auditors.
fn tcp_broker() -> Broker {
    let port = echo_server();
    // The tests tamper with the SQLite file, as an intruder with the disk would.
    BrokerBuilder::new()
        .sqlite_store()
        .tcp("echo", &format!("127.0.0.1:{port}"))
        .rule("eng", &[], &["eng"], &["echo"])
        .policy_extra(AUDITORS)
        .start()
}

/// Audit events from ordinary use: grants requested (and activated by policy), one revoked.
fn produce_events(cli: &Cli) {
    let mut ids = Vec::new();
    for reason in ["first", "second", "third"] {
        let out = cli.run(&[
            "grant", "request", "echo", "--role", "use", "--reason", reason, "--output", "json",
        ]);
        assert!(out.status.success(), "grant request: {}", stderr(&out));
        let v: serde_json::Value = serde_json::from_str(stdout(&out).trim()).expect("JSON");
        let grant = if v.get("grant").is_some() {
            &v["grant"]
        } else {
            &v
        };
        ids.push(grant["id"].as_str().expect("grant id").to_string());
    }
    let out = cli.run(&["grant", "revoke", &ids[0], "--reason", "done"]);
    assert!(out.status.success(), "grant revoke: {}", stderr(&out));
}

/// The broker's SQLite file (`store.sqlite: sluice.db` next to the config).
fn db(broker: &Broker) -> PathBuf {
    broker
        .config()
        .parent()
        .expect("config directory")
        .join("sluice.db")
}

/// Stops the broker with SIGTERM, as an operator or a service manager does, and waits until it
/// has exited (drained its audit queue and signed the head).
fn stop(broker: &Broker) {
    let config = broker.config().display().to_string();
    let pid = std::fs::read_dir("/proc")
        .expect("/proc")
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .find(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|cmdline| {
                let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
                args.contains(&&b"serve"[..]) && args.contains(&config.as_bytes())
            })
        })
        .expect("the sluiced process of this broker");
    let status = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    // A child that exited stays a zombie until the harness reaps it on restart or drop.
    wait_for("sluiced to exit", Duration::from_secs(30), || {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |stat| {
            stat.rsplit(')')
                .next()
                .is_some_and(|rest| rest.trim_start().starts_with('Z'))
        })
    });
}

/// Runs SQL statements on the broker's file, as someone with access to the disk would.
fn tamper(broker: &Broker, statements: &[&str]) {
    let path = db(broker);
    runtime().block_on(async {
        let mut conn = SqliteConnectOptions::new()
            .filename(&path)
            .connect()
            .await
            .expect("open the broker's SQLite file");
        for sql in statements {
            // The test's own fixed statements: nothing from outside reaches them.
            sqlx::query(sqlx::AssertSqlSafe(sql.to_string()))
                .execute(&mut conn)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
        }
        conn.close().await.expect("close");
    });
}

/// Every audit row as text (records, then checkpoints), for scanning.
fn audit_rows(broker: &Broker) -> Vec<String> {
    let path = db(broker);
    runtime().block_on(async {
        let mut conn = SqliteConnection::connect_with(&SqliteConnectOptions::new().filename(&path))
            .await
            .expect("open the broker's SQLite file");
        let mut rows: Vec<String> = sqlx::query_scalar(
            "SELECT seq || ' ' || at || ' ' || event || ' ' || data || ' ' || prev_hash \
             || ' ' || hash FROM audit_records ORDER BY seq",
        )
        .fetch_all(&mut conn)
        .await
        .expect("read audit_records");
        let checkpoints: Vec<String> = sqlx::query_scalar(
            "SELECT seq || ' ' || hash || ' ' || at || ' ' || signature || ' ' || key_id \
             FROM audit_checkpoints ORDER BY seq",
        )
        .fetch_all(&mut conn)
        .await
        .expect("read audit_checkpoints");
        rows.extend(checkpoints);
        conn.close().await.expect("close");
        rows
    })
}

/// The newest record's seq and the newest checkpoint's.
fn heads(broker: &Broker) -> (i64, i64) {
    let path = db(broker);
    runtime().block_on(async {
        let mut conn = SqliteConnection::connect_with(&SqliteConnectOptions::new().filename(&path))
            .await
            .expect("open");
        let records: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(seq), 0) FROM audit_records")
            .fetch_one(&mut conn)
            .await
            .expect("max seq");
        let signed: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(seq), 0) FROM audit_checkpoints")
            .fetch_one(&mut conn)
            .await
            .expect("max checkpoint");
        conn.close().await.expect("close");
        (records, signed)
    })
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// A broker with events on its trail, stopped cleanly: (broker, auditor, last seq).
fn stopped_with_a_trail() -> (Broker, Cli, i64) {
    let broker = tcp_broker();
    let alice = user(&broker, "alice", &["eng"]);
    let auditor = user(&broker, "sam", &["security"]);
    produce_events(&alice);
    let out = auditor.run(&["audit", "verify"]);
    assert!(
        out.status.success(),
        "an untouched trail verifies: {}{}",
        stdout(&out),
        stderr(&out)
    );
    stop(&broker);
    let (last, signed) = heads(&broker);
    assert!(
        last >= 8,
        "grants requested, activated, revoked, read: {last} records"
    );
    assert_eq!(signed, last, "shutdown signs the head");
    (broker, auditor, last)
}

/// Restarts the broker and runs `sluice audit verify`, which must fail with exit 16.
fn verify_fails(broker: &mut Broker, auditor: &Cli) -> String {
    broker.restart();
    let out = auditor.run(&["audit", "verify"]);
    assert_eq!(
        out.status.code(),
        Some(16),
        "verify must fail: {}{}",
        stdout(&out),
        stderr(&out)
    );
    stderr(&out)
}

#[test]
fn an_untouched_trail_verifies_and_exports_and_a_restart_continues_it() {
    let (mut broker, auditor, last) = stopped_with_a_trail();
    broker.restart();
    let alice = user(&broker, "alice", &["eng"]);
    produce_events(&alice);

    let out = auditor.run(&["audit", "verify"]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let text = stdout(&out);
    assert!(text.starts_with("audit trail intact: "), "{text}");
    assert!(
        text.contains(&format!("last signed at seq {last} (")),
        "{text}"
    );

    let out = auditor.run(&["audit", "verify", "--output", "json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let verdict: serde_json::Value = serde_json::from_str(stdout(&out).trim()).expect("JSON");
    assert_eq!(verdict["intact"], true);
    assert!(verdict["records"].as_u64().expect("records") > last as u64);
    let key = verdict["key_id"].as_str().expect("key id").to_string();
    // Pinning the key the broker reports works; another one is refused.
    assert!(
        auditor
            .run(&["audit", "verify", "--key-id", &key])
            .status
            .success()
    );
    let out = auditor.run(&["audit", "verify", "--key-id", "0000000000000000"]);
    assert_eq!(out.status.code(), Some(16), "{}", stderr(&out));

    let out = auditor.run(&["audit", "export", "--since", "1h"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let lines: Vec<serde_json::Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON record per line"))
        .collect();
    let events: Vec<&str> = lines
        .iter()
        .map(|r| r["event"].as_str().expect("event"))
        .collect();
    for expected in [
        "grant.requested.v1",
        "grant.activated.v1",
        "grant.revoked.v1",
        "audit.read.v1",
    ] {
        assert!(events.contains(&expected), "{expected} in {events:?}");
    }
    let seqs: Vec<u64> = lines
        .iter()
        .map(|r| r["seq"].as_u64().expect("seq"))
        .collect();
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "{seqs:?}");
    let requested = lines
        .iter()
        .find(|r| r["event"] == "grant.requested.v1")
        .expect("a grant request");
    assert_eq!(requested["data"]["subject"], "alice");
    assert_eq!(requested["data"]["resource"], "echo");

    let file = tempfile::NamedTempFile::new().expect("temp file");
    let out = auditor.run(&[
        "audit",
        "export",
        "--since",
        "2000-01-01T00:00:00Z",
        "--output",
        &file.path().display().to_string(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("audit records to"),
        "{}",
        stderr(&out)
    );
    let written = std::fs::read_to_string(file.path()).expect("export file");
    assert!(written.lines().count() >= lines.len());
    // Nothing is before 2000.
    let out = auditor.run(&[
        "audit",
        "export",
        "--since",
        "30y",
        "--until",
        "2000-01-01T00:00:00Z",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "");
}

#[test]
fn an_edited_record_is_named() {
    let (mut broker, auditor, _) = stopped_with_a_trail();
    tamper(
        &broker,
        &[
            "DROP TRIGGER audit_records_no_update",
            "UPDATE audit_records SET data = json_set(data, '$.subject', 'mallory') WHERE seq = 3",
        ],
    );
    let err = verify_fails(&mut broker, &auditor);
    assert!(
        err.contains("record 3 was edited: its hash does not match its content"),
        "{err}"
    );
}

#[test]
fn a_deleted_middle_record_is_named() {
    let (mut broker, auditor, _) = stopped_with_a_trail();
    tamper(
        &broker,
        &[
            "DROP TRIGGER audit_records_no_delete",
            "DELETE FROM audit_records WHERE seq = 4",
        ],
    );
    let err = verify_fails(&mut broker, &auditor);
    assert!(
        err.contains("record 4 is missing (seq jumps from 3 to 5)"),
        "{err}"
    );
}

#[test]
fn two_swapped_records_are_named() {
    let (mut broker, auditor, _) = stopped_with_a_trail();
    // Rows 5 and 6 trade everything but their seq: the order of events changed.
    tamper(
        &broker,
        &[
            "DROP TRIGGER audit_records_no_update",
            "CREATE TEMP TABLE swap AS SELECT * FROM audit_records WHERE seq IN (5, 6)",
            "UPDATE audit_records SET \
               at = (SELECT at FROM swap WHERE seq = 11 - audit_records.seq), \
               event = (SELECT event FROM swap WHERE seq = 11 - audit_records.seq), \
               data = (SELECT data FROM swap WHERE seq = 11 - audit_records.seq), \
               prev_hash = (SELECT prev_hash FROM swap WHERE seq = 11 - audit_records.seq), \
               hash = (SELECT hash FROM swap WHERE seq = 11 - audit_records.seq) \
             WHERE seq IN (5, 6)",
        ],
    );
    let err = verify_fails(&mut broker, &auditor);
    assert!(err.contains("record 5 does not follow record 4"), "{err}");
}

#[test]
fn records_cut_off_the_end_are_caught_by_the_last_checkpoint() {
    let (mut broker, auditor, last) = stopped_with_a_trail();
    let keep = last - 3;
    tamper(
        &broker,
        &[
            "DROP TRIGGER audit_records_no_delete",
            &format!("DELETE FROM audit_records WHERE seq > {keep}"),
        ],
    );
    // The restarted broker sees its last checkpoint beyond the last record and continues after
    // it instead of reusing the deleted seqs.
    let err = verify_fails(&mut broker, &auditor);
    assert!(
        err.contains(&format!(
            "records {}..{last} are missing (seq jumps from {keep} to {})",
            keep + 1,
            last + 1
        )),
        "{err}"
    );
    assert!(
        broker
            .log()
            .contains("audit records signed by a checkpoint are missing"),
        "{}",
        broker.log()
    );
}

#[test]
fn only_auditors_may_read_the_trail() {
    let broker = tcp_broker();
    let alice = user(&broker, "alice", &["eng"]);
    for args in [
        &["audit", "verify"][..],
        &["audit", "export", "--since", "1h"][..],
    ] {
        let out = alice.run(args);
        assert_eq!(out.status.code(), Some(12), "{args:?}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(
            err.contains("only auditors (policy.auditors) may read the audit trail"),
            "{err}"
        );
        assert!(err.contains("policy.auditors"), "{err}");
        assert_eq!(stdout(&out), "");
    }
}

#[test]
fn no_secret_reaches_the_audit_trail() {
    let pg = Postgres::start();
    let broker = BrokerBuilder::new()
        .sqlite_store()
        .postgres("pg", &pg)
        .rule("dba", &[], &["dba"], &["pg"])
        .policy_extra(AUDITORS)
        .start();
    let alice_token = broker.token("alice", &["dba"], "1h");
    let alice = Cli::new(&broker);
    alice.login(&alice_token);
    let auditor_token = broker.token("sam", &["security"], "1h");
    let auditor = Cli::new(&broker);
    auditor.login(&auditor_token);

    let connect = alice.connect("pg");
    let uri = connect.uri();
    let secret = uri
        .split_once("://")
        .and_then(|(_, rest)| rest.split_once('@'))
        .and_then(|(userinfo, _)| userinfo.split_once(':'))
        .map(|(_, secret)| secret.to_string())
        .expect("a one-time secret in the URI");
    let out = Command::new(psql())
        .args([
            "-X",
            "-A",
            "-t",
            "-d",
            &uri,
            "-c",
            "select count(*) from customers",
        ])
        .output()
        .expect("run psql");
    assert!(out.status.success(), "psql: {}", stderr(&out));
    connect.stop();
    let out = alice.run(&["logout"]);
    assert!(out.status.success(), "logout: {}", stderr(&out));
    let out = auditor.run(&["audit", "verify"]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    stop(&broker);

    let rows = audit_rows(&broker);
    assert!(rows.len() > 3, "{rows:#?}");
    assert!(
        rows.iter().any(|r| r.contains("grant.requested.v1")),
        "{rows:#?}"
    );
    let mut secrets = vec![
        ("the database password", pg.app_password.clone()),
        ("the tunnel's one-time secret", secret),
    ];
    for (whose, token) in [("alice", &alice_token), ("the auditor", &auditor_token)] {
        secrets.push((whose, token.clone()));
        // The claims and the signature of the token, each on its own.
        for part in token.split('.').skip(1) {
            secrets.push((whose, part.to_string()));
        }
    }
    for row in &rows {
        for (what, secret) in &secrets {
            assert!(
                secret.len() >= 16 && !row.contains(secret.as_str()),
                "{what} is in the audit trail: {row}"
            );
        }
    }
}
