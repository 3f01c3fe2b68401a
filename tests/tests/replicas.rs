//! Several brokers, one truth: three `sluiced` processes share one PostgreSQL store (a real
//! cluster; the target database lives in the same cluster), each with its own port, and every
//! live decision made on one reaches the others — an approval wakes a requester waiting on
//! another broker, a revoke cuts a session on another, a logout is refused everywhere, and a
//! lost notification is repaired by the periodic re-check.

use sluice_tests::util::{curl_json, wait_for};
use sluice_tests::{Broker, BrokerBuilder, Cli, OpenSession, Postgres};
use std::process::Output;
use std::time::Duration;

/// Broker A on a shared store, roles `read` (auto), `write` (one dba approves) and `careful`
/// (deletes held for a dba), and two replicas of it.
fn three_brokers(pg: &Postgres) -> (Broker, Broker, Broker) {
    let a = BrokerBuilder::new()
        .postgres("pg", pg)
        .shared_store(pg, "sluice_store")
        .role("read", "      max_ttl: 8h\n")
        .role(
            "write",
            "      max_ttl: 1h\n      approval:\n        groups: [dba]\n",
        )
        .role("careful", "      max_ttl: 1h\n      guardrails: careful\n")
        .rule_with(
            "eng",
            &[],
            &["eng"],
            &["pg"],
            &["read", "write", "careful"],
            "",
        )
        .policy_extra(
            "  auditors:
    groups: [security]
",
        )
        .policy_extra(sluice_tests::broker::CAREFUL_GUARDRAILS)
        .start();
    let b = a.replica();
    let c = a.replica();
    (a, b, c)
}

fn user(broker: &Broker, token: &str) -> Cli {
    let cli = Cli::new(broker);
    cli.login(token);
    cli
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn json(cli: &Cli, args: &[&str]) -> serde_json::Value {
    let out = cli.run(args);
    assert!(out.status.success(), "sluice {args:?}: {}", text(&out));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)))
}

/// The id of `cli`'s only live grant.
fn live_grant(cli: &Cli) -> String {
    let list = json(cli, &["grant", "list", "--output", "json"]);
    let grants = list["grants"].as_array().cloned().unwrap_or_default();
    assert_eq!(grants.len(), 1, "{list}");
    grants[0]["id"].as_str().expect("id").to_owned()
}

/// `GET /v1/health` of `broker`.
fn health(broker: &Broker) -> (u16, serde_json::Value) {
    curl_json(&[
        "--cacert".into(),
        broker.ca().display().to_string(),
        format!("{}/v1/health", broker.url()),
    ])
}

#[test]
fn an_approval_and_a_revoke_on_other_brokers_reach_the_tunnel_on_this_one() {
    let pg = Postgres::start();
    let (a, b, c) = three_brokers(&pg);
    let (status, body) = health(&a);
    assert_eq!(
        (status, &body["checks"]["notifications"]),
        (200, &"ok".into()),
        "{body}"
    );

    let alice_token = a.token("alice", &["eng"], "1h");
    let alice_a = user(&a, &alice_token);
    let alice_c = user(&c, &alice_token);
    let bob_b = user(&b, &b.token("bob", &["dba"], "1h"));

    // Alice asks on A and waits there; Bob approves on B, which never saw the request made.
    let requested = json(
        &alice_a,
        &[
            "grant", "request", "pg", "--role", "write", "--reason", "INC-7", "--output", "json",
        ],
    );
    let requested = requested.get("grant").unwrap_or(&requested);
    let id = requested["id"].as_str().expect("grant id").to_owned();
    assert_eq!(requested["state"], "pending");
    let approver = std::thread::spawn(move || {
        wait_for(
            "the request to reach B's queue",
            Duration::from_secs(30),
            || {
                let out = bob_b.run(&["approvals", "--output", "json"]);
                String::from_utf8_lossy(&out.stdout).contains(&id)
            },
        );
        let out = bob_b.run(&["approve", &id]);
        assert!(out.status.success(), "approve on B: {}", text(&out));
        bob_b
    });
    let tunnel_a = alice_a.connect_with("pg", &["--role", "write"]);
    let _bob_b = approver.join().expect("approver");
    let on_a = OpenSession::start(&tunnel_a, "through A");

    // The same grant opens a tunnel on C.
    let tunnel_c = alice_c.connect_with("pg", &["--role", "write"]);
    let on_c = OpenSession::start(&tunnel_c, "through C");
    on_c.quit();

    // Revoked on C: the session on A ends, with the reason.
    let id = live_grant(&alice_a);
    let out = alice_c.run(&["grant", "revoke", &id, "--reason", "done on C"]);
    assert!(out.status.success(), "revoke on C: {}", text(&out));
    // A hears of it (a notification, or the re-check) and ends its session; both sessions
    // are then listed as ended.
    let ended = alice_a.ended_sessions(2);
    assert!(
        ended
            .iter()
            .any(|s| s["end"].as_str().is_some_and(|e| e.contains("revoked"))),
        "{}",
        serde_json::Value::Array(ended)
    );
    let (out, err) = on_a.finish("select 'after the revoke';");
    assert!(!out.contains("after the revoke"), "{out}");
    assert!(err.contains("revoked"), "{err}");
    // And A refuses new connections on it.
    let refused = new_connection(&tunnel_a);
    assert!(refused.contains("revoked"), "{refused}");
    let log = a.log();
    assert!(log.contains("another broker changed a grant"), "{log}");
}

