//! The Sluice demo: everything embedded, on 127.0.0.1, torn down at the end. Each step runs the
//! real binaries and shows their output.

use sluice_tests::{BrokerBuilder, Cli, OidcProvider, Postgres};
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
    println!(
        "PostgreSQL on {} with database `{}`, table `customers` (100 rows).\nRole `{}` logs in with SCRAM; its password is known only to the broker's environment.",
        pg.address(),
        pg.database,
        pg.app_user
    );

    println!("An OpenID provider for people (the `oidc-provider` package) starts too.");
    let op = OidcProvider::start();

    step(
        2,
        "The broker: `sluiced init`, a postgres resource, an identity provider, a policy rule",
    );
    let broker = BrokerBuilder::new()
        .identity(&format!(
            "  oidc:\n    - name: corp\n      issuer: {}\n      client_id: sluice-cli\n",
            op.issuer()
        ))
        .postgres("pg-main", &pg)
        .rule("dba-can-use-everything", &[], &["dba"], &["*"])
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
        "A tunnel and a query: psql runs unchanged against 127.0.0.1",
    );
    let sql = "select id, name, email from customers order by id limit 5";
    show(
        &format!("sluice connect pg-main --exec psql -c \"{sql}\""),
        &alice.run(&["connect", "pg-main", "--exec", "psql", "-X", "-c", sql]),
    );
    println!(
        "psql got a one-time secret for this tunnel (PGPASSWORD); the broker logged in to PostgreSQL with the real password, which never left the broker."
    );

    step(
        5,
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

    step(6, "A forged token is refused");
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

    println!("\nDone: the broker, PostgreSQL and every tunnel are shut down now.");
}
