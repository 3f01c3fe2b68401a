//! `GET /metrics`: off unless configured, only for the configured token, and its figures move
//! with what the broker does (tunnels opened and refused, statements decided, held statements,
//! live grants, recording bytes), with no resource, subject or value in it.

use sluice_tests::metrics::{scrape, value};
use sluice_tests::postgres::psql;
use sluice_tests::{BrokerBuilder, Cli, Postgres};
use std::process::Command;

const TOKEN: &str = "metrics-scrape-token-0123456789";

#[test]
fn metrics_are_off_unless_configured() {
    let broker = BrokerBuilder::new().start();
    let (code, body) = scrape(&broker, Some(TOKEN));
    assert_eq!(code, 404, "{body}");
    assert!(body.contains("metrics: {token:"), "{body}");
}

#[test]
fn metrics_need_the_token_and_follow_what_the_broker_does() {
    let pg = Postgres::start();
    let service = sluice_fake_http::FakeHttp::start();
    let broker = BrokerBuilder::new()
        .postgres("pg", &pg)
        .http(
            "api",
            &format!("    address: {}\n    plaintext: true\n", service.address()),
            &[],
        )
        .role(
            "http-guarded",
            "      max_ttl: 1h\n      http:\n        masking: emails\n        block: [{name: no-admin, paths: [/admin]}]\n",
        )
        .role(
            "guarded",
            "      max_ttl: 1h\n      guardrails: read-only\n      masking: emails\n",
        )
        .policy_extra(
            "  masking:\n    emails:\n      detectors:\n        - {name: emails, detector: email, style: redact}\n",
        )
        .rule_with("eng", &[], &["eng"], &["pg"], &["use", "guarded"], "")
        .rule_with("eng-api", &[], &["eng"], &["api"], &["http-guarded"], "")
        .top_level("metrics:\n  token: env:SLUICE_METRICS_TOKEN\n")
        .env("SLUICE_METRICS_TOKEN", TOKEN)
        .start();
    for wrong in [None, Some("metrics-scrape-token-0123456788"), Some("")] {
        let (code, body) = scrape(&broker, wrong);
        assert_eq!(code, 401, "{wrong:?}: {body}");
        assert!(!body.contains("sluice_"), "{body}");
    }
    let (code, before) = scrape(&broker, Some(TOKEN));
    assert_eq!(code, 200, "{before}");
    assert_eq!(value(&before, "sluice_store_up"), 1.0, "{before}");
    assert!(before.contains("sluice_build_info{"), "{before}");
    assert!(before.contains("node=\""), "{before}");

    let cli = Cli::new(&broker);
    cli.login(&broker.token("alice", &["eng"], "1h"));
    let connect = cli.connect_with("pg", &["--role", "guarded"]);
    let run = |sql: &str| {
        Command::new(psql())
            .args(["-X", "-A", "-t", "-d", &connect.uri(), "-c", sql])
            .output()
            .expect("psql")
    };
    assert!(run("select 1").status.success());
    let masked = run("select 'someone@example.com'");
    assert!(!String::from_utf8_lossy(&masked.stdout).contains("someone@example.com"));
    assert!(!run("create table t (i int)").status.success());
    // A tunnel with a forged one-time secret is refused.
    let forged = connect.uri().replacen("postgres://", "postgres://x", 1);
    let _ = Command::new(psql())
        .args(["-X", "-A", "-t", "-d", &forged, "-c", "select 1"])
        .output();
    // Three requests through an HTTP tunnel: two allowed (one answer with two emails, masked),
    // one blocked by its rule.
    let http = cli.run(&[
        "connect",
        "api",
        "--role",
        "http-guarded",
        "--exec",
        "sh",
        "-c",
        "curl -q -s -o /dev/null -H \"$SLUICE_HTTP_HEADER\" \"$SLUICE_URL/small\" && \
         curl -q -s -o /dev/null -H \"$SLUICE_HTTP_HEADER\" \"$SLUICE_URL/admin\" && \
         curl -q -s -H \"$SLUICE_HTTP_HEADER\" \"$SLUICE_URL/customers\"",
    ]);
    assert!(
        http.status.success(),
        "{}",
        String::from_utf8_lossy(&http.stderr)
    );
    let customers = String::from_utf8_lossy(&http.stdout);
    assert!(customers.contains("customers"), "{customers}");
    assert!(!customers.contains("ada@example.com"), "{customers}");
    cli.ended_sessions(3);

    let (code, after) = scrape(&broker, Some(TOKEN));
    assert_eq!(code, 200);
    assert!(
        value(&after, "sluice_tunnels_opened_total{kind=\"postgres\"}") >= 2.0,
        "{after}"
    );
    assert!(
        value(&after, "sluice_sql_statements_total{decision=\"allowed\"}") >= 1.0,
        "{after}"
    );
    assert!(
        value(&after, "sluice_sql_statements_total{decision=\"blocked\"}") >= 1.0,
        "{after}"
    );
    // One grant for the database, one for the service.
    assert_eq!(
        value(&after, "sluice_grants{state=\"active\"}"),
        2.0,
        "{after}"
    );
    assert_eq!(value(&after, "sluice_tunnels_open"), 0.0, "{after}");
    for decision in ["allowed", "blocked"] {
        assert!(
            value(
                &after,
                &format!("sluice_requests_decided_total{{kind=\"http\",decision=\"{decision}\"}}")
            ) >= 1.0,
            "{decision}: {after}"
        );
    }
    assert!(
        value(&after, "sluice_masked_values_total{kind=\"postgres\"}") >= 1.0,
        "{after}"
    );
    // The two emails of `/customers`, counted once the answer was done with.
    assert_eq!(
        value(&after, "sluice_masked_values_total{kind=\"http\"}"),
        2.0,
        "{after}"
    );
    assert_eq!(value(&after, "sluice_statements_held"), 0.0, "{after}");
    // Labels are kinds and outcomes: no resource, subject, statement or token.
    for secret in ["alice", "create table", "select 1", TOKEN, "\"pg\""] {
        assert!(!after.contains(secret), "{secret} in the metrics: {after}");
    }
}

#[test]
fn an_unset_metrics_token_is_named_by_check_config_and_refused_by_serve() {
    let broker = BrokerBuilder::new()
        .top_level("metrics:\n  token: env:SLUICE_METRICS_TOKEN_UNSET\n")
        .configure();
    let out = broker.sluiced(&["check-config"]);
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!out.status.success(), "check-config passed:\n{err}");
    let config = broker.config().display().to_string();
    let line = err
        .lines()
        .find(|l| l.contains("SLUICE_METRICS_TOKEN_UNSET"))
        .unwrap_or_else(|| panic!("the variable is not named:\n{err}"));
    assert!(line.starts_with(&format!("{config}:")), "{line}");
    assert!(line.contains("metrics.token"), "{line}");
    let out = broker.sluiced(&["serve"]);
    assert!(
        !out.status.success(),
        "serve started without its metrics token"
    );
}