#[test]
fn a_logout_on_one_broker_is_refused_on_the_others() {
    let pg = Postgres::start();
    let (a, b, c) = three_brokers(&pg);
    let token = a.token("alice", &["eng"], "1h");
    let alice_a = user(&a, &token);
    let out = alice_a.run(&["whoami"]);
    assert!(out.status.success(), "{}", text(&out));
    let out = alice_a.run(&["logout"]);
    assert!(out.status.success(), "{}", text(&out));
    for broker in [&b, &c] {
        let mut answer = (0, serde_json::Value::Null);
        wait_for(
            "the logout to reach the other broker",
            Duration::from_secs(10),
            || {
                answer = curl_json(&[
                    "--cacert".into(),
                    broker.ca().display().to_string(),
                    "-H".into(),
                    format!("Authorization: Bearer {token}"),
                    format!("{}/v1/whoami", broker.url()),
                ]);
                answer.0 == 401
            },
        );
        assert_eq!(answer.1["code"], "token_revoked", "{}", answer.1);
    }
}

#[test]
fn a_lost_notification_is_repaired_by_the_recheck() {
    let pg = Postgres::start();
    let (a, b, _c) = three_brokers(&pg);
    let token = a.token("alice", &["eng"], "1h");
    let alice_a = user(&a, &token);
    let alice_b = user(&b, &token);
    let tunnel = alice_a.connect_with("pg", &["--role", "read"]);
    let mut session = OpenSession::start(&tunnel, "before");
    let id = live_grant(&alice_a);

    // Every broker's LISTEN connection killed, then the revoke: its notification reaches no
    // one, and A must find out by reading the store again.
    let killed = pg.admin_sql(
        "sluice_store",
        "select count(pg_terminate_backend(pid)) from pg_stat_activity where query like 'LISTEN%'",
    );
    assert_eq!(killed.trim(), "3", "one LISTEN connection per broker");
    let out = alice_b.run(&["grant", "revoke", &id]);
    assert!(out.status.success(), "{}", text(&out));
    wait_for("A to end the session", Duration::from_secs(15), || {
        session.query("select 'still here';") != "still here"
    });
    // A listens again, and says so.
    wait_for("A to listen again", Duration::from_secs(15), || {
        health(&a).1["checks"]["notifications"] == "ok"
    });
    let log = a.log();
    assert!(
        log.contains("stopped hearing the other brokers' changes")
            || log.contains("was lost; reading everything again"),
        "{log}"
    );
}

/// What psql says for a new connection through `tunnel` running one statement.
fn new_connection(tunnel: &sluice_tests::Connect) -> String {
    let out = std::process::Command::new(sluice_tests::postgres::psql())
        .args(["-X", "-A", "-t", "-d", &tunnel.uri(), "-c", "select 1"])
        .output()
        .expect("run psql");
    text(&out)
}

