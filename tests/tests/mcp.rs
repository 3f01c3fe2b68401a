//! `sluice mcp` driven by the official MCP Python SDK (PyPI `mcp`), over stdio and over
//! streamable HTTP, against a real PostgreSQL and the real broker: an agent asks for access,
//! reads masked rows, has a DELETE refused by a guardrail, one held and approved by a second
//! identity, one held and denied, sends malformed calls, ends its grant; the audit trail, the
//! session list and the recording show it, and nothing the client received holds a credential
//! or a planted value.

use serde_json::{Value, json};
use sluice_tests::{Broker, BrokerBuilder, Cli, Postgres, free_port, workspace_bin};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const EMAIL: &str = "zed.planted@corp.example";

/// A guarded-write profile whose DELETEs wait for a `dba`.
const CAREFUL: &str = sluice_tests::broker::CAREFUL_GUARDRAILS;

fn setup() -> (Postgres, Broker, Cli) {
    let pg = Postgres::start();
    pg.admin_sql(
        &pg.database,
        &format!(
            "create table people (id int primary key, name text, email text); \
             insert into people values (1, 'Zed', '{EMAIL}'), (2, 'Amy', 'amy@corp.example'), \
               (3, 'Bo', 'bo@corp.example'); \
             grant all on people to {app}",
            app = pg.app_user
        ),
    );
    let broker = BrokerBuilder::new()
        .postgres("pg", &pg)
        .role(
            "agent",
            "      max_ttl: 1h\n      guardrails: careful\n      masking: pii\n",
        )
        .policy_extra(&format!(
            "{CAREFUL}{}",
            concat!(
                "  masking:\n",
                "    pii:\n",
                "      columns:\n",
                "        - {name: emails, column: '*.email', style: redact}\n",
                "  auditors:\n",
                "    groups: [security]\n",
            )
        ))
        .rule_with("eng", &[], &["eng"], &["pg"], &["agent"], "")
        .start();
    let cli = Cli::new(&broker);
    cli.login(&broker.token("alice", &["eng"], "1h"));
    (pg, broker, cli)
}

/// Runs the scripted agent (`tests/mcp/agent.py`) in the background.
fn agent(cli: &Cli, mode: &str, target: &str, steps: &Value) -> (Child, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("steps.json");
    std::fs::write(&file, steps.to_string()).expect("steps");
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("mcp/agent.py");
    let child = Command::new("python3")
        .arg(script)
        .arg(mode)
        .arg(target)
        .arg(&file)
        .envs(cli.env())
        .env_remove("SLUICE_TOKEN")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 with the mcp package (scripts/deps.sh installs it)");
    (child, dir)
}

