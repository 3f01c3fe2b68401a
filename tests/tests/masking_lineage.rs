//! Masking that follows values (decision 38): a role whose masking profile has column rules
//! (no detectors, so only lineage can catch what follows) runs derivations of masked columns
//! through real psql; the planted values, and their upper-case, reversed, base64, hex forms
//! and the halves of a split, never reach the client. Non-revealing queries stay unmasked;
//! writes and notifications that would launder a masked value are refused.

use sluice_tests::{Broker, BrokerBuilder, Cli, Postgres};
use std::process::Output;

const EMAIL: &str = "zed.planted@corp.example";
const CARD: &str = "4929123456789012";
const SSN: &str = "078-05-1120";

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn setup() -> (Postgres, Broker, Cli) {
    let pg = Postgres::start();
    pg.admin_sql(
        &pg.database,
        &format!(
            "create table people (id int primary key, name text, email text, card text, \
               ssn text, note text); \
             insert into people values (1, 'Zed', '{EMAIL}', '{CARD}', '{SSN}', 'n'), \
               (2, 'Amy', 'amy@corp.example', '4000000000000002', '111-22-3333', 'm'); \
             create view contacts as select id, email as contact, upper(card) as c \
               from people; \
             create table notes (n text); \
             grant all on people, contacts, notes to {app}",
            app = pg.app_user
        ),
    );
    let broker = BrokerBuilder::new()
        .postgres("pg", &pg)
        .role(
            "masked",
            "      max_ttl: 1h\n      guardrails: guarded-write\n      masking: pii\n",
        )
        .policy_extra(
            "  masking:\n    pii:\n      columns:\n        - {name: emails, column: '*.email', style: redact}\n        - {name: cards, column: '*.card', style: last4}\n        - {name: ssns, column: '*.ssn', style: redact}\n",
        )
        .rule_with("eng", &[], &["eng"], &["pg"], &["masked"], "")
        .start();
    let cli = Cli::new(&broker);
    cli.login(&broker.token("alice", &["eng"], "1h"));
    (pg, broker, cli)
}

fn psql(cli: &Cli, statements: &[&str]) -> Output {
    let mut args = vec![
        "connect", "pg", "--role", "masked", "--exec", "psql", "-X", "-A", "-t",
    ];
    for s in statements {
        args.push("-c");
        args.push(s);
    }
    cli.run(&args)
}

/// Every form of a planted value that must never show.
fn forbidden() -> Vec<String> {
    let mut forms = Vec::new();
    for value in [EMAIL, CARD, SSN] {
        let reversed: String = value.chars().rev().collect();
        let (left, right) = value.split_at(value.len() / 2);
        forms.extend([
            value.to_owned(),
            value.to_uppercase(),
            reversed,
            base64(value.as_bytes()),
            hex(value.as_bytes()),
            left.to_owned(),
            right.to_owned(),
        ]);
    }
    forms
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n =
            chunk.iter().fold(0u32, |acc, b| (acc << 8) | u32::from(*b)) << (8 * (3 - chunk.len()));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    // Without padding, and only the first 16 characters: psql wraps long base64 lines.
    out.chars().take(16).collect()
}