#[test]
fn three_brokers_writing_the_audit_trail_at_once_make_one_chain() {
    let pg = Postgres::start();
    let (a, b, c) = three_brokers(&pg);
    let token = a.token("alice", &["eng"], "1h");
    // Each broker requests and revokes grants as fast as it can, at the same time: every
    // request, activation and revoke is an audit record appended by that broker.
    let workers: Vec<_> = [&a, &b, &c]
        .into_iter()
        .map(|broker| {
            let alice = user(broker, &token);
            std::thread::spawn(move || {
                for round in 0..8 {
                    let reason = format!("round {round}");
                    let granted = json(
                        &alice,
                        &[
                            "grant", "request", "pg", "--role", "read", "--reason", &reason,
                            "--output", "json",
                        ],
                    );
                    let granted = granted.get("grant").unwrap_or(&granted);
                    let id = granted["id"].as_str().expect("id").to_owned();
                    let out = alice.run(&["grant", "revoke", &id]);
                    assert!(out.status.success(), "{}", text(&out));
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().expect("worker");
    }
    let auditor = user(&b, &b.token("sam", &["security"], "1h"));
    // 3 brokers x 8 rounds x (requested, activated, revoked), at least, once every broker's
    // writer has appended what it queued.
    let mut verdict = serde_json::Value::Null;
    wait_for(
        "every broker's audit records",
        Duration::from_secs(20),
        || {
            verdict = json(&auditor, &["audit", "verify", "--output", "json"]);
            verdict["records"].as_u64().unwrap_or(0) >= 72
        },
    );
    assert_eq!(verdict["intact"], true, "{verdict}");
    let duplicates = pg.admin_sql(
        "sluice_store",
        "select count(*) from (select seq from audit_records group by seq having count(*) > 1) d",
    );
    assert_eq!(duplicates.trim(), "0");
}

#[test]
fn the_sessions_of_a_broker_killed_mid_session_are_marked_by_another() {
    let pg = Postgres::start();
    let (mut a, b, _c) = three_brokers(&pg);
    let token = a.token("alice", &["eng"], "1h");
    let alice_a = user(&a, &token);
    let alice_b = user(&b, &token);
    let tunnel = alice_a.connect_with("pg", &["--role", "read"]);
    let _session = OpenSession::start(&tunnel, "on A");
    let open = json(&alice_b, &["sessions", "list", "--output", "json"]);
    assert_eq!(
        open["sessions"][0]["end"],
        serde_json::Value::Null,
        "{open}"
    );

    a.kill();
    let mut end = serde_json::Value::Null;
    wait_for(
        "B to mark A's session interrupted",
        Duration::from_secs(40),
        || {
            let list = json(&alice_b, &["sessions", "list", "--output", "json"]);
            end = list["sessions"][0]["end"].clone();
            !end.is_null()
        },
    );
    let end = end.as_str().unwrap_or_default().to_owned();
    assert!(end.contains("no heartbeat"), "{end}");
    // Logged once the store answered the update that marked it.
    wait_for("B to say so", Duration::from_secs(10), || {
        b.log().contains("stopped heart-beating")
    });
}

#[test]
fn a_statement_held_on_one_broker_is_approved_on_another() {
    let pg = Postgres::start();
    let (a, b, c) = three_brokers(&pg);
    let alice_a = user(&a, &a.token("alice", &["eng"], "1h"));
    let bob_b = user(&b, &b.token("bob", &["dba"], "1h"));
    let carol_c = user(&c, &c.token("carol", &["dba"], "1h"));
    let tunnel = alice_a.connect_with("pg", &["--role", "careful"]);
    let held = |sql: &str| tunnel.spawn_psql(sql);

    // Approved on B: the DELETE waiting on A runs.
    let psql = held("delete from customers where id = 1");
    let hold = bob_b.first_hold();
    assert_eq!(hold["sql"], "delete from customers where id = 1", "{hold}");
    let id = hold["id"].as_str().expect("hold id").to_owned();
    // C's approver sees it too, and loses the race to B.
    wait_for("C's queue to show it", Duration::from_secs(10), || {
        carol_c.first_hold()["id"] == id.as_str()
    });
    let out = bob_b.run(&["approve", &id]);
    assert!(out.status.success(), "approve on B: {}", text(&out));
    let done = psql.wait_with_output().expect("psql");
    assert!(done.status.success(), "{}", text(&done));
    assert!(text(&done).contains("DELETE 1"), "{}", text(&done));
    let out = carol_c.run(&["approve", &id]);
    assert!(!out.status.success(), "a second decision must fail");
    assert!(text(&out).contains("approved by bob"), "{}", text(&out));
    let left = pg.admin_sql("appdb", "select count(*) from customers where id = 1");
    assert_eq!(left.trim(), "0");

    // Denied on C: the DELETE on A fails with the reason and nothing is deleted.
    let psql = held("delete from customers where id = 2");
    let id = carol_c.first_hold()["id"]
        .as_str()
        .expect("hold id")
        .to_owned();
    let out = carol_c.run(&["deny", &id, "--reason", "not during the freeze"]);
    assert!(out.status.success(), "deny on C: {}", text(&out));
    let done = psql.wait_with_output().expect("psql");
    assert!(!done.status.success());
    assert!(
        text(&done).contains("not during the freeze"),
        "{}",
        text(&done)
    );
    let left = pg.admin_sql("appdb", "select count(*) from customers where id = 2");
    assert_eq!(left.trim(), "1");
}

/// A TCP load balancer on 127.0.0.1: each new connection goes to the backend port the test
/// points it at now (so a test decides which broker a connection lands on).
struct Balancer {
    port: u16,
    target: std::sync::Arc<std::sync::atomic::AtomicU16>,
}

impl Balancer {
    fn start(first: u16) -> Self {
        use std::io::copy;
        use std::net::{TcpListener, TcpStream};
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the balancer");
        let port = listener.local_addr().expect("address").port();
        let target = std::sync::Arc::new(std::sync::atomic::AtomicU16::new(first));
        let to = std::sync::Arc::clone(&target);
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let backend = to.load(std::sync::atomic::Ordering::SeqCst);
                let Ok(server) = TcpStream::connect(("127.0.0.1", backend)) else {
                    continue;
                };
                let (Ok(mut client_r), Ok(mut server_w)) = (client.try_clone(), server.try_clone())
                else {
                    continue;
                };
                std::thread::spawn(move || {
                    let _ = copy(&mut client_r, &mut server_w);
                    let _ = server_w.shutdown(std::net::Shutdown::Write);
                });
                let (mut server_r, mut client_w) = (server, client);
                std::thread::spawn(move || {
                    let _ = copy(&mut server_r, &mut client_w);
                    let _ = client_w.shutdown(std::net::Shutdown::Write);
                });
            }
        });
        Self { port, target }
    }

    /// New connections go to `port` from now on.
    fn point_at(&self, port: u16) {
        self.target.store(port, std::sync::atomic::Ordering::SeqCst);
    }

    fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }
}

