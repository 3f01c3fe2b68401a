//! Just-in-time grants end to end: real broker, real PostgreSQL, real psql, and several CLI
//! users (requesters and approvers) each with their own state directory.

use serde_json::Value;
use sluice_tests::postgres::psql;
use sluice_tests::util::wait_for;
use sluice_tests::{Broker, BrokerBuilder, Cli, Postgres};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Roles: `read` (auto, 8h), `write` (one dba approves, 1h), `break-glass` (two dbas, 30m),
/// `short` (auto, 3s), `hasty` (one dba must decide within 2s). Engineers may ask for all but
/// break-glass; dbas for break-glass.
fn setup() -> (Postgres, Broker) {
    let pg = Postgres::start();
    let broker = BrokerBuilder::new()
        .postgres("pg", &pg)
        .role("read", "      max_ttl: 8h\n")
        .role(
            "write",
            "      max_ttl: 1h\n      approval:\n        groups: [dba]\n",
        )
        .role(
            "break-glass",
            "      max_ttl: 30m\n      approval:\n        groups: [dba]\n        count: 2\n",
        )
        .role("short", "      max_ttl: 3s\n")
        .role(
            "hasty",
            "      max_ttl: 1h\n      approval:\n        groups: [dba]\n        timeout: 2s\n",
        )
        .rule_with(
            "eng",
            &[],
            &["eng"],
            &["pg"],
            &["read", "write", "short", "hasty"],
            "",
        )
        .rule_with("dba-glass", &[], &["dba"], &["pg"], &["break-glass"], "")
        .start();
    (pg, broker)
}

fn user(broker: &Broker, name: &str, groups: &[&str]) -> Cli {
    let cli = Cli::new(broker);
    cli.login(&broker.token(name, groups, "1h"));
    cli
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).to_string()
}
fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).to_string()
}

/// Runs a command that must succeed and prints JSON; returns the JSON.
fn json(cli: &Cli, args: &[&str]) -> Value {
    let out = cli.run(args);
    assert!(
        out.status.success(),
        "sluice {args:?} failed ({:?}):\n{}{}",
        out.status.code(),
        stdout(&out),
        stderr(&out)
    );
    serde_json::from_str(stdout(&out).trim())
        .unwrap_or_else(|e| panic!("sluice {args:?} printed no JSON ({e}):\n{}", stdout(&out)))
}

/// The grant inside a `grant request` answer (a grant, or `{grant, reused}`).
fn grant_of(v: &Value) -> &Value {
    if v.get("grant").is_some() {
        &v["grant"]
    } else {
        v
    }
}

/// The pending requests in an `approvals` answer.
fn pending_of(v: &Value) -> Vec<Value> {
    let list = if v.get("pending").is_some() {
        &v["pending"]
    } else {
        v
    };
    list.as_array().cloned().unwrap_or_default()
}

fn grants_of(v: &Value) -> Vec<Value> {
    let list = if v.get("grants").is_some() {
        &v["grants"]
    } else {
        v
    };
    list.as_array().cloned().unwrap_or_default()
}

fn request(cli: &Cli, role: &str, extra: &[&str]) -> Value {
    let mut args = vec!["grant", "request", "pg", "--role", role, "--output", "json"];
    args.extend_from_slice(extra);
    grant_of(&json(cli, &args)).clone()
}

fn show_grant(cli: &Cli, id: &str) -> Value {
    let all = json(cli, &["grant", "list", "--all", "--output", "json"]);
    grants_of(&all)
        .into_iter()
        .find(|g| g["id"] == id)
        .unwrap_or_else(|| panic!("grant {id} not in the list: {all}"))
}

fn psql_query(uri: &str, sql: &str) -> Output {
    Command::new(psql())
        .args([
            "-X",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            uri,
            "-c",
            sql,
        ])
        .output()
        .expect("run psql")
}

/// Waits until PostgreSQL shows `pattern` running (or, with `running == false`, no longer).
fn wait_statement(pg: &Postgres, pattern: &str, running: bool) {
    let sql = format!(
        "select count(*) from pg_stat_activity where query like '{pattern}%' and state = 'active'"
    );
    wait_for(
        &format!("`{pattern}` running = {running}"),
        Duration::from_secs(15),
        || (pg.admin_sql("postgres", &sql).trim() != "0") == running,
    );
}