/// Derivations of masked columns: none may show a planted value in any form.
const DERIVATIONS: &[&str] = &[
    "select email from people where id = 1",
    "select email as e from people where id = 1",
    "select upper(email) from people where id = 1",
    "select lower(email) || '' from people where id = 1",
    "select reverse(email) from people where id = 1",
    "select substr(email, 1, 12), substr(email, 13) from people where id = 1",
    "select left(card, 8), right(card, 8) from people where id = 1",
    "select replace(email, '@', ' at ') from people where id = 1",
    "select encode(email::bytea, 'base64') from people where id = 1",
    "select encode(convert_to(email, 'UTF8'), 'hex') from people where id = 1",
    "select email::varchar(100) from people where id = 1",
    "select format('%s', email) from people where id = 1",
    "select concat('x', email) from people where id = 1",
    "select coalesce(email, 'none') from people where id = 1",
    "select case when true then email end from people where id = 1",
    "select email collate \"C\" from people where id = 1",
    "select translate(ssn, '-', '') from people where id = 1",
    "select ascii(card), chr(ascii(card)) from people where id = 1",
    "select to_tsvector('simple', email) from people where id = 1",
    "select xmlelement(name x, email) from people where id = 1",
    "select string_agg(email, ',') from people",
    "select array_agg(card) from people",
    "select json_agg(p) from people p",
    "select min(ssn), max(ssn) from people",
    "select first_value(email) over (order by id) from people",
    "select row_to_json(p) from people p where id = 1",
    "select to_jsonb(p) from people p where id = 1",
    "select p::text from people p where id = 1",
    "select p from people p where id = 1",
    "select jsonb_build_object('e', email) from people where id = 1",
    "select * from jsonb_each_text((select to_jsonb(p) from people p where id = 1))",
    "select unnest(array[email, ssn]) from people where id = 1",
    "select contact, c from contacts where id = 1",
    "select * from contacts where id = 1",
    "select 'x' as name union all select email from people where id = 1",
    "values ((select email from people where id = 1))",
    "with recursive r(v, n) as (select email, 1 from people where id = 1 union all select v, n + 1 from r where n < 2) select v from r",
    "select (select ssn from people where id = 1) as s",
    "select s.x from (select card as x from people) s where s.x like '4929%'",
    "select e from (select email from people where id = 1) as t(e)",
    "select * from people where id = 1",
    "select people.* from people where id = 1",
    "select regexp_replace(email, '(.)', '\\1 ', 'g') from people where id = 1",
    "select split_part(email, '@', 1), split_part(email, '@', 2) from people where id = 1",
    "select initcap(email) from people where id = 1",
    "select lpad(card, 20, '*') from people where id = 1",
    "select overlay(card placing 'xx' from 1 for 2) from people where id = 1",
    "select md5(email) = md5(email), email || ssn from people where id = 1",
    "select email::bytea from people where id = 1",
    "select convert_to(ssn, 'LATIN1') from people where id = 1",
    "select greatest(email, 'a'), least(card, 'z') from people where id = 1",
    "select nullif(email, 'x') from people where id = 1",
    "select (email)::text, (card)::char(16) from people where id = 1",
    "select (array[email])[1] from people where id = 1",
    "select (array_agg(ssn))[1] from people",
    "select json_build_array(email, card) from people where id = 1",
    "select jsonb_agg(jsonb_build_object('s', ssn)) from people",
    "select (to_jsonb(p) ->> 'email') from people p where id = 1",
    "select row(email, card)::text from people where id = 1",
    "select string_to_array(email, '.') from people where id = 1",
    "select regexp_split_to_table(email, '@') from people where id = 1",
    "select lag(card) over (order by id desc) from people",
    "select max(email) filter (where id = 1) from people",
    "select xmlforest(email, card) from people where id = 1",
    "select quote_literal(ssn), quote_ident(email) from people where id = 1",
    "select email from people where id = 1 union select ssn from people where id = 1",
    "select x from people, lateral (select email as x) l where id = 1",
    "select t.e from (values (1)) v(n) join (select email as e, id from people) t on t.id = v.n",
    "with c as (select card as k from people) select k from c where k like '4929%'",
    "select * from (select id, upper(ssn) as s from people) q where id = 1",
];