#[test]
fn a_ctrl_c_that_lands_on_another_broker_cancels_the_query() {
    let pg = Postgres::start();
    let (a, b, _c) = three_brokers(&pg);
    let balancer = Balancer::start(a.port);
    let alice = Cli::via(&a, &balancer.url());
    alice.login(&a.token("alice", &["eng"], "1h"));
    let tunnel = alice.connect_with("pg", &["--role", "read"]);
    let psql = tunnel.spawn_psql("select pg_sleep(60)");
    pg.wait_statement("select pg_sleep(60)", true);
    // The session is on A; psql's cancel connection goes to B.
    balancer.point_at(b.port);
    let sent = std::process::Command::new("kill")
        .args(["-INT", &psql.id().to_string()])
        .status()
        .expect("kill -INT");
    assert!(sent.success());
    let out = psql.wait_with_output().expect("psql");
    let said = text(&out);
    assert!(
        said.contains("canceling statement due to user request"),
        "{said}\n--- A:\n{}\n--- B:\n{}",
        a.log(),
        b.log()
    );
    // Both brokers log it once they are done with it (B after psql's cancel connection ends).
    wait_for(
        "B to audit the cancel request",
        Duration::from_secs(10),
        || b.log().contains("cancel.requested.v1"),
    );
    wait_for("A to say it cancelled", Duration::from_secs(10), || {
        a.log()
            .contains("cancelled a query for a Ctrl-C another broker received")
    });
}