#[test]
fn a_request_waits_for_an_approver_then_connect_uses_the_grant() {
    let (_pg, broker) = setup();
    let alice = user(&broker, "alice", &["eng"]);
    let bob = user(&broker, "bob", &["dba"]);

    let grant = request(&alice, "write", &["--ttl", "10h", "--reason", "fix INC-42"]);
    let id = grant["id"].as_str().expect("id").to_string();
    assert_eq!(grant["state"], "pending");
    assert_eq!(grant["ttl_secs"], 3600, "capped at the role's max_ttl");
    assert_eq!(grant["requested_ttl_secs"], 36000);

    // The human form says the TTL was capped.
    let out = alice.run(&[
        "grant", "request", "pg", "--role", "read", "--ttl", "10h", "--reason", "look",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert!(text.contains("10h") && text.contains("8h"), "{text}");

    // Policy says who may decide: alice is not a dba.
    let out = alice.run(&["approve", &id]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("dba"), "{}", stderr(&out));
    assert!(pending_of(&json(&alice, &["approvals", "--output", "json"])).is_empty());

    // Bob sees who asked, how they logged in, what for and why.
    let queue = pending_of(&json(&bob, &["approvals", "--output", "json"]));
    let seen = queue
        .iter()
        .find(|g| g["id"] == id.as_str())
        .unwrap_or_else(|| panic!("bob's queue lacks {id}: {queue:?}"));
    assert_eq!(seen["requester"]["subject"], "alice");
    assert_eq!(seen["requester"]["auth_method"], "operator");
    assert_eq!(seen["role"], "write");
    assert_eq!(seen["reason"], "fix INC-42");
    let out = bob.run(&["approvals"]);
    assert!(stdout(&out).contains("fix INC-42"), "{}", stdout(&out));

    let approved = json(
        &bob,
        &["approve", &id, "--reason", "ok", "--output", "json"],
    );
    assert_eq!(grant_of(&approved)["state"], "active");

    // A second decision on a decided request is refused with a clear message.
    let out = bob.run(&["deny", &id, "--reason", "changed my mind"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("already"), "{}", stderr(&out));

    // connect reuses the active grant.
    let conn = alice.connect_with("pg", &["--role", "write"]);
    assert_eq!(
        conn.details["grant"]
            .as_str()
            .or(conn.details["grant_id"].as_str()),
        Some(id.as_str()),
        "{}",
        conn.details
    );
    let out = psql_query(&conn.uri(), "select count(*) from customers");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "100");
    conn.stop();
    let shown = show_grant(&alice, &id);
    assert_eq!(shown["votes"][0]["approver"], "bob");
}

#[test]
fn a_denied_request_tells_the_waiting_requester_who_and_why() {
    let (_pg, broker) = setup();
    let alice = user(&broker, "alice", &["eng"]);
    let bob = user(&broker, "bob", &["dba"]);

    let waiter = alice
        .cmd()
        .args([
            "grant",
            "request",
            "pg",
            "--role",
            "write",
            "--reason",
            "drop old table",
            "--wait",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn waiter");
    let mut id = String::new();
    wait_for("the request to reach bob", Duration::from_secs(20), || {
        let queue = pending_of(&json(&bob, &["approvals", "--output", "json"]));
        match queue.first() {
            Some(g) => {
                id = g["id"].as_str().expect("id").to_string();
                true
            }
            None => false,
        }
    });
    let out = bob.run(&["deny", &id, "--reason", "change freeze until Monday"]);
    assert!(out.status.success(), "{}", stderr(&out));

    let out = waiter.wait_with_output().expect("waiter");
    assert!(!out.status.success(), "a denied --wait must not exit 0");
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert!(text.contains("change freeze until Monday"), "{text}");
    assert!(text.contains("bob"), "{text}");

    // Deny needs a reason; approving a denied request is refused.
    let out = bob.run(&["approve", &id]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("denied"), "{}", stderr(&out));
    let shown = show_grant(&alice, &id);
    assert_eq!(shown["state"], "denied");
    assert_eq!(shown["ended_by"], "bob");

    // The audit trail has the request and the decision.
    let log = broker.log();
    assert!(log.contains("grant.requested.v1"), "{log}");
    assert!(log.contains("grant.denied.v1"), "{log}");
}

#[test]
fn break_glass_needs_two_other_approvers() {
    let (_pg, broker) = setup();
    let carol = user(&broker, "carol", &["dba"]);
    let bob = user(&broker, "bob", &["dba"]);
    let dave = user(&broker, "dave", &["dba"]);

    let grant = request(&carol, "break-glass", &["--reason", "prod is down"]);
    let id = grant["id"].as_str().expect("id").to_string();
    assert_eq!(grant["state"], "pending");

    // Carol is a dba but may not approve her own request, and does not see it in her queue.
    let out = carol.run(&["approve", &id]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("self"), "{}", stderr(&out));
    assert!(pending_of(&json(&carol, &["approvals", "--output", "json"])).is_empty());

    let after_bob = json(&bob, &["approve", &id, "--output", "json"]);
    assert_eq!(grant_of(&after_bob)["state"], "pending", "one of two");
    // Bob's second yes does not count twice.
    let out = bob.run(&["approve", &id]);
    assert!(!out.status.success());
    assert!(pending_of(&json(&bob, &["approvals", "--output", "json"])).is_empty());

    let after_dave = json(&dave, &["approve", &id, "--output", "json"]);
    assert_eq!(grant_of(&after_dave)["state"], "active");
    let log = broker.log();
    assert!(log.contains("grant.activated.v1"), "{log}");
}

#[test]
fn revoking_a_grant_closes_a_psql_session_in_the_middle_of_a_long_query() {
    let (pg, broker) = setup();
    let alice = user(&broker, "alice", &["eng"]);
    let conn = alice.connect_with("pg", &["--role", "read"]);
    let sleeper = conn.spawn_psql("select pg_sleep(60)");
    wait_statement(&pg, "select pg_sleep(60)", true);

    let live = json(&alice, &["grant", "list", "--output", "json"]);
    let id = grants_of(&live)[0]["id"].as_str().expect("id").to_string();
    let started = Instant::now();
    let out = alice.run(&["grant", "revoke", &id, "--reason", "done for today"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = sleeper.wait_with_output().expect("psql");
    let took = started.elapsed();
    eprintln!("psql ended {took:?} after the revoke");
    assert!(!out.status.success(), "the query must not complete");
    assert!(
        took < Duration::from_secs(30),
        "closed by the revoke, not by pg_sleep ending"
    );
    // The statement was cancelled on the server too, not left running.
    wait_statement(&pg, "select pg_sleep(60)", false);

    let shown = show_grant(&alice, &id);
    assert_eq!(shown["state"], "revoked");
    assert_eq!(shown["ended_by"], "alice");
    assert_eq!(shown["end_reason"], "done for today");

    // New connections on the revoked grant are refused with the reason.
    let out = psql_query(&conn.uri(), "select 1");
    assert!(!out.status.success());
    assert!(stderr(&out).contains("revoked"), "{}", stderr(&out));
    assert!(broker.log().contains("grant.revoked.v1"));
}

#[test]
fn an_expiring_grant_closes_its_session() {
    let (pg, broker) = setup();
    let alice = user(&broker, "alice", &["eng"]);
    let conn = alice.connect_with("pg", &["--role", "short"]);
    let sleeper = conn.spawn_psql("select pg_sleep(60)");
    let out = sleeper.wait_with_output().expect("psql");
    assert!(
        !out.status.success(),
        "the query must not outlive the grant"
    );
    wait_statement(&pg, "select pg_sleep(60)", false);
    let all = json(&alice, &["grant", "list", "--all", "--output", "json"]);
    let ended = grants_of(&all);
    assert_eq!(ended[0]["state"], "expired", "{all}");
    assert!(broker.log().contains("grant.expired.v1"));
}

#[test]
fn run_revokes_its_grant_when_the_command_exits() {
    let (_pg, broker) = setup();
    let alice = user(&broker, "alice", &["eng"]);
    let out = alice.run(&[
        "run",
        "pg",
        "--role",
        "read",
        "--",
        "psql",
        "-X",
        "-A",
        "-t",
        "-c",
        "select 40 + 2",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "42");
    let out = alice.run(&["run", "pg", "--role", "read", "--", "sh", "-c", "exit 7"]);
    assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));

    let all = json(&alice, &["grant", "list", "--all", "--output", "json"]);
    let grants = grants_of(&all);
    assert_eq!(grants.len(), 2, "{all}");
    for grant in grants {
        assert_eq!(grant["state"], "revoked", "{grant}");
        assert_eq!(grant["ended_by"], "alice");
    }
    let live = json(&alice, &["grant", "list", "--output", "json"]);
    assert!(grants_of(&live).is_empty(), "{live}");
}

#[test]
fn tunnels_need_an_active_grant_of_their_own() {
    let (_pg, broker) = setup();
    let alice = user(&broker, "alice", &["eng"]);
    let mallory = user(&broker, "mallory", &["eng"]);
    let grant = request(&alice, "read", &["--reason", "look"]);
    let id = grant["id"].as_str().expect("id").to_string();

    // Mallory can neither see nor revoke alice's grant.
    let out = mallory.run(&["grant", "revoke", &id]);
    assert!(!out.status.success());
    assert_eq!(show_grant(&alice, &id)["state"], "active");

    // Tunnel handshakes without a grant, with a made-up one and with someone else's.
    let token = broker.token("mallory", &["eng"], "10m");
    for (header, code) in [
        (None, "grant_inactive"),
        (Some("g_forged".to_string()), "grant_not_found"),
        (Some(id.clone()), "grant_not_found"),
    ] {
        let mut args = vec![
            "-sk".to_string(),
            format!("{}/v1/tunnel", broker.url()),
            "-H".into(),
            "Connection: Upgrade".into(),
            "-H".into(),
            "Upgrade: sluice-tunnel/1".into(),
            "-H".into(),
            format!("Authorization: Bearer {token}"),
            "-H".into(),
            "sluice-resource: pg".into(),
            "-H".into(),
            format!("sluice-tunnel-secret: {}", "s".repeat(43)),
        ];
        if let Some(grant) = header {
            args.push("-H".into());
            args.push(format!("sluice-grant: {grant}"));
        }
        let (status, body) = sluice_tests::util::curl_json(&args);
        assert!(status == 403 || status == 404, "{status} {body}");
        assert_eq!(body["code"], code, "{body}");
    }
}

#[test]
fn grants_and_requests_survive_a_broker_restart() {
    let (_pg, mut broker) = setup();
    let alice = user(&broker, "alice", &["eng"]);
    let bob = user(&broker, "bob", &["dba"]);
    let active = request(&alice, "read", &["--reason", "look"]);
    let pending = request(&alice, "write", &["--reason", "fix"]);
    broker.restart();

    let id = pending["id"].as_str().expect("id");
    let approved = json(&bob, &["approve", id, "--output", "json"]);
    assert_eq!(grant_of(&approved)["state"], "active");

    let conn = alice.connect_with("pg", &["--role", "read"]);
    assert_eq!(
        conn.details["grant"]
            .as_str()
            .or(conn.details["grant_id"].as_str()),
        active["id"].as_str(),
        "{}",
        conn.details
    );
    let out = psql_query(&conn.uri(), "select 1");
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn a_request_nobody_decides_in_time_expires_and_cannot_be_approved_later() {
    let (_pg, broker) = setup();
    let alice = user(&broker, "alice", &["eng"]);
    let bob = user(&broker, "bob", &["dba"]);
    let grant = request(&alice, "hasty", &["--reason", "quick fix"]);
    let id = grant["id"].as_str().expect("id").to_string();
    assert_eq!(grant["state"], "pending");
    wait_for("the request to lapse", Duration::from_secs(30), || {
        show_grant(&alice, &id)["state"] == "expired"
    });
    let shown = show_grant(&alice, &id);
    assert!(
        shown["end_reason"]
            .as_str()
            .is_some_and(|r| r.contains("approval timeout")),
        "{shown}"
    );
    assert!(pending_of(&json(&bob, &["approvals", "--output", "json"])).is_empty());
    let out = bob.run(&["approve", &id]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("expired"), "{}", stderr(&out));
    // Nothing to connect with: connect asks anew rather than using the lapsed request.
    let out = alice.run(&["connect", "pg", "--role", "hasty", "--exec", "true"]);
    assert!(!out.status.success());
}
