//! The Sluice demo: everything embedded, on 127.0.0.1, torn down at the end. Each step runs the
//! real binaries and shows their output.

use sluice_tests::{BrokerBuilder, Cli, OidcProvider, OpenSession, Postgres, Sshd};
use std::io::{BufRead, BufReader};
use std::process::{Output, Stdio};

fn step(n: u32, title: &str) {
    println!("\n\x1b[1m== {n}. {title}\x1b[0m");
}

fn show(cmd: &str, out: &Output) {
    println!("$ {cmd}");
    print!("{}", String::from_utf8_lossy(&out.stdout));
    let err = String::from_utf8_lossy(&out.stderr);
    if !err.trim().is_empty() {
        for line in err.lines() {
            println!("  (stderr) {line}");
        }
    }
    println!("  (exit code {})", out.status.code().unwrap_or(-1));
}

fn main() {
    step(1, "A throwaway PostgreSQL with sample data");
    let pg = Postgres::start();
    pg.admin_sql(
        &pg.database,
        "alter table customers add column note text; \
         update customers set note = 'paid with card 4111 1111 1111 1111' where id = 2",
    );
    println!(
        "PostgreSQL on {} with database `{}`, table `customers` (100 rows; row 2's note holds a card number).\nRole `{}` logs in with SCRAM; its password is known only to the broker's environment.",
        pg.address(),
        pg.database,
        pg.app_user
    );

    println!("An OpenID provider for people (the `oidc-provider` package) starts too.");
    let op = OidcProvider::start();
    let sshd = Sshd::start();
    println!(
        "And an OpenSSH server on {} that trusts one key: the broker's.",
        sshd.address()
    );
    let cluster = sluice_fake_kube::FakeKube::start();
    println!(
        "And a Kubernetes API server on {} (the test suite's own; kube-apiserver does not install here) \
         that accepts one token: the broker's.",
        cluster.url()
    );

    let billing = sluice_fake_http::FakeHttp::start();
    println!(
        "And an internal HTTP service on {} (customers with emails and card numbers) that wants an API key.",
        billing.url()
    );

    step(
        2,
        "The broker: `sluiced init`, a postgres resource, an identity provider, roles and a rule",
    );
    let broker = BrokerBuilder::new()
        .identity(&format!(
            "  oidc:\n    - name: corp\n      issuer: {}\n      client_id: sluice-cli\n",
            op.issuer()
        ))
        .postgres("pg-main", &pg)
        .role(
            "read",
            "      description: look, don't touch\n      max_ttl: 8h\n      guardrails: read-only\n      masking: pii\n",
        )
        .role(
            "write",
            "      description: change data, with a lead's approval\n      max_ttl: 1h\n      guardrails: careful\n      approval:\n        groups: [dba-leads]\n",
        )
        .policy_extra(
            "  guardrails:\n    agents:\n      base: guarded-write\n      approvers: [dba-leads]\n    careful:\n      base: guarded-write\n      rules:\n        - name: deletes-need-a-lead\n          action: approve\n          commands: [DELETE]\n  masking:\n    pii:\n      columns:\n        - {name: emails, column: email, style: redact}\n      detectors:\n        - {name: cards, detector: card, style: last4}\n",
        )
        .ssh("web", &sshd)
        .role(
            "ops",
            "      description: run listed commands; restarts need a lead\n      max_ttl: 1h\n      ssh:\n        exec:\n          allow: [{name: looking, commands: [uptime, 'ls *', 'echo *']}]\n          approve: [{name: changes, commands: ['touch *']}]\n          approvers: [dba-leads]\n",
        )
        .role(
            "agent",
            "      description: for AI agents, masked reads, writes wait for a lead\n      max_ttl: 1h\n      guardrails: agents\n      masking: pii\n      agent_writes: approve\n",
        )
        .rule_with("dbas", &[], &["dba"], &["pg-main"], &["read", "write", "agent"], "")
        .rule_with("ops", &[], &["dba"], &["web"], &["ops"], "")
        .kube(
            "prod-cluster",
            cluster.url().trim_start_matches("https://"),
            cluster.ca_pem(),
            cluster.token(),
        )
        .role(
            "deployer",
            "      description: deploy; deletes need a lead, namespaces are never deleted\n      max_ttl: 1h\n      kube: {profile: kube-guarded, approvers: [dba-leads]}\n",
        )
        .rule_with("deployers", &[], &["dba"], &["prod-cluster"], &["deployer"], "")
        .http(
            "billing-api",
            &format!(
                "    address: {}\n    plaintext: true\n    inject:\n      headers: {{X-Api-Key: env:BILLING_KEY}}\n    identity: {{header: Sluice-Identity}}\n",
                billing.address()
            ),
            &[("BILLING_KEY", "demo-api-key-kept-by-the-broker")],
        )
        .role(
            "billing-reader",
            "      description: read billing data, emails and card numbers masked\n      max_ttl: 1h\n      http: {profile: http-read-only, masking: pii, mask: [\"$.customers[*].email\"]}\n",
        )
        .rule_with("billing", &[], &["dba"], &["billing-api"], &["billing-reader"], "")
        .start();
    println!(
        "sluiced serves https://127.0.0.1:{} (TLS with its own development CA)",
        broker.port
    );
    println!("--- {} ---", broker.config().display());
    let config = std::fs::read_to_string(broker.config()).unwrap_or_default();
    print!("{config}");
    println!("---");

    step(
        3,
        "Alice logs in with her identity provider (OIDC device flow)",
    );
    let alice = Cli::new(&broker);
    println!("$ sluice login");
    let mut login = alice
        .cmd()
        .arg("login")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn sluice login");
    let stderr = login.stderr.take().expect("stderr");
    for line in BufReader::new(stderr).lines() {
        let Ok(line) = line else { break };
        println!("  {line}");
        if let Some((_, code)) = line.split_once("enter the code: ") {
            println!("  (the demo opens that page and approves as alice, as her browser would)");
            op.approve(code.trim(), "alice");
        }
    }
    let status = login.wait().expect("wait for sluice login");
    println!("  (exit code {})", status.code().unwrap_or(-1));
    show("sluice whoami", &alice.run(&["whoami"]));

    step(
        4,
        "A tunnel and a query: psql runs unchanged against 127.0.0.1, sensitive values masked",
    );
    println!(
        "connect asks the broker for a grant of alice's default role (read: granted at once by policy;\nguardrails read-only, masking profile pii: the email column and any card number)."
    );
    let sql = "select id, name, email, note from customers order by id limit 3";
    show(
        &format!("sluice connect pg-main --exec psql -c \"{sql}\""),
        &alice.run(&["connect", "pg-main", "--exec", "psql", "-X", "-c", sql]),
    );
    println!(
        "psql got a one-time secret for this tunnel (PGPASSWORD); the broker logged in to PostgreSQL with the real password, which never left the broker.\nThe emails and the card number in row 2's note were masked by the broker before psql saw them."
    );
    let blocked = "delete from customers where id = 3";
    show(
        &format!(
            "sluice connect pg-main --exec psql -c \"{blocked}\" -c \"select count(*) from customers\""
        ),
        &alice.run(&[
            "connect",
            "pg-main",
            "--exec",
            "psql",
            "-X",
            "-c",
            blocked,
            "-c",
            "select count(*) from customers",
        ]),
    );
    println!("The DELETE never reached the database; the same session went on to the next query.");
    show("sluice grant list", &alice.run(&["grant", "list"]));

    step(
        5,
        "Write access is just in time: alice asks, a lead approves from the terminal",
    );
    let out = alice.run(&[
        "grant",
        "request",
        "pg-main",
        "--role",
        "write",
        "--ttl",
        "10h",
        "--reason",
        "INC-42: correct a customer's email",
        "--output",
        "json",
    ]);
    let requested: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
    let grant = requested.get("grant").unwrap_or(&requested);
    let id = grant["id"].as_str().unwrap_or("?").to_string();
    println!(
        "$ sluice grant request pg-main --role write --ttl 10h --reason \"INC-42: correct a customer's email\""
    );
    println!(
        "  -> {id}: {} (TTL {} s; asked for {} s, capped at the role's max_ttl), waiting for dba-leads",
        grant["state"].as_str().unwrap_or("?"),
        grant["ttl_secs"],
        grant["requested_ttl_secs"]
    );
    let carol = Cli::new(&broker);
    println!("(carol, group dba-leads, logs in with an operator token)");
    carol.login(&broker.token("carol", &["dba-leads"], "1h"));
    show("sluice approvals   # as carol", &carol.run(&["approvals"]));
    show(
        &format!("sluice approve {id} --reason \"checked INC-42\"   # as carol"),
        &carol.run(&["approve", &id, "--reason", "checked INC-42"]),
    );
    println!(
        "(`sluice approvals --watch` does the same live: each new request pops an approve/deny/skip prompt.)"
    );
    let update = "update customers set email = 'ada@new.example' where id = 1";
    show(
        &format!("sluice connect pg-main --role write --exec psql -c \"{update}\""),
        &alice.run(&[
            "connect", "pg-main", "--role", "write", "--exec", "psql", "-X", "-c", update,
        ]),
    );

    println!("\nUnder `careful`, a DELETE is held inside the session until a lead approves it:");
    let held = alice
        .cmd()
        .args([
            "connect",
            "pg-main",
            "--role",
            "write",
            "--exec",
            "psql",
            "-X",
            "-c",
            "delete from customers where id = 100",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn psql");
    println!("$ psql -c 'delete from customers where id = 100'   # alice, in the background");
    let mut hold_id = None;
    for _ in 0..100 {
        let out = carol.run(&["approvals", "--output", "json"]);
        let queue: serde_json::Value =
            serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
        if let Some(id) = queue["statements"][0]["id"].as_str() {
            hold_id = Some(id.to_string());
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    if let Some(id) = hold_id {
        show("sluice approvals   # as carol", &carol.run(&["approvals"]));
        show(
            &format!("sluice approve {id}   # as carol"),
            &carol.run(&["approve", &id]),
        );
    }
    let out = held.wait_with_output().expect("psql");
    println!("alice's psql, which was waiting:");
    for line in String::from_utf8_lossy(&out.stderr)
        .lines()
        .chain(String::from_utf8_lossy(&out.stdout).lines())
    {
        println!("  {line}");
    }

    step(
        6,
        "Revocation is live: a running query is cut the moment its grant is revoked",
    );
    let conn = alice.connect_with("pg-main", &["--role", "write"]);
    let sleeper = std::process::Command::new(sluice_tests::postgres::psql())
        .args(["-X", "-d", &conn.uri(), "-c", "select pg_sleep(60)"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn psql");
    println!("$ psql -c 'select pg_sleep(60)'   # alice, through the tunnel, in the background");
    std::thread::sleep(std::time::Duration::from_secs(1));
    let started = std::time::Instant::now();
    show(
        &format!("sluice grant revoke {id} --reason \"INC-42 done\"   # as carol"),
        &carol.run(&["grant", "revoke", &id, "--reason", "INC-42 done"]),
    );
    let out = sleeper.wait_with_output().expect("psql");
    println!(
        "psql ended {} ms after the revoke command started (pg_sleep had 59 s to go), exit code {}:",
        started.elapsed().as_millis(),
        out.status.code().unwrap_or(-1)
    );
    for line in String::from_utf8_lossy(&out.stderr).lines() {
        println!("  {line}");
    }
    drop(conn);
    show(
        "sluice grant list --all",
        &alice.run(&["grant", "list", "--all"]),
    );

    step(
        7,
        "One CI step: `sluice run` asks, connects, runs, and revokes when the command exits",
    );
    show(
        "sluice run pg-main --role read -- psql -c 'select count(*) from customers'",
        &alice.run(&[
            "run",
            "pg-main",
            "--role",
            "read",
            "--",
            "psql",
            "-X",
            "-c",
            "select count(*) from customers",
        ]),
    );

    step(
        8,
        "Someone policy does not cover is refused before any byte reaches the database",
    );
    let bob = Cli::new(&broker);
    println!(
        "(an operator issued bob, group marketing, a token: sluiced token issue ... | sluice login --token-stdin)"
    );
    bob.login(&broker.token("bob", &["marketing"], "1h"));
    show(
        "sluice connect pg-main --exec psql -c 'select 1'   # as bob (group marketing)",
        &bob.run(&["connect", "pg-main", "--exec", "psql", "-c", "select 1"]),
    );

    step(9, "A forged token is refused");
    let other = BrokerBuilder::new().start();
    let forged = other.token("alice", &["dba"], "1h");
    show(
        "SLUICE_TOKEN=<token signed by another key> sluice connect pg-main",
        &alice
            .cmd()
            .args(["connect", "pg-main"])
            .env("SLUICE_TOKEN", forged)
            .output()
            .expect("run sluice"),
    );

    step(
        10,
        "Every session was recorded: list them, then replay one (statements, decisions, answers)",
    );
    let listed = alice.run(&["sessions", "list"]);
    show("sluice sessions list", &listed);
    let json = alice.run(&["sessions", "list", "--output", "json"]);
    let sessions: serde_json::Value =
        serde_json::from_slice(&json.stdout).unwrap_or(serde_json::Value::Null);
    // The session with a blocked statement in it, else the newest.
    let all = sessions["sessions"].as_array().cloned().unwrap_or_default();
    let pick = all
        .iter()
        .find(|s| s["statements"].as_u64().unwrap_or(0) > 1)
        .or_else(|| all.first());
    if let Some(id) = pick.and_then(|s| s["id"].as_str()) {
        show(
            &format!("sluice sessions replay {id} --speed 0"),
            &alice.run(&["sessions", "replay", id, "--speed", "0"]),
        );
    }

    step(
        11,
        "SSH: the broker holds the host's key and decides every command before the host sees it",
    );
    show(
        "sluice ssh web --role ops -- uptime",
        &alice.run(&["ssh", "web", "--role", "ops", "--", "uptime"]),
    );
    let marker = sshd.dir().join("demo-marker");
    let smuggle = format!("ls /tmp; cp /etc/hostname {}", marker.display());
    show(
        &format!("sluice ssh web --role ops -- '{smuggle}'"),
        &alice.run(&["ssh", "web", "--role", "ops", "--", &smuggle]),
    );
    println!(
        "  (the marker file exists on the host: {})",
        marker.exists()
    );
    let change = format!("touch {}", marker.display());
    println!("$ sluice ssh web --role ops -- '{change}'   # held for a lead");
    let held = alice
        .cmd()
        .args(["ssh", "web", "--role", "ops", "--", &change])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn sluice ssh");
    let mut id = None;
    for _ in 0..200 {
        let out = carol.run(&["approvals", "--output", "json"]);
        let queue: serde_json::Value =
            serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
        if let Some(found) = queue["statements"][0]["id"].as_str() {
            id = Some(found.to_owned());
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    if let Some(id) = id {
        show("sluice approvals   # as carol", &carol.run(&["approvals"]));
        show(
            &format!("sluice approve {id}   # as carol"),
            &carol.run(&["approve", &id]),
        );
    }
    let out = held.wait_with_output().expect("wait for sluice ssh");
    for line in String::from_utf8_lossy(&out.stderr).lines() {
        println!("  (stderr) {line}");
    }
    println!("  (exit code {})", out.status.code().unwrap_or(-1));
    println!(
        "  (the marker file exists on the host now: {})",
        marker.exists()
    );
    // The recording of that session: the command, who approved it, its exit status.
    let list = alice.run(&["sessions", "list", "--resource", "web", "--output", "json"]);
    let list: serde_json::Value =
        serde_json::from_slice(&list.stdout).unwrap_or(serde_json::Value::Null);
    if let Some(id) = list["sessions"][0]["id"].as_str() {
        show(
            &format!("sluice sessions show {id}   # the held command's session, replayed"),
            &alice.run(&["sessions", "show", id]),
        );
    }

    step(
        12,
        "Kubernetes: kubectl through the broker; a namespace delete never reaches the cluster, Secrets are masked",
    );
    let cache = std::env::temp_dir().join(format!("sluice-demo-kube-{}", std::process::id()));
    let cache_arg = format!("--cache-dir={}", cache.display());
    let kubectl = |args: &[&str]| {
        let mut all = vec!["kube", "prod-cluster", "--", cache_arg.as_str()];
        all.extend_from_slice(args);
        alice.run(&all)
    };
    show(
        "sluice kube prod-cluster -- get pods -n prod",
        &kubectl(&["get", "pods", "-n", "prod"]),
    );
    show(
        "sluice kube prod-cluster -- delete namespace prod",
        &kubectl(&["delete", "namespace", "prod"]),
    );
    println!(
        "  (the API server received a DELETE: {})",
        cluster
            .requests()
            .iter()
            .any(|r| r.method == "DELETE" && r.path.ends_with("/namespaces/prod"))
    );
    show(
        "sluice kube prod-cluster -- get secret db-creds -n prod -o jsonpath='{.data}'",
        &kubectl(&[
            "get",
            "secret",
            "db-creds",
            "-n",
            "prod",
            "-o",
            "jsonpath={.data}",
        ]),
    );
    println!("\n  (KioqKg== is base64 of ****: the values never left the broker)");
    let _ = std::fs::remove_dir_all(&cache);

    step(
        13,
        "An HTTP service: the broker holds its API key, reads are allowed, writes refused, values masked",
    );
    let curl = |args: &str| {
        alice.run(&[
            "connect",
            "billing-api",
            "--exec",
            "sh",
            "-c",
            &format!("curl -s -w '\\n(HTTP %{{http_code}})\\n' -H \"$SLUICE_HTTP_HEADER\" {args}"),
        ])
    };
    show(
        "sluice connect billing-api --exec sh -c 'curl -H \"$SLUICE_HTTP_HEADER\" \"$SLUICE_URL/customers\"'",
        &curl("\"$SLUICE_URL/customers\""),
    );
    show(
        "sluice connect billing-api --exec sh -c 'curl -X DELETE ... \"$SLUICE_URL/items/1\"'",
        &curl("-X DELETE \"$SLUICE_URL/items/1\""),
    );
    let seen = billing.requests();
    println!(
        "  (the service saw {} request(s), none a DELETE: {}; each carried the broker's API key and a signed Sluice-Identity naming alice)",
        seen.len(),
        !seen.iter().any(|r| r.method == "DELETE")
    );

    step(
        14,
        "An AI agent over MCP: `sluice mcp` gives it tools, never a credential; its DELETE waits for a human",
    );
    agent_step(&alice, &carol);

    step(
        15,
        "Several brokers, one truth: two sluiced share a PostgreSQL store; a revoke on one ends a session on the other",
    );
    several_brokers(&pg);

    println!(
        "\nDone: the brokers, PostgreSQL, sshd, the API server, the HTTP service and every tunnel are shut down now."
    );
}

/// Brokers A and B behind one (imagined) load balancer: their store is a database of the
/// demo's PostgreSQL. Alice's psql session runs through B; her grant is revoked on A, which
/// never served it, and B ends the session with the reason.
fn several_brokers(pg: &Postgres) {
    let a = BrokerBuilder::new()
        .postgres("pg-main", pg)
        .shared_store(pg, "sluice_store")
        .role(
            "read",
            "      description: look, don't touch\n      max_ttl: 1h\n      guardrails: read-only\n",
        )
        .rule_with("dbas", &[], &["dba"], &["pg-main"], &["read"], "")
        .start();
    let b = a.replica();
    println!(
        "sluiced A on https://127.0.0.1:{} and B on https://127.0.0.1:{}, the same configuration with\n  store: {{postgres: {{url: postgres://{}@{}/sluice_store, password: env:SLUICE_STORE_PASSWORD}}}}",
        a.port,
        b.port,
        pg.app_user,
        pg.address()
    );
    let token = a.token("alice", &["dba"], "1h");
    let (alice_a, alice_b) = (Cli::new(&a), Cli::new(&b));
    alice_a.login(&token);
    alice_b.login(&token);
    println!("$ sluice --broker B connect pg-main --role read   # and psql through it");
    let tunnel = alice_b.connect_with("pg-main", &["--role", "read"]);
    let mut session = OpenSession::start(&tunnel, "through B");
    println!(
        "  psql on B: select count(*) from customers -> {}",
        session.query("select count(*) from customers;")
    );
    let list = alice_a.run(&["grant", "list", "--output", "json"]);
    let list: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap_or_default();
    let id = list["grants"][0]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    show(
        &format!("sluice --broker A grant revoke {id} --reason \"shift over\""),
        &alice_a.run(&["grant", "revoke", &id, "--reason", "shift over"]),
    );
    // B hears of it through PostgreSQL's LISTEN/NOTIFY and ends the session at once.
    alice_b.ended_sessions(1);
    let (_, err) = session.finish("select 'after the revoke';");
    println!("  psql on B, next statement:");
    for line in err.lines().filter(|l| !l.trim().is_empty()).take(2) {
        println!("    {line}");
    }
    println!(
        "  (B never saw the revoke request: A wrote it to the shared store, which told every broker)"
    );
}

/// A scripted MCP client (the official Python SDK, `tests/mcp/agent.py`) drives `sluice mcp`
/// as alice: it asks for the `agent` role, reads masked rows, and has a DELETE held, which
/// carol denies.
fn agent_step(alice: &Cli, carol: &Cli) {
    let steps = serde_json::json!([
        {"tool": "request_access", "args": {"resource": "pg-main", "role": "agent", "reason": "summarise customers"}},
        {"tool": "query", "args": {"resource": "pg-main", "sql": "select id, name, email, note from customers order by id", "max_rows": 3}},
        {"tool": "query", "args": {"resource": "pg-main", "sql": "delete from customers where id = 3"}},
        {"tool": "revoke_access", "args": {"resource": "pg-main"}},
    ]);
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("steps.json");
    std::fs::write(&file, steps.to_string()).expect("steps");
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("mcp/agent.py");
    println!(
        "An MCP client launches `sluice mcp` (stdio) as alice and calls request_access, query, query, revoke_access."
    );
    let child = std::process::Command::new("python3")
        .arg(script)
        .arg("stdio")
        .arg(sluice_tests::workspace_bin("sluice"))
        .arg(&file)
        .envs(alice.env())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 with the mcp package");
    let hold = carol.first_hold();
    let id = hold["id"].as_str().unwrap_or_default().to_owned();
    println!(
        "The agent's DELETE is held ({}); carol denies it:",
        hold["reason"].as_str().unwrap_or("agent_writes")
    );
    show(
        &format!("sluice deny {id} --reason \"agents do not delete customers\"   # as carol"),
        &carol.run(&["deny", &id, "--reason", "agents do not delete customers"]),
    );
    let out = child.wait_with_output().expect("agent");
    let run: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    for (i, call) in [
        "request_access",
        "query (select)",
        "query (delete)",
        "revoke_access",
    ]
    .iter()
    .enumerate()
    {
        let r = &run["results"][i];
        let shown = if r["is_error"] == true {
            format!("error: {}", r["text"].as_str().unwrap_or_default())
        } else {
            r["structured"].to_string()
        };
        println!(
            "  {call} -> {}",
            shown.chars().take(300).collect::<String>()
        );
        for p in r["progress"].as_array().into_iter().flatten() {
            println!(
                "      progress: {}",
                p.as_str()
                    .unwrap_or_default()
                    .chars()
                    .take(160)
                    .collect::<String>()
            );
        }
    }
    println!(
        "  (emails and the card number reached the agent masked; the DELETE never ran; every call is in the audit trail as mcp.tool_called.v1)"
    );
}