#[test]
fn a_single_broker_moves_to_postgres_with_its_history() {
    let pg = Postgres::start();
    let mut broker = BrokerBuilder::new()
        .sqlite_store()
        .postgres("pg", &pg)
        .role("read", "      max_ttl: 8h\n")
        .rule_with("eng", &[], &["eng"], &["pg"], &["read"], "")
        .policy_extra("  auditors:\n    groups: [security]\n")
        .start();
    let alice = user(&broker, &broker.token("alice", &["eng"], "1h"));
    let granted = json(
        &alice,
        &[
            "grant", "request", "pg", "--role", "read", "--reason", "before", "--output", "json",
        ],
    );
    let granted = granted.get("grant").unwrap_or(&granted);
    let id = granted["id"].as_str().expect("id").to_owned();
    let tunnel = alice.connect_with("pg", &["--role", "read"]);
    OpenSession::start(&tunnel, "on SQLite").quit();
    drop(tunnel);
    assert!(broker.terminate(), "a clean stop: {}", broker.log());

    pg.admin_sql(
        "postgres",
        &format!("CREATE DATABASE moved OWNER {}", pg.app_user),
    );
    let to = format!("postgres://{}@127.0.0.1:{}/moved", pg.app_user, pg.port);
    let sqlite = format!("sqlite:{}", broker.dir().join("sluice.db").display());
    // A password on the command line is refused before anything is read.
    let out = std::process::Command::new(sluice_tests::workspace_bin("sluiced"))
        .args(["store", "copy", "--from", &sqlite, "--to"])
        .arg(format!(
            "postgres://{}:{}@127.0.0.1:{}/moved",
            pg.app_user, pg.app_password, pg.port
        ))
        .output()
        .expect("run sluiced");
    assert!(!out.status.success());
    assert!(
        text(&out).contains("SLUICE_STORE_PASSWORD"),
        "{}",
        text(&out)
    );
    assert!(!text(&out).contains(&pg.app_password), "{}", text(&out));
    let out = std::process::Command::new(sluice_tests::workspace_bin("sluiced"))
        .args(["store", "copy", "--from", &sqlite, "--to", &to])
        .env("SLUICE_STORE_PASSWORD", &pg.app_password)
        .output()
        .expect("run sluiced");
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("copied 1 grants"), "{}", text(&out));

    // The same broker on the copy: its grant, its session and an intact, signed audit trail.
    broker.edit_config(
        "store:\n  sqlite: sluice.db\n",
        &format!(
            "store:\n  postgres:\n    url: {to}\n    password: env:SLUICE_STORE_PASSWORD\nrecording:\n  dir: recordings\n"
        ),
    );
    broker.set_env("SLUICE_STORE_PASSWORD", &pg.app_password);
    let out = broker.sluiced(&["migrate"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("PostgreSQL store is at schema version 6"),
        "{}",
        text(&out)
    );
    broker.start_again();
    let shown = json(&alice, &["grant", "list", "--all", "--output", "json"]);
    assert!(shown.to_string().contains(&id), "{shown}");
    let sessions = json(&alice, &["sessions", "list", "--output", "json"]);
    assert_eq!(
        sessions["sessions"].as_array().map(Vec::len),
        Some(1),
        "{sessions}"
    );
    let auditor = user(&broker, &broker.token("sam", &["security"], "1h"));
    let verdict = json(&auditor, &["audit", "verify", "--output", "json"]);
    assert_eq!(verdict["intact"], true, "{verdict}");
    assert!(
        verdict["checkpoints"].as_u64().unwrap_or(0) >= 1,
        "{verdict}"
    );
}