#[test]
fn values_derived_from_masked_columns_never_reach_psql() {
    let (_pg, _broker, cli) = setup();
    let mut failures = Vec::new();
    for sql in DERIVATIONS {
        let out = psql(&cli, &[sql]);
        let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
        if !out.status.success() {
            failures.push(format!("{sql}: failed: {all}"));
            continue;
        }
        if let Some(form) = forbidden().iter().find(|f| all.contains(f.as_str())) {
            failures.push(format!("{sql}: shows {form:?}: {all}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn non_revealing_queries_and_unmasked_columns_stay_as_they_are() {
    let (_pg, _broker, cli) = setup();
    let cases: &[(&str, &str)] = &[
        ("select count(email) from people", "2"),
        ("select email is null from people where id = 1", "f"),
        ("select length(card) from people where id = 1", "16"),
        ("select email = 'nobody' from people where id = 1", "f"),
        ("select name from people where id = 1", "Zed"),
        ("select upper(name) from people where id = 1", "ZED"),
        ("select 40 + 2", "42"),
        ("select now() is not null", "t"),
    ];
    for (sql, expected) in cases {
        let out = psql(&cli, &[sql]);
        assert!(out.status.success(), "{sql}: {}", text(&out.stderr));
        assert_eq!(text(&out.stdout).trim(), *expected, "{sql}");
    }
    // A plain masked column keeps its rule's style: the card's last four digits.
    let out = psql(&cli, &["select card from people where id = 1"]);
    let shown = text(&out.stdout);
    assert!(
        shown.trim().ends_with("9012") && !shown.contains(CARD),
        "{shown}"
    );
}

#[test]
fn writes_and_notifications_that_would_launder_a_masked_value_are_refused() {
    let (pg, _broker, cli) = setup();
    let refused = [
        "update people set note = email where id = 1",
        "insert into notes (n) select email from people",
        "insert into notes values ((select upper(ssn) from people where id = 1))",
        "insert into people (id, note) values (1, 'x') on conflict (id) do update set note = excluded.note || people.card",
        "select pg_notify('leak', email) from people where id = 1",
    ];
    for sql in refused {
        let out = psql(&cli, &[sql]);
        let err = text(&out.stderr);
        assert!(
            err.contains("masking rule") && err.contains("Refused by the rule \"masking:"),
            "{sql}: {err}"
        );
    }
    assert_eq!(
        pg.admin_sql(&pg.database, "select count(*) from notes")
            .trim(),
        "0"
    );
    assert_eq!(
        pg.admin_sql(&pg.database, "select note from people where id = 1")
            .trim(),
        "n"
    );
    // Writes of other values go through.
    let out = psql(&cli, &["update people set note = upper(name) where id = 1"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        pg.admin_sql(&pg.database, "select note from people where id = 1")
            .trim(),
        "ZED"
    );
}

/// The same derivations through psycopg, over the extended protocol, with text and binary
/// results and server-side prepared statements.
#[test]
fn psycopg_text_binary_and_prepared_results_are_masked_too() {
    let (_pg, _broker, cli) = setup();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/data/psycopg_probe.py");
    let mut args = vec![
        "connect", "pg", "--role", "masked", "--exec", "python3", script,
    ];
    args.extend_from_slice(DERIVATIONS);
    args.push("select upper(name), count(email) from people group by name order by 1");
    let out = cli.run(&args);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stderr}");
    // Every mode got rows back, unmasked ones included.
    for mode in ["text", "binary", "prepared"] {
        assert!(
            stdout.contains(&format!("{mode}\t'ZED'")),
            "{mode}: {stdout}"
        );
    }
    if let Some(form) = forbidden().iter().find(|f| stdout.contains(f.as_str())) {
        panic!("psycopg got {form:?}:\n{stdout}");
    }
}

/// An error that quotes a value of a table with a masked column (a failed cast, a unique
/// violation) has the quoted value redacted; the session goes on.
#[test]
fn errors_that_quote_values_of_masked_tables_are_redacted() {
    let (pg, _broker, cli) = setup();
    pg.admin_sql(
        &pg.database,
        "create unique index people_ssn on people (ssn)",
    );
    let out = psql(
        &cli,
        &[
            "select 1 from people where email::int = 1",
            "select ssn::date from people where id = 1",
            "insert into people (id, ssn) values (9, (select ssn from people where id = 1))",
            "select 'after'",
        ],
    );
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(stderr.contains("invalid input syntax"), "{stderr}");
    if let Some(form) = forbidden().iter().find(|f| stderr.contains(f.as_str())) {
        panic!("an error showed {form:?}: {stderr}");
    }
    assert!(stdout.contains("after"), "{stdout}");
}
