//! Column masking of tables the broker's catalog has not seen (decision 28): real psql through
//! the broker to real PostgreSQL, under a profile whose only rule is the column rule
//! `*.email` (no detectors, so nothing but the column rule can hide an address).

use sluice_tests::{Broker, BrokerBuilder, Cli, Postgres};
use std::process::Output;

/// Role `masked`: column rule `*.email`, no guardrails (the tests create tables through it).
fn setup() -> (Postgres, Broker, Cli) {
    let pg = Postgres::start();
    let broker = BrokerBuilder::new()
        .postgres("pg", &pg)
        .role("masked", "      max_ttl: 1h\n      masking: pii\n")
        .policy_extra(
            "  masking:\n    pii:\n      columns:\n        - {name: emails, column: \"*.email\", style: redact}\n",
        )
        .rule_with("eng", &[], &["eng"], &["pg"], &["masked"], "")
        .start();
    let cli = Cli::new(&broker);
    cli.login(&broker.token("alice", &["eng"], "1h"));
    (pg, broker, cli)
}

/// Runs psql statements (one `-c` each, in one session) through a `masked` tunnel.
fn run(cli: &Cli, statements: &[&str]) -> String {
    let mut args = vec![
        "connect", "pg", "--role", "masked", "--exec", "psql", "-X", "-A", "-t",
    ];
    for s in statements {
        args.push("-c");
        args.push(s);
    }
    let out: Output = cli.run(&args);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

#[test]
fn a_table_created_after_the_catalog_was_read_is_masked_at_once() {
    let (pg, _broker, cli) = setup();
    // The first tunnel reads the catalog; it is reused for 60 s.
    let out = run(&cli, &["select email as e from customers where id = 7"]);
    assert!(!out.contains("c7@example.com"), "{out}");
    assert_eq!(out.trim(), "****");

    pg.admin_sql(
        &pg.database,
        "create table people3 (id int, email text); \
         insert into people3 values (1, 'planted.person@example.org'); \
         grant select on people3 to app",
    );
    // At once, well inside the 60 s the catalog is cached for.
    let out = run(
        &cli,
        &[
            "select email as e from people3",
            "select email from people3",
            "select id as i, email as e from people3",
            "select x.id, x.email as contact from (select * from people3) x",
        ],
    );
    assert!(!out.contains("planted.person"), "{out}");
    // The new table was looked up, not masked wholesale: `id` is in clear.
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        ["****", "****", "1|****", "1|****"],
        "{out}"
    );

    // A column added to a known table is looked up the same way.
    pg.admin_sql(
        &pg.database,
        "alter table customers rename column email to old_address; \
         alter table customers add column email text; \
         update customers set email = 'moved.person@example.org' where id = 7",
    );
    let out = run(
        &cli,
        &["select id as i, email as e from customers where id = 7"],
    );
    assert!(!out.contains("moved.person"), "{out}");
    assert_eq!(out.trim(), "7|****");
}

#[test]
fn a_column_whose_table_cannot_be_named_is_masked() {
    let (_pg, _broker, cli) = setup();
    run(&cli, &["select 1"]);
    // A table created in a transaction that has not committed is invisible to the broker's
    // own catalog login: the lookup finds nothing, and the column fails closed (redacted),
    // alias or not. Computed columns stay as they are.
    let out = run(
        &cli,
        &[
            "begin",
            "create table draft (id int, contact text)",
            "insert into draft values (1, 'draft.person@example.org')",
            "select contact as e, 42 as n from draft",
            "select email from (select contact as email from draft) d",
            "rollback",
        ],
    );
    assert!(!out.contains("draft.person"), "{out}");
    let rows: Vec<&str> = out
        .lines()
        .filter(|l| !matches!(*l, "BEGIN" | "CREATE TABLE" | "INSERT 0 1" | "ROLLBACK"))
        .collect();
    assert_eq!(rows, ["****|42", "****"], "{out}");

    // A committed temporary table is in the catalog, under pg_temp_N: resolved and masked by
    // the rule, its other columns in clear.
    let out = run(
        &cli,
        &[
            "create temp table t as select 5 as id, 'temp.person@example.org'::text as email",
            "select id as i, email as e from t",
        ],
    );
    assert!(!out.contains("temp.person"), "{out}");
    assert!(out.lines().any(|l| l == "5|****"), "{out}");
}