#[test]
fn a_recording_written_on_a_broker_that_died_is_replayed_from_the_bucket_by_another() {
    let pg = Postgres::start();
    let s3 = sluice_tests::S3::start();
    let mut builder = BrokerBuilder::new()
        .postgres("pg", &pg)
        .shared_store(&pg, "sluice_store")
        .role("read", "      max_ttl: 8h\n")
        .rule_with("eng", &[], &["eng"], &["pg"], &["read"], "")
        .top_level(&s3.recording_yaml("replicas"));
    for (name, value) in sluice_tests::S3::env() {
        builder = builder.env(name, value);
    }
    let mut a = builder.start();
    let b = a.replica();
    let token = a.token("alice", &["eng"], "1h");
    let alice_a = user(&a, &token);
    let alice_b = user(&b, &token);
    let tunnel = alice_a.connect_with("pg", &["--role", "read"]);
    let mut session = OpenSession::start(&tunnel, "written on A");
    assert_eq!(session.query("select 'before A dies';"), "before A dies");
    let list = json(&alice_b, &["sessions", "list", "--output", "json"]);
    let id = list["sessions"][0]["id"]
        .as_str()
        .expect("session id")
        .to_owned();
    // The recorder writes a chunk every second: B reads the statement from the bucket while
    // A still runs the session.
    wait_for(
        "B to read A's statement from the bucket",
        Duration::from_secs(15),
        || {
            let shown = alice_b.run(&["sessions", "show", &id, "--output", "json"]);
            text(&shown).contains("select 'before A dies'")
        },
    );
    assert!(s3.keys().contains(&format!("/{id}/")), "{}", s3.keys());

    a.kill();
    wait_for(
        "B to mark A's session interrupted",
        Duration::from_secs(40),
        || {
            let list = json(&alice_b, &["sessions", "list", "--output", "json"]);
            !list["sessions"][0]["end"].is_null()
        },
    );
    // B shows and replays what A wrote up to its last chunk.
    let shown = alice_b.run(&["sessions", "show", &id, "--output", "json"]);
    assert!(shown.status.success(), "{}", text(&shown));
    assert!(
        text(&shown).contains("select 'before A dies'"),
        "{}",
        text(&shown)
    );
    let replayed = alice_b.run(&["sessions", "replay", &id]);
    assert!(replayed.status.success(), "{}", text(&replayed));
    assert!(
        text(&replayed).contains("before A dies"),
        "{}",
        text(&replayed)
    );
    let written = sluice_tests::files_text(b.dir());
    assert!(!written.contains(sluice_tests::s3::SECRET));
}

#[test]
fn a_grant_from_a_broker_that_died_expires_on_time_exactly_once() {
    let pg = Postgres::start();
    let mut a = BrokerBuilder::new()
        .postgres("pg", &pg)
        .shared_store(&pg, "sluice_store")
        .role("short", "      max_ttl: 3s\n")
        .rule_with("eng", &[], &["eng"], &["pg"], &["short"], "")
        .start();
    let b = a.replica();
    let c = a.replica();
    let token = a.token("alice", &["eng"], "1h");
    let alice_a = user(&a, &token);
    let alice_b = user(&b, &token);
    let granted = json(
        &alice_a,
        &[
            "grant", "request", "pg", "--role", "short", "--reason", "quick", "--output", "json",
        ],
    );
    let granted = granted.get("grant").unwrap_or(&granted);
    let id = granted["id"].as_str().expect("id").to_owned();
    // The broker that made it dies before its timer fires; B and C both have one.
    a.kill();
    let mut shown = serde_json::Value::Null;
    wait_for("the grant to expire", Duration::from_secs(20), || {
        let all = json(&alice_b, &["grant", "list", "--all", "--output", "json"]);
        shown = all["grants"]
            .as_array()
            .and_then(|g| g.iter().find(|g| g["id"] == id.as_str()).cloned())
            .unwrap_or_default();
        shown["state"] == "expired"
    });
    assert_eq!(shown["ended_by"], "sluiced", "{shown}");
    let ended_at = shown["ended_at"].as_u64().expect("ended_at");
    let expires_at = shown["expires_at"].as_u64().expect("expires_at");
    assert!(ended_at >= expires_at, "{shown}");
    // One broker ended it; the other lost the compare-and-set and wrote nothing.
    let expired = || {
        pg.admin_sql(
            "sluice_store",
            &format!(
                "select count(*) from audit_records where event = 'grant.expired.v1' and data like '%{id}%'"
            ),
        )
        .trim()
        .to_owned()
    };
    wait_for("the expiry's audit record", Duration::from_secs(10), || {
        expired() != "0"
    });
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(expired(), "1", "{}\n{}", b.log(), c.log());
}

/// One broker for database `target` keeping its store in `store`, alice logged in to it, and
/// her tunnel, through which one psql session ran and ended.
fn with_a_session(target: &Postgres, store: &Postgres) -> (Broker, Cli, sluice_tests::Connect) {
    let broker = BrokerBuilder::new()
        .postgres("pg", target)
        .shared_store(store, "sluice_store")
        .role("read", "      max_ttl: 8h\n")
        .rule_with("eng", &[], &["eng"], &["pg"], &["read"], "")
        .start();
    let alice = user(&broker, &broker.token("alice", &["eng"], "1h"));
    let tunnel = alice.connect_with("pg", &["--role", "read"]);
    OpenSession::start(&tunnel, "before").quit();
    (broker, alice, tunnel)
}

