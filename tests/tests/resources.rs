//! `sluice resources` end to end: the real broker answers `GET /v1/resources` from its policy,
//! and each user sees only what policy lets them ask for, with the roles, their longest grant
//! and their approvers, as a table and as JSON. No target is contacted, so none runs.

use serde_json::Value;
use sluice_tests::{Broker, BrokerBuilder, Cli};
use std::process::Output;

/// An address followed by a `description:` line. The harness's builder writes `address:` last
/// but one for postgres and last for tcp, so the extra line lands in the resource's mapping.
fn described(address: &str, description: &str) -> String {
    format!("{address}\n    description: {description}")
}

/// `orders` (postgres; engineers read for 8h, or write for 1h once a dba-lead approves),
/// `cache` (tcp; engineers `use` it for 12h), `vault` (tcp; only ops).
fn setup() -> Broker {
    BrokerBuilder::new()
        .postgres_at(
            "orders",
            &described("127.0.0.1:9", "Orders database"),
            "orders",
            "app",
            "not-used",
        )
        .tcp("cache", &described("127.0.0.1:9", "Session cache"))
        .tcp("vault", "127.0.0.1:9")
        .role("read", "      max_ttl: 8h\n")
        .role(
            "write",
            "      description: Change data\n      max_ttl: 1h\n      approval:\n        groups: [dba-leads]\n",
        )
        .rule_with("eng-orders", &[], &["eng"], &["orders"], &["read", "write"], "")
        .rule_with("eng-cache", &[], &["eng"], &["cache"], &["use"], "")
        .rule_with("ops-vault", &[], &["ops"], &["vault"], &["use"], "")
        .start()
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

/// `sluice ARGS`, which must exit 0.
fn ok(cli: &Cli, args: &[&str]) -> Output {
    let out = cli.run(args);
    assert!(
        out.status.success(),
        "sluice {args:?} failed ({:?}):\n{}{}",
        out.status.code(),
        stdout(&out),
        stderr(&out)
    );
    out
}

#[test]
fn users_see_the_resources_policy_gives_them_a_role_on() {
    let broker = setup();
    let alice = user(&broker, "alice", &["eng"]);

    let out = ok(&alice, &["resources"]);
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "a header and two resources:\n{text}");
    let columns: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(columns, ["NAME", "KIND", "ROLES", "DESCRIPTION"], "{text}");
    assert!(lines[1].starts_with("orders "), "{text}");
    assert!(lines[1].contains(" postgres "), "{text}");
    assert!(
        lines[1].contains("read (8h), write (1h, approval: dba-leads)"),
        "the default role first, each with its longest grant and approvers:\n{text}"
    );
    assert!(lines[1].ends_with("Orders database"), "{text}");
    assert!(lines[2].starts_with("cache "), "{text}");
    assert!(lines[2].contains(" tcp "), "{text}");
    assert!(lines[2].contains("use (12h)"), "{text}");
    assert!(lines[2].ends_with("Session cache"), "{text}");
    assert!(
        !text.contains("vault"),
        "alice has no role on vault:\n{text}"
    );

    let out = ok(&alice, &["resources", "--output", "json"]);
    let list: Value = serde_json::from_str(stdout(&out).trim())
        .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", stdout(&out)));
    let resources = list["resources"].as_array().expect("resources");
    let names: Vec<&str> = resources
        .iter()
        .map(|r| r["name"].as_str().expect("name"))
        .collect();
    assert_eq!(names, ["orders", "cache"], "{list}");

    let orders = &resources[0];
    assert_eq!(orders["kind"], "postgres");
    assert_eq!(orders["description"], "Orders database");
    let roles = orders["roles"].as_array().expect("roles");
    assert_eq!(roles.len(), 2, "{orders}");
    assert_eq!(roles[0]["name"], "read");
    assert_eq!(roles[0]["rule"], "eng-orders");
    assert_eq!(roles[0]["max_ttl_secs"], 8 * 3600);
    assert!(roles[0]["approvers"].is_null(), "{orders}");
    assert_eq!(roles[1]["name"], "write");
    assert_eq!(roles[1]["max_ttl_secs"], 3600);
    assert_eq!(roles[1]["approvers"], serde_json::json!(["dba-leads"]));
    assert_eq!(roles[1]["description"], "Change data");

    let cache = &resources[1];
    assert_eq!(cache["kind"], "tcp");
    assert_eq!(cache["roles"][0]["name"], "use");
    assert_eq!(cache["roles"][0]["max_ttl_secs"], 12 * 3600);

    // Another user sees their own list, not alice's.
    let olga = user(&broker, "olga", &["ops"]);
    let out = ok(&olga, &["resources", "--output", "json"]);
    let list: Value = serde_json::from_str(stdout(&out).trim()).expect("JSON");
    let names: Vec<&str> = list["resources"]
        .as_array()
        .expect("resources")
        .iter()
        .map(|r| r["name"].as_str().expect("name"))
        .collect();
    assert_eq!(names, ["vault"], "{list}");
}

#[test]
fn a_user_without_roles_is_told_whom_to_ask() {
    let broker = setup();
    let mallory = user(&broker, "mallory", &["sales"]);

    let out = ok(&mallory, &["resources"]);
    assert_eq!(stdout(&out), "", "no table, not even a header");
    assert!(
        stderr(&out).contains("policy gives you no role on any resource; ask an administrator"),
        "{}",
        stderr(&out)
    );

    let out = ok(&mallory, &["resources", "--output", "json"]);
    let list: Value = serde_json::from_str(stdout(&out).trim()).expect("JSON");
    assert_eq!(list, serde_json::json!({"resources": []}));

    // Without a login there is nothing to ask with: exit 11.
    let stranger = Cli::new(&broker);
    let out = stranger.run(&["resources"]);
    assert_eq!(out.status.code(), Some(11), "{}", stderr(&out));
}