fn finish(child: Child) -> Value {
    let out = child.wait_with_output().expect("agent");
    assert!(
        out.status.success(),
        "the agent failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("the agent prints JSON")
}

/// The statement held in a session now, other than `seen`.
fn next_hold(approver: &Cli, seen: &[String]) -> String {
    let mut id = String::new();
    sluice_tests::util::wait_for(
        "a held statement for the approver",
        Duration::from_secs(60),
        || {
            let out = approver.run(&["approvals", "--output", "json"]);
            let queue: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
            let found = queue["statements"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|s| s["id"].as_str())
                .find(|s| !seen.iter().any(|x| x == s))
                .map(str::to_owned);
            match found {
                Some(found) => {
                    id = found;
                    true
                }
                None => false,
            }
        },
    );
    id
}

fn result(results: &Value, i: usize) -> &Value {
    &results["results"][i]
}

#[test]
fn an_agent_over_stdio_gets_governed_masked_access_and_never_a_secret() {
    let (pg, broker, alice) = setup();
    let bob = Cli::new(&broker);
    bob.login(&broker.token("bob", &["dba"], "1h"));
    let huge = "select 1 -- ".to_owned() + &"x".repeat(100_000);
    let steps = json!([
        {"tool": "list_resources", "args": {}},
        {"tool": "request_access", "args": {"resource": "pg", "role": "agent", "reason": "weekly report"}},
        {"tool": "query", "args": {"resource": "pg", "sql": "select id, name, email from people order by id"}},
        {"tool": "describe", "args": {"resource": "pg", "table": "people"}},
        {"tool": "query", "args": {"resource": "pg", "sql": "update people set name = 'x'"}},
        {"tool": "query", "args": {"resource": "pg", "sql": "delete from people where id = 3"}},
        {"tool": "query", "args": {"resource": "pg", "sql": "delete from people where id = 2"}},
        {"raw": "query", "args": {"resource": "pg", "sql": 42}},
        {"tool": "query", "args": {"resource": "pg", "sql": "select 1; select 2"}},
        {"tool": "query", "args": {"resource": "pg", "sql": huge}},
        {"tool": "query", "args": {"resource": "nope", "sql": "select 1"}},
        {"tool": "query", "args": {"resource": "pg", "sql": "select g from generate_series(1, 1000) g", "max_rows": 2}},
        {"tool": "revoke_access", "args": {"resource": "pg"}},
        {"tool": "query", "args": {"resource": "pg", "sql": "select 1"}},
    ]);
    let sluice = workspace_bin("sluice");
    let (child, _dir) = agent(&alice, "stdio", &sluice.display().to_string(), &steps);
    // The first DELETE with a WHERE is held: bob approves it; the second, bob denies.
    let first = next_hold(&bob, &[]);
    let out = bob.run(&["approve", &first]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let second = next_hold(&bob, &[first]);
    let out = bob.run(&["deny", &second, "--reason", "keep Amy"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run = finish(child);
    if let Ok(path) = std::env::var("SLUICE_MCP_DUMP") {
        let _ = std::fs::write(path, run.to_string());
    }

    // The tools a model sees, with schemas.
    for tool in [
        "list_resources",
        "request_access",
        "wait_for_access",
        "query",
        "describe",
        "exec",
        "kube",
        "http",
        "revoke_access",
    ] {
        assert!(
            run["tools"][tool]["input_schema"].is_object(),
            "{tool} listed: {}",
            run["tools"]
        );
    }
    let resources = &result(&run, 0)["structured"]["resources"];
    assert_eq!(resources[0]["name"], "pg");
    assert_eq!(resources[0]["tools"], json!(["query", "describe"]));
    assert_eq!(result(&run, 1)["structured"]["state"], "active");

    // Masked rows.
    let rows = &result(&run, 2)["structured"]["rows"];
    assert_eq!(rows.as_array().map(Vec::len), Some(3), "{run}");
    assert_eq!(rows[0][1], "Zed");
    assert_ne!(rows[0][2], EMAIL);
    assert_eq!(result(&run, 2)["structured"]["command"], "SELECT 3");

    // describe says which column is masked, and by which rule.
    let columns = &result(&run, 3)["structured"]["tables"][0]["columns"];
    let email = columns
        .as_array()
        .and_then(|c| c.iter().find(|c| c["name"] == "email"))
        .expect("email column");
    assert_eq!(email["masked_by"], "emails", "{columns}");
    let name = columns
        .as_array()
        .and_then(|c| c.iter().find(|c| c["name"] == "name"))
        .expect("name column");
    assert!(name.get("masked_by").is_none(), "{columns}");

    // An UPDATE without WHERE is refused, naming the rule.
    let refused = result(&run, 4);
    assert_eq!(refused["is_error"], true, "{refused}");
    assert!(
        refused["text"]
            .as_str()
            .unwrap_or_default()
            .contains("guarded-write"),
        "{refused}"
    );

    // Held and approved: it ran, and progress said who must approve.
    let approved = result(&run, 5);
    assert_eq!(approved["structured"]["command"], "DELETE 1", "{approved}");
    let progress = approved["progress"].to_string();
    assert!(progress.contains("needs approval"), "{progress}");
    assert!(progress.contains("dba"), "{progress}");

    // Held and denied: an error with the approver's reason; nothing ran.
    let denied = result(&run, 6);
    assert_eq!(denied["is_error"], true, "{denied}");
    assert!(
        denied["text"]
            .as_str()
            .unwrap_or_default()
            .contains("keep Amy"),
        "{denied}"
    );
    let count = pg.admin_sql(&pg.database, "select count(*) from people");
    assert_eq!(count.trim(), "2", "only the approved DELETE ran");

    // Malformed and hostile calls are tool errors; the server kept serving.
    for (i, expect) in [
        (7, "invalid type"),
        (8, "multiple commands"),
        (9, "at most"),
        (10, "nope"),
    ] {
        let r = result(&run, i);
        assert_eq!(r["is_error"], true, "step {i}: {r}");
        assert!(
            r["text"].as_str().unwrap_or_default().contains(expect),
            "step {i} should say '{expect}': {r}"
        );
    }
    let bounded = &result(&run, 11)["structured"];
    assert_eq!(bounded["rows"].as_array().map(Vec::len), Some(2));
    assert_eq!(bounded["truncated"], true);

    // Revoked: the next query says to ask again.
    assert_eq!(result(&run, 12)["structured"]["state"], "revoked");
    let after = result(&run, 13);
    assert_eq!(after["is_error"], true);
    assert!(
        after["text"]
            .as_str()
            .unwrap_or_default()
            .contains("request_access"),
        "{after}"
    );

    // Nothing the client received holds a planted value or a credential.
    let transcript = run["transcript"].to_string();
    for secret in [EMAIL, pg.app_password.as_str(), "Bearer", "PGPASSWORD"] {
        assert!(
            !transcript.contains(secret),
            "the transcript holds {secret}"
        );
    }

    // The session list names the agent; the audit trail has every tool call, no values.
    let sessions = alice.ended_sessions(1);
    assert!(
        sessions.iter().any(|s| s["client"]
            .as_str()
            .unwrap_or_default()
            .contains("sluice-test-agent 0.1")),
        "{sessions:?}"
    );
    let auditor = Cli::new(&broker);
    auditor.login(&broker.token("carol", &["security"], "1h"));
    let out = auditor.run(&["audit", "export", "--since", "1h"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let trail = String::from_utf8_lossy(&out.stdout).into_owned();
    let calls: Vec<Value> = trail
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|r| r["event"] == "mcp.tool_called.v1")
        .collect();
    assert_eq!(calls.len(), 14, "one record per tool call: {calls:?}");
    assert!(
        calls
            .iter()
            .any(|c| c.to_string().contains("\"tool\":\"revoke_access\"")),
        "{calls:?}"
    );
    assert!(
        !trail.contains(EMAIL),
        "the audit trail holds a masked value"
    );
    assert!(trail.contains("auth.agent_token.v1"));
}

#[test]
fn an_agent_over_streamable_http_reads_masked_rows() {
    let (_pg, _broker, alice) = setup();
    let port = free_port();
    let mut server = alice
        .cmd()
        .args(["mcp", "--listen", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("sluice mcp --listen");
    sluice_tests::util::wait_for("the MCP endpoint", Duration::from_secs(30), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    let steps = json!([
        {"tool": "request_access", "args": {"resource": "pg", "reason": "report"}},
        {"tool": "query", "args": {"resource": "pg", "sql": "select email from people where id = 1"}},
    ]);
    let (child, _dir) = agent(
        &alice,
        "http",
        &format!("http://127.0.0.1:{port}/mcp"),
        &steps,
    );
    let run = finish(child);
    let _ = server.kill();
    let _ = server.wait();
    assert_eq!(result(&run, 0)["structured"]["state"], "active", "{run}");
    let rows = &result(&run, 1)["structured"]["rows"];
    assert_eq!(rows.as_array().map(Vec::len), Some(1), "{run}");
    assert_ne!(rows[0][0], EMAIL);
    assert!(!run["transcript"].to_string().contains(EMAIL));
}

#[test]
fn a_non_loopback_listen_address_and_a_missing_login_are_clear_errors() {
    let (_pg, broker, _alice) = setup();
    let nobody = Cli::new(&broker);
    let out = nobody.run(&["mcp", "--listen", "0.0.0.0:8765"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("loopback"));
    let out = nobody.run(&["mcp"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("sluice login"), "says what to do: {err}");
}

#[test]
fn agent_writes_wait_for_a_human_while_people_with_the_same_role_write() {
    let pg = Postgres::start();
    pg.admin_sql(
        &pg.database,
        &format!(
            "create table people (id int primary key, name text); \
             insert into people values (1, 'Zed'), (2, 'Amy'); grant all on people to {}",
            pg.app_user
        ),
    );
    let broker = BrokerBuilder::new()
        .postgres("pg", &pg)
        .role(
            "writer",
            "      max_ttl: 1h\n      guardrails: writes\n      agent_writes: approve\n",
        )
        .policy_extra(concat!(
            "  guardrails:\n",
            "    writes:\n",
            "      base: guarded-write\n",
            "      approvers: [dba]\n",
        ))
        .rule_with("eng", &[], &["eng"], &["pg"], &["writer"], "")
        .start();
    let alice = Cli::new(&broker);
    alice.login(&broker.token("alice", &["eng"], "1h"));
    let bob = Cli::new(&broker);
    bob.login(&broker.token("bob", &["dba"], "1h"));

    // A person writes at once.
    let out = alice.run(&[
        "connect",
        "pg",
        "--exec",
        "psql",
        "-X",
        "-c",
        "update people set name = 'Zoe' where id = 1",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("UPDATE 1"));

    // The agent's write waits for bob, who denies it; its reads run.
    let steps = json!([
        {"tool": "request_access", "args": {"resource": "pg", "reason": "tidy names"}},
        {"tool": "query", "args": {"resource": "pg", "sql": "update people set name = 'Ann' where id = 2"}},
        {"tool": "query", "args": {"resource": "pg", "sql": "select name from people order by id"}},
    ]);
    let sluice = workspace_bin("sluice");
    let (child, _dir) = agent(&alice, "stdio", &sluice.display().to_string(), &steps);
    let held = next_hold(&bob, &[]);
    let out = bob.run(&["deny", &held, "--reason", "not by a bot"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run = finish(child);
    let write = result(&run, 1);
    assert_eq!(write["is_error"], true, "{write}");
    assert!(write["progress"].to_string().contains("agent"), "{write}");
    assert!(
        write["text"]
            .as_str()
            .unwrap_or_default()
            .contains("not by a bot"),
        "{write}"
    );
    assert_eq!(
        result(&run, 2)["structured"]["rows"],
        json!([["Zoe"], ["Amy"]]),
        "{run}"
    );
}

#[test]
fn an_agent_calls_an_http_service_and_one_that_leaves_mid_approval_withdraws_its_statement() {
    let pg = Postgres::start();
    pg.admin_sql(
        &pg.database,
        &format!(
            "create table people (id int primary key); insert into people values (1); \
             grant all on people to {}",
            pg.app_user
        ),
    );
    let service = sluice_fake_http::FakeHttp::start();
    let broker = BrokerBuilder::new()
        .postgres("pg", &pg)
        .role(
            "careful",
            "      max_ttl: 1h\n      guardrails: careful\n",
        )
        .policy_extra(CAREFUL)
        .http(
            "api",
            &format!(
                "    address: {}\n    plaintext: true\n    inject:\n      headers: {{X-Api-Key: env:API_KEY}}\n",
                service.address()
            ),
            &[("API_KEY", "key-only-the-broker-holds")],
        )
        .role(
            "reader",
            "      max_ttl: 1h\n      http: {profile: http-read-only, mask: [\"$.customers[*].email\"]}\n",
        )
        .rule_with("eng", &[], &["eng"], &["pg"], &["careful"], "")
        .rule_with("eng-api", &[], &["eng"], &["api"], &["reader"], "")
        .start();
    let alice = Cli::new(&broker);
    alice.login(&broker.token("alice", &["eng"], "1h"));
    let bob = Cli::new(&broker);
    bob.login(&broker.token("bob", &["dba"], "1h"));
    let sluice = workspace_bin("sluice").display().to_string();

    let steps = json!([
        {"tool": "request_access", "args": {"resource": "api", "reason": "look at customers"}},
        {"tool": "http", "args": {"resource": "api", "method": "GET", "path": "/customers"}},
        {"tool": "http", "args": {"resource": "api", "method": "DELETE", "path": "/customers/1"}},
        {"tool": "http", "args": {"resource": "api", "method": "GET", "path": "/customers", "headers": {"Authorization": "Bearer x"}}},
    ]);
    let (child, _dir) = agent(&alice, "stdio", &sluice, &steps);
    let run = finish(child);
    let got = &result(&run, 1)["structured"];
    assert_eq!(got["status"], 200, "{run}");
    let body = got["body"].as_str().unwrap_or_default();
    assert!(
        body.contains("Ada Lovelace") && !body.contains("ada@example.com"),
        "{body}"
    );
    assert_eq!(result(&run, 2)["structured"]["status"], 403, "{run}");
    assert_eq!(result(&run, 3)["is_error"], true, "{run}");
    assert!(!service.requests().iter().any(|r| r.method == "DELETE"));
    assert!(
        !run["transcript"]
            .to_string()
            .contains("key-only-the-broker-holds")
    );

    // An agent that goes away while its DELETE waits: the statement is withdrawn, not run.
    let steps = json!([
        {"tool": "request_access", "args": {"resource": "pg", "reason": "cleanup"}},
        {"tool": "query", "args": {"resource": "pg", "sql": "delete from people where id = 1"}},
    ]);
    let (mut child, _dir) = agent(&alice, "stdio", &sluice, &steps);
    let held = next_hold(&bob, &[]);
    // The agent and the `sluice mcp` it launched go away.
    let _ = Command::new("pkill")
        .args(["-KILL", "-P", &child.id().to_string()])
        .status();
    let _ = child.kill();
    let _ = child.wait();
    sluice_tests::util::wait_for(
        "the held statement to be withdrawn",
        Duration::from_secs(30),
        || {
            let out = bob.run(&["approvals", "--output", "json"]);
            !String::from_utf8_lossy(&out.stdout).contains(&held)
        },
    );
    let out = bob.run(&["approve", &held]);
    assert!(
        !out.status.success(),
        "a withdrawn statement cannot be approved"
    );
    assert_eq!(
        pg.admin_sql(&pg.database, "select count(*) from people")
            .trim(),
        "1"
    );
}