#[test]
fn a_broker_that_loses_its_store_refuses_tunnels_and_says_why() {
    let target = Postgres::start();
    let store = Postgres::start();
    let (a, _alice, tunnel) = with_a_session(&target, &store);

    store.stop();
    wait_for("health to fail", Duration::from_secs(20), || {
        health(&a).0 == 503
    });
    let (_, body) = health(&a);
    assert_ne!(body["checks"]["store"], "ok", "{body}");
    // A new connection through the same tunnel: refused, with the reason.
    let refused = new_connection(&tunnel);
    assert!(
        !refused.contains("\n1\n") && !refused.starts_with('1'),
        "{refused}"
    );
    assert!(refused.contains("FATAL"), "{refused}");
    assert!(
        refused.contains("cannot reach its grant store"),
        "{refused}"
    );
    let log = a.log();
    assert!(
        !log.contains(&store.app_password),
        "the store's password in the log"
    );
}

#[test]
fn an_approvers_long_poll_on_one_broker_wakes_for_a_request_made_on_another() {
    let pg = Postgres::start();
    let (a, b, _c) = three_brokers(&pg);
    let alice_a = user(&a, &a.token("alice", &["eng"], "1h"));
    let bob_token = b.token("bob", &["dba"], "1h");
    let (ca, url) = (b.ca().display().to_string(), b.url());
    let poll = move |version: Option<u64>| {
        let query = version.map_or_else(String::new, |v| format!("?version={v}&wait=30"));
        curl_json(&[
            "--cacert".into(),
            ca.clone(),
            "-H".into(),
            format!("Authorization: Bearer {bob_token}"),
            format!("{url}/v1/approvals{query}"),
        ])
    };
    let (status, before) = poll(None);
    assert_eq!(status, 200, "{before}");
    assert_eq!(
        before["pending"].as_array().map(Vec::len),
        Some(0),
        "{before}"
    );
    let version = before["version"].as_u64().expect("a version");
    // What `sluice approvals --watch` does on B, while alice asks on A.
    let watch = poll.clone();
    let watcher = std::thread::spawn(move || watch(Some(version)));
    let requested = json(
        &alice_a,
        &[
            "grant", "request", "pg", "--role", "write", "--reason", "INC-9", "--output", "json",
        ],
    );
    let requested = requested.get("grant").unwrap_or(&requested);
    let (status, woke) = watcher.join().expect("watcher");
    assert_eq!(status, 200, "{woke}");
    assert_ne!(woke["version"].as_u64(), Some(version), "{woke}");
    // The answer the poll woke with may predate the request only if the re-check woke it
    // first; the next read on B lists it either way.
    let (_, now) = poll(None);
    let pending = now["pending"].as_array().cloned().unwrap_or_default();
    assert!(pending.iter().any(|g| g["id"] == requested["id"]), "{now}");
}

#[test]
fn the_store_is_reached_over_tls_and_a_wrong_ca_is_refused() {
    let target = Postgres::start();
    // The store's cluster takes TLS connections only.
    let store = Postgres::start_tls();
    let (broker, _alice, _tunnel) = with_a_session(&target, &store);
    let ssl = store.admin_sql(
        "sluice_store",
        "select count(*) from pg_stat_ssl join pg_stat_activity using (pid) \
         where ssl and usename = 'app'",
    );
    assert_ne!(ssl.trim(), "0", "the broker's store connections use TLS");

    // Pinned to another CA (the broker's own): refused, naming the key, no password shown.
    let wrong = broker.ca().display().to_string();
    let config = std::fs::read_to_string(broker.config()).expect("config");
    let edited = broker.dir().join("wrong-ca.yaml");
    std::fs::write(
        &edited,
        config.replace(&store.tls_ca().display().to_string(), &wrong),
    )
    .expect("write config");
    let out = std::process::Command::new(sluice_tests::workspace_bin("sluiced"))
        .args(["migrate", "--config"])
        .arg(&edited)
        .env("SLUICE_STORE_PASSWORD", &store.app_password)
        .output()
        .expect("run sluiced");
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("store.postgres.url"), "{}", text(&out));
    assert!(!text(&out).contains(&store.app_password), "{}", text(&out));
}
